// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A program in UMap's style, built as UMap's users build theirs with only
 * the include and link flags changed (Makefile: UMAP_INC, UMAP_LIBS), as
 * C and as C++ (umap_style_cxx): it includes <umap/umap.h> and no upager
 * header.  It opens a file with O_DIRECT (in $TMPDIR, else /var/tmp),
 * umaps it with a buffer of 16 pages over 256 so that eviction runs all
 * along, reads the file's data on first touch, writes through the region
 * from 4 threads (each its own pages, so that a model in memory says
 * what every byte must be) while reading back what it wrote, umap_flush()es
 * and compares the file with the model byte for byte, writes more,
 * uunmap()s and compares again.  Then, as a program that only reads a
 * data set does, it umaps the file again PROT_READ over an O_RDONLY
 * descriptor: the file's data, and the buffer kept there too.  Exit 0
 * pass, 1 fail, 77 skip.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_DIRECT, as UMap's own programs do */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <umap/umap.h>

#define NPAGES	256
#define THREADS 4
#define WRITES 2000

static char path[256];
static char *region;
static unsigned char *model;
static uint64_t psize;

static void fail(const char *what)
{
	fprintf(stderr, "FAIL umap_style: %s (errno: %s)\n", what,
		strerror(errno));
	if (*path)
		unlink(path);
	exit(1);
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* A file where O_DIRECT works, of the pattern, its model in memory. */
static int make_file(const char *dir, size_t len)
{
	uint64_t x = 88172645463325252ull;
	int fd;

	snprintf(path, sizeof(path), "%s/umap-style-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		fail("mkstemp");
	model = (unsigned char *)malloc(len);
	if (!model)
		fail("malloc");
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = next(&x);

		memcpy(model + i, &v, 8);
	}
	if (write(fd, model, len) != (ssize_t)len)
		fail("writing the file");
	close(fd);
	return open(path, O_RDWR | O_DIRECT);
}

/* The file as it is on disk now equals the model. */
static void compare(const char *when, size_t len)
{
	unsigned char *back = (unsigned char *)malloc(len);
	int fd = open(path, O_RDONLY);

	if (!back || fd < 0 || pread(fd, back, len, 0) != (ssize_t)len)
		fail("reading the file back");
	for (size_t i = 0; i < len; i++)
		if (back[i] != model[i]) {
			fprintf(stderr,
				"FAIL umap_style: %s: byte %zu of the file is "
				"%#x, the model says %#x\n",
				when, i, back[i], model[i]);
			unlink(path);
			exit(1);
		}
	close(fd);
	free(back);
}

/* Thread @t writes words of its own pages (page % THREADS == t). */
static void *writer(void *arg)
{
	uintptr_t t = (uintptr_t)arg;
	uint64_t x = 0x9e3779b97f4a7c15ull * (t + 1);

	for (int i = 0; i < WRITES; i++) {
		uint64_t page = next(&x) % (NPAGES / THREADS) * THREADS + t;
		size_t off = page * psize + next(&x) % (psize / 8) * 8;
		uint64_t v = next(&x), got;

		memcpy(region + off, &v, 8);
		memcpy(model + off, &v, 8);
		/* Another page of ours, maybe evicted since it was written. */
		page = next(&x) % (NPAGES / THREADS) * THREADS + t;
		off = page * psize + next(&x) % (psize / 8) * 8;
		memcpy(&got, region + off, 8);
		if (memcmp(&got, model + off, 8))
			return (
			    void *)"a page read back differs from the model";
	}
	return NULL;
}

static void write_all(void)
{
	pthread_t th[THREADS];
	void *bad = NULL, *r;

	for (uintptr_t t = 0; t < THREADS; t++)
		if (pthread_create(&th[t], NULL, writer, (void *)t))
			fail("pthread_create");
	for (int t = 0; t < THREADS; t++) {
		pthread_join(th[t], &r);
		bad = bad ? bad : r;
	}
	if (bad)
		fail((const char *)bad);
}

/* Pages of the region resident now. */
static size_t resident(size_t len)
{
	size_t n = len / 4096, count = 0;
	unsigned char *vec = (unsigned char *)malloc(n);

	if (!vec || mincore(region, len, vec))
		fail("mincore");
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	free(vec);
	return count;
}

static int direct_works(const char *dir)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/umap-direct-XXXXXX", dir);
	fd = mkostemp(p, O_DIRECT);
	if (fd < 0)
		return 0;
	unlink(p);
	close(fd);
	return 1;
}

int main(void)
{
	const char *dir = getenv("TMPDIR");
	size_t len, budget;
	int fd;

	/* What a user would export before running a UMap program. */
	setenv("UMAP_PAGESIZE", "16384", 0);
	setenv("UMAP_BUFSIZE", "16", 0);
	setenv("UMAP_PAGE_FILLERS", "2", 0);
	setenv("UMAP_PAGE_EVICTORS", "1", 0);
	if (!dir || !*dir)
		dir = "/tmp";
	if (!direct_works(dir))
		dir = "/var/tmp";
	if (!direct_works(dir)) {
		fprintf(stderr, "SKIP: neither $TMPDIR nor /var/tmp takes "
				"O_DIRECT\n");
		return 77;
	}
	if (!umap_has_write_support())
		fail("umap_has_write_support() says no");
	psize = umapcfg_get_umap_page_size();
	len = NPAGES * psize;
	budget = umapcfg_get_max_pages_in_buffer() * psize;
	fd = make_file(dir, len);
	if (fd < 0)
		fail("open O_RDWR|O_DIRECT");
	region = (char *)umap(NULL, len, PROT_READ | PROT_WRITE, UMAP_PRIVATE,
			      fd, 0);
	if (region == UMAP_FAILED)
		fail("umap");
	close(fd);

	/* First touch: the file's data, every page (the buffer turns over). */
	if (memcmp(region, model, len))
		fail("the region does not read the file's data");
	write_all();
	if (umap_flush())
		fail("umap_flush");
	compare("after umap_flush", len);
	/* Eviction keeps the buffer: give it a moment after the writers. */
	for (int i = 0; i < 1000 && resident(len) * 4096 > budget; i++)
		usleep(10000);
	if (resident(len) * 4096 > budget)
		fail("more resident than UMAP_BUFSIZE pages after 10 s");
	write_all();
	if (memcmp(region, model, len))
		fail("the region differs from the model");
	if (uunmap(region, len))
		fail("uunmap");
	compare("after uunmap", len);

	/* Read-only: UFFDIO_MOVE cannot take pages out of such a mapping. */
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0)
		fail("open O_RDONLY|O_DIRECT");
	region = (char *)umap(NULL, len, PROT_READ, UMAP_PRIVATE, fd, 0);
	if (region == UMAP_FAILED)
		fail("umap PROT_READ");
	close(fd);
	if (memcmp(region, model, len))
		fail("the PROT_READ region does not read the file's data");
	for (int i = 0; i < 1000 && resident(len) * 4096 > budget; i++)
		usleep(10000);
	if (resident(len) * 4096 > budget)
		fail("a PROT_READ mapping: more resident than UMAP_BUFSIZE "
		     "pages after 10 s");
	if (memcmp(region, model, len))
		fail("the PROT_READ region read again differs from the file");
	if (uunmap(region, len))
		fail("uunmap of the PROT_READ mapping");
	unlink(path);
	free(model);
	return 0;
}

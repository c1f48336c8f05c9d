// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region over a file in memory (tmpfs) maps the file itself: no copy,
 * no allocation per page (the store's memfile(), UPAGER_MAP_COPY).
 *
 * A 4 MiB file in /dev/shm, patterned, with a hole in the middle, under
 * an anon region with the defaults (read-ahead, fault-around):
 * - every byte reads right, the hole zeros; nothing is fetched
 *   (bytes_fetched 0), every first touch is a MINOR fault upager saw;
 * - the region holds no copy: its pages are the file's page-cache pages
 *   (/proc/self/pagemap: present, file pages), but for the hole, which
 *   the kernel gives as the zero page;
 * - a write is the region's own (copy-on-write): the file is unchanged;
 *   MADV_DONTNEED of the written page reads the file's data again;
 * - a forked child (EVENT_FORK, as root) reads the parent's data for
 *   the pages it wrote and the file's for the rest;
 * - with UPAGER_MAP_COPY the same file is copied: bytes fetched.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 1024
#define HOLE0 500 /* pages 500-531 are a hole */
#define HOLEN 32

#define PM_PRESENT (1ull << 63)
#define PM_FILE (1ull << 61) /* a file page (or shared anonymous) */

/* Pages of [p, p+n pages) present in the page tables as a private copy. */
static size_t private_pages(const char *p, size_t n)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t copies = 0;

	CHECK(pm >= 0, "pagemap: %s", strerror(errno));
	for (size_t i = 0; i < n; i++) {
		uint64_t e = t_pagemap_entry(pm, p + i * PG);

		copies += (e & PM_PRESENT) && !(e & PM_FILE);
	}
	close(pm);
	return copies;
}

static bool page_right(const char *p, size_t i)
{
	static const char zeros[PG];

	if (i >= HOLE0 && i < HOLE0 + HOLEN)
		return !memcmp(p, zeros, PG);
	return t_verify(p, PG, i);
}

static char *map(struct upager_handler *h, struct upager_store *s,
		 unsigned int flags, struct upager_region **r)
{
	struct upager_map_params mp = { .size = sizeof(mp), .flags = flags };
	int err;
	char *p = upager_map(h, s, NPAGES * PG, &mp, r, &err);

	CHECK(p, "map: %s", strerror(-err));
	return p;
}

int main(void)
{
	char path[] = "/dev/shm/upager-mapped-XXXXXX", spec[64];
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_stats st;
	struct upager_region *r;
	struct upager_store *s;
	size_t copies;
	int fd, err, status;
	pid_t pid;
	char *p;

	fd = mkstemp(path);
	if (fd < 0)
		SKIP("no tmpfs at /dev/shm: %s", strerror(errno));
	unlink(path);
	for (size_t i = 0; i < NPAGES; i++) {
		char pg[PG];

		if (i >= HOLE0 && i < HOLE0 + HOLEN)
			continue;
		t_fill(pg, PG, i);
		CHECK(pwrite(fd, pg, PG, (off_t)(i * PG)) == PG, "pwrite");
	}
	CHECK(ftruncate(fd, NPAGES * PG) == 0, "ftruncate");
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d", fd);
	s = upager_store_open(spec, &err);
	CHECK(s, "%s: %s", spec, strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	p = map(h, s, 0, &r);
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(page_right(p + i * PG, i), "page %zu", i);
	copies = private_pages(p, NPAGES);
	CHECK(copies == 0, "%zu of %d pages read are private copies", copies,
	      NPAGES);
	upager_region_stats(r, &st);
	CHECK(st.bytes_fetched == 0 && st.faults_minor > 0 &&
		      st.faults_missing == 0,
	      "fetched %llu, %llu minor and %llu missing faults",
	      (unsigned long long)st.bytes_fetched,
	      (unsigned long long)st.faults_minor,
	      (unsigned long long)st.faults_missing);

	/* Copy-on-write: the region's own page, the file unchanged. */
	memset(p + 7 * PG, 'W', PG);
	{
		char pg[PG];

		CHECK(pread(fd, pg, PG, 7 * PG) == PG && t_verify(pg, PG, 7),
		      "a write to the region reached the file");
	}
	if (geteuid() == 0) { /* EVENT_FORK needs CAP_SYS_PTRACE */
		fflush(stderr);
		pid = fork();
		CHECK(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0) {
			bool ok = p[7 * PG + 100] == 'W';

			for (size_t i = 8; i < NPAGES; i += 13)
				ok &= page_right(p + i * PG, i);
			_exit(ok ? 0 : 1);
		}
		CHECK(t_wait_child(pid, 5000, &status) == 0 &&
			      WIFEXITED(status) && !WEXITSTATUS(status),
		      "the child read wrong (status %#x)", status);
	}
	CHECK(madvise(p + 7 * PG, PG, MADV_DONTNEED) == 0, "madvise");
	CHECK(page_right(p + 7 * PG, 7), "page 7 after DONTNEED");
	CHECK_RET(upager_unmap(r), 0);

	/* Asked to copy: the same data, fetched. */
	p = map(h, s, UPAGER_MAP_COPY, &r);
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(page_right(p + i * PG, i), "copied page %zu", i);
	upager_region_stats(r, &st);
	CHECK(st.bytes_fetched > 0, "UPAGER_MAP_COPY fetched nothing");
	CHECK_RET(upager_unmap(r), 0);

	upager_handler_free(h);
	upager_store_close(s);
	close(fd);
	return 0;
}

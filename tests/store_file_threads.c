// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * One file store shared by four threads, buffered or (argv[1] "direct")
 * with O_DIRECT: each thread fetches random runs of pages, some of them
 * in a punched hole, and asks zero_run() about them, all at once through
 * the one fd; every byte fetched is checked, and so is every run
 * zero_run() reports.
 */
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <upager/store.h>

#include "harness.h"

#define PAGE UPAGER_STORE_PAGE
#define NPAGES 512u
#define HOLE_START 256u /* pages [HOLE_START, HOLE_END) are a hole */
#define HOLE_END 288u
#define MAX_RUN 16u
#define THREADS 4

struct shared {
	struct upager_store *s;
	pthread_barrier_t start;
	bool hole; /* the filesystem could punch it */
	unsigned int iters;
};

struct worker {
	struct shared *sh;
	pthread_t thread;
	unsigned int seed;
	unsigned long pages;
};

static bool in_hole(const struct shared *sh, uint64_t pg)
{
	return sh->hole && pg >= HOLE_START && pg < HOLE_END;
}

static void verify(const struct shared *sh, const unsigned char *buf,
		   uint64_t pgoff, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = buf + i * PAGE;

		if (!in_hole(sh, pgoff + i)) {
			CHECK(t_verify(p, PAGE, pgoff + i), "page %llu",
			      (unsigned long long)(pgoff + i));
			continue;
		}
		for (size_t b = 0; b < PAGE; b++)
			CHECK(!p[b], "hole page %llu byte %zu",
			      (unsigned long long)(pgoff + i), b);
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	unsigned char *buf;
	size_t n, run, want;
	uint64_t pgoff;
	void *p;

	CHECK(!posix_memalign(&p, PAGE, MAX_RUN * PAGE), "posix_memalign");
	buf = p;
	pthread_barrier_wait(&sh->start);
	for (unsigned int i = 0; i < sh->iters; i++) {
		/* Half the runs start near the hole, to cross its edges. */
		if (i % 2)
			pgoff = HOLE_START - MAX_RUN +
				(uint64_t)rand_r(&w->seed) %
					(HOLE_END - HOLE_START + 2 * MAX_RUN);
		else
			pgoff = (uint64_t)rand_r(&w->seed) % NPAGES;
		n = 1 + (size_t)rand_r(&w->seed) % MAX_RUN;
		if (n > NPAGES - pgoff)
			n = NPAGES - pgoff;
		memset(buf, 0xaa, n * PAGE);
		CHECK_RET(upager_store_fetch(sh->s, pgoff, buf, n), 0);
		verify(sh, buf, pgoff, n);
		w->pages += n;

		run = sh->s->ops->zero_run(sh->s, pgoff, n);
		want = 0;
		while (want < n && in_hole(sh, pgoff + want))
			want++;
		CHECK(run == want, "zero_run(%llu, %zu) = %zu, want %zu",
		      (unsigned long long)pgoff, n, run, want);
	}
	free(buf);
	return NULL;
}

/* An unlinked file of NPAGES pages of the pattern, with the hole; its fd. */
static int make_image(struct shared *sh)
{
	int fd = t_tmp_unlinked(NPAGES * PAGE);

	sh->hole = !fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      HOLE_START * PAGE,
			      (HOLE_END - HOLE_START) * PAGE);
	if (!sh->hole)
		t_not_checked("zero_run() on a hole (%s cannot punch one: %s)",
			      t_tmpdir(), strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	bool direct = argc > 1 && !strcmp(argv[1], "direct");
	struct shared sh = { .iters = direct ? 3000 : 10000 };
	struct worker w[THREADS];
	unsigned long pages = 0;
	char spec[64];
	int fd, err;

	fd = make_image(&sh);
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d%s", fd,
		 direct ? ",direct" : "");
	sh.s = upager_store_open(spec, &err);
	if (!sh.s && direct && err == -EINVAL)
		SKIP("/tmp refuses O_DIRECT");
	CHECK(sh.s, "%s: %s", spec, strerror(-err));
	CHECK(sh.s->npages == NPAGES, "npages %llu",
	      (unsigned long long)sh.s->npages);

	pthread_barrier_init(&sh.start, NULL, THREADS);
	for (unsigned int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .sh = &sh, .seed = 12345u + i };
		CHECK(!pthread_create(&w[i].thread, NULL, work, &w[i]),
		      "pthread_create");
	}
	for (unsigned int i = 0; i < THREADS; i++) {
		pthread_join(w[i].thread, NULL);
		pages += w[i].pages;
	}
	pthread_barrier_destroy(&sh.start);
	fprintf(stderr, "%d threads fetched %lu pages\n", THREADS, pages);
	upager_store_close(sh.s);
	close(fd);
	return t_end();
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * First writes to a region with write tracking while another thread of
 * the program gives a page of it back (MADV_DONTNEED) after every 20 µs
 * of its work.  Each drop is an event that holds the map until a worker
 * has read it and the dropping thread has run on, and the fill and the
 * lift of the protection that each first write needs wait for the map to
 * be still: the waiter must wake while that thread works.  The writes
 * must go on at a rate within RATIO of the same writes with no dropper,
 * timed in the same run: workers that yielded, or slept a fixed 50 µs,
 * between two tries woke after each still moment time after time, and
 * these writes had not ended after 300 s (6,000x or more; session 26).
 * Since then 1-5x, and up to 27x when the writes alone ran on the
 * worker's CPU (7 ms instead of 50): the bound is far from both.  Every
 * page is checked.
 *
 * Runs on anon and shmem (argv[1]).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG	4096
#define N	1024	/* pages written in each half */
#define WORK_NS 20000
#define RATIO	200

struct dropper {
	char *page;
	atomic_bool stop;
	atomic_ulong drops;
};

static void *drop(void *arg)
{
	struct dropper *d = arg;

	while (!atomic_load(&d->stop)) {
		uint64_t t0;

		CHECK_RET(madvise(d->page, PG, MADV_DONTNEED), 0);
		atomic_fetch_add(&d->drops, 1);
		for (t0 = t_now_ns(); t_now_ns() - t0 < WORK_NS;)
			; /* the program's work between two drops */
	}
	return NULL;
}

/* Write the first byte of pages [lo, lo + N): the time it took, in ns. */
static uint64_t write_half(char *p, size_t lo)
{
	uint64_t t0 = t_now_ns();

	for (size_t i = lo; i < lo + N; i++)
		p[i * PG] = (char)(i % 251 + 1);
	return t_now_ns() - t0;
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .flags = UPAGER_MAP_TRACK_WRITES};
	size_t len = (2 * N + 1) * (size_t)PG;
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct dropper d = {0};
	struct upager_region *r;
	struct upager_store *s;
	uint64_t alone, dropping;
	pthread_t t;
	char *p;
	int err;

	s = upager_store_mem_new(len, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	p = upager_map(h, s, len, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("write tracking needs UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	alone = write_half(p, 0);
	d.page = p + 2 * N * (size_t)PG;
	CHECK(!pthread_create(&t, NULL, drop, &d), "thread");
	while (atomic_load(&d.drops) < 100)
		;
	dropping = write_half(p, N);
	atomic_store(&d.stop, true);
	pthread_join(t, NULL);
	printf("%d first writes: %.1f ms alone, %.1f ms with a page dropped "
	       "every %d us (%lu drops): %.1fx\n",
	       N, alone / 1e6, dropping / 1e6, WORK_NS / 1000,
	       atomic_load(&d.drops), (double)dropping / (double)alone);
	for (size_t i = 0; i < 2 * N; i++)
		for (size_t b = 0; b < PG; b++)
			CHECK(p[i * PG + b] == (b ? 0 : (char)(i % 251 + 1)),
			      "page %zu byte %zu holds %d", i, b,
			      p[i * PG + b]);
	CHECK(dropping < RATIO * alone,
	      "the writes with a thread dropping pages took %.1fx as long "
	      "as without (at most %dx)",
	      (double)dropping / (double)alone, RATIO);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The program unmaps a region while a fill of one of its units is in
 * flight, and maps a second region of the same handler, which the
 * kernel places at the same address: the first region's fill must not
 * land in the second.  Its data there would read as the second
 * region's, and no fault would ever come for that page.
 *
 * Every fetch of the first region's store sleeps 2 ms: a thread faults
 * on page 0 (write(2)ing it to a file, so that its access meets EFAULT,
 * not a signal, once the region is gone or the page poisoned), the
 * fetch begins, the main thread munmap()s the region (a worker reads the
 * UNMAP) and maps the second over a store of other data, then reads its
 * page 0 once the first fetch is over.
 * The same with the first region's fetch failing: the page is poisoned
 * in its place, never in the second region (part poison).
 * 32 rounds each; a round where the kernel chose another address is
 * counted and does not check anything (most must reuse it), and so is a
 * round whose fetch was over before the unmap (a quarter must not be).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 16
#define ROUNDS 32
#define SEED2 (1ull << 24)
#define WSEED (1ull << 28)

/*
 * Built with a sanitizer, whose runtime maps memory of its own: the
 * kernel then places the second region where the first was less often.
 */
static bool sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return true;
#else
	return false;
#endif
}

static const char *what_is(const char *pg)
{
	static char buf[64];

	for (uint64_t k = 0; k < NPAGES; k++) {
		if (t_verify(pg, PG, k))
			return "the first region's data";
		if (t_verify(pg, PG, SEED2 + k)) {
			snprintf(buf, sizeof(buf),
				 "the second region's page %llu's data",
				 (unsigned long long)k);
			return buf;
		}
	}
	for (size_t k = 0; k < PG; k++)
		if (pg[k])
			return "other data";
	return "zeros";
}

/* The failed fetches of part poison are the test's own: counted. */
static atomic_uint errors;

static void count_error(void *arg, struct upager_region *r, uint64_t addr,
			int err, const char *what)
{
	(void)arg, (void)r, (void)addr, (void)err, (void)what;
	atomic_fetch_add(&errors, 1);
}

/*
 * @bad: the first region's fetch fails, and the poison that takes the
 * place of its page must not land in the second region either.
 */
static void run(struct upager_handler *h, enum upager_memtype type, bool bad)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct tstore *t1 = tstore_open(NPAGES), *t2 = tstore_open(NPAGES);
	const char *name = bad ? "poison" : "data";
	unsigned int same = 0, racy = 0;
	int err, sink = t_tmp_unlinked(PG);

	t1->delay_ms = 2;
	if (bad)
		t1->bad = 0;
	t2->seed = SEED2;
	for (int round = 0; round < ROUNDS; round++) {
		struct upager_region *r1, *r2;
		unsigned int f0 = atomic_load(&t1->fetches);
		struct toucher to;
		char *p1, *p2;

		p1 = upager_map(h, &t1->s, NPAGES * PG, &mp, &r1, &err);
		CHECK(p1, "map 1: %s", strerror(-err));
		toucher_start(&to, p1, sink);
		while (atomic_load(&t1->fetches) == f0)
			sched_yield();
		racy += atomic_load(&t1->busy) > 0;
		CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s",
		      strerror(errno));
		p2 = upager_map(h, &t2->s, NPAGES * PG, &mp, &r2, &err);
		CHECK(p2, "map 2: %s", strerror(-err));
		for (int ms = 0; ms < 5000 && atomic_load(&t1->busy); ms++)
			t_sleep_ms(1);
		if (p2 == p1) {
			same++;
			for (size_t i = 0; i < NPAGES; i++) {
				CHECK(!t_read_sigbus(p2 + i * PG),
				      "%s: round %d: page %zu of the second "
				      "region is poisoned (SIGBUS)",
				      name, round, i);
				CHECK(t_verify(p2 + i * PG, PG, SEED2 + i),
				      "%s: round %d: page %zu of the second "
				      "region reads %s",
				      name, round, i, what_is(p2 + i * PG));
			}
		}
		CHECK(pthread_join(to.t, NULL) == 0, "pthread_join");
		CHECK_RET(upager_unmap(r2), 0);
		CHECK_RET(upager_unmap(r1), 0);
	}
	fprintf(stderr, "%s: %u of %d rounds mapped the second region where "
		"the first was, %u unmapped it while its fetch was in flight\n",
		name, same, ROUNDS, racy);
	if (same < ROUNDS / 2 && sanitized())
		t_not_checked("%s: only %u of %d rounds reused the address "
			      "(a sanitizer's own mappings take it)",
			      name, same, ROUNDS);
	else
		CHECK(same >= ROUNDS / 2,
		      "%s: only %u of %d rounds reused the address", name,
		      same, ROUNDS);
	CHECK(racy >= ROUNDS / 4, "%s: only %u of %d unmaps met a fetch in "
	      "flight", name, racy, ROUNDS);
	close(sink);
	upager_store_close(&t1->s);
	upager_store_close(&t2->s);
}

struct syncer {
	struct upager_region *r;
	int ret;
};

static void *syncer(void *arg)
{
	struct syncer *sy = arg;

	sy->ret = upager_region_sync(sy->r, 0, NPAGES * PG);
	return NULL;
}

/*
 * Part writeback: the first region is write-tracked over a store that
 * takes write-backs; unit 0 (4 pages) is written, its page 1 dropped,
 * and a sync writes it back.  Its read of the unit fetches the dropped
 * page from the store (REFETCH), which holds that fetch at a gate:
 * meanwhile the program unmaps the region and maps the second there,
 * and touches all of it.  The pages the write-back reads after the gate
 * are the second region's: the first region's store must not get them.
 */
static bool writeback_once(struct upager_handler *h, enum upager_memtype type)
{
	struct upager_map_params mp1 = { .size = sizeof(mp1),
					 .memtype = type,
					 .fill = 4 * PG,
					 .flags = UPAGER_MAP_TRACK_WRITES,
					 .readahead_max = (size_t)-1,
					 .fault_around = (size_t)-1 };
	struct upager_map_params mp2 = { .size = sizeof(mp2),
					 .memtype = type,
					 .readahead_max = (size_t)-1,
					 .fault_around = (size_t)-1 };
	struct tstore *t2 = tstore_open(NPAGES);
	struct upager_region *r1, *r2;
	struct syncer sy;
	struct wbstore w;
	pthread_t th;
	char *p1, *p2;
	int err;

	wbstore_init(&w, NPAGES);
	t2->seed = SEED2;
	p1 = upager_map(h, &w.s, NPAGES * PG, &mp1, &r1, &err);
	CHECK(p1, "writeback: map 1: %s", strerror(-err));
	for (size_t i = 0; i < 4; i++)
		t_fill(p1 + i * PG, PG, WSEED + i);
	CHECK(madvise(p1 + PG, PG, MADV_DONTNEED) == 0, "madvise: %s",
	      strerror(errno));
	atomic_store(&w.fetch_hold, true);
	sy.r = r1;
	CHECK(pthread_create(&th, NULL, syncer, &sy) == 0, "pthread_create");
	t_wait_set(&w.fetch_held, "the write-back's fetch of the dropped page");
	CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s", strerror(errno));
	p2 = upager_map(h, &t2->s, NPAGES * PG, &mp2, &r2, &err);
	CHECK(p2, "writeback: map 2: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p2 + i * PG, PG, SEED2 + i),
		      "writeback: page %zu of the second region reads %s", i,
		      what_is(p2 + i * PG));
	atomic_store(&w.fetch_release, true);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	for (size_t i = 0; i < 4; i++) {
		const char *pg = w.img + i * PG;

		CHECK(t_verify(pg, PG, i) || t_verify(pg, PG, WSEED + i),
		      "writeback: the first region's store page %zu holds %s%s",
		      i, what_is(pg), p2 == p1 ? " (the second region there)"
					       : "");
	}
	fprintf(stderr, "writeback: sync %s; the second region %s\n",
		sy.ret ? strerror(-sy.ret) : "ok",
		p2 == p1 ? "where the first was" : "elsewhere");
	CHECK_RET(upager_unmap(r2), 0);
	upager_unmap(r1);
	wbstore_free(&w);
	upager_store_close(&t2->s);
	return p2 == p1;
}

/* Until the kernel places the second region where the first was. */
static void writeback(struct upager_handler *h, enum upager_memtype type)
{
	int tries = 0;

	while (!writeback_once(h, type)) {
		if (++tries < 8)
			continue;
		if (sanitized()) {
			t_not_checked("writeback: the second region went "
				      "elsewhere %d times", tries);
			return;
		}
		FAIL("writeback: the second region went elsewhere %d times",
		     tries);
	}
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_handler *h = t_upager_handler(2, count_error, NULL);

	CHECK_RET(upager_handler_start(h), 0);
	t_deadline(60, "unmap_inflight did not finish in 60 s");
	run(h, type, false);
	run(h, type, true);
	writeback(h, type);
	fprintf(stderr, "%u errors told\n", atomic_load(&errors));
	t_deadline(0, NULL);
	upager_handler_free(h);
	return t_end();
}

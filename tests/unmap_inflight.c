// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The program unmaps a region while a fill of one of its units is in
 * flight, and maps a second region of the same handler, which the
 * kernel places at the same address: the first region's fill must not
 * land in the second.  Its data there would read as the second
 * region's, and no fault would ever come for that page.
 *
 * Every fetch of the first region's store sleeps 2 ms: a reader thread
 * faults on page 0, the fetch begins, the main thread munmap()s the
 * region (a worker reads the UNMAP) and maps the second over a store of
 * other data, then reads its page 0 once the first fetch is over.
 * The same with the first region's fetch failing: the page is poisoned
 * in its place, never in the second region (part poison).
 * 32 rounds each; a round where the kernel chose another address is counted
 * and does not check anything (most must reuse it), and so is a round
 * whose fetch was over before the unmap (most must not be).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 16
#define ROUNDS 32
#define SEED2 (1ull << 24)

struct reader {
	char *p;
};

static void *reader(void *arg)
{
	struct reader *rd = arg;

	/* The region is gone under it, or the second one is there. */
	(void)t_read_sigsegv(rd->p);
	return NULL;
}

static const char *what_is(const char *pg)
{
	static char buf[64];

	for (uint64_t k = 0; k < NPAGES; k++) {
		if (t_verify(pg, PG, k))
			return "the first region's data";
		if (t_verify(pg, PG, SEED2 + k)) {
			snprintf(buf, sizeof(buf), "its page %llu's data",
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
	int err;

	t1->delay_ms = 2;
	if (bad)
		t1->bad = 0;
	t2->seed = SEED2;
	for (int round = 0; round < ROUNDS; round++) {
		struct upager_region *r1, *r2;
		unsigned int f0 = atomic_load(&t1->fetches);
		struct reader rd;
		pthread_t th;
		char *p2;

		rd.p = upager_map(h, &t1->s, NPAGES * PG, &mp, &r1, &err);
		CHECK(rd.p, "map 1: %s", strerror(-err));
		CHECK(pthread_create(&th, NULL, reader, &rd) == 0,
		      "pthread_create");
		while (atomic_load(&t1->fetches) == f0)
			sched_yield();
		racy += atomic_load(&t1->busy) > 0;
		CHECK(munmap(rd.p, NPAGES * PG) == 0, "munmap: %s",
		      strerror(errno));
		p2 = upager_map(h, &t2->s, NPAGES * PG, &mp, &r2, &err);
		CHECK(p2, "map 2: %s", strerror(-err));
		for (int ms = 0; ms < 5000 && atomic_load(&t1->busy); ms++)
			t_sleep_ms(1);
		if (p2 == rd.p) {
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
		CHECK(pthread_join(th, NULL) == 0, "pthread_join");
		CHECK_RET(upager_unmap(r2), 0);
		CHECK_RET(upager_unmap(r1), 0);
	}
	fprintf(stderr, "%s: %u of %d rounds mapped the second region where "
		"the first was, %u unmapped it while its fetch was in flight\n",
		name, same, ROUNDS, racy);
	CHECK(same >= ROUNDS / 2, "%s: only %u of %d rounds reused the address",
	      name, same, ROUNDS);
	CHECK(racy >= ROUNDS / 2, "%s: only %u of %d unmaps met a fetch in "
	      "flight", name, racy, ROUNDS);
	upager_store_close(&t1->s);
	upager_store_close(&t2->s);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_handler *h = t_upager_handler(2, count_error, NULL);

	CHECK_RET(upager_handler_start(h), 0);
	t_deadline(60, "unmap_inflight did not finish in 60 s");
	run(h, type, false);
	run(h, type, true);
	fprintf(stderr, "%u errors told\n", atomic_load(&errors));
	t_deadline(0, NULL);
	upager_handler_free(h);
	return t_end();
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * One slow store must not stall the other regions of its handler (issue
 * 8, defect 6).  Before the fix the region table's rwlock was read-held
 * across the store's fetch; a upager_map() waiting for the write lock
 * then held back every other fault of the handler (writers are
 * preferred), so a store sleeping 2 s delayed an unrelated fault by
 * ~1.8 s.  No lock may be held across a store call, and unmap waits only
 * for its own region's fills.
 *
 * A handler with two workers serves region A, over a store whose every
 * fetch sleeps 2 s, and region B, over a mem store; read-ahead and
 * fault-around are off, so every access to a fresh page is one fault.
 *
 * phase 1  two threads read A's pages, each one page after the other
 *          (write(2) of each page to a memfd, so that an access that
 *          meets A's unmap in phase 2 fails with EFAULT instead of
 *          killing the test): both workers are inside a 2 s fetch most
 *          of the time, and only a spare worker, started when the last
 *          one went into the slow store, is left to serve B.  Meanwhile
 *          a thread maps and unmaps small regions over `zero` in a loop,
 *          and four threads time their faults on fresh pages of B (one
 *          every 3 ms each, for 4 s); four more time theirs on region C,
 *          over a mem store too but served by a handler of its own: the
 *          control, measured at the same time under the same load.
 * phase 2  just after a fetch of A began, A is unmapped: upager_unmap()
 *          returns once A's fetches have returned (the other reader's
 *          fault may have begun one before the region closed; no other
 *          begins, and none after), while B is still being served.
 *
 * B's fault latency p99 must stay under 10 ms in each phase, the issue's
 * target, or, on a machine so busy that C's faults take longer with no
 * slow store in their handler at all, under 4 times C's p99 in that
 * phase; the stall it guards against is 2 s, 200 times the target.
 * No map or unmap of the small regions may take a second: only a stall
 * behind the 2 s fetch takes that long.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define A_PAGES 16
#define NA 2 /* A's readers: as many as the handler has workers */
#define NB 4
#define B_PER 4096 /* fresh pages per timing thread */
#define PACE_MS 3
#define PHASE1_MS 4000
#define P99_MAX_US 10000
#define MAPLOOP_MAX_US 1000000

static struct {
	struct upager_handler *h;
	struct tstore *a_store;
	char *a, *b;
	atomic_bool stop_a, stop_b, stop_maps;
	atomic_int phase; /* 1, 2, or 3 once A is unmapped */
} g;

/* ---- region A: one slow fetch after another ----------------------------- */

struct a_reader {
	pthread_t t;
	unsigned int k;
	int sink;
	unsigned int pages, efault;
	atomic_bool in_write;
};

static void *a_main(void *arg)
{
	struct a_reader *ar = arg;
	char buf[PG];

	for (size_t i = ar->k; i < A_PAGES && !atomic_load(&g.stop_a);
	     i += NA) {
		ssize_t n;

		atomic_store(&ar->in_write, true);
		n = pwrite(ar->sink, g.a + i * PG, PG, 0);
		atomic_store(&ar->in_write, false);
		if (n < 0 && errno == EFAULT) {
			/* Only the access that meets the unmap may fail. */
			CHECK(atomic_load(&g.phase) >= 2,
			      "A page %zu: EFAULT before A was unmapped (a "
			      "user-mode-only uffd serves no write(2)?)",
			      i);
			ar->efault++;
			break;
		}
		CHECK(n == PG, "A page %zu: write(2) %zd: %s", i, n,
		      strerror(errno));
		CHECK(pread(ar->sink, buf, PG, 0) == PG, "pread: %s",
		      strerror(errno));
		if (!t_verify(buf, PG, i) && atomic_load(&g.phase) >= 2) {
			/*
			 * A is gone and the map loop's next region may have
			 * taken its addresses: the write(2) read that one.
			 * An access racing an unmap is the caller's bug.
			 */
			ar->efault++;
			break;
		}
		CHECK(t_verify(buf, PG, i), "A page %zu: wrong data", i);
		ar->pages++;
	}
	return NULL;
}

/* ---- maps and unmaps of other regions ---------------------------------- */

struct mapper {
	pthread_t t;
	struct upager_store *zero;
	unsigned int loops;
	uint64_t map_max, unmap_max; /* ns */
};

static void *map_main(void *arg)
{
	struct mapper *m = arg;

	while (!atomic_load(&g.stop_maps)) {
		struct upager_region *r;
		uint64_t t0 = t_now_ns(), t1;
		int err;
		char *p = upager_map(g.h, m->zero, 16 * PG, NULL, &r, &err);

		CHECK(p, "map over zero: %s", strerror(-err));
		t1 = t_now_ns();
		if (t1 - t0 > m->map_max)
			m->map_max = t1 - t0;
		CHECK_RET(upager_unmap(r), 0);
		t0 = t_now_ns();
		if (t0 - t1 > m->unmap_max)
			m->unmap_max = t0 - t1;
		m->loops++;
		t_sleep_ms(1);
	}
	return NULL;
}

/* ---- regions B and C: timed faults -------------------------------------- */

struct timer {
	pthread_t t;
	char *base; /* of B or C */
	unsigned int k, n;
	uint32_t us[B_PER];
	uint8_t phase[B_PER];
};

static void *b_main(void *arg)
{
	struct timer *tm = arg;

	while (!atomic_load(&g.stop_b) && tm->n < B_PER) {
		size_t i = (size_t)tm->k * B_PER + tm->n;
		int ph = atomic_load(&g.phase);
		uint64_t t0 = t_now_ns();
		volatile char c = tm->base[i * PG];
		uint64_t us = (t_now_ns() - t0) / 1000;

		(void)c;
		tm->us[tm->n] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
		tm->phase[tm->n++] = (uint8_t)ph;
		t_sleep_ms(PACE_MS);
	}
	return NULL;
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

/*
 * The p99 of B's faults in phase @ph, checked against @limit_us (0: not
 * checked).
 */
static uint32_t check_p99(struct timer *tms, int ph, const char *what,
			  uint32_t limit_us)
{
	uint32_t *v = malloc(sizeof(*v) * NB * B_PER);
	size_t n = 0, slow = 0;
	uint32_t p99, max;

	CHECK(v, "malloc");
	for (unsigned int k = 0; k < NB; k++)
		for (unsigned int j = 0; j < tms[k].n; j++)
			if (tms[k].phase[j] == ph)
				v[n++] = tms[k].us[j];
	CHECK(n, "%s: no fault on B was timed", what);
	qsort(v, n, sizeof(*v), cmp_u32);
	p99 = v[(n * 99 + 99) / 100 - 1];
	max = v[n - 1];
	for (size_t i = 0; i < n; i++)
		slow += v[i] >= P99_MAX_US;
	fprintf(stderr,
		"%s: %zu faults: p50 %u us, p99 %u us, max %u us, %zu "
		"over %d ms\n",
		what, n, v[n / 2], p99, max, slow, P99_MAX_US / 1000);
	CHECK(!limit_us || p99 < limit_us,
	      "%s: B's fault p99 is %u us (max %u us, %zu of %zu faults "
	      "over %d ms; limit %u us): faults on B wait behind A's 2 s "
	      "fetch",
	      what, p99, max, slow, n, P99_MAX_US / 1000, limit_us);
	/* Fewer would make the p99 the maximum of a handful. */
	CHECK(n >= 100, "%s: only %zu faults on B timed", what, n);
	free(v);
	return p99;
}

struct unmapper {
	pthread_t t;
	struct upager_region *r;
	atomic_bool done;
	int ret;
	unsigned int busy_after, fetches_after;
};

static void *unmap_main(void *arg)
{
	struct unmapper *u = arg;

	u->ret = upager_unmap(u->r);
	u->busy_after = atomic_load(&g.a_store->busy);
	u->fetches_after = atomic_load(&g.a_store->fetches);
	atomic_store(&u->done, true);
	return NULL;
}

int main(void)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	static struct timer tms[NB], tmc[NB];
	struct unmapper um = { 0 };
	struct mapper mapper = { 0 };
	static struct a_reader ar[NA];
	struct upager_region *rb, *rc;
	struct upager_handler *hc;
	struct upager_store *bs, *cs;
	unsigned int fetches, pages = 0, efault = 0;
	uint64_t t0;
	int err;
	char *c;

	t_deadline(60, "slow_store did not finish in 60 s");
	g.phase = 1;
	g.h = t_upager_handler(2, NULL, NULL);
	hc = t_upager_handler(2, NULL, NULL);
	g.a_store = tstore_open(A_PAGES);
	g.a_store->delay_ms = 2000;
	g.a = upager_map(g.h, &g.a_store->s, A_PAGES * PG, &mp, &um.r, &err);
	CHECK(g.a, "map A: %s", strerror(-err));
	bs = upager_store_mem_new((uint64_t)NB * B_PER * PG, &err);
	CHECK(bs, "mem store: %s", strerror(-err));
	g.b = upager_map(g.h, bs, (size_t)NB * B_PER * PG, &mp, &rb, &err);
	CHECK(g.b, "map B: %s", strerror(-err));
	cs = upager_store_mem_new((uint64_t)NB * B_PER * PG, &err);
	CHECK(cs, "mem store: %s", strerror(-err));
	c = upager_map(hc, cs, (size_t)NB * B_PER * PG, &mp, &rc, &err);
	CHECK(c, "map C: %s", strerror(-err));
	mapper.zero = upager_store_open("zero", &err);
	CHECK(mapper.zero, "open zero: %s", strerror(-err));
	CHECK_RET(upager_handler_start(g.h), 0);
	CHECK_RET(upager_handler_start(hc), 0);

	/*
	 * Phase 1: both workers sit in A's fetches from now on.  Each
	 * reader starts once the one before is in its fetch: two faults
	 * queued together could go to one worker in one batch.
	 */
	for (unsigned int k = 0; k < NA; k++) {
		ar[k].k = k;
		ar[k].sink = memfd_create("slow-store-sink", MFD_CLOEXEC);
		CHECK(ar[k].sink >= 0, "memfd_create: %s", strerror(errno));
		CHECK(pthread_create(&ar[k].t, NULL, a_main, &ar[k]) == 0,
		      "pthread_create");
		for (int ms = 0; atomic_load(&g.a_store->busy) <= k; ms++) {
			CHECK(ms < 5000, "A's fetch %u never began", k + 1);
			t_sleep_ms(1);
		}
	}
	CHECK(pthread_create(&mapper.t, NULL, map_main, &mapper) == 0,
	      "pthread_create");
	t_sleep_ms(50);
	for (unsigned int k = 0; k < NB; k++) {
		tms[k].k = tmc[k].k = k;
		tms[k].base = g.b;
		tmc[k].base = c;
		CHECK(pthread_create(&tms[k].t, NULL, b_main, &tms[k]) == 0 &&
			      pthread_create(&tmc[k].t, NULL, b_main,
					     &tmc[k]) == 0,
		      "pthread_create");
	}
	t_sleep_ms(PHASE1_MS);

	/*
	 * Phase 2: unmap A just after one of its fetches began, so that
	 * the unmap waits most of the fetch's 2 s, and B's faults in that
	 * time are enough for a p99 (a fetch about to end left too few).
	 */
	fetches = atomic_load(&g.a_store->fetches);
	for (int ms = 0; !(atomic_load(&g.a_store->fetches) > fetches &&
			   atomic_load(&g.a_store->busy) &&
			   (atomic_load(&ar[0].in_write) ||
			    atomic_load(&ar[1].in_write)));
	     ms++) {
		CHECK(ms < 5000, "no fetch of A in flight to unmap under");
		t_sleep_ms(1);
	}
	atomic_store(&g.stop_a, true);
	fetches = atomic_load(&g.a_store->fetches);
	atomic_store(&g.phase, 2);
	t0 = t_now_ns();
	CHECK(pthread_create(&um.t, NULL, unmap_main, &um) == 0,
	      "pthread_create");
	for (int ms = 0; !atomic_load(&um.done); ms++) {
		CHECK(ms < 6000, "unmap of A did not return in 6 s");
		t_sleep_ms(1);
	}
	atomic_store(&g.phase, 3);
	pthread_join(um.t, NULL);
	fprintf(stderr, "unmap of A took %llu ms\n",
		(unsigned long long)((t_now_ns() - t0) / 1000000));
	t_sleep_ms(100);
	atomic_store(&g.stop_b, true);
	atomic_store(&g.stop_maps, true);
	for (unsigned int k = 0; k < NB; k++) {
		pthread_join(tms[k].t, NULL);
		pthread_join(tmc[k].t, NULL);
	}
	pthread_join(mapper.t, NULL);
	for (unsigned int k = 0; k < NA; k++) {
		pthread_join(ar[k].t, NULL);
		pages += ar[k].pages;
		efault += ar[k].efault;
		close(ar[k].sink);
	}

	fprintf(stderr,
		"A: %u pages read, %u EFAULT; %u maps and unmaps, longest "
		"map %llu ms, unmap %llu ms\n",
		pages, efault, mapper.loops,
		(unsigned long long)(mapper.map_max / 1000000),
		(unsigned long long)(mapper.unmap_max / 1000000));
	for (int ph = 1; ph <= 2; ph++) {
		const char *what[] = { NULL, "phase 1, B (A fetching, maps and "
					     "unmaps)",
				       "phase 2, B (A being unmapped)" };
		char c_what[64];
		uint32_t p99_c, limit;

		snprintf(c_what, sizeof(c_what), "phase %d, C (the control)",
			 ph);
		p99_c = check_p99(tmc, ph, c_what, 0);
		limit = 4 * p99_c > P99_MAX_US ? 4 * p99_c : P99_MAX_US;
		check_p99(tms, ph, what[ph], limit);
	}
	CHECK(mapper.map_max < MAPLOOP_MAX_US * 1000ull &&
		      mapper.unmap_max < MAPLOOP_MAX_US * 1000ull,
	      "a map or unmap of another region took %llu ms: it waited for "
	      "A's fetch",
	      (unsigned long long)((mapper.map_max > mapper.unmap_max
					    ? mapper.map_max
					    : mapper.unmap_max) /
				   1000000));
	CHECK_RET(um.ret, 0);
	CHECK(um.busy_after == 0,
	      "unmap of A returned with its fetch still running");
	/*
	 * The other reader's fault may have been read, and its fetch
	 * begun, before the unmap closed the region; no more can begin,
	 * and none after the unmap returned.
	 */
	CHECK(um.fetches_after - fetches < NA,
	      "%u fetches of A began during its unmap",
	      um.fetches_after - fetches);
	CHECK(atomic_load(&g.a_store->fetches) == um.fetches_after,
	      "%u fetches of A began after its unmap returned",
	      atomic_load(&g.a_store->fetches) - um.fetches_after);
	CHECK(pages + efault >= 2 * NA, "A: only %u pages read",
	      pages + efault);

	CHECK_RET(upager_unmap(rb), 0);
	CHECK_RET(upager_unmap(rc), 0);
	upager_handler_free(g.h);
	upager_handler_free(hc);
	upager_store_close(bs);
	upager_store_close(cs);
	upager_store_close(mapper.zero);
	upager_store_close(&g.a_store->s);
	t_deadline(0, NULL);
	return 0;
}

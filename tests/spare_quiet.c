// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A slow store's fetch that comes back at once must not wake a spare.
 * The worker that goes into a store without UPAGER_STORE_CHEAP gives up
 * its seat, so that a spare reads other regions' faults while it waits.
 * Before this test, the last worker to leave called a spare in at once:
 * over memcached on a 2-vCPU VM, one more wake-up per fault (a fault
 * took 98 us at p50 with one worker against 75 us without spares), even
 * when the fetch was back in tens of microseconds and no other fault had
 * come meanwhile.  Now a parked spare wakes only for a fault that comes
 * while the worker is away (docs/ENGINE.md, "Slow stores delay only
 * their own region").
 *
 * One worker serves a region over a store whose fetch sleeps 20 us;
 * read-ahead and fault-around are off, so each first touch is one such
 * fetch, and no other fault comes meanwhile.  Across FAULTS of them the
 * spare (one is started with the first) must not wake for every fetch.
 * It must not leave either while the seats keep emptying: fetches for
 * longer than the second a parked spare waits leave it in place, not
 * replaced by a new thread.  Nor while they stay empty: the store holds
 * a fetch for 1.5 s with no other fault, then a fault on a region over
 * a mem store must be served at once, by the spare.
 */
#include "tstore.h"

#define PG 4096
#define FAULTS 300
#define KEEP_PAGES 8000 /* more than 1.5 s of fetches 0.5 ms apart */

int main(void)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct tstore *t = tstore_open(FAULTS + 2 + KEEP_PAGES);
	struct upager_store *m = upager_store_mem_new(PG, NULL);
	struct upager_region *r, *rm;
	struct toucher slow, fast;
	long before, woken;
	char *p, *other;
	pid_t spare, again;
	uint64_t until;
	size_t i;
	int err;

	CHECK(m, "mem store");
	t_fill(upager_store_mem_data(m), PG, 7);
	atomic_store(&t->delay_us, 20);
	p = upager_map(h, &t->s, (FAULTS + 2 + KEEP_PAGES) * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	other = upager_map(h, m, PG, &mp, &rm, &err);
	CHECK(other, "map the mem region: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	/* The first slow fetch starts the spare. */
	CHECK(t_verify(p, PG, 0), "page 0: wrong data");
	for (int ms = 0; ms < 5000 && !t_threads_named("upager-spare", NULL);
	     ms++)
		t_sleep_ms(1);
	t_sleep_ms(20); /* parked */
	CHECK(t_threads_named("upager-spare", &spare) == 1,
	      "%d spares after the first slow fetch, 1 expected",
	      t_threads_named("upager-spare", NULL));
	before = t_voluntary_switches(spare);
	for (i = 1; i <= FAULTS; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu: wrong data", i);
	woken = t_voluntary_switches(spare) - before;
	printf("%d fetches of 20 us: the spare slept %ld times\n", FAULTS,
	       woken);
	CHECK(woken < FAULTS / 4,
	      "the spare slept %ld times across %d fetches of 20 us: "
	      "called in for each",
	      woken, FAULTS);
	CHECK(t_threads_named("upager-spare", NULL) == 1,
	      "%d spares, 1 expected", t_threads_named("upager-spare", NULL));

	/*
	 * Slow fetches for 1.5 s, 0.5 ms apart (the seats full most of the
	 * time): the same spare waits on.
	 */
	until = t_now_ns() + 1500 * 1000000ull;
	for (i = FAULTS + 2; i < FAULTS + 2 + KEEP_PAGES && t_now_ns() < until;
	     i++) {
		CHECK(t_verify(p + i * PG, PG, i), "page %zu: wrong data", i);
		usleep(500);
	}
	CHECK(t_now_ns() >= until, "%zu fetches took less than 1.5 s", i);
	CHECK(t_threads_named("upager-spare", &again) == 1 && again == spare,
	      "the spare left and another came while the seats kept "
	      "emptying (%d spares)",
	      t_threads_named("upager-spare", NULL));

	/*
	 * A fetch that stays away, 1.5 s with no other fault (longer than
	 * a parked spare waits), then a fault on the other region: the
	 * spare is still there and serves it while the fetch is held.
	 */
	atomic_store(&t->hold_at, atomic_load(&t->fetches) + 1);
	toucher_start(&slow, p + (FAULTS + 1) * PG, -1);
	tstore_wait_held(t, "the held fetch");
	t_sleep_ms(1500);
	toucher_start(&fast, other, -1);
	CHECK(toucher_wait_done(&fast, 1000),
	      "a fault on the mem region waited 1 s behind a held fetch "
	      "(%d spares)",
	      t_threads_named("upager-spare", NULL));
	CHECK(!atomic_load(&slow.done), "the held fetch ended early");
	pthread_join(fast.t, NULL);
	CHECK(fast.byte == other[0], "the mem region's page: wrong data");
	CHECK(t_verify(other, PG, 7), "the mem region's page: wrong data");
	tstore_release(t);
	CHECK(toucher_wait_done(&slow, 5000), "the held fetch never ended");
	pthread_join(slow.t, NULL);
	CHECK_RET(upager_unmap(rm), 0);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
	upager_store_close(m);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * One read(2) of the uffd returns faults of two regions: first one over
 * a slow store (its fetch waits at a gate), then faults over a mem
 * store.  The mem store's faults are answered while the slow fetch
 * still waits: a batch's wakes go out at its end, and a fault on a slow
 * store's region is kept for after the batch, or every fault read with
 * it would wait as long as that fetch (seconds, for a network store).
 *
 * The faulting threads block before the one worker starts, so that the
 * worker reads all their messages in one batch, the slow one first.  The
 * gate holds the slow fetch for 5 s at most; the faults on the mem store
 * must end within 2 s.
 */
#include "tstore.h"

#define PG 4096
#define NFAST 3

int main(void)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct toucher slow, fast[NFAST];
	struct upager_region *rs, *rf;
	struct upager_handler *h;
	struct upager_store *ms;
	struct tstore *t = tstore_open(16);
	char *ps, *pf;
	int err;

	t_deadline(30, "mixed_batch did not finish");
	h = t_upager_handler(1, NULL, NULL);
	ms = upager_store_mem_new(16 * PG, &err);
	CHECK(ms, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < 16; i++)
		t_fill((char *)upager_store_mem_data(ms) + i * PG, PG, 100 + i);
	ps = upager_map(h, &t->s, 16 * PG, &mp, &rs, &err);
	CHECK(ps, "map over the slow store: %s", strerror(-err));
	pf = upager_map(h, ms, 16 * PG, &mp, &rf, &err);
	CHECK(pf, "map over the mem store: %s", strerror(-err));

	t->hold_at = 1;
	toucher_start(&slow, ps, -1);
	toucher_wait_blocked(&slow);
	for (int i = 0; i < NFAST; i++) {
		toucher_start(&fast[i], pf + (size_t)i * 4 * PG, -1);
		toucher_wait_blocked(&fast[i]);
	}
	CHECK_RET(upager_handler_start(h), 0);
	tstore_wait_held(t, "the slow store's fetch");
	for (int i = 0; i < NFAST; i++)
		CHECK(toucher_wait_done(&fast[i], 2000),
		      "a fault on the mem store's region, read in one batch "
		      "with the slow store's, waits for the slow fetch");
	CHECK(!atomic_load(&slow.done), "the slow fault did not wait");
	tstore_release(t);
	CHECK(toucher_wait_done(&slow, 5000), "the slow fault never ended");
	for (int i = 0; i < NFAST; i++) {
		pthread_join(fast[i].t, NULL);
		CHECK(t_verify(pf + (size_t)i * 4 * PG, PG, 100 + (size_t)i * 4),
		      "mem page %d", i * 4);
	}
	pthread_join(slow.t, NULL);
	CHECK(t_verify(ps, PG, 0), "slow page 0");
	CHECK_RET(upager_unmap(rs), 0);
	CHECK_RET(upager_unmap(rf), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
	upager_store_close(ms);
	t_deadline(0, NULL);
	return 0;
}

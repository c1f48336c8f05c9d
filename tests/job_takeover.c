// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A fault on a unit that a job still in the ring claimed fills that job
 * itself.  Only the regular workers serve the ring; they may all be
 * inside a slow store's fetch, and the spare serving the other regions'
 * faults takes no jobs, so the thread would wait for them.
 *
 * One regular worker, held in a fetch of region A's store at a gate; the
 * spare started for it serves region B (a mem store: fault-around
 * 64 KiB), whose first touch, page 0, queues pages 1-15 as a job.  A
 * touch of page 5 must end while the gate is still shut (before, it
 * waited for the gate: up to 5 s); every page of B then reads its data,
 * and A's page once the gate opens.
 */
#include <pthread.h>

#include "tstore.h"

#define PG 4096
#define B_PAGES 64

int main(void)
{
	struct upager_map_params mpa = {.size = sizeof(mpa),
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1};
	struct upager_map_params mpb = {.size = sizeof(mpb)};
	struct upager_handler *h = t_upager_handler(1, t_on_error, NULL);
	struct upager_region *ra, *rb;
	struct upager_store *sb;
	struct tstore *ta = tstore_open(16);
	struct toucher a, b;
	struct upager_stats st;
	char *pa, *pb, *img;
	int err;

	ta->seed = 100;
	atomic_store(&ta->hold_at, 1);
	img = malloc(B_PAGES * PG);
	CHECK(img, "malloc");
	for (size_t i = 0; i < B_PAGES; i++)
		t_fill(img + i * PG, PG, 500 + i);
	sb = upager_store_mem_new(B_PAGES * PG, &err);
	CHECK(sb, "mem store: %s", strerror(-err));
	CHECK_RET(upager_store_writeback(sb, 0, img, B_PAGES), 0);
	pa = upager_map(h, &ta->s, 16 * PG, &mpa, &ra, &err);
	CHECK(pa, "map A: %s", strerror(-err));
	pb = upager_map(h, sb, B_PAGES * PG, &mpb, &rb, &err);
	CHECK(pb, "map B: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	toucher_start(&a, pa, -1);
	tstore_wait_held(ta, "A's fetch at the gate");
	CHECK(t_verify(pb, PG, 500), "B page 0 (served by the spare)");
	toucher_start(&b, pb + 5 * PG, -1);
	CHECK(toucher_wait_done(&b, 2000),
	      "a touch of B page 5, queued in a job, waited for the worker "
	      "held at A's gate");
	CHECK(!atomic_load(&ta->released), "the gate opened");
	pthread_join(b.t, NULL);
	for (size_t i = 0; i < B_PAGES; i++)
		CHECK(t_verify(pb + i * PG, PG, 500 + i), "B page %zu", i);

	tstore_release(ta);
	CHECK(toucher_wait_done(&a, 5000), "A's touch never ended");
	pthread_join(a.t, NULL);
	CHECK(t_verify(pa, PG, 100), "A page 0");
	CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(rb, &st);
	CHECK(st.faults_dup >= 1, "B: %llu duplicate faults, want the one "
				  "on page 5",
	      (unsigned long long)st.faults_dup);
	CHECK_RET(upager_unmap(ra), 0);
	CHECK_RET(upager_unmap(rb), 0);
	upager_handler_free(h);
	upager_store_close(&ta->s);
	upager_store_close(sb);
	free(img);
	return 0;
}

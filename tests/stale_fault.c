// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A stale fault message must not fetch over a unit that is installed.
 *
 * Two threads fault on one unit while no worker runs, so two messages
 * wait.  The single worker then reads both in one batch: the first fills
 * the unit (with DONTWAKE, the wake comes at the end of the batch), the
 * second finds it present.  Between the two, the main thread writes to
 * the unit, which is mapped by now.  Whatever the engine does with the
 * second message, the write must survive: on anon and hugetlb a refill
 * ends in -EEXIST and leaves the page alone, but on shmem the store
 * fills the page cache itself, so a second fetch would overwrite the
 * write.  The store holds its second fetch until the write is made,
 * which makes the interleaving deterministic; when the engine does not
 * fetch again the threads simply finish.
 *
 * A unit dropped behind the engine's back (MADV_DONTNEED; MADV_REMOVE,
 * which empties the page cache, for shmem) faults as missing although
 * it is marked present: it is fetched again, not left failing.
 */
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096

static void run(enum upager_memtype type, size_t fill)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 1 };
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type,
					.fill = fill,
					.readahead_max = (size_t)-1 };
	struct toucher to[2];
	struct upager_handler *h;
	struct upager_region *r;
	struct tstore *t;
	bool held;
	char *p, *last;
	int err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	t = tstore_open(1024);
	t->hold_at = 2;
	p = upager_map(h, &t->s, fill, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	last = p + fill - PG; /* the threads fault on the first half */

	/* Both threads blocked in the fault: two messages queued. */
	toucher_start(&to[0], p, -1);
	toucher_start(&to[1], p + fill / 2, -1);
	toucher_wait_blocked(&to[0]);
	toucher_wait_blocked(&to[1]);

	CHECK_RET(upager_handler_start(h), 0);
	for (int ms = 0; !(held = atomic_load(&t->held)); ms++) {
		if (atomic_load(&to[0].done) && atomic_load(&to[1].done))
			break;
		CHECK(ms < 5000, "neither a second fetch nor a wake");
		t_sleep_ms(1);
	}
	/* The unit is mapped now (only its wake is pending): write it. */
	t_fill(last, PG, 0xdead);
	tstore_release(t);
	pthread_join(to[0].t, NULL);
	pthread_join(to[1].t, NULL);
	CHECK(t_verify(last, PG, 0xdead),
	      "the write was lost: the stale message fetched over the unit "
	      "(second fetch %s)", held ? "seen" : "not seen");
	for (size_t i = 0; i < fill / PG - 1; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);

	/* Dropped behind the engine's back, the unit is fetched again. */
	CHECK(madvise(p, fill, type == UPAGER_MEM_SHMEM ? MADV_REMOVE
							: MADV_DONTNEED) == 0,
	      "madvise: %s", strerror(errno));
	for (size_t i = 0; i < fill / PG; i++)
		CHECK(t_verify(p + i * PG, PG, i), "refetched page %zu", i);

	CHECK_RET(upager_handler_stop(h), 0);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

int main(int argc, char **argv)
{
	switch (t_memtype(argc, argv)) {
	case UPAGER_LL_MEM_ANON:
		run(UPAGER_MEM_ANON, PG * 4);
		break;
	case UPAGER_LL_MEM_SHMEM:
		run(UPAGER_MEM_SHMEM, PG * 4);
		break;
	default: {
		struct t_mem m; /* reserves the page, restored at exit */

		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, 1);
		t_mem_unmap(&m);
		run(UPAGER_MEM_HUGETLB, 2u << 20);
	}
	}
	return 0;
}

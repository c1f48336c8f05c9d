// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A dirty unit held INFLIGHT by its write-back (a sync waiting in the
 * store's writeback()) while the program drops one of its pages with
 * MADV_DONTNEED.  The unit's other pages still hold the program's
 * writes: it must come out of the write-back dirty (failed) or clean and
 * still write-protected (written), never untracked.
 *
 * write  the write-back succeeds; a later write to a page the drop did
 *        not touch goes through (a write fault makes the unit dirty
 *        again) and the next sync writes it to the store.
 * fail   the write-back fails: the unit stays dirty (the header's
 *        contract), a write after it lands tracked, and the next sync
 *        writes the program's data to the store, nothing lost.
 * evict  the same drop while the evictor writes the unit back
 *        (REMOVE_ZERO): its other pages read the written data after,
 *        never zeros.
 * evict_error  the evictor's write-back fails: on_error is told.
 * remove_pending  (anon, REMOVE_ZERO) a page the program dropped is
 *        written back while the drop has not reached it yet (its REMOVE
 *        read, its page still mapped); it goes after: it reads zeros,
 *        also once the unit was evicted and filled from the store.
 * free_write  (anon, REMOVE_ZERO) a page freed lazily (MADV_FREE) and
 *        written again reads what was written after an eviction: its
 *        drop's mark goes with the write, never its data.
 * refill_write  (anon, REMOVE_ZERO) a dropped page read again (zeros)
 *        and written: a sync leaves its unit clean, and the store has
 *        the write.
 * refill_evict  (anon, REMOVE_ZERO) a dropped page of a clean unit read
 *        again (zeros): the unit is evicted, and the page still reads
 *        zeros (the store had its old data).
 *
 * The store is tstore.h's wbstore: pages in memory, a writeback() that
 * can wait at a gate and fail.  Runs on anon and shmem (argv[1]); argv[2]
 * may name one part.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PG     4096
#define FILL   (4 * PG)
#define NUNITS 16
#define U      3 /* the unit under test */

struct rig {
	struct t_errors errs; /* what on_error was told */
	struct upager_handler *h;
	struct wbstore g;
	struct upager_region *r;
	char *p;
};

/* @budget: 0, or that many bytes with REMOVE_ZERO (the evict part). */
static void rig_map(struct rig *x, enum upager_memtype type, size_t budget)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .fill = FILL,
				       .flags = UPAGER_MAP_TRACK_WRITES,
				       .budget = budget,
				       .remove = budget ? UPAGER_REMOVE_ZERO
							: UPAGER_REMOVE_REFETCH,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	int err;

	wbstore_init(&x->g, NUNITS * FILL / PG);
	memset(&x->errs, 0, sizeof(x->errs));
	x->h = t_upager_handler(2, t_on_error, &x->errs);
	x->p = upager_map(x->h, &x->g.s, NUNITS * FILL, &mp, &x->r, &err);
	if (!x->p && err == -EOPNOTSUPP)
		SKIP("write tracking needs UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	CHECK(x->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(x->h), 0);
}

/* Unmap (the dirty units written back), and free the rig. */
static void rig_unmap(struct rig *x)
{
	CHECK_RET(upager_unmap(x->r), 0);
	upager_handler_free(x->h);
	wbstore_free(&x->g);
}

struct syncer {
	struct upager_region *r;
	pthread_t t;
	int ret;
};

static void *sync_main(void *arg)
{
	struct syncer *s = arg;

	s->ret = upager_region_sync(s->r, 0, NUNITS * FILL);
	return NULL;
}

struct writer {
	volatile char *at;
	char c;
	pthread_t t;
	atomic_bool done;
};

static void *write_main(void *arg)
{
	struct writer *w = arg;

	*w->at = w->c;
	atomic_store(&w->done, true);
	return NULL;
}

/* Write @c at @at from a thread: false if it is still stuck after 5 s. */
static bool write_within(volatile char *at, char c)
{
	struct writer *w = calloc(1, sizeof(*w)); /* leaked if stuck */

	w->at = at;
	w->c = c;
	CHECK(!pthread_create(&w->t, NULL, write_main, w), "thread");
	for (int ms = 0; ms < 5000 && !atomic_load(&w->done); ms++)
		t_sleep_ms(1);
	if (!atomic_load(&w->done))
		return false;
	pthread_join(w->t, NULL);
	free(w);
	return true;
}

/*
 * Unit U dirty (pages 0 and 1 written), then a sync that waits in the
 * store's writeback() of it while the program drops page 2; the
 * write-back then succeeds or fails (@fail).  Returns the sync's result.
 */
static int drop_during_writeback(struct rig *x, bool fail)
{
	char *u = x->p + U * FILL;
	struct syncer s = {.r = x->r};

	memset(u, 'a', 2 * PG);
	for (int i = 0; i < 1000 && !upager_region_dirty(x->r, U * FILL); i++)
		t_sleep_ms(1);
	CHECK(upager_region_dirty(x->r, U * FILL), "dirty after a write");
	atomic_store(&x->g.fail, fail);
	atomic_store(&x->g.hold, true);
	CHECK(!pthread_create(&s.t, NULL, sync_main, &s), "thread");
	t_wait_set(&x->g.held, "the write-back");
	CHECK_RET(madvise(u + 2 * PG, PG, MADV_DONTNEED), 0);
	t_sleep_ms(200); /* the worker handles the REMOVE event */
	atomic_store(&x->g.release, true);
	pthread_join(s.t, NULL);
	return s.ret;
}

static void part_write(enum upager_memtype type)
{
	struct rig x;
	char *u;

	rig_map(&x, type, 0);
	u = x.p + U * FILL;
	CHECK_RET(drop_during_writeback(&x, false), 0);
	CHECK(!memcmp(x.g.img + U * FILL, u, PG), "written back");
	CHECK(write_within(u, 'b'),
	      "a write to a page of the unit the drop did not touch is "
	      "still stuck after 5 s (write-protect fault on a unit the "
	      "engine thinks is not resident: woken, faults again, forever)");
	CHECK_RET(upager_region_sync(x.r, 0, NUNITS * FILL), 0);
	CHECK(x.g.img[U * FILL] == 'b',
	      "the write after the sync is in the "
	      "store (got %#x)",
	      (unsigned char)x.g.img[U * FILL]);
	rig_unmap(&x);
}

static void part_fail(enum upager_memtype type)
{
	struct rig x;
	char *u;

	rig_map(&x, type, 0);
	u = x.p + U * FILL;
	CHECK_RET(drop_during_writeback(&x, true), -EIO);
	bool dirty = upager_region_dirty(x.r, U * FILL);

	atomic_store(&x.g.fail, false);
	CHECK(write_within(u + PG, 'c'), "a write after the failure is stuck");
	CHECK_RET(upager_region_sync(x.r, 0, NUNITS * FILL), 0);
	CHECK(x.g.img[U * FILL] == 'a' && x.g.img[U * FILL + PG] == 'c',
	      "the store holds the program's writes after a good sync (got "
	      "%#x %#x: lost)",
	      (unsigned char)x.g.img[U * FILL],
	      (unsigned char)x.g.img[U * FILL + PG]);
	CHECK(dirty, "a unit whose write-back failed stays dirty (upager.h)");
	rig_unmap(&x);
}

/*
 * The same drop while the evictor writes the dirty unit back: the unit
 * goes (its pages moved out), and its pages the drop did not touch must
 * read what was written back, never zeros (REMOVE_ZERO is for the
 * dropped page only).  Budget 8 units: 8 resident is over the high water
 * mark (7) but within the budget, so only the evictor evicts, and it
 * takes the oldest unit first: U, filled first.
 */
static void part_evict(enum upager_memtype type)
{
	volatile char sum = 0;
	struct rig x;
	char *u;

	rig_map(&x, type, 8 * FILL);
	u = x.p + U * FILL;
	memset(u, 'a', 2 * PG);
	atomic_store(&x.g.hold, true);
	for (size_t k = 0; k < NUNITS && k < 8; k++)
		if (k != U)
			sum += x.p[k * FILL];
	t_wait_set(&x.g.held, "the evictor's write-back");
	CHECK_RET(madvise(u + 2 * PG, PG, MADV_DONTNEED), 0);
	t_sleep_ms(200); /* the worker handles the REMOVE event */
	atomic_store(&x.g.release, true);
	for (int ms = 0; ms < 5000 && !atomic_load(&x.g.wrote); ms++)
		t_sleep_ms(1);
	CHECK(x.g.img[U * FILL] == 'a', "written back");
	CHECK(u[0] == 'a' && u[PG] == 'a',
	      "an evicted unit's pages the program did not drop read what "
	      "was written back, got %#x %#x (silent zeros)",
	      (unsigned char)u[0], (unsigned char)u[PG]);
	rig_unmap(&x);
}

/*
 * The evictor's write-back fails (the store says EIO): the unit stays
 * dirty and resident, and the error is told to on_error, as sync's is
 * ("errors reported, never dropped"), not only counted.
 */
static void part_evict_error(enum upager_memtype type)
{
	struct upager_stats st;
	struct rig x;

	rig_map(&x, type, 8 * FILL);
	atomic_store(&x.g.fail, true);
	for (size_t k = 0; k < 8; k++)
		x.p[k * FILL] = 'e';
	for (int ms = 0; ms < 5000; ms++) {
		upager_region_stats(x.r, &st);
		if (st.writeback_errors)
			break;
		t_sleep_ms(1);
	}
	CHECK(st.writeback_errors, "the evictor never tried a write-back");
	t_sleep_ms(100);
	CHECK(atomic_load(&x.errs.calls),
	      "%llu write-backs failed during eviction, on_error was told "
	      "nothing",
	      (unsigned long long)st.writeback_errors);
	atomic_store(&x.g.fail, false);
	CHECK_RET(upager_unmap(x.r), 0);
	CHECK(x.g.img[0] == 'e', "written at the unmap");
	upager_handler_free(x.h);
	wbstore_free(&x.g);
}

/* Wait until a worker handled the program's REMOVE (its pages marked). */
static void wait_removed(struct rig *x)
{
	struct upager_stats st;

	for (int ms = 0; ms < 5000; ms++) {
		upager_region_stats(x->r, &st);
		if (st.pages_removed)
			return;
		t_sleep_ms(1);
	}
	FAIL("the REMOVE event was never handled");
}

/* Is any page of [p, p+len) mapped? */
static bool mapped(char *p, size_t len)
{
	unsigned char vec[FILL / PG];
	bool any = false;

	CHECK(len <= sizeof(vec) * PG && !mincore(p, len, vec), "mincore");
	for (size_t i = 0; i < len / PG; i++)
		any |= vec[i] & 1;
	return any;
}

/*
 * Seven units more, after U: 8 resident is over the high water mark (7),
 * and the evictor takes the oldest first, U.  Returns once U's pages are
 * gone from the region.
 *
 * U must be settled first.  A fault's worker wakes the faulting thread
 * at its install and settles the unit after (a refill of dropped pages
 * reads the unit back first, fill.c fill_undrop()), so the read of U's
 * page 2 before this may return with U still INFLIGHT.  The evictor
 * passes a unit in flight over, to the back of its queue, and the seven
 * took it to the low water mark (5) with units 0, 1 and 2: U stayed,
 * resident and within the budget, and this waited out its 5 s (under
 * ASan, whose worker is slower while every thread shares one CPU:
 * rig_map_one_cpu(); 11 runs in 30, each with U INFLIGHT at the pick).
 */
static void evict_u(struct rig *x)
{
	volatile char sum = 0;

	for (int ms = 0; ms < 5000 && !upager_region_present(x->r, U * FILL);
	     ms++)
		t_sleep_ms(1);
	CHECK(upager_region_present(x->r, U * FILL), "unit U never settled");
	for (size_t k = 0; k < 8; k++)
		if (k != U)
			sum += x->p[k * FILL];
	for (int ms = 0; ms < 5000 && mapped(x->p + U * FILL, FILL); ms++)
		t_sleep_ms(1);
	CHECK(!mapped(x->p + U * FILL, FILL), "unit U was never evicted");
}

/*
 * Unit U written ('a'), synced if @clean, its page 2 dropped with
 * @advice and the REMOVE handled (page 2 marked) before anything else
 * goes on.
 */
static char *drop_page2(struct rig *x, int advice, bool clean)
{
	char *u = x->p + U * FILL;

	memset(u, 'a', FILL);
	if (clean)
		CHECK_RET(upager_region_sync(x->r, 0, NUNITS * FILL), 0);
	CHECK_RET(madvise(u + 2 * PG, PG, advice), 0);
	wait_removed(x);
	return u;
}

/* Page 2 of U reads zeros, and (@evict) still once U was evicted. */
static void page2_zeros(struct rig *x, bool evict)
{
	char *u = x->p + U * FILL;

	CHECK(u[2 * PG] == 0, "the dropped page reads %#x, not zeros",
	      (unsigned char)u[2 * PG]);
	if (!evict)
		return;
	evict_u(x);
	CHECK(u[2 * PG] == 0 && u[0] == 'a',
	      "after an eviction the dropped page reads %#x (the data the "
	      "drop took away), the next %#x",
	      (unsigned char)u[2 * PG], (unsigned char)u[0]);
}

/*
 * A rig whose threads all run on this thread's CPU, until rig_free().
 * MADV_FREE makes a page lazily freed only once it is on an LRU list,
 * and a worker's install leaves it in that worker's CPU's batch; the
 * kernel drains only the calling CPU's batches (MADV_FREE, then
 * MADV_PAGEOUT), so reclaim would pass the page over.
 */
static void rig_map_one_cpu(struct rig *x, enum upager_memtype type,
			    cpu_set_t *was)
{
	cpu_set_t one;

	CHECK(!sched_getaffinity(0, sizeof(*was), was), "sched_getaffinity");
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	CHECK(!sched_setaffinity(0, sizeof(one), &one), "sched_setaffinity");
	rig_map(x, type, 8 * FILL);
}

static void rig_free(struct rig *x, const cpu_set_t *was)
{
	rig_unmap(x);
	CHECK(!sched_setaffinity(0, sizeof(*was), was), "sched_setaffinity");
}

/*
 * The drop's REMOVE is read and its page marked before the write-back
 * reads the unit, and the page goes only after: MADV_FREE leaves the
 * page mapped until reclaim (MADV_PAGEOUT here) takes it, as
 * MADV_DONTNEED does until its zap, which follows the event read by a
 * few microseconds.  The write-back read the page's old data: the store
 * has it, and only the mark says the page reads zeros.  With the mark
 * cleared by the write-back, the evicted unit came back with 'a' there.
 */
static void part_remove_pending(enum upager_memtype type)
{
	struct rig x;
	cpu_set_t was;
	char *u;
	int i;

	if (type == UPAGER_MEM_SHMEM)
		return; /* MADV_FREE is for private anonymous memory */
	rig_map_one_cpu(&x, type, &was);
	u = drop_page2(&x, MADV_FREE, false);
	CHECK_RET(upager_region_sync(x.r, 0, NUNITS * FILL), 0);
	for (i = 0; i < 100 && mapped(u + 2 * PG, PG); i++)
		madvise(u + 2 * PG, PG, MADV_PAGEOUT);
	if (mapped(u + 2 * PG, PG))
		printf("remove_pending: MADV_PAGEOUT reclaimed nothing, "
		       "not run\n");
	else
		page2_zeros(&x, true);
	rig_free(&x, &was);
}

/*
 * MADV_FREE, then the program writes the page again (an allocator
 * reusing it): the kernel keeps it, and it holds data, which a sync and
 * an eviction must keep too.  The unit is dirty and writable: the write
 * takes no fault, and the engine cannot tell it from a page whose drop
 * is still to come.
 */
static void part_free_write(enum upager_memtype type)
{
	struct rig x;
	char *u;

	if (type == UPAGER_MEM_SHMEM)
		return; /* MADV_FREE is for private anonymous memory */
	rig_map(&x, type, 8 * FILL);
	u = drop_page2(&x, MADV_FREE, false);
	u[2 * PG] = 'x';
	CHECK_RET(upager_region_sync(x.r, 0, NUNITS * FILL), 0);
	evict_u(&x);
	CHECK(u[2 * PG] == 'x',
	      "a page written after MADV_FREE reads %#x after an eviction, "
	      "not what was written",
	      (unsigned char)u[2 * PG]);
	rig_unmap(&x);
}

/*
 * MADV_DONTNEED of page 2 of a dirty unit (its zap has landed when
 * madvise() returns), then the program reads it (zeros) and writes it:
 * what it holds is the program's data, and the sync that writes it
 * leaves the unit clean.  The drop's mark, kept through the fill, had
 * kept the unit dirty at every sync.
 */
static void part_refill_write(enum upager_memtype type)
{
	struct rig x;
	char *u;

	if (type == UPAGER_MEM_SHMEM)
		return; /* MADV_DONTNEED keeps a shared mapping's data */
	rig_map(&x, type, 8 * FILL);
	u = drop_page2(&x, MADV_DONTNEED, false);
	page2_zeros(&x, false);
	u[2 * PG] = 'x';
	CHECK_RET(upager_region_sync(x.r, 0, NUNITS * FILL), 0);
	CHECK(x.g.img[U * FILL + 2 * PG] == 'x', "written back");
	CHECK(!upager_region_dirty(x.r, U * FILL),
	      "the unit is still dirty after a sync");
	rig_unmap(&x);
}

/*
 * A clean unit (synced: the store has 'a'), its page 2 dropped and read
 * again (zeros): the fill's zeros are not in the store, and the unit,
 * evicted, must not come back with 'a' there.
 */
static void part_refill_evict(enum upager_memtype type)
{
	struct rig x;

	if (type == UPAGER_MEM_SHMEM)
		return; /* MADV_DONTNEED keeps a shared mapping's data */
	rig_map(&x, type, 8 * FILL);
	drop_page2(&x, MADV_DONTNEED, true);
	page2_zeros(&x, true);
	rig_unmap(&x);
}

int main(int argc, char **argv)
{
	static const struct t_part parts[] = {
		{ "write", part_write },
		{ "fail", part_fail },
		{ "evict", part_evict },
		{ "evict_error", part_evict_error },
		{ "remove_pending", part_remove_pending },
		{ "free_write", part_free_write },
		{ "refill_write", part_refill_write },
		{ "refill_evict", part_refill_evict },
		{ 0 },
	};

	return t_parts(argc, argv, parts);
}

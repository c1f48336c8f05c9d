// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * One fault, from the unit's state to a settled unit: claim it, ask the
 * read-ahead policy for a plan, claim the plan's units, fill (fill.c),
 * settle, wake.  A worker fills the faulting chunk itself and hands the
 * rest of a window to the job ring (through its filler's queue()); a
 * signal handler or an application thread fills just its unit.
 *
 * The rule that keeps every fault answered: a fault this code does not
 * fill itself is either woken here, or left on a unit another filler
 * holds with UNIT_WAITERS set, so that filler wakes it when it settles.
 */
#include <errno.h>

#include "engine/engine.h"

/* Faults fill in chunks of this many bytes; read-ahead jobs are four. */
#define CHUNK (64u << 10)
#define JOB (4 * CHUNK)
/*
 * Of a mapped region's fault-around block, the aligned part around the
 * fault mapped with it (the kernel's fault_around_bytes); the workers
 * map the rest in the background.  Random 4 KiB reads of a 2 GiB tmpfs
 * file ran at 1.02-1.16x of mmap with 2 MiB blocks mapped so, 0.74-0.79x
 * with all of it mapped with the fault and 0.35-0.40x with 256 KiB
 * blocks; a sparse reader's first touch in a block took 35-44 us at p50
 * (256 KiB with the fault: 52-72 us; docs/BENCHMARKS.md, session 27).
 */
#define MAPPED_SYNC (64u << 10)

/* Claim the absent units from @u on, at most @max: how many it got. */
static size_t claim_run(struct upager_region *r, size_t u, size_t max)
{
	size_t n = 0;

	while (n < max && u + n < r->nunits &&
	       unit_claim(&r->state[u + n], UNIT_ABSENT))
		n++;
	return n;
}

/*
 * Give claimed units [u, u+n) back unfilled, in state @to.  A thread that
 * faulted on one of them waits for a wake no fill will bring: wake them,
 * so the fault comes again and fills the unit (or meets the error
 * itself).
 */
static void give_back(struct upager_region *r, struct filler *f, size_t u,
		      size_t n, unsigned int to)
{
	fill_settle(r, f, u, n, to);
	fill_wake(r, f, u, n);
}

/* The process the region lives in exited, or it was unmapped under us. */
static bool gone_error(long ret)
{
	return ret == -ENOENT || ret == -ESRCH || ret == -ENOSPC;
}

static void fill_failed_gone(struct upager_region *r, struct filler *f,
			     size_t u, size_t n, unsigned int from, long ret)
{
	give_back(r, f, u, n, from);
	if ((ret == -ESRCH || ret == -ENOSPC) && !r->sp->self)
		space_exited(r->sp);
}

/*
 * Fill claimed units [u, u+n) for no fault: the pages it installed (a
 * mapped file's holes are none).
 */
size_t region_job(struct upager_region *r, struct filler *f, size_t u,
		  size_t n)
{
	size_t got = n;
	long ret = fill_units(r, f, u, &got, UNIT_ABSENT);

	if (ret < 0) {
		/* The faults that come there meet the error themselves. */
		fill_failed_gone(r, f, u, n, UNIT_ABSENT, ret);
		return 0;
	}
	if (got < n)
		give_back(r, f, u + got, n - got, UNIT_ABSENT);
	fill_settle(r, f, u, got, UNIT_PRESENT);
	STAT_ADD(r->st, pages_filled, (size_t)ret / UPAGER_STORE_PAGE);
	return (size_t)ret / UPAGER_STORE_PAGE;
}

/*
 * Hand claimed units [u, u+n) to the workers in jobs.  When the ring is
 * full (or there is no ring: not a worker), @must (the rest of the
 * window being faulted in) is filled here; otherwise (lookahead) it is
 * given back.
 */
static void queue_units(struct upager_region *r, struct filler *f, size_t u,
			size_t n, bool must)
{
	size_t per = JOB > r->fill ? JOB / r->fill : 1;

	for (size_t i = 0; i < n; i += per) {
		size_t k = n - i < per ? n - i : per;

		if (f->queue && f->queue(f, r, u + i, k))
			continue;
		if (must)
			STAT_ADD(r->st, ra_pages, region_job(r, f, u + i, k));
		else
			give_back(r, f, u + i, k, UNIT_ABSENT);
	}
}

/* Claim the absent units of [lo, hi) but @skip, and queue them in runs. */
static void queue_absent(struct upager_region *r, struct filler *f, size_t lo,
			 size_t hi, size_t skip)
{
	size_t run = 0;

	for (size_t k = lo; k <= hi; k++) {
		if (k < hi && k != skip &&
		    unit_claim(&r->state[k], UNIT_ABSENT)) {
			run++;
			continue;
		}
		if (run)
			queue_units(r, f, k - run, run, false);
		run = 0;
	}
}

/*
 * A fault that starts a stream (@stream, just committed with a window of
 * one unit): queue the absent units of the aligned fa-unit block around
 * @u for the workers.  Should the stream go on sequentially, its next
 * fault is past the block: that is where it continues, with the block as
 * its first window.
 */
static void fault_around(struct upager_region *r, struct filler *f, size_t u,
			 unsigned int stream)
{
	size_t b = u / r->fa * r->fa, end = b + r->fa;

	if (end > r->nunits)
		end = r->nunits;
	queue_absent(r, f, b, end, u);
	pthread_mutex_lock(&r->ra_lock);
	ra_around(&r->ra, stream, end, r->fa);
	pthread_mutex_unlock(&r->ra_lock);
}

/*
 * Fault-around in mapped mode: the pages around the fault are the
 * file's, in memory already, so mapping them costs page-table entries
 * only, no copy and no page.  Claim the run of absent units around @u
 * (claimed) in its aligned MAPPED_SYNC block, for the caller to map in
 * the same UFFDIO_CONTINUE as @u: one ioctl, and the thread woken once,
 * after it, as the kernel's own fault-around for a file mapping; units
 * past one that is not absent are left to their own faults.  The rest of
 * the fa-unit block goes to the workers (all of it is mapped with the
 * fault by a filler without them).  Returns the run's length, its first
 * unit in *@lo.
 */
static size_t map_around(struct upager_region *r, struct filler *f, size_t u,
			 unsigned int stream, size_t *lo)
{
	size_t sync = MAPPED_SYNC / r->fill, fb = u / r->fa * r->fa;
	size_t fend = fb + r->fa, b, end, n;

	if (!f->queue || sync > r->fa)
		sync = r->fa;
	else if (!sync)
		sync = 1; /* a unit larger than MAPPED_SYNC: it alone */
	b = u / sync * sync;
	end = b + sync;
	if (fend > r->nunits)
		fend = r->nunits;
	if (end > fend)
		end = fend;
	*lo = u;
	while (*lo > b && unit_claim(&r->state[*lo - 1], UNIT_ABSENT))
		(*lo)--;
	n = u + 1 - *lo + claim_run(r, u + 1, end - u - 1);
	if (sync < r->fa) {
		/* Onwards first: where a reader that moves on goes next. */
		queue_absent(r, f, end, fend, u);
		queue_absent(r, f, fb, b, u);
	}
	pthread_mutex_lock(&r->ra_lock);
	ra_around(&r->ra, stream, fend, r->fa);
	pthread_mutex_unlock(&r->ra_lock);
	return n;
}

/*
 * Read-ahead for a fault on unit @u (claimed): claim the window the
 * policy plans, and the lookahead after it for a confirmed stream.  A
 * worker fills the faulting chunk and queues the rest, then the
 * lookahead, so an idle worker fills them while this one serves the
 * fault.  Returns the units this thread fills, from *@lo on (@u, but
 * for mapped mode's fault-around).
 */
static size_t read_ahead(struct upager_region *r, struct filler *f, size_t u,
			 size_t *lo)
{
	size_t n, want, marker, k = 0;
	bool lookahead;
	struct ra_plan plan;

	pthread_mutex_lock(&r->ra_lock);
	ra_propose(&r->ra, u, r->ra_max, &plan);
	STAT_ADD(r->st, ra_used, plan.used * r->fill / UPAGER_STORE_PAGE);
	STAT_ADD(r->st, ra_wasted, plan.wasted * r->fill / UPAGER_STORE_PAGE);
	want = plan.window;
	if (want * r->fill > f->cap)
		want = f->cap / r->fill ? f->cap / r->fill : 1;
	n = 1 + claim_run(r, u + 1, want - 1);
	lookahead = plan.confirmed && f->queue;
	marker = lookahead ? ra_marker(&r->ra, &plan, u, n) : u + n;
	if (lookahead && marker + 1 < r->nunits)
		k = claim_run(r, marker + 1, plan.window - 1);
	ra_commit(&r->ra, &plan, n, marker, k);
	pthread_mutex_unlock(&r->ra_lock);

	if (plan.window == 1 && r->fa > 1 && r->mapped)
		return map_around(r, f, u, plan.stream, lo);
	if (plan.window == 1 && f->queue && r->fa > 1)
		fault_around(r, f, u, plan.stream);
	if (f->queue) {
		size_t chunk = CHUNK > r->fill ? CHUNK / r->fill : 1;

		if (n > chunk) {
			queue_units(r, f, u + chunk, n - chunk, true);
			n = chunk;
		}
		if (k)
			queue_units(r, f, marker + 1, k, false);
	}
	return n;
}

/*
 * shmem: the page cache may hold unit @u (a MINOR fault says it does; a
 * REMOVED unit may have kept it through MADV_DONTNEED): map it.  Returns
 * the bytes mapped, 0 when all of it was mapped already, -EFAULT when
 * the cache lacks a page (then it must be filled), or another error.
 */
static long map_cached(struct upager_region *r, struct filler *f, size_t u)
{
	return fill_map_cached(r, f, u, 1);
}

static int fault_done(struct upager_region *r, const struct fault *ft,
		      long bytes)
{
	STAT_ADD(r->st, pages_filled, (size_t)bytes / UPAGER_STORE_PAGE);
	stats_latency(r->st, now_ns() - ft->t0);
	return 0;
}

/*
 * Look at unit @u for a fault: claim it (returns 1 and the state it was
 * claimed from in *@from), or answer the fault without a fill (returns
 * 0: a duplicate left to the filler, a spurious message woken).  An
 * installed unit that lost pages is claimed as REMOVED, with the state
 * it settles in again (PRESENT, or DIRTY: its other pages hold writes)
 * in *@to.
 */
static int fault_claim(struct upager_region *r, struct filler *f,
		       const struct fault *ft, size_t u, unsigned int *from,
		       unsigned int *to)
{
	unit_t *unit = &r->state[u];

	for (;;) {
		uint8_t v = unit_load(unit);
		int res;

		switch (unit_state(v)) {
		case UNIT_INFLIGHT:
			if (!unit_add_waiter(unit, v))
				continue;
			STAT_ADD(r->st, faults_dup, 1);
			/*
			 * Claimed by a job still queued (read-ahead, fault-
			 * around): fill it now, here.  Else the thread would
			 * wait for a regular worker to reach it, behind every
			 * job before it and any slow store's fetch.
			 */
			if (f->h)
				handler_run_job_of(f->h, f, r, u);
			return 0;
		case UNIT_PRESENT:
		case UNIT_DIRTY:
			/*
			 * Installed: a second message for a page one fill
			 * brought in, or a page the kernel dropped after the
			 * install (a MADV_DONTNEED whose zap came after its
			 * REMOVE event, which this unit's fill overtook).  A
			 * MINOR fault maps the cache, shmem asks CONTINUE
			 * (below), anon and hugetlb ask the page tables.
			 */
			if (!ft->minor && r->memtype != UPAGER_MEM_SHMEM) {
				res = space_resident(r->sp,
						     region_base(r) + u * r->fill,
						     r->fill, ft->tid);
				if (res > 0) {
					/* Served (woken): it has a service
					 * time, as the shmem path's has. */
					STAT_ADD(r->st, faults_spurious, 1);
					stats_latency(r->st, now_ns() - ft->t0);
					fill_wake(r, f, u, 1);
					return 0;
				}
			}
			if (!unit_claim(unit, unit_state(v)))
				continue;
			*to = unit_state(v);
			*from = UNIT_REMOVED;
			return 1;
		case UNIT_POISONED:
		case UNIT_GONE:
			/* Nothing to fill: a stale message.  Let it retry. */
			fill_wake(r, f, u, 1);
			return 0;
		default:
			*from = unit_state(v);
			if (!unit_claim(unit, *from))
				continue;
			return 1;
		}
	}
}

/* Give back the units of [lo, lo+n) but the faulting one, @u. */
static void give_back_others(struct upager_region *r, struct filler *f,
			     size_t lo, size_t n, size_t u)
{
	if (u > lo)
		give_back(r, f, lo, u - lo, UNIT_ABSENT);
	if (lo + n > u + 1)
		give_back(r, f, u + 1, lo + n - u - 1, UNIT_ABSENT);
}

int region_fault(struct upager_region *r, struct filler *f,
		 const struct fault *ft)
{
	uintptr_t base = (uintptr_t)region_base(r);
	size_t u = (ft->addr - base) / r->fill, lo = u, n = 1, got;
	unsigned int from, to = UNIT_PRESENT;
	long ret;

	if (ft->addr < base || ft->addr - base >= r->len) {
		/* The region moved since the lookup: the thread comes again. */
		upager_ll_wake(r->uffd, (void *)(uintptr_t)(ft->addr & ~4095ul),
			       4096);
		return 0;
	}
	if (ft->wp)
		return writes_fault(r, f, ft);
	STAT_ADD(r->st, faults, 1);
	if (ft->minor)
		STAT_ADD(r->st, faults_minor, 1);
	else
		STAT_ADD(r->st, faults_missing, 1);
	if (!fault_claim(r, f, ft, u, &from, &to))
		return 0;
	/*
	 * Told before the fill: the thread is woken only after it, so its
	 * next fault's turn comes after this one's, whichever worker
	 * serves it.
	 */
	if (from == UNIT_ABSENT && f->h)
		evict_help(r, f);
	if (from == UNIT_ABSENT && f->h) {
		prefetch_jump(r, u);
		if (r->on_touch)
			r->on_touch(r->touch_arg, r, u * r->fill);
	}
	if (r->memtype == UPAGER_MEM_SHMEM &&
	    (ft->minor || from == UNIT_REMOVED)) {
		ret = map_cached(r, f, u);
		if (ret >= 0) {
			if (!ret)
				STAT_ADD(r->st, faults_spurious, 1);
			fill_settle(r, f, u, 1, to);
			return fault_done(r, ft, ret);
		}
		if (ret != -EFAULT)
			goto failed;
		/* The cache lost (part of) it: fill the holes. */
		from = UNIT_REMOVED;
	}
	if (from == UNIT_ABSENT && r->ra_max > 1 && (!ft->minor || r->mapped))
		n = read_ahead(r, f, u, &lo);
	got = n;
	ret = fill_units(r, f, lo, &got, from);
	if (ret < 0 && n > 1 && !gone_error(ret) && ret != -EAGAIN) {
		/* Give the read-ahead back and try the faulting unit alone. */
		give_back_others(r, f, lo, n, u);
		lo = u;
		n = got = 1;
		ret = fill_units(r, f, u, &got, from);
	}
	if (ret >= 0 && got < n) {
		/*
		 * A later chunk failed: give back what it did not fill (only
		 * mapped mode fills from before @u, in one chunk).
		 */
		give_back(r, f, lo + got, n - got, UNIT_ABSENT);
		n = got;
	}
	if (ret < 0) {
failed:
		if (gone_error(ret) || ret == -EAGAIN) {
			/* Unregistered, exited, or stopping: no fill here. */
			fill_failed_gone(r, f, u, 1,
					 to == UNIT_DIRTY ? UNIT_DIRTY : from,
					 ret);
			give_back_others(r, f, lo, n, u);
			return (int)ret;
		}
		fill_poison(r, f, u, ft->addr, (int)ret);
		return (int)ret;
	}
	fill_settle(r, f, lo, n, to);
	/* Pages mapped beyond the faulting unit (a hole is none). */
	if (n > 1 && (size_t)ret > r->fill)
		STAT_ADD(r->st, ra_pages,
			 ((size_t)ret - r->fill) / UPAGER_STORE_PAGE);
	return fault_done(r, ft, ret);
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Live snapshots of a region with write tracking: the copy QEMU's
 * background snapshot makes, without stopping the program.
 *
 * The instant of the snapshot is the end of a write-protection of the
 * whole region taken with the region's gate held for writing: every
 * place that lifts a unit's protection holds it for reading
 * (writes.c unit_unprotect()), so no protection is lifted while the
 * snapshot starts, and each one lifted after saves its unit first while
 * the unit is still to be copied.  The writers wait for that pass only,
 * so it is kept short: passes without the gate protect first what is
 * open (r->open: lifted since last protected), each over what the
 * writers opened during the one before, and the pass under the gate
 * finds only what the last of them left (tens of units, where
 * protecting a written GiB took ~40 ms, as long as fork() copying the
 * page tables).  The copier then walks the units: each
 * is held INFLIGHT while it is read (a write to it waits), from memory
 * if resident, else from the store, which holds the unit as it was at
 * the instant (a unit written since has been saved by its write fault,
 * and only a written unit is ever written back), and written to the
 * destination once let go, with the units read after it in one run.
 * A writer waits for the read of a few units (HELD_MAX), and for a
 * write to the destination only when the stash is full (its own
 * unit's: snap_before_write()).
 *
 * Memory is read as write-back reads it (peek_for_store()): the program
 * may unmap the region meanwhile and map other memory there, which must
 * not go into the image as the region's.  What was unmapped before the
 * instant is left out (of a unit unmapped in part, the pages under the
 * holes); a unit unmapped after it, in whole or in part, before it was
 * copied, fails the snapshot (-ENOENT): what it held then is lost.
 *
 * Incremental: the units written since the previous snapshot began (the
 * region's written bits, taken and cleared at the instant).
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "base/util.h"
#include "engine/engine.h"
#include "engine/store_call.h"

/*
 * Units saved by write faults wait in memory for the copier, which
 * writes them to the destination: a write fault does no I/O (a file's
 * write can wait behind the file system's journal).  Two halves: the
 * faults fill one while the copier writes out the other; when the one
 * being filled is full, a fault writes its unit itself.
 */
#define STASH_BYTES (16u << 20) /* a half */

/*
 * The copier writes what it reads in runs of neighbouring units, one
 * writeback() each: a 4 GiB snapshot to a file took 18-24 s unit by
 * unit and 12-20 s in runs of 256 KiB, and the writer it ran beside
 * stalled less (docs/BENCHMARKS.md, session 22).
 */
#define RUN_BYTES (256u << 10)

/*
 * The copier reads an anonymous region's resident units HELD_MAX at a
 * time, held INFLIGHT, with one read and one probe (peek_for_store()):
 * the probe waits for a moment with no event pending, which a program
 * that drops pages in a loop gives a few at a time.  A writer waits for
 * the units held with its own.  1 GiB took 3.2-3.8 s against 4.8-6.5 s
 * unit by unit, the writer's longest stall level (median 4.1 ms against
 * 3.9); 16 at a time took 1.8-3.2 s, with a median stall of 5.9 ms.
 * Under a thread dropping a page back to back, 64 MiB took 19 s against
 * 33-36 s (docs/BENCHMARKS.md, session 26).
 */
#define HELD_MAX 4

struct stash {
	char *buf;
	uint32_t *unit;
	size_t n;
};

struct snap {
	struct upager_store *dst;
	_Atomic uint64_t *todo; /* a bit per unit still to copy */
	size_t todo_len;
	atomic_int err;
	atomic_ulong units, early;
	pthread_mutex_t lock;	/* @half[@fill], @fill */
	struct stash half[2];
	unsigned int fill;
	size_t cap;		/* units a half holds */
	char *run;		/* the copier's: units read, not yet written */
	size_t run_first, run_n, run_cap;
	/* The run's last held_n units are claimed, not yet read. */
	size_t held_first, held_n;
	uint8_t held_st[HELD_MAX]; /* the state each was claimed from */
	size_t alone;		   /* a unit given back, to read alone */
	size_t holes_bytes;	   /* the region's at the instant */
	char *mem;
	size_t mem_len;
};

static bool take_todo(struct snap *s, size_t u)
{
	uint64_t bit = 1ull << (u % 64);

	return atomic_fetch_and(&s->todo[u / 64], ~bit) & bit;
}

/*
 * The unit as the store has it (it is not resident): what a fault
 * would install, by the region's REMOVE policy for a dropped one.
 */
static int read_store(struct upager_region *r, size_t u, unsigned int st,
		      char *buf)
{
	size_t np = r->fill / UPAGER_STORE_PAGE, first = u * np;
	int ret;

	if (st == UNIT_REMOVED && r->remove == UPAGER_REMOVE_ZERO) {
		memset(buf, 0, r->fill);
		return 0;
	}
	ret = r->store->ops->fetch(r->store, r->store_pgoff + first, buf, np);
	for (size_t i = 0; ret == 0 && i < np; i++)
		if (region_dropped(r, first + i))
			memset(buf + i * UPAGER_STORE_PAGE, 0,
			       UPAGER_STORE_PAGE);
	return ret;
}

static void failed(struct snap *s, int err)
{
	int none = 0;

	atomic_compare_exchange_strong(&s->err, &none, err);
}

/*
 * Write units [@u, @u + @n), read into @buf, to the destination: of a
 * unit the program unmapped in part, the pages still mapped.  Had it
 * unmapped one of them since the instant (the holes grew, and these
 * units are not all the region's), what that page held then is not
 * here: -ENOENT.  Holes only grow, so a check after the write sees any
 * hole made before it ends.
 */
static int put(struct upager_region *r, struct snap *s, size_t u, size_t n,
	       const char *buf)
{
	long pages = write_live(r, s->dst, u, n, buf);
	int ret = pages < 0 ? (int)pages : 0;

	rdlock_shared(&r->sp->rd_lock);
	if (ret == 0 && r->holes_bytes != s->holes_bytes &&
	    !region_owns(r, u * r->fill, n * r->fill))
		ret = -ENOENT;
	rdlock_shared_end(&r->sp->rd_lock);
	if (ret == 0) {
		atomic_fetch_add(&s->units, n);
		STAT_ADD(r->st, snapshot_pages, (uint64_t)pages);
	} else {
		failed(s, ret);
	}
	return ret;
}

/*
 * Read unit @u (held INFLIGHT, claimed from @st) into @buf for the
 * destination; memory as peek_for_store() reads it (the program may
 * unmap the region during the read: tests/unmap_inflight).
 */
static int save(struct upager_region *r, struct snap *s, struct filler *f,
		size_t u, unsigned int st, char *buf)
{
	int ret;

	if (st == UNIT_GONE)
		ret = -ENOENT; /* unmapped since the instant (begin()) */
	else if (st == UNIT_POISONED)
		ret = -EIO; /* its data was never had */
	else
		ret = unit_resident(st) ? peek_for_store(r, f, u, 1, buf, true)
					: read_store(r, u, st, buf);
	if (ret < 0)
		failed(s, ret);
	return ret;
}

/*
 * The copier gives way to the writers and workers after each write of
 * its own.  On a kernel without preemption ("Dynamic Preempt: none", as
 * cloud kernels run) a writer or worker woken onto the copier's CPU
 * waits until the copier's slice ends, which is noticed at the next
 * tick (4 ms at HZ 250): most of the writer's longest stalls were such
 * waits.  With nothing waiting a yield costs a system call per run.
 */
static void give_way(void)
{
	sched_yield();
}

/* Unit @u, read into @buf, into the stash: false when it is full. */
static bool stash(struct upager_region *r, struct snap *s, size_t u,
		  const char *buf)
{
	struct stash *h;
	bool done = false;

	pthread_mutex_lock(&s->lock);
	h = &s->half[s->fill];
	if (h->n < s->cap) {
		memcpy(h->buf + h->n * r->fill, buf, r->fill);
		h->unit[h->n++] = (uint32_t)u;
		done = true;
	}
	pthread_mutex_unlock(&s->lock);
	return done;
}

/* The copier writes out what the write faults stashed. */
static void drain(struct upager_region *r, struct snap *s)
{
	struct stash *h;

	pthread_mutex_lock(&s->lock);
	h = &s->half[s->fill];
	s->fill ^= 1;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0, done = 0; i < h->n; i++) {
		put(r, s, h->unit[i], 1, h->buf + i * r->fill);
		if ((done += r->fill) >= RUN_BYTES) {
			give_way();
			done = 0;
		}
	}
	h->n = 0;
}

/*
 * Called with the gate's read side held: @r->snap stays while it runs.
 * The unit is read outside the stash's lock: the read may fetch a
 * dropped page from the store, or wait for an event to be read.
 */
void snap_before_write(struct upager_region *r, struct filler *f, size_t u)
{
	struct snap *s = atomic_load(&r->snap);
	int ret;

	if (!s || !take_todo(s, u))
		return;
	ret = peek_for_store(r, f, u, 1, f->buf, true);
	if (ret < 0)
		failed(s, ret);
	else if (stash(r, s, u, f->buf) || put(r, s, u, 1, f->buf) == 0)
		atomic_fetch_add(&s->early, 1);
}

static uint64_t now(void)
{
	return now_ns();
}

/*
 * Protect [lo, hi) of the region (offsets).  @wait: under the gate,
 * waiting out a pending event; else before the instant, giving way to
 * the writers after the piece.
 */
static int protect(struct upager_region *r, size_t lo, size_t hi, bool wait)
{
	struct filler f = { 0 };
	unsigned int tries = 0;
	bool runs = false; /* a unit unmapped in part: between the holes */
	int ret;

	for (;;) {
		if (!runs) {
			ret = upager_ll_writeprotect(
				r->uffd, region_base(r) + lo, hi - lo,
				UFFDIO_WRITEPROTECT_MODE_WP);
			runs = ret == -ENOENT;
		}
		if (runs) {
			rdlock_shared(&r->sp->rd_lock);
			ret = region_live_writeprotect(
				r, lo, hi - lo, UFFDIO_WRITEPROTECT_MODE_WP);
			rdlock_shared_end(&r->sp->rd_lock);
		}
		if (ret != -EAGAIN || !wait || !fill_mm_wait(r, &f, &tries))
			break;
	}
	if (!wait)
		give_way();
	return ret;
}

/*
 * Units one protection covers at most, before the instant: a write
 * fault's lift of its unit's protection waited for a whole protection
 * ioctl in progress (4 GiB in one: a writer stalled 87-95 ms; in 4 MiB
 * pieces, 18 ms).  Not under the gate: there each ioctl may wait for a
 * pending event to be read while every writer waits for the gate.
 */
#define RUN_MAX 1024

/* The bits of word @w that are units of [lo, hi). */
static uint64_t range_mask(size_t w, size_t lo, size_t hi)
{
	uint64_t mask = ~0ull;

	if (w == lo / 64)
		mask &= ~0ull << (lo % 64);
	if ((w + 1) * 64 > hi)
		mask &= ~0ull >> (64 - hi % 64);
	return mask;
}

/*
 * Protect the open units of [lo, hi) (unit numbers), taking their bits:
 * in runs, a gap of a few protected units protected again with them.
 * @before the instant: in pieces of RUN_MAX, and without waiting out a
 * pending event (-EAGAIN: the pass under the gate will).  The number
 * protected, or -errno with every bit of the range put back (a later
 * pass must still see them).
 */
static long protect_open(struct upager_region *r, size_t lo, size_t hi,
			 bool before)
{
	size_t run_max = before ? RUN_MAX : SIZE_MAX;
	size_t first = 0, last = 0, n = 0;
	bool run = false;
	int ret;

	for (size_t w = lo / 64; w * 64 < hi; w++) {
		uint64_t mask = range_mask(w, lo, hi), bits;

		if (!(atomic_load(&r->open[w]) & mask))
			continue;
		bits = atomic_fetch_and(&r->open[w], ~mask) & mask;
		for (; bits; bits &= bits - 1) {
			size_t u = w * 64 + (size_t)__builtin_ctzll(bits);

			n++;
			if (run && u - last <= 16 && u - first < run_max) {
				last = u;
				continue;
			}
			if (run && (ret = protect(r, first * r->fill,
						  (last + 1) * r->fill,
						  !before)) < 0)
				goto fail;
			first = last = u;
			run = true;
		}
	}
	if (run && (ret = protect(r, first * r->fill, (last + 1) * r->fill,
				  !before)) < 0)
		goto fail;
	return (long)n;
fail:
	for (size_t w = lo / 64; w * 64 < hi; w++)
		atomic_fetch_or(&r->open[w], range_mask(w, lo, hi));
	return ret;
}

/*
 * One pass over the open units of the region's live ranges.  Skipped:
 * what the program unmapped (a hole, where it may have mapped memory of
 * its own since; its units are GONE).
 */
static long protect_pass(struct upager_region *r, bool before)
{
	struct {
		size_t lo, hi;
	} live[ARRAY_SIZE(r->holes) + 1];
	unsigned int n = 0;
	long done = 0;

	space_hold_events(r->sp);
	for (size_t off = 0; !atomic_load(&r->gone) && n < ARRAY_SIZE(live);) {
		size_t end = region_live_end(r, &off);

		if (off == end)
			break;
		live[n].lo = off;
		live[n++].hi = end;
		off = end;
	}
	space_release_events(r->sp);
	/* A unit a hole takes part of is protected where it is mapped. */
	for (unsigned int i = 0; i < n; i++) {
		long ret = protect_open(r, live[i].lo / r->fill,
					(live[i].hi + r->fill - 1) / r->fill,
					before);

		if (ret < 0)
			return ret;
		done += ret;
	}
	return done;
}

/*
 * Before the instant: protect what is open while the writers go on, pass
 * after pass, each over what the writers opened during the one before
 * (a write fault costs far more than a protection, so the passes
 * shrink), until few are left for the pass under the gate, which is all
 * the writers ever wait for.
 */
#define CONVERGED 64
#define PASSES 8

static int protect_before(struct upager_region *r)
{
	for (unsigned int i = 0; i < PASSES; i++) {
		long ret = protect_pass(r, true);

		/* An event pending: the pass under the gate waits for it. */
		if (ret == -EAGAIN)
			break;
		if (ret < 0)
			return (int)ret;
		if (ret <= CONVERGED)
			break;
	}
	return 0;
}

/* Is unit @u, claimed from @st, one to read with the units held? */
static bool read_held_later(const struct upager_region *r, unsigned int st)
{
	return r->memtype != UPAGER_MEM_SHMEM && st != UNIT_GONE &&
	       st != UNIT_POISONED && unit_resident(st);
}

/*
 * Read the units held into the run and let them go.  Where a page is not
 * there, or the program unmapped one of them, they are given back (to
 * do again), and the first of them is read alone, as each after it may
 * be: its read may fetch a dropped page from the store, which the others
 * must not wait for.
 */
static void read_held(struct upager_region *r, struct snap *s,
		      struct filler *f)
{
	size_t u = s->held_first, n = s->held_n, at = u - s->run_first;
	int ret;

	if (!n)
		return;
	s->held_n = 0;
	ret = peek_for_store(r, f, u, n, s->run + at * r->fill, false);
	if (ret == -EFAULT || ret == -ENOENT) {
		/* Before they go: a write to one saves it first. */
		for (size_t i = u; i < u + n; i++)
			atomic_fetch_or(&s->todo[i / 64], 1ull << (i % 64));
		s->alone = u;
	} else if (ret < 0) {
		failed(s, ret);
	}
	for (size_t i = 0; i < n; i++)
		fill_settle(r, f, u + i, 1, s->held_st[i]);
	if (ret < 0)
		s->run_n = at;
}

/* The copier's run goes to the destination. */
static void flush(struct upager_region *r, struct snap *s, struct filler *f)
{
	read_held(r, s, f);
	if (s->run_n)
		put(r, s, s->run_first, s->run_n, s->run);
	s->run_n = 0;
	give_way();
}

/*
 * Copy every unit still to do, waiting for those in flight.  A unit is
 * let go once read: its bytes are in the run and its todo bit is gone,
 * so a write to it goes on now, not after the destination's write,
 * which for a file may sleep in the kernel's dirty throttling
 * (tests/snapshot slow_dst).  A run ends at a unit not read with the
 * one before (taken by a write fault's save, in flight, or failed).
 */
static void copy_all(struct upager_region *r, struct snap *s,
		     struct filler *f)
{
	struct timespec ts = { 0, 20000 };
	size_t words = s->todo_len / 8, w = 0;
	bool purged = false;

again:
	for (; w < words; w++) {
		while (atomic_load(&s->todo[w])) {
			size_t u = w * 64 + (size_t)__builtin_ctzll(
						    atomic_load(&s->todo[w]));
			uint8_t v = unit_load(&r->state[u]);
			unsigned int st = unit_state(v);
			bool later;
			char *buf;

			if (s->run_n && (u != s->run_first + s->run_n ||
					 s->run_n == s->run_cap))
				flush(r, s, f);
			if (st == UNIT_INFLIGHT) {
				flush(r, s, f);
				if (!purged) {
					handler_purge_jobs(r->h, r);
					purged = true;
				} else {
					nanosleep(&ts, NULL);
				}
				continue;
			}
			later = read_held_later(r, st) && u != s->alone;
			if (!later) {
				/*
				 * The held first, before this one is claimed
				 * (they may wait for it): they are the run's
				 * tail, and one given back ends it.
				 */
				read_held(r, s, f);
				if (s->run_n && s->run_first + s->run_n != u)
					flush(r, s, f);
			}
			if (!unit_claim(&r->state[u], st))
				continue;
			if (!take_todo(s, u)) {
				fill_settle(r, f, u, 1, st);
				continue;
			}
			if (!s->run_n)
				s->run_first = u;
			if (later) {
				if (!s->held_n)
					s->held_first = u;
				s->held_st[s->held_n++] = (uint8_t)st;
				s->run_n++;
				if (s->held_n == HELD_MAX)
					read_held(r, s, f);
				continue;
			}
			buf = s->run + s->run_n * r->fill;
			if (save(r, s, f, u, st, buf) == 0)
				s->run_n++;
			fill_settle(r, f, u, 1, st);
		}
		if (w % 16 == 15) {
			read_held(r, s, f); /* not held through the writes */
			drain(r, s);
		}
	}
	flush(r, s, f);
	/* Units given back in a word already passed (read_held()). */
	for (w = 0; w < words; w++)
		if (atomic_load(&s->todo[w]))
			goto again;
}

/*
 * What the program unmapped by the instant is not the region's: units
 * unmapped whole are left out; of one unmapped in part, the pages still
 * mapped are copied (put()).  A unit it unmaps after, in whole or in
 * part, before the copier has written it, fails the snapshot (-ENOENT,
 * save() and put()): what it held at the instant is not to be had.
 * Events held: the holes are those of the instant.
 */
static void leave_out_holes(struct upager_region *r, struct snap *s)
{
	space_hold_events(r->sp);
	s->holes_bytes = r->holes_bytes;
	for (unsigned int i = 0; i < r->nholes; i++) {
		size_t lo = (r->holes[i].lo + r->fill - 1) / r->fill;
		size_t hi = r->holes[i].hi / r->fill;

		for (size_t w = lo / 64; lo < hi && w * 64 < hi; w++)
			atomic_fetch_and(&s->todo[w], ~range_mask(w, lo, hi));
	}
	/* More holes than fit: the units say (region_owns()). */
	for (size_t u = 0; r->holes_lost && u < r->nunits; u++) {
		uint8_t v = unit_load(&r->state[u]);

		if (unit_state(v) == UNIT_GONE || (v & UNIT_GONE_PENDING))
			take_todo(s, u);
	}
	space_release_events(r->sp);
}

/*
 * The instant: under the gate's write side, @s published, the written
 * bits taken, and a last pass over what is still open.  0, -EBUSY (a
 * snapshot runs) or the protection's error (then nothing is taken).
 */
static int begin(struct upager_region *r, struct snap *s, unsigned int flags)
{
	size_t words = s->todo_len / 8;
	struct snap *none = NULL;
	long ret;

	pthread_rwlock_wrlock(&r->gate);
	if (!atomic_compare_exchange_strong(&r->snap, &none, s)) {
		pthread_rwlock_unlock(&r->gate);
		return -EBUSY;
	}
	for (size_t w = 0; w < words; w++) {
		uint64_t bits;

		if (!atomic_load_explicit(&r->written[w], memory_order_relaxed))
			continue;
		bits = atomic_exchange(&r->written[w], 0);
		if (flags & UPAGER_SNAP_INCREMENTAL)
			atomic_store_explicit(&s->todo[w], bits,
					      memory_order_relaxed);
	}
	leave_out_holes(r, s);
	ret = protect_pass(r, false);
	if (ret < 0) {
		/* Not taken: the next snapshot still sees the writes. */
		for (size_t w = 0; w < words; w++)
			atomic_fetch_or(&r->written[w],
					atomic_load(&s->todo[w]));
		atomic_store(&r->snap, NULL);
	} else {
		atomic_store(&r->snapped, true);
	}
	pthread_rwlock_unlock(&r->gate);
	return ret < 0 ? (int)ret : 0;
}

int upager_region_snapshot(struct upager_region *r, struct upager_store *dst,
			   unsigned int flags,
			   struct upager_snapshot_info *info)
{
	struct filler f = { 0 };
	size_t words = (r->nunits + 63) / 64;
	uint64_t t0, t1, t2;
	struct snap *s;
	int ret;

	if (!r->track || (flags & ~UPAGER_SNAP_INCREMENTAL) ||
	    (info && info->size < sizeof(uint32_t)))
		return -EINVAL;
	if (!STORE_HAS(dst->ops, writeback))
		return -EOPNOTSUPP;
	if (dst->npages != UPAGER_STORE_UNBOUNDED &&
	    (r->store_pgoff > dst->npages ||
	     r->len / UPAGER_STORE_PAGE > dst->npages - r->store_pgoff))
		return -ERANGE;
	if (atomic_load(&r->snap))
		return -EBUSY;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dst = dst;
	s->alone = SIZE_MAX;
	s->todo_len = words * 8;
	s->todo = region_lazy_alloc(s->todo_len);
	pthread_mutex_init(&s->lock, NULL);
	s->cap = STASH_BYTES / r->fill ? STASH_BYTES / r->fill : 1;
	s->run_cap = RUN_BYTES / r->fill ? RUN_BYTES / r->fill : 1;
	s->mem_len = 2 * s->cap * (r->fill + sizeof(uint32_t)) +
		     s->run_cap * r->fill;
	s->mem = region_lazy_alloc(s->mem_len);
	if (s->mem)
		s->run = s->mem + s->mem_len - s->run_cap * r->fill;
	for (unsigned int i = 0; s->mem && i < 2; i++) {
		s->half[i].buf = s->mem + i * s->cap * r->fill;
		s->half[i].unit = (uint32_t *)(void *)(s->mem +
						       2 * s->cap * r->fill) +
				  i * s->cap;
	}
	ret = s->todo && s->mem ? 0 : -ENOMEM;
	if (ret < 0)
		goto out;
	/* The first snapshot is whole, incremental or not. */
	if (!atomic_load(&r->snapped))
		flags &= ~UPAGER_SNAP_INCREMENTAL;
	if (!(flags & UPAGER_SNAP_INCREMENTAL)) /* published by begin() */
		for (size_t w = 0; w < words; w++)
			atomic_store_explicit(&s->todo[w],
					      range_mask(w, 0, r->nunits),
					      memory_order_relaxed);

	t0 = now();
	ret = protect_before(r);
	t1 = now();
	if (ret == 0)
		ret = begin(r, s, flags);
	t2 = now();
	if (ret == 0) {
		copy_all(r, s, &f);
		/* Under the write side: no write fault uses @s after this. */
		pthread_rwlock_wrlock(&r->gate);
		atomic_store(&r->snap, NULL);
		pthread_rwlock_unlock(&r->gate);
		drain(r, s);
		drain(r, s);
		ret = atomic_load(&s->err);
		/*
		 * The instant took the written bits, and what this lacks
		 * is not known unit by unit: the next one is whole.
		 */
		if (ret < 0)
			atomic_store(&r->snapped, false);
	}
	if (ret < 0 && ret != -EBUSY)
		region_report(r, (uintptr_t)region_base(r), ret,
			      "snapshot failed");
	if (info && ret != -EBUSY) {
		struct upager_snapshot_info out = { .size = sizeof(out) };

		out.units = atomic_load(&s->units);
		out.units_early = atomic_load(&s->early);
		out.ns = now() - t0;
		out.protect_ns = t2 - t0;
		out.held_ns = t2 - t1;
		memcpy((char *)info + sizeof(uint32_t),
		       (char *)&out + sizeof(uint32_t),
		       (info->size < sizeof(out) ? info->size : sizeof(out)) -
			       sizeof(uint32_t));
	}
out:
	filler_release(&f);
	if (s->todo)
		munmap((void *)s->todo, s->todo_len);
	if (s->mem)
		munmap(s->mem, s->mem_len);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return ret;
}

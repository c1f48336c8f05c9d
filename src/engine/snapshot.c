// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Live snapshots of a region with write tracking: the copy QEMU's
 * background snapshot makes, without stopping the program.
 *
 * The instant of the snapshot is the end of one write-protection of the
 * whole region, taken with the region's gate held for writing: every
 * place that lifts a unit's protection holds it for reading
 * (writes.c unit_unprotect()), so no protection is lifted while the
 * snapshot starts, and each one lifted after saves its unit first while
 * the unit is still to be copied.  The copier then walks the units: each
 * is held INFLIGHT while it is read (a write to it waits) and written to
 * the destination, from memory if resident, else from the store, which
 * holds the unit as it was at the instant (a unit written since has been
 * saved by its write fault, and only a written unit is ever written
 * back).  The writers' longest wait is the save of one unit.
 *
 * Incremental: the units written since the previous snapshot began (the
 * region's written bits, taken and cleared at the instant).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "base/util.h"
#include "engine/engine.h"
#include "engine/store_call.h"

struct snap {
	struct upager_store *dst;
	_Atomic uint64_t *todo; /* a bit per unit still to copy */
	size_t todo_len;
	atomic_int err;
	atomic_ulong units, early;
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

/* Copy unit @u (held INFLIGHT, claimed from @st) to the destination. */
static int save(struct upager_region *r, struct snap *s, size_t u,
		unsigned int st, char *buf)
{
	size_t np = r->fill / UPAGER_STORE_PAGE;
	int ret;

	if (st == UNIT_GONE)
		return 0; /* the program unmapped it: nothing to copy */
	if (st == UNIT_POISONED)
		return -EIO; /* its data was never had */
	ret = unit_resident(st) ? unit_peek(r, u, buf)
				: read_store(r, u, st, buf);
	if (ret == 0)
		ret = s->dst->ops->writeback(s->dst, r->store_pgoff + u * np,
					     buf, np);
	if (ret == 0) {
		atomic_fetch_add(&s->units, 1);
		STAT_ADD(r->st, snapshot_pages, np);
	} else {
		int none = 0;

		atomic_compare_exchange_strong(&s->err, &none, ret);
	}
	return ret;
}

/* Called with the gate's read side held: @r->snap stays while it runs. */
void snap_before_write(struct upager_region *r, struct filler *f, size_t u)
{
	struct snap *s = atomic_load(&r->snap);

	if (s && take_todo(s, u) && save(r, s, u, UNIT_PRESENT, f->buf) == 0)
		atomic_fetch_add(&s->early, 1);
}

static uint64_t now(void)
{
	return now_ns();
}

/* Protect [lo, hi) of the region (offsets), waiting out a pending event. */
static int protect(struct upager_region *r, size_t lo, size_t hi)
{
	struct filler f = { 0 };
	unsigned int tries = 0;
	int ret;

	while ((ret = upager_ll_writeprotect(r->uffd, region_base(r) + lo,
					     hi - lo,
					     UFFDIO_WRITEPROTECT_MODE_WP)) ==
		       -EAGAIN &&
	       fill_mm_wait(r, &f, &tries))
		;
	return ret;
}

/* Units whose page may be writable: dirty, or held by someone. */
static bool unprotected(struct upager_region *r, size_t u)
{
	unsigned int st = unit_state(unit_load(&r->state[u]));

	return st == UNIT_DIRTY || st == UNIT_INFLIGHT;
}

/*
 * Every unit protected: the instant of the snapshot.  A clean unit is
 * protected already (it went in so, or was protected when it was
 * written back), so only dirty units and those in flight are protected
 * here, in runs (a gap of a few clean ones is protected with them): the
 * writers' longest wait is this pass, which then costs what the program
 * dirtied, not the region's size.  No unit becomes dirty meanwhile: that
 * takes the gate.  Skipped: what the program unmapped (a hole, where it
 * may have mapped memory of its own since; its units are GONE).
 */
static int protect_all(struct upager_region *r)
{
	struct {
		size_t lo, hi;
	} live[ARRAY_SIZE(r->holes) + 1];
	unsigned int n = 0;

	pthread_mutex_lock(&r->sp->rd_lock);
	for (size_t off = 0; !atomic_load(&r->gone) && n < ARRAY_SIZE(live);) {
		size_t end = region_live_end(r, &off);

		if (off == end)
			break;
		live[n].lo = off;
		live[n++].hi = end;
		off = end;
	}
	pthread_mutex_unlock(&r->sp->rd_lock);
	for (unsigned int i = 0; i < n; i++) {
		size_t u = live[i].lo / r->fill, end = live[i].hi / r->fill;

		while (u < end) {
			size_t first, last, gap = 0;
			int ret;

			while (u < end && !unprotected(r, u))
				u++;
			if (u == end)
				break;
			first = last = u;
			for (u++; u < end && gap <= 16; u++) {
				if (unprotected(r, u)) {
					last = u;
					gap = 0;
				} else {
					gap++;
				}
			}
			u = last + 1;
			ret = protect(r, first * r->fill, (last + 1) * r->fill);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* Copy every unit still to do, waiting for those in flight. */
static void copy_all(struct upager_region *r, struct snap *s,
		     struct filler *f)
{
	struct timespec ts = { 0, 20000 };
	bool purged = false;

	for (size_t w = 0; w < s->todo_len / 8; w++) {
		while (atomic_load(&s->todo[w])) {
			size_t u = w * 64 + (size_t)__builtin_ctzll(
						    atomic_load(&s->todo[w]));
			uint8_t v = unit_load(&r->state[u]);
			unsigned int st = unit_state(v);

			if (st == UNIT_INFLIGHT) {
				if (!purged) {
					handler_purge_jobs(r->h, r);
					purged = true;
				} else {
					nanosleep(&ts, NULL);
				}
				continue;
			}
			if (!unit_claim(&r->state[u], st))
				continue;
			if (take_todo(s, u))
				save(r, s, u, st, f->buf);
			fill_settle(r, f, u, 1, st);
		}
	}
}

int upager_region_snapshot(struct upager_region *r, struct upager_store *dst,
			   unsigned int flags,
			   struct upager_snapshot_info *info)
{
	struct snap *s, *none = NULL;
	struct filler f = { 0 };
	size_t words = (r->nunits + 63) / 64;
	uint64_t t0, t1;
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
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dst = dst;
	s->todo_len = words * 8;
	s->todo = region_lazy_alloc(s->todo_len);
	ret = s->todo ? filler_reserve(&f, r->fill) : -ENOMEM;
	if (ret < 0)
		goto out;

	t0 = now();
	pthread_rwlock_wrlock(&r->gate);
	if (!atomic_compare_exchange_strong(&r->snap, &none, s)) {
		pthread_rwlock_unlock(&r->gate);
		ret = -EBUSY;
		goto out;
	}
	/* The first snapshot is whole, incremental or not. */
	if (!r->snapped)
		flags &= ~UPAGER_SNAP_INCREMENTAL;
	for (size_t w = 0; w < words; w++) {
		uint64_t bits = atomic_exchange(&r->written[w], 0);

		if (!(flags & UPAGER_SNAP_INCREMENTAL))
			bits = w + 1 < words || !(r->nunits % 64)
				       ? ~0ull
				       : (1ull << (r->nunits % 64)) - 1;
		if (bits)
			atomic_store(&s->todo[w], bits);
	}
	ret = protect_all(r);
	if (ret < 0) /* not taken: the next snapshot still sees the writes */
		for (size_t w = 0; w < words; w++)
			atomic_fetch_or(&r->written[w],
					atomic_load(&s->todo[w]));
	else
		r->snapped = true;
	pthread_rwlock_unlock(&r->gate);
	t1 = now();
	if (ret == 0)
		copy_all(r, s, &f);
	/* Under the write side: no write fault is using @s after this. */
	pthread_rwlock_wrlock(&r->gate);
	atomic_store(&r->snap, NULL);
	pthread_rwlock_unlock(&r->gate);
	if (ret == 0)
		ret = atomic_load(&s->err);
	if (ret < 0)
		region_report(r, (uintptr_t)region_base(r), ret,
			      "snapshot failed");
	if (info) {
		struct upager_snapshot_info out = { .size = sizeof(out) };

		out.units = atomic_load(&s->units);
		out.units_early = atomic_load(&s->early);
		out.ns = now() - t0;
		out.protect_ns = t1 - t0;
		memcpy((char *)info + sizeof(uint32_t),
		       (char *)&out + sizeof(uint32_t),
		       (info->size < sizeof(out) ? info->size : sizeof(out)) -
			       sizeof(uint32_t));
	}
out:
	filler_release(&f);
	if (s->todo)
		munmap((void *)s->todo, s->todo_len);
	free(s);
	return ret;
}

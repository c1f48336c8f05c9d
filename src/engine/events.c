// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The engine follows what a program does to its memory, through the
 * uffd's non-cooperative events (UFFD_FEATURE_EVENT_*):
 *
 *   FORK    the child's copy of each FOLLOW region becomes a region of a
 *           new space (the child's uffd), served from the same store;
 *   REMOVE  MADV_DONTNEED/FREE/REMOVE: the units become REMOVED, and the
 *           next fault fills them by the region's REMOVE policy;
 *   UNMAP   munmap (or mremap shrinking): the units become GONE, a
 *           region unmapped whole leaves its space's table;
 *   REMAP   mremap moving a whole region: it follows; moving a part of
 *           one is not supported: that part is GONE, and faults at its
 *           new address end in SIGBUS (handler.c, stray faults).
 *
 * The kernel delivers an event before it changes the memory (the zap of
 * a REMOVE comes after its event is read), and answers -EAGAIN to
 * installs while an event is unread; fill.c and unit.h handle what
 * overlaps.  Events are handled by whichever worker reads them, also
 * in the middle of a fill that was waiting for them (the pump): nothing
 * here waits for a fill.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine.h"

/* Units of @r that [start, end) touches: [*u0, *u1); bytes in *bytes. */
static void clip(struct upager_region *r, uint64_t start, uint64_t end,
		 bool whole, size_t *u0, size_t *u1, size_t *bytes)
{
	uint64_t a = (uintptr_t)region_base(r), lo = start > a ? start : a;
	uint64_t hi = end < a + r->len ? end : a + r->len;

	*bytes = hi > lo ? (size_t)(hi - lo) : 0;
	if (whole) {
		/* Only the units [lo, hi) covers entirely. */
		*u0 = (size_t)((lo - a + r->fill - 1) / r->fill);
		*u1 = (size_t)((hi - a) / r->fill);
	} else {
		*u0 = (size_t)((lo - a) / r->fill);
		*u1 = (size_t)((hi - a + r->fill - 1) / r->fill);
	}
	if (*u1 < *u0)
		*u1 = *u0;
}

void event_remove(struct upager_space *sp, uint64_t start, uint64_t end)
{
	struct upager_region **rs = space_range(sp, start, end);

	for (size_t i = 0; rs && rs[i]; i++) {
		struct upager_region *r = rs[i];
		size_t u0, u1, bytes;

		clip(r, start, end, false, &u0, &u1, &bytes);
		for (size_t u = u0; u < u1; u++)
			unit_remove(&r->state[u]);
		STAT_ADD(r->st, pages_removed, bytes / UPAGER_STORE_PAGE);
		region_put(r);
	}
	free(rs);
}

/*
 * The whole of @r is no longer mapped: it leaves its table, and its
 * counters go to the handler's.  Its memory stays until upager_unmap()
 * (a root: the application holds it) or its root or space goes.
 */
static void region_gone(struct upager_region *r)
{
	atomic_store(&r->gone, true);
	space_remove(r->sp, r);
	region_retire(r);
}

void event_unmap(struct upager_space *sp, uint64_t start, uint64_t end)
{
	struct upager_region **rs = space_range(sp, start, end);

	for (size_t i = 0; rs && rs[i]; i++) {
		struct upager_region *r = rs[i];
		size_t u0, u1, bytes, gone = 0;

		clip(r, start, end, true, &u0, &u1, &bytes);
		bool whole;

		for (size_t u = u0; u < u1; u++)
			gone += unit_gone(&r->state[u]);
		/* Unmapped whole, at once or a piece at a time. */
		whole = atomic_fetch_add(&r->ngone, gone) + gone == r->nunits;
		if (whole)
			atomic_store(&r->gone, true);
		STAT_ADD(r->st, pages_unmapped, bytes / UPAGER_STORE_PAGE);
		if (whole)
			region_gone(r);
		region_put(r);
	}
	free(rs);
	/* Threads still waiting there retry, and meet the unmapped range. */
	upager_ll_wake(sp->uffd, (void *)(uintptr_t)start, end - start);
}

void event_remap(struct upager_space *sp, uint64_t from, uint64_t to, uint64_t len)
{
	struct upager_region **rs = space_range(sp, from, from + len);

	for (size_t i = 0; rs && rs[i]; i++) {
		struct upager_region *r = rs[i];
		uint64_t a = (uintptr_t)region_base(r);

		if (a >= from && a + r->len <= from + len) {
			space_move(sp, r, (char *)(uintptr_t)(a - from + to));
			STAT_ADD(r->st, remaps, 1);
		} else {
			size_t u0, u1, bytes, gone = 0;

			region_report(r, from, -EOPNOTSUPP,
				      "mremap of part of a region: that part "
				      "is lost (SIGBUS at its new address)");
			clip(r, from, from + len, false, &u0, &u1, &bytes);
			for (size_t u = u0; u < u1; u++)
				gone += unit_gone(&r->state[u]);
			if (atomic_fetch_add(&r->ngone, gone) + gone ==
			    r->nunits)
				region_gone(r);
		}
		region_put(r);
	}
	free(rs);
}

/* ---- fork --------------------------------------------------------------- */

/*
 * The child's state for a region of the parent, as the kernel copied the
 * memory: installed units are there, units being filled may or may not
 * be (given to the faults), dropped ones stay dropped.  Blocks of state
 * that are all zero (ABSENT) are not touched, so a large sparse region
 * costs the child what the parent touched.
 */
static void copy_state(unit_t *dst, const unit_t *src, size_t n)
{
	const size_t block = 4096;

	for (size_t b = 0; b < n; b += block) {
		size_t k = n - b < block ? n - b : block;
		const uint64_t *w = (const uint64_t *)(const void *)(src + b);
		bool zero = true;

		for (size_t i = 0; i < k / 8 && zero; i++)
			zero = !__atomic_load_n(&w[i], __ATOMIC_RELAXED);
		for (size_t i = k / 8 * 8; i < k && zero; i++)
			zero = !unit_load((unit_t *)&src[b + i]);
		if (zero)
			continue;
		for (size_t i = 0; i < k; i++) {
			uint8_t v = unit_load((unit_t *)&src[b + i]);
			unsigned int s = unit_state(v);

			if (s == UNIT_INFLIGHT)
				s = (v & UNIT_RM_PENDING) ? UNIT_REMOVED
							  : UNIT_ABSENT;
			atomic_store_explicit(&dst[b + i], (uint8_t)s,
					      memory_order_relaxed);
		}
	}
}

static struct upager_region *fork_region(struct upager_space *child,
					 struct upager_region *r)
{
	struct upager_region *root = r->root ? r->root : r;
	struct upager_region *c = region_alloc(r->h);

	if (!c)
		return NULL;
	c->sp = child;
	c->store = r->store;
	c->addr = region_base(r);
	c->len = r->len;
	c->fill = r->fill;
	c->nunits = r->nunits;
	c->ra_max = r->ra_max;
	c->fa = r->fa;
	c->store_pgoff = r->store_pgoff;
	c->memtype = r->memtype;
	c->fork = r->fork;
	c->remove = r->remove;
	c->flags = r->flags;
	c->uffd = child->uffd;
	c->root = root;
	c->st = root->st;
	if (r->memtype == UPAGER_MEM_SHMEM) {
		/* One page cache: the state is the root's, as is the alias. */
		c->memfd = root->memfd;
		c->alias = root->alias;
		c->state = root->state;
	} else {
		c->state_len = r->nunits;
		c->state = mmap(NULL, c->state_len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				-1, 0);
		if (c->state == MAP_FAILED) {
			c->state = NULL;
			region_free(c);
			return NULL;
		}
		copy_state(c->state, r->state, r->nunits);
	}
	return c;
}

/*
 * A process with FOLLOW regions forked: @child_uffd serves the child's
 * copies.  Regions the child did not get (DONTFORK, in-thread, on another
 * uffd) are left out; so is everything when memory runs short, and the
 * child's copies then have no server: they are poisoned, never zeros.
 */
void event_fork(struct upager_space *sp, int child_uffd)
{
	struct upager_handler *h = sp->h;
	struct upager_region **rs = space_range(sp, 0, UINT64_MAX);
	struct upager_space *child = calloc(1, sizeof(*child));
	bool failed = !rs || !child;

	if (child && space_init(child, h, child_uffd, false) < 0) {
		free(child);
		child = NULL;
		failed = true;
	}
	if (child)
		child->features = sp->features;
	for (size_t i = 0; rs && rs[i]; i++) {
		struct upager_region *r = rs[i], *c;

		if (r->uffd != sp->uffd || atomic_load(&r->gone) ||
		    r->fork == UPAGER_FORK_DONTFORK) {
			region_put(r);
			continue;
		}
		c = failed ? NULL : fork_region(child, r);
		if (c && space_add(child, c) < 0) {
			region_free(c);
			c = NULL;
		}
		if (!c) {
			failed = true;
			region_report(r, (uintptr_t)region_base(r), -ENOMEM,
				      "fork: the child's copy cannot be served");
			fill_poison_range(child_uffd, region_base(r), r->len,
					  memtype_page(r->memtype));
			region_put(r);
			continue;
		}
		pthread_mutex_lock(&h->fork_lock);
		c->sibling = c->root->children;
		c->root->children = c;
		c->next_owned = child->owned;
		child->owned = c;
		pthread_mutex_unlock(&h->fork_lock);
		STAT_ADD(r->st, forks, 1);
		region_put(r);
	}
	free(rs);
	if (!child) {
		close(child_uffd);
		return;
	}
	if (handler_adopt(h, child) < 0)
		space_exited(child);
}

/*
 * The child's process is gone (-ESRCH from an install, or the liveness
 * sweep): its regions leave their tables, and the space is dropped; its
 * memory is freed once no worker holds it (handler.c reaps it).
 */
void space_exited(struct upager_space *sp)
{
	struct upager_region **rs;
	bool was = false;

	if (!atomic_compare_exchange_strong(&sp->dead, &was, true))
		return;
	rs = space_range(sp, 0, UINT64_MAX);
	for (size_t i = 0; rs && rs[i]; i++) {
		region_gone(rs[i]);
		region_put(rs[i]);
	}
	free(rs);
	handler_drop(sp->h, sp);
	if (sp->on_exit)
		sp->on_exit(sp->exit_arg, sp);
}

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
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/engine.h"

/*
 * Units of @r that [start, end) covers whole, [*w0, *w1), and touches,
 * [*t0, *t1); the bytes of @r it covers in *bytes.
 */
static void clip(struct upager_region *r, uint64_t start, uint64_t end,
		 size_t *w0, size_t *w1, size_t *t0, size_t *t1, size_t *bytes)
{
	uint64_t a = (uintptr_t)region_base(r), lo = start > a ? start : a;
	uint64_t hi = end < a + r->len ? end : a + r->len;

	if (hi < lo)
		hi = lo;
	*bytes = (size_t)(hi - lo);
	*w0 = (size_t)((lo - a + r->fill - 1) / r->fill);
	*w1 = (size_t)((hi - a) / r->fill);
	*t0 = (size_t)((lo - a) / r->fill);
	*t1 = (size_t)((hi - a + r->fill - 1) / r->fill);
	if (*w1 < *w0)
		*w1 = *w0;
}

/* The program dropped [start, end) of @r (it may reach past @r). */
static void remove_from(struct upager_region *r, uint64_t start, uint64_t end)
{
	size_t w0, w1, t0, t1, bytes;

	clip(r, start, end, &w0, &w1, &t0, &t1, &bytes);
	if (r->dropped && bytes) {
		size_t lo = (start > (uintptr_t)region_base(r)
				     ? start - (uintptr_t)region_base(r)
				     : 0) /
			    UPAGER_STORE_PAGE;

		region_drop(r, lo, lo + bytes / UPAGER_STORE_PAGE);
	}
	for (size_t u = t0; u < t1; u++)
		unit_remove(&r->state[u], u >= w0 && u < w1, r->track,
			    r->memtype == UPAGER_MEM_SHMEM);
	evict_dropped(r, t0, t1 - t0);
	STAT_ADD(r->st, pages_removed, bytes / UPAGER_STORE_PAGE);
}

void event_remove(struct upager_space *sp, uint64_t start, uint64_t end)
{
	struct upager_region *pins[PIN_STEP];
	uint64_t cur = start;
	size_t n;

	while ((n = space_pin(sp, &cur, end, pins, PIN_STEP))) {
		for (size_t i = 0; i < n; i++) {
			struct upager_region *r = pins[i];

			/* An evictor's runs: their unit settles by itself. */
			for (uint64_t at = start, to; at < end; at = to) {
				bool own;

				to = evict_own_run(r, at, end, &own);
				if (!own)
					remove_from(r, at, to);
			}
			region_put(r);
		}
	}
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

/*
 * Add [*@lo, *@hi) (offsets) to @r's holes, merged with those it touches
 * (*@lo, *@hi: the merged hole).  Returns the bytes that were not a hole
 * yet; *@whole says the holes now cover all of @r.  Caller holds rd_lock.
 */
static size_t add_hole(struct upager_region *r, size_t *lo_, size_t *hi_,
		       bool *whole)
{
	size_t lo = *lo_, hi = *hi_;
	size_t fresh = hi - lo;
	unsigned int k = 0;

	for (unsigned int i = 0; i < r->nholes; i++) {
		size_t a = r->holes[i].lo, b = r->holes[i].hi;

		if (b < lo || a > hi) {
			r->holes[k++] = r->holes[i];
			continue;
		}
		/* What of [lo, hi) this hole covered already. */
		fresh -= (b < hi ? b : hi) - (a > lo ? a : lo);
		lo = a < lo ? a : lo;
		hi = b > hi ? b : hi;
	}
	if (k == ARRAY_SIZE(r->holes)) {
		r->holes_lost = true;
	} else {
		unsigned int at = k;

		while (at && r->holes[at - 1].lo > lo) {
			r->holes[at] = r->holes[at - 1];
			at--;
		}
		r->holes[at].lo = lo;
		r->holes[at].hi = hi;
		k++;
	}
	r->nholes = k;
	r->holes_bytes += fresh;
	*whole = k == 1 && !r->holes[0].lo && r->holes[0].hi == r->len;
	*lo_ = lo;
	*hi_ = hi;
	return fresh;
}

void event_unmap(struct upager_space *sp, uint64_t start, uint64_t end)
{
	struct upager_region *pins[PIN_STEP];
	uint64_t cur = start;
	size_t n;

	atomic_fetch_add(&sp->moved, 1);

	while ((n = space_pin(sp, &cur, end, pins, PIN_STEP))) {
		for (size_t i = 0; i < n; i++) {
			struct upager_region *r = pins[i];
			uint64_t a = (uintptr_t)region_base(r);
			size_t w0, w1, t0, t1, bytes, lo, hi;
			bool whole;

			clip(r, start, end, &w0, &w1, &t0, &t1, &bytes);
			lo = start > a ? (size_t)(start - a) : 0;
			hi = lo + bytes;
			bytes = add_hole(r, &lo, &hi, &whole);
			/*
			 * Units the hole covers now, with those made before:
			 * a unit unmapped a piece at a time is gone too (a
			 * fill finds none of it to install).
			 */
			w0 = (lo + r->fill - 1) / r->fill;
			w1 = hi / r->fill;
			for (size_t u = w0; u < w1; u++)
				unit_gone(&r->state[u]);
			evict_dropped(r, w0, w1 > w0 ? w1 - w0 : 0);
			/* Gone, at once or a piece at a time. */
			if (whole)
				atomic_store(&r->gone, true);
			STAT_ADD(r->st, pages_unmapped,
				 bytes / UPAGER_STORE_PAGE);
			if (whole)
				region_gone(r);
			region_put(r);
		}
	}
	/* Threads still waiting there retry, and meet the unmapped range. */
	upager_ll_wake(sp->uffd, (void *)(uintptr_t)start, end - start);
}

/*
 * mremap.  The part that left a region moved out of its range: an UNMAP
 * of the old range follows (mremap unmaps it), which makes the hole.
 */
void event_remap(struct upager_space *sp, uint64_t from, uint64_t to,
		 uint64_t len)
{
	struct upager_region *pins[PIN_STEP];
	uint64_t cur = from;
	size_t n;

	atomic_fetch_add(&sp->moved, 1);

	while ((n = space_pin(sp, &cur, from + len, pins, PIN_STEP))) {
		for (size_t i = 0; i < n; i++) {
			struct upager_region *r = pins[i];
			uint64_t a = (uintptr_t)region_base(r);

			if (a >= from && a + r->len <= from + len) {
				space_move(sp, r,
					   (char *)(uintptr_t)(a - from + to));
				STAT_ADD(r->st, remaps, 1);
			} else {
				size_t w0, w1, t0, t1, bytes;

				region_report(r, from, -EOPNOTSUPP,
					      "mremap of part of a region: "
					      "that part is lost (SIGBUS at "
					      "its new address)");
				clip(r, from, from + len, &w0, &w1, &t0, &t1,
				     &bytes);
				for (size_t u = t0; u < t1; u++)
					unit_gone(&r->state[u]);
			}
			region_put(r);
		}
	}
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
	c->mapped = r->mapped;
	c->uffd = child->uffd;
	c->root = root;
	c->st = root->st;
	if (r->memtype == UPAGER_MEM_SHMEM) {
		/* One page cache: the state is the root's, as is the alias. */
		c->memfd = root->memfd;
		c->alias = root->alias;
		c->state = root->state;
		c->dropped = root->dropped;
	} else {
		if (region_state_alloc(c) < 0) {
			region_free(c);
			return NULL;
		}
		copy_state(c->state, r->state, r->nunits);
		for (size_t i = 0; c->dropped && i < c->dropped_len / 8; i++)
			if (atomic_load(&r->dropped[i]))
				atomic_store(&c->dropped[i],
					     atomic_load(&r->dropped[i]));
	}
	return c;
}

/*
 * The child's copy of @r (a region of @sp), in @child's table.  When it
 * cannot be made (*@failed, from then on for every region), the copy in
 * the child is poisoned: no one will serve it, and it must not read the
 * zeros the kernel would give.
 */
static void fork_one(struct upager_space *sp, struct upager_space *child,
		     int child_uffd, struct upager_region *r, bool *failed)
{
	struct upager_handler *h = sp->h;
	struct upager_region *c;
	bool closed;

	/* Not in the child: on another uffd (in-thread), gone, DONTFORK. */
	if (r->uffd != sp->uffd || atomic_load(&r->gone) ||
	    r->fork == UPAGER_FORK_DONTFORK)
		return;
	c = *failed ? NULL : fork_region(child, r);
	if (c && space_add(child, c) < 0) {
		region_free(c);
		c = NULL;
	}
	if (!c) {
		*failed = true;
		region_report(r, (uintptr_t)region_base(r), -ENOMEM,
			      "fork: the child's copy cannot be served");
		fill_poison_range(child_uffd, region_base(r), r->len,
				  memtype_page(r->memtype));
		return;
	}
	pthread_mutex_lock(&h->fork_lock);
	closed = c->root->forks_closed;
	if (!closed) {
		c->sibling = c->root->children;
		c->root->children = c;
		c->next_owned = child->owned;
		child->owned = c;
	}
	pthread_mutex_unlock(&h->fork_lock);
	if (closed) {
		/*
		 * The root is being unmapped (its fork() returned once this
		 * event was read, and the program went on): its copies are
		 * torn down already, this one with them.  The child is not
		 * served yet, so no fill of the copy is in flight.
		 */
		space_remove(child, c);
		fill_poison_absent(c);
		region_free(c);
		return;
	}
	STAT_ADD(r->st, forks, 1);
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
	struct upager_space *child = mem_alloc(sizeof(*child));
	struct upager_region *pins[PIN_STEP];
	bool failed = !child;
	uint64_t cur = 0;
	size_t n;
	int fl;

	/*
	 * The kernel opens the child's uffd with the flags its parent's was
	 * created with, not what fcntl() made of it since: a blocking one
	 * would stop the worker that reads it, rd_lock held, and with it
	 * every worker (tests/foreign_fork_blocking.c).
	 */
	if (child && ((fl = fcntl(child_uffd, F_GETFL)) < 0 ||
		      fcntl(child_uffd, F_SETFL, fl | O_NONBLOCK) < 0 ||
		      space_init(child, h, child_uffd, false) < 0)) {
		mem_free(child, sizeof(*child));
		child = NULL;
		failed = true;
	}
	if (child)
		child->features = sp->features;
	while ((n = space_pin(sp, &cur, UINT64_MAX, pins, PIN_STEP))) {
		for (size_t i = 0; i < n; i++) {
			fork_one(sp, child, child_uffd, pins[i], &failed);
			region_put(pins[i]);
		}
	}
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
	struct upager_region *pins[PIN_STEP];
	uint64_t cur = 0;
	bool was = false;
	size_t n;

	if (!atomic_compare_exchange_strong(&sp->dead, &was, true))
		return;
	while ((n = space_pin(sp, &cur, UINT64_MAX, pins, PIN_STEP))) {
		for (size_t i = 0; i < n; i++) {
			region_gone(pins[i]);
			region_put(pins[i]);
		}
	}
	handler_drop(sp->h, sp);
	if (sp->on_exit)
		sp->on_exit(sp->exit_arg, sp);
}

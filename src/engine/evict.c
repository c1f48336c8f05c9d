// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Budgets: a region's resident units kept between water marks by the
 * handler's evictor threads.
 *
 * Which units go.  userfaultfd says nothing of accesses to a present
 * page, so the policy judges by faults, as 2Q does: a unit faulted in
 * for the first time joins the probation queue (IN); evicted, its number
 * is kept a while in a history of evictions (GHOST); faulted in again
 * while there, it is hot and joins the main queue (MAIN), which gives
 * units up only when probation is short.  Under a skewed load the hot
 * units keep coming back within the history and settle in MAIN, where
 * FIFO would evict them as readily as any (tests/evict_policy compares
 * the two in one run).
 *
 * How a unit goes.  The evictor holds it INFLIGHT (a fault or a write on
 * it waits), writes it back if dirty (writes.c: protected first), then
 * moves its pages out with UFFDIO_MOVE into a sink registered on a uffd
 * of the evictors' own, which has no events: MADV_DONTNEED on the region
 * would send EVENT_REMOVE and wait for a worker to read it, and the
 * region's uffd must not see our own drops as the program's.  The sink
 * is emptied with one MADV_DONTNEED a batch, over the slots used: a unit
 * goes whole or stays whole (undrop()), so no slot past them holds a
 * page.  shmem units are dropped from the memfd with a punched hole,
 * which sends no event either.  The unit settles ABSENT and its waiters
 * are woken: their next fault reads the store, which holds what was
 * written.
 *
 * Locks: @e->lock guards the queues (leaf); h->ev_lock the list of
 * budgeted regions, the threads and their wake-ups.  Neither is held
 * across a store call or an ioctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/engine.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

#define NIL UINT32_MAX
#define BATCH 64
#define SINK_MAX (4u << 20)

/* Where a unit is: a queue, or resident outside them, or nowhere. */
enum {
	T_NONE = 0, /* not resident (or not yet seen resident) */
	T_IN,	    /* resident, on probation */
	T_MAIN,	    /* resident, hot */
	T_GHOST,    /* evicted lately (AUTO) */
	T_BUSY,	    /* an evictor holds it */
	T_KEPT,	    /* dirty over a store without writeback */
	T_PINNED,   /* upager_region_pin() */
	T_MASK = 0x7f,
	T_PIN = 0x80, /* pinned: it goes to T_PINNED when filled */
};

struct queue {
	uint32_t head, tail;
	atomic_size_t n;
};

/*
 * One kind of failure, told at most once a second per region: a failure
 * that goes on (a store that refuses writes, a pinned page) would
 * otherwise print a line per eviction.  Each line counts those not told
 * since the one before; evict_tell_rest() tells the last of them.
 */
struct tell {
	_Atomic uint64_t next; /* no line before (ns) */
	atomic_ulong untold;
	atomic_int err; /* the last one's */
	const char *what;
};

#define TELL_NS (1000ull * 1000 * 1000)

struct evict {
	struct upager_region *r;
	struct evict *next; /* h->ev_list */
	pthread_mutex_t lock;
	uint8_t *tag;
	uint32_t *prev, *nxt;
	size_t maps_len;
	struct queue q[T_GHOST + 1]; /* T_IN, T_MAIN, T_GHOST used */
	atomic_size_t outside;	     /* T_BUSY, T_KEPT, T_PINNED units */
	size_t budget, high, low, kin, kout; /* in units */
	enum upager_evict_policy policy;
	unsigned int active; /* evictors inside (h->ev_lock) */
	bool detached;	     /* (h->ev_lock) */
	atomic_bool told_kept;
	struct tell wb_failed, drop_failed, drop_part;
	uint64_t idle_until;	 /* nothing could go: not before (ev_lock) */
	/*
	 * An evictor's MADV_DONTNEED, one at a time (drop_lock): its range
	 * [own_lo, own_hi) (0, 0: none) and the pages of it a REMOVE was
	 * handled for since (own_seen, a bit each), under own_lock.
	 */
	pthread_mutex_t drop_lock, own_lock;
	uint64_t own_lo, own_hi, *own_seen;
};

static size_t resident(struct evict *e)
{
	return atomic_load_explicit(&e->q[T_IN].n, memory_order_relaxed) +
	       atomic_load_explicit(&e->q[T_MAIN].n, memory_order_relaxed) +
	       atomic_load_explicit(&e->outside, memory_order_relaxed);
}

static void q_push(struct evict *e, unsigned int t, uint32_t u)
{
	struct queue *q = &e->q[t];

	e->prev[u] = q->tail;
	e->nxt[u] = NIL;
	if (q->tail != NIL)
		e->nxt[q->tail] = u;
	else
		q->head = u;
	q->tail = u;
	atomic_fetch_add_explicit(&q->n, 1, memory_order_relaxed);
	e->tag[u] = (uint8_t)((e->tag[u] & T_PIN) | t);
}

static void q_unlink(struct evict *e, uint32_t u)
{
	struct queue *q = &e->q[e->tag[u] & T_MASK];

	if (e->prev[u] != NIL)
		e->nxt[e->prev[u]] = e->nxt[u];
	else
		q->head = e->nxt[u];
	if (e->nxt[u] != NIL)
		e->prev[e->nxt[u]] = e->prev[u];
	else
		q->tail = e->prev[u];
	atomic_fetch_sub_explicit(&q->n, 1, memory_order_relaxed);
	e->tag[u] &= T_PIN;
}

/* Take @u out of wherever it is; @e->lock held. */
static void forget(struct evict *e, uint32_t u)
{
	unsigned int t = e->tag[u] & T_MASK;

	if (t == T_IN || t == T_MAIN || t == T_GHOST)
		q_unlink(e, u);
	else if (t == T_KEPT || t == T_PINNED || t == T_BUSY)
		atomic_fetch_sub_explicit(&e->outside, 1, memory_order_relaxed);
	e->tag[u] &= T_PIN;
}

static void set_outside(struct evict *e, uint32_t u, unsigned int t)
{
	forget(e, u);
	e->tag[u] = (uint8_t)((e->tag[u] & T_PIN) | t);
	atomic_fetch_add_explicit(&e->outside, 1, memory_order_relaxed);
}

static void kick(struct upager_handler *h)
{
	pthread_mutex_lock(&h->ev_lock);
	pthread_cond_broadcast(&h->ev_cond);
	pthread_mutex_unlock(&h->ev_lock);
}

void evict_filled(struct upager_region *r, size_t u, size_t n)
{
	struct evict *e = r->ev;
	bool over;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	for (size_t i = u; i < u + n; i++) {
		unsigned int t = e->tag[i] & T_MASK;

		if (t != T_NONE && t != T_GHOST)
			continue; /* counted already */
		if (e->tag[i] & T_PIN) {
			set_outside(e, (uint32_t)i, T_PINNED);
			continue;
		}
		if (t == T_GHOST) {
			q_unlink(e, (uint32_t)i);
			q_push(e, T_MAIN, (uint32_t)i);
		} else {
			q_push(e, T_IN, (uint32_t)i);
		}
	}
	over = resident(e) > e->high;
	pthread_mutex_unlock(&e->lock);
	if (over)
		kick(r->h);
}

void evict_dropped(struct upager_region *r, size_t u, size_t n)
{
	struct evict *e = r->ev;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	for (size_t i = u; i < u + n; i++) {
		unsigned int s = unit_state(unit_load(&r->state[i]));

		/* Held units settle by their holders (an evictor's: T_BUSY). */
		if ((e->tag[i] & T_MASK) == T_BUSY || s == UNIT_INFLIGHT ||
		    unit_resident(s))
			continue;
		forget(e, (uint32_t)i);
	}
	pthread_mutex_unlock(&e->lock);
}

/* After an eviction: into the history (AUTO), trimmed to its length. */
static void evicted(struct evict *e, uint32_t u)
{
	forget(e, u);
	if (e->policy != UPAGER_EVICT_AUTO)
		return;
	q_push(e, T_GHOST, u);
	if (atomic_load_explicit(&e->q[T_GHOST].n, memory_order_relaxed) >
	    e->kout)
		q_unlink(e, e->q[T_GHOST].head);
}

/* The queue the next victim comes from: probation first, unless short. */
static unsigned int victim_queue(struct evict *e)
{
	size_t in = atomic_load_explicit(&e->q[T_IN].n, memory_order_relaxed);
	size_t main = atomic_load_explicit(&e->q[T_MAIN].n,
					   memory_order_relaxed);

	if (in && (in > e->kin || !main))
		return T_IN;
	return main ? T_MAIN : T_IN;
}

/*
 * Up to @max victims into @out, held INFLIGHT, with the states they were
 * claimed from in @from.  Units the queues hold that are no longer
 * resident are forgotten; those in flight (a fault, a write, a sync) are
 * passed over this time, and so are dirty ones when @clean (to the back
 * of their queue, as the kernel's reclaim leaves a dirty page to the
 * flusher): a fault that evicts first should not wait for a write.
 */
static size_t pick(struct evict *e, uint32_t *out, unsigned int *from,
		   size_t max, bool clean)
{
	struct upager_region *r = e->r;
	size_t n = 0, looked = 0, limit = 4 * max;

	pthread_mutex_lock(&e->lock);
	/* The victims count as resident (T_BUSY) until they are gone. */
	while (n < max && looked++ < limit && resident(e) > e->low + n) {
		unsigned int qi = victim_queue(e);
		uint32_t u = e->q[qi].head;
		unsigned int s;

		if (u == NIL)
			break;
		s = unit_state(unit_load(&r->state[u]));
		if (!unit_resident(s) || (clean && s == UNIT_DIRTY)) {
			if (s == UNIT_INFLIGHT || s == UNIT_DIRTY) {
				q_unlink(e, u); /* to the back: later */
				q_push(e, qi, u);
			} else {
				forget(e, u);
			}
			continue;
		}
		if (!unit_claim(&r->state[u], s))
			continue;
		set_outside(e, u, T_BUSY);
		from[n] = s;
		out[n++] = u;
	}
	pthread_mutex_unlock(&e->lock);
	return n;
}

/* Where an evicting thread moves pages to: its own, emptied a batch at
 * a time. */
struct sink {
	char *addr;
	size_t len;
};

static int sink_reserve(struct upager_handler *h, struct sink *sk, size_t len)
{
	uint64_t ioctls;
	void *p;
	int ret;

	if (sk->len >= len)
		return 0;
	if (sk->addr)
		munmap(sk->addr, sk->len);
	sk->addr = NULL;
	sk->len = 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	madvise(p, len, MADV_NOHUGEPAGE);
	ret = upager_ll_register(h->evict_uffd, p, len,
				 UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	if (ret < 0) {
		munmap(p, len);
		return ret;
	}
	sk->addr = p;
	sk->len = len;
	return 0;
}

/* A failure of @t's kind at @addr: told now, or counted for later. */
static void tell(struct upager_region *r, struct tell *t, uint64_t addr,
		 int err)
{
	uint64_t now = now_ns(), next = atomic_load(&t->next);
	unsigned long n;
	char line[192];

	atomic_store(&t->err, err);
	if (now < next ||
	    !atomic_compare_exchange_strong(&t->next, &next, now + TELL_NS)) {
		atomic_fetch_add(&t->untold, 1);
		return;
	}
	n = atomic_exchange(&t->untold, 0);
	if (!n) {
		region_report(r, addr, err, t->what);
		return;
	}
	snprintf(line, sizeof(line), "%s (and %lu more since)", t->what, n);
	region_report(r, addr, err, line);
}

/*
 * The kernel moves pages only out of writable mappings: a region the
 * program made read-only (a data set mapped for reading) is dropped with
 * MADV_DONTNEED instead.  That posts EVENT_REMOVE and waits until a
 * worker reads it, so only an evictor thread may (a worker might be the
 * only reader), and the event is told apart from the program's own by
 * its range, announced here first (evict_own_run()).  *@zapped is set
 * when a REMOVE of the range was handled (pages of it went).
 */
static int drop_pages(struct upager_region *r, char *at, size_t len,
		      bool *zapped)
{
	struct evict *e = r->ev;
	int ret;

	pthread_mutex_lock(&e->drop_lock);
	pthread_mutex_lock(&e->own_lock);
	e->own_lo = (uintptr_t)at;
	e->own_hi = (uintptr_t)at + len;
	memset(e->own_seen, 0,
	       (len / UPAGER_STORE_PAGE + 63) / 64 * sizeof(uint64_t));
	pthread_mutex_unlock(&e->own_lock);
	ret = madvise(at, len, MADV_DONTNEED) < 0 ? -errno : 0;
	/*
	 * The kernel posts a REMOVE per mapping the range covers (the
	 * program may have mprotect()ed part of it), and madvise() returns
	 * once a worker has read the last, which it may not have handled
	 * yet; also when it failed part way (a locked mapping), after the
	 * events of the mappings before.  A worker reads and handles under
	 * read_lock: once the lock is ours, every one of them was handled
	 * (evict_own_run()).  Withdrawn before, the range let them count
	 * as the program's drops, and under ZERO clean pages read zeros
	 * (tests/writes_unmapped_part, evict_readonly; tests/evict_locked).
	 */
	pthread_mutex_lock(&r->sp->read_lock);
	pthread_mutex_unlock(&r->sp->read_lock);
	pthread_mutex_lock(&e->own_lock);
	for (size_t i = 0; i < (len / UPAGER_STORE_PAGE + 63) / 64; i++)
		*zapped |= e->own_seen[i] != 0;
	e->own_lo = e->own_hi = 0;
	pthread_mutex_unlock(&e->own_lock);
	pthread_mutex_unlock(&e->drop_lock);
	return ret;
}

/*
 * drop_pages() of what is left of unit @u, run by run: over a hole of a
 * unit unmapped in part, madvise() would zap the rest and fail, and the
 * REMOVE events it posts would not match the range announced (taken
 * for the program's own drops: under ZERO, the clean pages would read
 * zeros).  0: the unit goes (also when a drop failed part way, told
 * here), or the error of a drop that zapped nothing.
 */
static int drop_live(struct upager_region *r, size_t u)
{
	size_t at = u * r->fill, off = at, end;
	bool zapped = false;
	int ret;

	for (;; off = end) {
		rdlock_shared(&r->sp->rd_lock);
		end = region_live_run(r, &off, at + r->fill);
		rdlock_shared_end(&r->sp->rd_lock);
		if (end == off)
			return 0;
		ret = drop_pages(r, region_base(r) + off, end - off, &zapped);
		/*
		 * Failed part way (a mapping further on locked), with pages
		 * before zapped: the unit goes as a whole (it is clean).
		 * Left installed with pages missing, under ZERO it would read
		 * zeros there, as where the program dropped.  With nothing
		 * zapped it stays, whole, as any unit whose drop failed.
		 */
		if (ret < 0 && !zapped)
			return ret;
		if (ret < 0) {
			tell(r, &r->ev->drop_part,
			     (uintptr_t)region_base(r) + off, ret);
			return 0;
		}
	}
}

uint64_t evict_own_run(struct upager_region *r, uint64_t start, uint64_t end,
		       bool *own)
{
	const uint64_t pg = UPAGER_STORE_PAGE;
	struct evict *e = r->ev;
	uint64_t at = end;
	size_t i;
	bool seen;

	*own = false;
	if (!e)
		return end;
	pthread_mutex_lock(&e->own_lock);
	if (start < e->own_lo) /* also: nothing announced */
		at = end < e->own_lo ? end : e->own_lo;
	if (start < e->own_lo || start >= e->own_hi)
		goto out;
	/*
	 * The evictor's events cover its range once: a page read twice was
	 * dropped by the program too (which of the two events was whose
	 * does not matter), and is the program's drop the second time.
	 */
	i = (size_t)((start - e->own_lo) / pg);
	seen = e->own_seen[i / 64] >> (i % 64) & 1;
	*own = !seen;
	for (at = start; at < end && at < e->own_hi &&
			 (e->own_seen[i / 64] >> (i % 64) & 1) == seen;
	     at += pg, i++) {
		if (!seen)
			e->own_seen[i / 64] |= 1ull << (i % 64);
	}
out:
	pthread_mutex_unlock(&e->own_lock);
	return at;
}

/*
 * The kernel refused a page of unit @u after moving the @len bytes before
 * it into @slot (a pinned page: -EBUSY): put them back, so that a unit
 * that stays resident has all of its pages.  They go back as copies
 * installed write-protected (UFFDIO_COPY_MODE_WP), as a fill installs:
 * a move would map them writable until a protection after it, and a
 * write in between would go unseen (no DIRTY, no snapshot's copy).  The
 * slot is read only where it holds a page (the region's holes moved as
 * holes, and a hole of the sink would wait on the evictors' uffd for
 * ever), and emptied by the caller.
 *
 * A page the program dropped meanwhile (its REMOVE was read while the
 * pages were out, under rd_lock as here) does not come back: the unit
 * goes as a whole when its REMOVE says so (RM_PENDING, or unmapped), and
 * a page dropped under REMOVE_ZERO stays a hole that reads zeros.  The
 * region's uffd is the destination, so this may wait for an event as a
 * fill does.  0 when the unit is whole again, 1 when it goes as the
 * program said, or the error that stopped the put-back.
 */
static int undrop(struct upager_region *r, struct filler *f, size_t u,
		  char *slot, size_t len)
{
	const size_t pg = UPAGER_STORE_PAGE, chunk = 64;
	char *at = region_base(r) + u * r->fill;
	size_t first = u * r->fill / pg;
	uint64_t mode = UFFDIO_COPY_MODE_DONTWAKE, pm[64];
	unsigned int tries = 0;
	int fd, ret = 0;

	if (r->track)
		mode |= UFFDIO_COPY_MODE_WP;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len && !ret;) {
		size_t n = (len - off) / pg < chunk ? (len - off) / pg : chunk;
		ssize_t got = pread(
		    fd, pm, n * sizeof(pm[0]),
		    (off_t)((uintptr_t)(slot + off) / pg * sizeof(pm[0])));

		if (got != (ssize_t)(n * sizeof(pm[0]))) {
			ret = got < 0 ? -errno : -EIO;
			break;
		}
		for (size_t i = 0; i < n && !ret;) {
			/* Present (bit 63) or swapped (bit 62). */
			bool page = pm[i] >> 62;
			size_t done = 0;
			uint8_t v;

			space_hold_events(r->sp);
			v = unit_load(&r->state[u]);
			if (v & (UNIT_RM_PENDING | UNIT_GONE_PENDING))
				ret = 1;
			else if (page && !region_dropped(r, first + off / pg))
				ret =
				    upager_ll_copy(r->uffd, at + off,
						   slot + off, pg, mode, &done);
			space_release_events(r->sp);
			/* A worker reads the event, under read_lock. */
			if (ret == -EAGAIN && !done) {
				ret = fill_mm_wait(r, f, &tries) ? 0 : -EAGAIN;
				continue;
			}
			/* Installed meanwhile: what is there stays. */
			if (ret == -EEXIST)
				ret = 0;
			off += pg;
			i++;
		}
	}
	close(fd);
	return ret;
}

/*
 * The next run of unit @u's pages to move, from @off on: [*@off, return)
 * (empty at the unit's end).  A page the program dropped under ZERO (its
 * REMOVE read) is passed over: its zap may be running, and it reads
 * zeros wherever it is.  rd_lock held.
 */
static size_t next_run(struct upager_region *r, size_t u, size_t *off)
{
	const size_t pg = UPAGER_STORE_PAGE, first = u * r->fill / pg;
	size_t end;

	while (*off < r->fill && region_dropped(r, first + *off / pg))
		*off += pg;
	for (end = *off; end < r->fill && !region_dropped(r, first + end / pg);
	     end += pg)
		;
	return end;
}

/*
 * next_run(), past the pages the program unmapped (the region's holes):
 * a unit unmapped in part moves out what is left of it.  rd_lock held.
 */
static size_t next_live_run(struct upager_region *r, size_t u, size_t *off)
{
	size_t at = u * r->fill;

	for (;;) {
		size_t end = next_run(r, u, off), live = at + *off;

		if (*off == end) /* the unit's end */
			return end;
		end = region_live_run(r, &live, at + end) - at;
		*off = live - at;
		if (*off < end)
			return end;
	}
}

/*
 * Drop unit @u's pages (held INFLIGHT, clean now) into sink slot @k; an
 * evictor thread (@may_block) drops those of a read-only region too.  0
 * when the unit is gone (the slot is used), or an error with the unit
 * whole in the region as it was (protected), and the slot empty:
 * -EROFS when only an evictor thread could drop it (read-only).
 *
 * UFFDIO_MOVE of pages the program's zap (MADV_DONTNEED) is taking at
 * that moment spins in the kernel for ever (tests/move_zap): the unit
 * would stay INFLIGHT, and every thread touching it hang.  The kernel
 * zaps only once a worker has read the REMOVE, under rd_lock held
 * exclusive: each move goes under it shared, so no REMOVE is
 * read during it, and one read before has said so (event_remove(), under
 * the lock): the unit dropped whole (RM_PENDING) or unmapped is not moved
 * at all, the program's zap takes its pages and it goes as the REMOVE
 * says; pages dropped in part under ZERO (their dropped bits) stay where
 * they are, reading zeros.  Of a unit unmapped in part, what is left
 * moves (were it left, the unit would count evicted with its pages in,
 * write-protected, and a write to one fault for ever).  Not kept off a
 * zap: a drop of part of a unit under REFETCH, which leaves no mark, nor
 * one whose bits the unit's write-back just cleared (writes.c), when its
 * REMOVE was read just before.  The lock goes before each retry: a
 * REMOVE posted and not read makes the move fail -EAGAIN until a worker
 * reads it.
 */
static int drop_unit(struct upager_region *r, struct sink *sk,
		     struct filler *f, size_t u, size_t k, bool may_block)
{
	char *at = region_base(r) + u * r->fill, *slot = sk->addr + k * r->fill;
	size_t done = 0, moved = 0; /* looked at, moved */
	int ret;

	if (r->memtype == UPAGER_MEM_SHMEM)
		return fallocate(r->memfd,
				 FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 (off_t)(u * r->fill), (off_t)r->fill) < 0
			       ? -errno
			       : 0;
	for (unsigned int tries = 0;;) {
		size_t step = 0, end;

		rdlock_shared(&r->sp->rd_lock);
		end = next_live_run(r, u, &done);
		if ((unit_load(&r->state[u]) &
		     (UNIT_RM_PENDING | UNIT_GONE_PENDING)) ||
		    done == end) {
			rdlock_shared_end(&r->sp->rd_lock);
			return 0;
		}
		/* Where the region is now (see fill.c install_guarded()). */
		at = region_base(r) + u * r->fill;
		ret = upager_ll_move(r->h->evict_uffd, slot + done, at + done,
				     end - done,
				     UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &step);
		rdlock_shared_end(&r->sp->rd_lock);
		done += step;
		moved += step;
		if (ret == 0)
			continue; /* the next run */
		/*
		 * A read-only mapping: only an evictor may drop it, not under
		 * rd_lock (its REMOVE waits for a worker's read); a worker
		 * leaves it to them (-EROFS), nothing failed: the unit goes
		 * to the back of its queue, so the next worker's batch takes
		 * others, which may move (part of a region read-only).
		 */
		if (ret == -EINVAL && !moved)
			return may_block ? drop_live(r, u) : -EROFS;
		/*
		 * A short move is answered -EAGAIN with its count: the call
		 * from there on says why it stopped.
		 */
		if (ret == -EAGAIN && step)
			continue;
		if (ret != -EAGAIN || ++tries > 100)
			break;
		sched_yield();
	}
	if (!moved)
		return ret;
	/*
	 * Part of it moved, the rest refused: put back, it stays whole, as
	 * protected as it was (the pages not moved never lost theirs).  The
	 * slot is emptied for the next unit.  If the program dropped the
	 * unit meanwhile, or the put-back fails (the region was unmapped,
	 * or no worker read its events for a second), the unit goes as a
	 * whole (the slot is used): its store holds what it holds (it is
	 * clean), and the pages still in the region are clean and
	 * write-protected.  None is zapped: the page that refused may be
	 * the program's pinned I/O buffer.
	 */
	if (undrop(r, f, u, slot, done) != 0)
		return 0;
	madvise(slot, done, MADV_DONTNEED); /* our own anonymous pages */
	return ret;
}

/* A dirty unit over a store without writeback stays: say so once. */
static void keep(struct evict *e, uint32_t u)
{
	struct upager_region *r = e->r;

	pthread_mutex_lock(&e->lock);
	set_outside(e, u, T_KEPT);
	pthread_mutex_unlock(&e->lock);
	if (!atomic_exchange(&e->told_kept, true))
		region_report(r, (uintptr_t)region_base(r), -EOPNOTSUPP,
			      "budget: the store has no writeback; dirty units "
			      "stay resident past the budget");
}

/* The failures of @t's kind not told yet (the region goes). */
static void tell_rest(struct upager_region *r, struct tell *t)
{
	unsigned long n = atomic_exchange(&t->untold, 0);
	char line[192];

	if (!n)
		return;
	snprintf(line, sizeof(line), "%s (%lu more since the last line)",
		 t->what, n);
	region_report(r, (uintptr_t)region_base(r), atomic_load(&t->err),
		      line);
}

/* Back to the queue it came from (its tail): it could not go now. */
static void requeue(struct evict *e, uint32_t u)
{
	pthread_mutex_lock(&e->lock);
	forget(e, u);
	q_push(e, T_IN, u);
	pthread_mutex_unlock(&e->lock);
}

/*
 * Evict up to @max units of @e's region (fewer when it is under its low
 * water mark): how many went.  @f is the thread's filler (a unit's
 * buffer, and a worker's pump while an event holds the map).
 */
static size_t evict_batch(struct evict *e, struct sink *sk, struct filler *f,
			  size_t max, bool may_block)
{
	struct upager_region *r = e->r;
	uint32_t v[BATCH];
	unsigned int from[BATCH];
	size_t n, moved = 0, stuck = 0;

	if (max > BATCH)
		max = BATCH;
	if (max * r->fill > SINK_MAX)
		max = SINK_MAX / r->fill ? SINK_MAX / r->fill : 1;
	if ((r->memtype != UPAGER_MEM_SHMEM &&
	     sink_reserve(r->h, sk, max * r->fill) < 0) ||
	    filler_reserve(f, unit_wb_room(r)) < 0)
		return 0;
	n = pick(e, v, from, max, !may_block);
	if (!n && !may_block) /* all dirty: memory stays bounded anyway */
		n = pick(e, v, from, max, false);
	for (size_t i = 0; i < n; i++) {
		uint64_t addr = (uintptr_t)region_base(r) + v[i] * r->fill;
		int ret = 0;

		if (from[i] == UNIT_DIRTY) {
			ret = unit_write_back(r, f, v[i], f->buf, true);
			if (ret == -EOPNOTSUPP) {
				keep(e, v[i]);
				fill_settle(r, f, v[i], 1, from[i]);
				continue;
			}
			if (ret < 0)
				tell(r, &e->wb_failed, addr, ret);
			else /* protected and clean, should it stay */
				from[i] = UNIT_PRESENT;
		}
		if (ret == 0) {
			ret = drop_unit(r, sk, f, v[i], moved, may_block);
			if (ret < 0 && ret != -EROFS)
				tell(r, &e->drop_failed, addr, ret);
		}
		if (ret < 0) {
			requeue(e, v[i]);
			stuck++;
			fill_settle(r, f, v[i], 1, from[i]);
			continue;
		}
		pthread_mutex_lock(&e->lock);
		evicted(e, v[i]);
		pthread_mutex_unlock(&e->lock);
		STAT_ADD(r->st, pages_evicted, r->fill / UPAGER_STORE_PAGE);
		moved++;
		fill_settle(r, f, v[i], 1, UNIT_ABSENT);
	}
	if (moved && sk->addr)
		madvise(sk->addr, moved * r->fill, MADV_DONTNEED);
	return n && stuck == n ? 0 : n;
}

/*
 * Evict @e's region down to its low water mark, a batch at a time: true
 * when it got there, false when nothing more could go (all pinned, kept
 * or failing), so that the evictor turns to the other regions a while.
 */
static bool evict_down(struct evict *e, struct sink *sk, struct filler *f)
{
	while (!atomic_load(&e->r->closing) &&
	       !atomic_load(&e->r->h->ev_paused) && resident(e) > e->low)
		if (!evict_batch(e, sk, f, BATCH, true))
			return false;
	return true;
}

/*
 * A worker about to fill a unit of a region over its whole budget (the
 * evictors lag behind the faults): it evicts a few units itself first,
 * so the region's memory stays bounded however fast it faults.
 */
void evict_help(struct upager_region *r, struct filler *f)
{
	struct evict *e = r->ev;

	if (!e || resident(e) <= e->budget)
		return;
	if (!f->sink && !(f->sink = calloc(1, sizeof(*f->sink))))
		return;
	evict_batch(e, f->sink, f, 8, false);
}

void evict_sink_free(struct sink *sk)
{
	if (!sk)
		return;
	if (sk->addr)
		munmap(sk->addr, sk->len);
	free(sk);
}

/* A region of the list over its high water mark (h->ev_lock held). */
static struct evict *over_high(struct upager_handler *h)
{
	uint64_t now = now_ns();

	for (struct evict *e = h->ev_list; e; e = e->next)
		if (!e->detached && resident(e) > e->high &&
		    e->idle_until <= now)
			return e;
	return NULL;
}

static void *evictor_main(void *arg)
{
	struct upager_handler *h = arg;
	struct sink sk = { 0 };
	struct filler f = { 0 };

	pthread_mutex_lock(&h->ev_lock);
	while (!h->ev_stop) {
		struct evict *e = atomic_load(&h->ev_paused) ? NULL
							     : over_high(h);
		struct timespec ts;
		bool done;

		if (!e) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += 100 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&h->ev_cond, &h->ev_lock, &ts);
			continue;
		}
		e->active++;
		h->ev_busy++;
		pthread_mutex_unlock(&h->ev_lock);
		done = evict_down(e, &sk, &f);
		pthread_mutex_lock(&h->ev_lock);
		/* Stuck: 100 ms for the others (and no spinning on it). */
		if (!done)
			e->idle_until = now_ns() + 100 * 1000 * 1000;
		h->ev_busy--;
		e->active--;
		if (!h->ev_busy || (!e->active && e->detached))
			pthread_cond_broadcast(&h->ev_cond);
	}
	pthread_mutex_unlock(&h->ev_lock);
	if (sk.addr)
		munmap(sk.addr, sk.len);
	filler_release(&f);
	return NULL;
}

/* The evictors' uffd and threads, with the first budget (ev_lock). */
static int evictors_start(struct upager_handler *h)
{
	pthread_condattr_t ca;

	if (h->evict_uffd < 0) {
		int fd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL), ret;

		if (fd < 0)
			return fd;
		ret = upager_ll_api(fd, UFFD_FEATURE_MOVE, NULL);
		if (ret < 0) {
			close(fd);
			return ret;
		}
		h->evict_uffd = fd;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_destroy(&h->ev_cond);
		pthread_cond_init(&h->ev_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	while (h->nev < h->ev_max) {
		int ret = pthread_create(&h->ev_threads[h->nev], NULL,
					 evictor_main, h);

		if (ret)
			return h->nev ? 0 : -ret;
		thread_name(h->ev_threads[h->nev], "evict%u", h->nev);
		h->nev++;
	}
	return 0;
}

static void evict_free_one(struct evict *e)
{
	munmap(e->tag, e->maps_len);
	free(e->own_seen);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->drop_lock);
	pthread_mutex_destroy(&e->own_lock);
	free(e);
}

int evict_attach(struct upager_region *r, const struct upager_map_params *p)
{
	struct upager_handler *h = r->h;
	size_t budget = p->budget / r->fill;
	unsigned int hi = p->high_water ? p->high_water : 90;
	unsigned int lo = p->low_water ? p->low_water : 70;
	struct evict *e;
	int ret;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->r = r;
	e->wb_failed.what = "eviction: the write-back to the store failed; "
			    "the unit stays resident and dirty";
	e->drop_failed.what = "eviction: the drop of the unit's resident "
			      "pages failed; the unit stays resident";
	e->drop_part.what = "eviction: the drop of a unit failed part way (a "
			    "locked page?); the unit goes, its pages left "
			    "stay in memory";
	e->policy = p->evict;
	e->budget = budget;
	e->high = budget * hi / 100;
	e->low = budget * lo / 100;
	e->kin = budget / 4 ? budget / 4 : 1;
	e->kout = budget / 2 ? budget / 2 : 1;
	for (unsigned int t = 0; t <= T_GHOST; t++)
		e->q[t].head = e->q[t].tail = NIL;
	e->maps_len = (r->nunits + 3) / 4 * 4 + r->nunits * 2 * sizeof(uint32_t);
	e->tag = region_lazy_alloc(e->maps_len);
	if (!e->tag) {
		free(e);
		return -ENOMEM;
	}
	e->prev = (uint32_t *)(void *)(e->tag + (r->nunits + 3) / 4 * 4);
	e->nxt = e->prev + r->nunits;
	e->own_seen = calloc((r->fill / UPAGER_STORE_PAGE + 63) / 64,
			     sizeof(uint64_t));
	if (!e->own_seen) {
		munmap(e->tag, e->maps_len);
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->drop_lock, NULL);
	pthread_mutex_init(&e->own_lock, NULL);
	pthread_mutex_lock(&h->ev_lock);
	ret = evictors_start(h);
	if (ret == 0) {
		e->next = h->ev_list;
		h->ev_list = e;
		r->ev = e;
	}
	pthread_mutex_unlock(&h->ev_lock);
	if (ret < 0)
		evict_free_one(e);
	return ret;
}

/* Out of the evictors' sight, once none is inside it.  @r keeps @r->ev
 * (the fill path may still count into it) until region_free(). */
void evict_detach(struct upager_region *r)
{
	struct upager_handler *h = r->h;
	struct evict *e = r->ev;

	if (!e)
		return;
	pthread_mutex_lock(&h->ev_lock);
	for (struct evict **pp = &h->ev_list; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	}
	e->detached = true;
	while (e->active)
		pthread_cond_wait(&h->ev_cond, &h->ev_lock);
	pthread_mutex_unlock(&h->ev_lock);
}

/*
 * The failures not told yet, once none can come: after evict_detach() a
 * worker may still be in evict_help() until the region is idle.
 */
void evict_tell_rest(struct upager_region *r)
{
	struct evict *e = r->ev;

	if (!e)
		return;
	tell_rest(r, &e->wb_failed);
	tell_rest(r, &e->drop_failed);
	tell_rest(r, &e->drop_part);
}

void evict_free(struct upager_region *r)
{
	if (!r->ev)
		return;
	evict_free_one(r->ev);
	r->ev = NULL;
}

/*
 * Evictors leave the regions alone until evict_resume(); returns once
 * none is inside one.  A drop of a read-only unit waits for a worker to
 * read its REMOVE: upager_handler_stop() pauses them while its workers
 * still run (an evictor's madvise() left with no reader had hung the
 * next upager_unmap() or upager_handler_free(): tests/evict_stop).
 */
void evict_pause(struct upager_handler *h)
{
	pthread_mutex_lock(&h->ev_lock);
	atomic_store(&h->ev_paused, true);
	while (h->ev_busy)
		pthread_cond_wait(&h->ev_cond, &h->ev_lock);
	pthread_mutex_unlock(&h->ev_lock);
}

void evict_resume(struct upager_handler *h)
{
	pthread_mutex_lock(&h->ev_lock);
	atomic_store(&h->ev_paused, false);
	pthread_cond_broadcast(&h->ev_cond);
	pthread_mutex_unlock(&h->ev_lock);
}

void evict_stop(struct upager_handler *h)
{
	pthread_mutex_lock(&h->ev_lock);
	h->ev_stop = true;
	pthread_cond_broadcast(&h->ev_cond);
	pthread_mutex_unlock(&h->ev_lock);
	for (unsigned int i = 0; i < h->nev; i++)
		pthread_join(h->ev_threads[i], NULL);
	h->nev = 0;
	if (h->evict_uffd >= 0)
		close(h->evict_uffd);
	h->evict_uffd = -1;
}

int upager_region_pin(struct upager_region *r, size_t off, size_t len)
{
	struct evict *e = r->ev;

	if (off > r->len || len > r->len - off)
		return -ERANGE;
	if (e) {
		pthread_mutex_lock(&e->lock);
		for (size_t u = off / r->fill; u * r->fill < off + len; u++) {
			unsigned int t = e->tag[u] & T_MASK;

			e->tag[u] |= T_PIN;
			if (t == T_IN || t == T_MAIN)
				set_outside(e, (uint32_t)u, T_PINNED);
		}
		pthread_mutex_unlock(&e->lock);
	}
	/* Units evicted before their pin bit was set come back pinned. */
	return upager_region_prefault(r, off, len);
}

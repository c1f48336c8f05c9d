// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Regions: memory filled from a store on first touch.  This file owns the
 * policy (per-unit claim state, read-ahead) and the fill path that both a
 * worker thread and an in-thread SIGBUS handler run.
 *
 * Nothing on the fill path allocates or takes a lock that a signal
 * handler could already hold, except ra_lock, which in-thread mode never
 * takes (see region_fault()).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/engine.h"
#include "base/util.h"
#include "engine/store_call.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define HUGE_2M (2ul << 20)
#define DEFAULT_RA (1ul << 20)
#define DEFAULT_FA (64ul << 10) /* the kernel's fault_around_bytes */

static size_t memtype_page(enum upager_memtype t)
{
	return t == UPAGER_MEM_HUGETLB ? HUGE_2M : UPAGER_STORE_PAGE;
}

/* ---- claim state ------------------------------------------------------- */

static bool claim(struct upager_region *r, size_t u, uint8_t from)
{
	uint8_t expect = from;

	return atomic_compare_exchange_strong_explicit(
		&r->state[u], &expect, UNIT_INFLIGHT, memory_order_acquire,
		memory_order_relaxed);
}

static void settle(struct upager_region *r, size_t u, size_t n, uint8_t to)
{
	for (size_t i = 0; i < n; i++)
		atomic_store_explicit(&r->state[u + i], to,
				      memory_order_release);
}

/* Claim the absent units from @u on, at most @max: how many it got. */
static size_t claim_run(struct upager_region *r, size_t u, size_t max)
{
	size_t n = 0;

	while (n < max && u + n < r->nunits && claim(r, u + n, UNIT_ABSENT))
		n++;
	return n;
}

/*
 * Give claimed units [u, u+n) back unfilled.  A thread that faulted on
 * one of them meanwhile waits for a wake that no fill will bring: wake
 * it, so it faults again and its own fault fills the unit (or meets the
 * error itself).
 */
static void give_back(struct upager_region *r, size_t u, size_t n)
{
	settle(r, u, n, UNIT_ABSENT);
	upager_ll_wake(r->uffd, r->addr + u * r->fill, n * r->fill);
}

/* ---- read-ahead -------------------------------------------------------- */

/*
 * Find the stream a fault on unit @u continues (at its marker, or past
 * the window it claimed when someone else filled the marker) and its
 * next window: twice the last one, up to ra_max.  Any other fault starts
 * a stream with a single unit (a random access pays nothing) in the
 * least recently used slot.  Returns the slot; *confirmed says the stream
 * was continued at least twice in a row, enough to read beyond the window.
 */
static unsigned int ra_propose(struct upager_region *r, size_t u,
			       size_t *window, bool *confirmed)
{
	unsigned int i, victim = 0;

	pthread_mutex_lock(&r->ra_lock);
	r->ra_clock++;
	for (i = 0; i < RA_STREAMS; i++) {
		struct ra_stream *s = &r->ra[i];

		if (s->window && (s->next == u || s->ahead == u)) {
			STAT_ADD(r->st, ra_used,
				 s->near * r->fill / UPAGER_STORE_PAGE);
			s->near = s->far;
			s->far = 0;
			s->stamp = r->ra_clock;
			*window = s->window * 2 < r->ra_max ? s->window * 2
							    : r->ra_max;
			*confirmed = s->window > 1;
			pthread_mutex_unlock(&r->ra_lock);
			return i;
		}
		if (r->ra[i].stamp < r->ra[victim].stamp)
			victim = i;
	}
	STAT_ADD(r->st, ra_wasted,
		 (r->ra[victim].near + r->ra[victim].far) * r->fill /
			 UPAGER_STORE_PAGE);
	r->ra[victim] = (struct ra_stream){ .stamp = r->ra_clock };
	*window = 1;
	*confirmed = false;
	pthread_mutex_unlock(&r->ra_lock);
	return victim;
}

/*
 * The fault on @u claimed [u, u+n) for stream @i.  With @lookahead (a
 * confirmed stream, served by a worker), also claim the window after:
 * its first unit stays absent as the new marker, the rest is queued for
 * the workers.  Returns the units of the lookahead, queued by the caller
 * from *@la_u.
 */
static size_t ra_commit(struct upager_region *r, unsigned int i, size_t u,
			size_t n, size_t window, bool lookahead, size_t *la_u)
{
	struct ra_stream *s = &r->ra[i];
	size_t base, k = 0;

	pthread_mutex_lock(&r->ra_lock);
	base = u + n;
	if (lookahead && s->ahead > base)
		base = s->ahead;
	if (lookahead && base + 1 < r->nunits)
		k = claim_run(r, base + 1, window - 1);
	s->next = base;
	s->ahead = k ? base + 1 + k : base;
	s->window = window;
	s->near += n - 1;
	s->far = k;
	pthread_mutex_unlock(&r->ra_lock);
	*la_u = base + 1;
	return k;
}

/* ---- installing -------------------------------------------------------- */

int filler_reserve(struct filler *f, size_t len)
{
	void *p;

	if (f->cap >= len)
		return 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	/* UFFDIO_MOVE refuses to split a huge page it would move from. */
	madvise(p, len, MADV_NOHUGEPAGE);
	if (f->buf)
		munmap(f->buf, f->cap);
	f->buf = p;
	f->cap = len;
	return 0;
}

static void wake_later(struct filler *f, int uffd, char *addr, size_t len)
{
	if (f->nwake) {
		__typeof__(f->wake[0]) *w = &f->wake[f->nwake - 1];

		if (w->uffd == uffd && w->addr + w->len == addr) {
			w->len += len;
			return;
		}
	}
	if (f->nwake == ARRAY_SIZE(f->wake))
		filler_flush(f);
	f->wake[f->nwake].uffd = uffd;
	f->wake[f->nwake].addr = addr;
	f->wake[f->nwake].len = len;
	f->nwake++;
}

void filler_flush(struct filler *f)
{
	for (unsigned int i = 0; i < f->nwake; i++)
		upager_ll_wake(f->wake[i].uffd, f->wake[i].addr,
			       f->wake[i].len);
	f->nwake = 0;
}

enum install_op { OP_COPY, OP_MOVE, OP_ZERO, OP_CONTINUE };

/*
 * Install [dst, dst+len) with @op, resuming after partial progress.  A
 * unit found present (-EEXIST: another resolver won, or the kernel raced
 * us) is skipped; -EAGAIN (the map is changing) is retried.  Returns the
 * bytes this call installed, or the error that stopped it
 * (-ENOENT/-ESRCH/-ENOSPC: the range or the mm is gone).
 */
static long install(struct upager_region *r, struct filler *f,
		    enum install_op op, char *dst, const char *src, size_t len)
{
	size_t off = 0, page = memtype_page(r->memtype), put = 0;
	unsigned int spins = 0;
	uint64_t dw = 0;
	int ret = 0;

	if (f->dontwake)
		dw = UFFDIO_COPY_MODE_DONTWAKE; /* same bit for every op */
	while (off < len) {
		size_t done = 0;

		switch (op) {
		case OP_COPY:
			ret = upager_ll_copy(r->uffd, dst + off, src + off,
					     len - off, dw, &done);
			break;
		case OP_MOVE:
			ret = upager_ll_move(r->uffd, dst + off,
					     (char *)src + off, len - off, dw,
					     &done);
			break;
		case OP_ZERO:
			ret = upager_ll_zeropage(r->uffd, dst + off, len - off,
						 dw, &done);
			break;
		case OP_CONTINUE:
			ret = upager_ll_continue(r->uffd, dst + off, len - off,
						 dw, &done);
			break;
		}
		off += done;
		put += done;
		if (ret == 0)
			break;
		if (ret == -EAGAIN) {
			STAT_ADD(r->st, eagain, 1);
			if (!done && ++spins > 1000)
				return ret;
			if (!done)
				sched_yield();
			continue;
		}
		if (ret != -EEXIST)
			return ret;
		STAT_ADD(r->st, eexist, 1);
		off = (off + page) & ~(page - 1);
	}
	if (f->dontwake)
		wake_later(f, r->uffd, dst, len);
	return (long)put;
}

void region_report(struct upager_region *r, uint64_t addr, int err,
		   const char *what)
{
	struct upager_handler *h = r->h;

	h->on_error(h->error_arg, r, addr, err, what);
}

/*
 * Install units [u, u+n) from @src, or zeros when @src is NULL.  shmem
 * regions get the data written into the page cache through the alias
 * (unless @src already is the alias) and mapped with CONTINUE.
 */
static long put_units(struct upager_region *r, struct filler *f, size_t u,
		      size_t n, const char *src)
{
	char *dst = r->addr + u * r->fill;
	size_t len = n * r->fill;
	long ret;

	if (r->memtype == UPAGER_MEM_SHMEM) {
		char *cache = r->alias + u * r->fill;

		if (!src)
			memset(cache, 0, len);
		else if (src != cache)
			memcpy(cache, src, len);
		return install(r, f, OP_CONTINUE, dst, NULL, len);
	}
	if (!src && r->memtype == UPAGER_MEM_HUGETLB) {
		/* hugetlb has no ZEROPAGE: copy from a zeroed buffer. */
		if (filler_reserve(f, len) < 0)
			return -ENOMEM;
		memset(f->buf, 0, len);
		src = f->buf;
	}
	if (!src) {
		ret = install(r, f, OP_ZERO, dst, NULL, len);
		if (ret > 0)
			STAT_ADD(r->st, zero_pages, (size_t)ret / UPAGER_STORE_PAGE);
		return ret;
	}
	return install(r, f, (r->flags & UPAGER_MAP_MOVE) ? OP_MOVE : OP_COPY,
		       dst, src, len);
}

/* Read-ahead windows are installed in chunks of this many bytes. */
#define CHUNK (64u << 10)

/* Fetch and install units [u, u+n) (anon, hugetlb) from @buf's space. */
static long fill_chunk(struct upager_region *r, struct filler *f, size_t u,
		       size_t n, char *buf)
{
	struct upager_store *s = r->store;
	size_t len = n * r->fill, np = len / UPAGER_STORE_PAGE;
	uint64_t pgoff = r->store_pgoff + u * (r->fill / UPAGER_STORE_PAGE);
	const char *src = NULL;
	long ret;

	if (STORE_HAS(s->ops, zero_run) && s->ops->zero_run(s, pgoff, np) >= np)
		return put_units(r, f, u, n, NULL);
	if (STORE_HAS(s->ops, direct) && !(r->flags & UPAGER_MAP_MOVE))
		src = s->ops->direct(s, pgoff, np);
	if (!src) {
		ret = s->ops->fetch(s, pgoff, buf, np);
		if (ret < 0)
			return ret;
		src = buf;
	}
	STAT_ADD(r->st, bytes_fetched, len);
	ret = put_units(r, f, u, n, src);
	if (src != buf && STORE_HAS(s->ops, release))
		s->ops->release(s, pgoff, np);
	return ret;
}

/*
 * Fetch and install units [u, u+*n) claimed by the caller.  @cached: a
 * MINOR fault said the page cache already holds the data (shmem), so only
 * map it.  Returns bytes installed or -errno.
 *
 * A read-ahead window goes in chunks, the faulting unit's first, each
 * waking the threads that wait in it: the reader runs on while the rest of
 * the window is filled behind it, instead of waiting for all of it.  When
 * a later chunk fails, *@n is cut to the units done; those after are the
 * caller's to give back (their own faults will meet the error).
 */
static long fill_units(struct upager_region *r, struct filler *f, size_t u,
		       size_t *n, bool cached)
{
	struct upager_store *s = r->store;
	size_t chunk = CHUNK > r->fill ? CHUNK / r->fill : 1;
	long ret, total = 0;

	if (r->memtype == UPAGER_MEM_SHMEM) {
		/* The store writes straight into the page cache. */
		char *cache = r->alias + u * r->fill;
		size_t len = *n * r->fill;

		if (!cached) {
			ret = s->ops->fetch(s, r->store_pgoff +
					       u * (r->fill / UPAGER_STORE_PAGE),
					    cache, len / UPAGER_STORE_PAGE);
			if (ret < 0)
				return ret;
			STAT_ADD(r->st, bytes_fetched, len);
		}
		return put_units(r, f, u, *n, cache);
	}
	if (f->cap < *n * r->fill)
		return -ENOBUFS;
	for (size_t i = 0; i < *n; i += chunk) {
		size_t k = *n - i < chunk ? *n - i : chunk;

		ret = fill_chunk(r, f, u + i, k, f->buf + i * r->fill);
		if (ret < 0) {
			if (!i)
				return ret;
			*n = i;
			break;
		}
		total += ret;
	}
	return total;
}

/* A fetch failed: the faulting thread gets SIGBUS, never zeros. */
static void fail_unit(struct upager_region *r, struct filler *f, size_t u,
		      uint64_t addr, int err)
{
	char *dst = r->addr + u * r->fill;
	size_t done;
	int ret;

	STAT_ADD(r->st, store_errors, 1);
	region_report(r, addr, err, "store fetch failed; poisoning the page");
	ret = upager_ll_poison(r->uffd, dst, r->fill,
			       f->dontwake ? UFFDIO_POISON_MODE_DONTWAKE : 0,
			       &done);
	if (ret == 0 && f->dontwake)
		wake_later(f, r->uffd, dst, r->fill);
	/* A poison marker is installed: the unit is no longer missing. */
	settle(r, u, 1, ret == 0 || ret == -EEXIST ? UNIT_PRESENT : UNIT_ABSENT);
}

/* Read-ahead jobs are this many bytes (or one unit, if larger). */
#define JOB (4 * CHUNK)

void region_job(struct upager_region *r, struct filler *f, size_t u,
		size_t n)
{
	size_t got = n;
	long ret = fill_units(r, f, u, &got, false);

	if (ret < 0) {
		/* The faults that come there meet the error themselves. */
		give_back(r, u, n);
		return;
	}
	if (got < n)
		give_back(r, u + got, n - got);
	settle(r, u, got, UNIT_PRESENT);
	STAT_ADD(r->st, pages_filled, (size_t)ret / UPAGER_STORE_PAGE);
	STAT_ADD(r->st, ra_pages, got * r->fill / UPAGER_STORE_PAGE);
}

/*
 * Hand claimed units [u, u+n) to the workers in jobs.  When the ring is
 * full, @must (the rest of the window being faulted in) is filled here;
 * otherwise (lookahead) it is given back.
 */
static void queue_units(struct upager_region *r, struct filler *f, size_t u,
			size_t n, bool must)
{
	size_t per = JOB > r->fill ? JOB / r->fill : 1;

	for (size_t i = 0; i < n; i += per) {
		size_t k = n - i < per ? n - i : per;

		if (handler_queue(r->h, r, u + i, k))
			continue;
		if (must)
			region_job(r, f, u + i, k);
		else
			give_back(r, u + i, k);
	}
}

/*
 * A fault that starts a stream (@i, just committed with a window of one
 * unit): queue the absent units of the aligned fa-unit block around @u
 * for the workers.  Should the stream go on sequentially, its next fault
 * is past the block: that is where it continues, with the block as its
 * first window.
 */
static void fault_around(struct upager_region *r, struct filler *f, size_t u,
			 unsigned int i)
{
	size_t b = u / r->fa * r->fa, end = b + r->fa, run = 0;

	if (end > r->nunits)
		end = r->nunits;
	for (size_t k = b; k <= end; k++) {
		if (k < end && k != u && claim(r, k, UNIT_ABSENT)) {
			run++;
			continue;
		}
		if (run)
			queue_units(r, f, k - run, run, false);
		run = 0;
	}
	pthread_mutex_lock(&r->ra_lock);
	r->ra[i].next = r->ra[i].ahead = end;
	r->ra[i].window = r->fa;
	pthread_mutex_unlock(&r->ra_lock);
}

int region_fault(struct upager_region *r, struct filler *f, uint64_t addr,
		 bool minor, uint64_t t0)
{
	size_t u = (addr - (uintptr_t)r->addr) / r->fill;
	size_t n = 1, want = 1, got, la_u = 0, la_n = 0;
	unsigned int stream = 0;
	bool ra = r->ra_max > 1 && !(r->flags & UPAGER_MAP_IN_THREAD);
	bool refault, confirmed = false;
	uint8_t st;
	long ret;

	STAT_ADD(r->st, faults, 1);
	if (minor)
		STAT_ADD(r->st, faults_minor, 1);
	else
		STAT_ADD(r->st, faults_missing, 1);
	/*
	 * A unit another filler holds is woken by that filler.  A present one
	 * faulted again: either a spurious event read after the install, or
	 * the page was dropped (MADV_DONTNEED) without a REMOVE event; refill
	 * it, and an -EEXIST then just means the former.
	 */
	st = atomic_load_explicit(&r->state[u], memory_order_acquire);
	if (st == UNIT_INFLIGHT || !claim(r, u, st)) {
		STAT_ADD(r->st, faults_dup, 1);
		return 0;
	}
	/*
	 * shmem: a MISSING message for a present unit was read before the
	 * install that resolved it.  The page cache holds the unit, perhaps
	 * written since: map it, and fetch (through the alias, over the
	 * cache) only if the cache lost the page (CONTINUE says -EFAULT).
	 */
	refault = st == UNIT_PRESENT && r->memtype == UPAGER_MEM_SHMEM && !minor;
	/* In-thread mode stays off ra_lock: see the file comment. */
	if (ra && !minor && !refault) {
		stream = ra_propose(r, u, &want, &confirmed);
		if (want * r->fill > f->cap)
			want = f->cap / r->fill ? f->cap / r->fill : 1;
		n = 1 + claim_run(r, u + 1, want - 1);
		la_n = ra_commit(r, stream, u, n, want,
				 confirmed && f->worker, &la_u);
	}
	/*
	 * A worker fills the faulting chunk and queues the rest of the
	 * window, then the lookahead, so an idle worker fills them while
	 * this one serves the fault (and both then share the jobs).
	 */
	got = n;
	if (ra && want == 1 && f->worker && r->fa > 1)
		fault_around(r, f, u, stream);
	if (f->worker) {
		size_t chunk = CHUNK > r->fill ? CHUNK / r->fill : 1;

		if (n > chunk) {
			queue_units(r, f, u + chunk, n - chunk, true);
			n = got = chunk;
		}
		if (la_n)
			queue_units(r, f, la_u, la_n, false);
	}
	ret = fill_units(r, f, u, &got, minor || refault);
	if (ret == -EFAULT && refault)
		ret = fill_units(r, f, u, &got, false);
	if (ret < 0 && n > 1) {
		/* Give the read-ahead back and try the faulting unit alone. */
		give_back(r, u + 1, n - 1);
		n = got = 1;
		ret = fill_units(r, f, u, &got, minor);
	}
	if (ret >= 0 && got < n) {
		/* A later chunk failed: give back what it did not fill. */
		give_back(r, u + got, n - got);
		n = got;
	}
	if (ret == -ENOENT || ret == -ESRCH || ret == -ENOSPC) {
		/* Unregistered under us, or the mm is gone: nothing waits. */
		settle(r, u, n, UNIT_ABSENT);
		return (int)ret;
	}
	if (ret < 0) {
		fail_unit(r, f, u, addr, (int)ret);
		return (int)ret;
	}
	settle(r, u, n, UNIT_PRESENT);
	STAT_ADD(r->st, pages_filled, (size_t)ret / UPAGER_STORE_PAGE);
	if (n > 1)
		STAT_ADD(r->st, ra_pages,
			 (n - 1) * r->fill / UPAGER_STORE_PAGE);
	stats_latency(r->st, now_ns() - t0);
	return 0;
}

/* ---- map / unmap ------------------------------------------------------- */

static int map_memory(struct upager_region *r)
{
	int prot = PROT_READ | PROT_WRITE;

	if (r->memtype == UPAGER_MEM_SHMEM) {
		r->memfd = memfd_create("upager", MFD_CLOEXEC);
		if (r->memfd < 0)
			return -errno;
		if (ftruncate(r->memfd, (off_t)r->len) < 0)
			return -errno;
		r->alias = mmap(NULL, r->len, prot, MAP_SHARED, r->memfd, 0);
		if (r->alias == MAP_FAILED) {
			r->alias = NULL;
			return -errno;
		}
		r->addr = mmap(NULL, r->len, prot, MAP_SHARED, r->memfd, 0);
	} else if (r->memtype == UPAGER_MEM_HUGETLB) {
		/* Reserved at mmap: a short pool fails here, not at a fault. */
		r->addr = mmap(NULL, r->len, prot,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
				       MAP_HUGE_2MB,
			       -1, 0);
	} else {
		r->addr = mmap(NULL, r->len, prot, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
	}
	if (r->addr == MAP_FAILED) {
		r->addr = NULL;
		return -errno;
	}
	return 0;
}

static void region_free(struct upager_region *r)
{
	if (r->addr)
		munmap(r->addr, r->len);
	if (r->alias)
		munmap(r->alias, r->len);
	if (r->memfd >= 0)
		close(r->memfd);
	if (r->slots)
		munmap(r->slots, INTHREAD_SLOTS * r->fill);
	pthread_mutex_destroy(&r->ra_lock);
	free((void *)r->state);
	free(r);
}

static int check_params(struct upager_handler *h, struct upager_store *s,
			size_t len, struct upager_map_params *p)
{
	size_t page = memtype_page(p->memtype);
	uint64_t need = h->features;

	if ((unsigned int)p->memtype > UPAGER_MEM_HUGETLB ||
	    (p->flags & ~(UPAGER_MAP_IN_THREAD | UPAGER_MAP_MOVE)))
		return -EINVAL;
	if (!p->fill)
		p->fill = page;
	if (p->fault_around && p->fault_around != (size_t)-1 &&
	    (p->fault_around & (p->fault_around - 1)))
		return -EINVAL;
	if (p->fill < page || (p->fill & (p->fill - 1)) || !len ||
	    len % p->fill || p->store_offset % UPAGER_STORE_PAGE)
		return -EINVAL;
	if (s->npages != UPAGER_STORE_UNBOUNDED &&
	    (p->store_offset / UPAGER_STORE_PAGE > s->npages ||
	     len / UPAGER_STORE_PAGE >
		     s->npages - p->store_offset / UPAGER_STORE_PAGE))
		return -ERANGE;
	if ((p->flags & UPAGER_MAP_IN_THREAD) &&
	    (p->memtype == UPAGER_MEM_SHMEM ||
	     !(s->flags & UPAGER_STORE_SIGNAL_SAFE)))
		return -EINVAL;
	if ((p->flags & UPAGER_MAP_MOVE) && p->memtype != UPAGER_MEM_ANON)
		return -EINVAL;
	if ((p->flags & UPAGER_MAP_MOVE) && !(need & UFFD_FEATURE_MOVE))
		return -EOPNOTSUPP;
	if (p->memtype == UPAGER_MEM_SHMEM &&
	    (need & (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM)) !=
		    (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM))
		return -EOPNOTSUPP;
	if (p->memtype == UPAGER_MEM_HUGETLB &&
	    !(need & UFFD_FEATURE_MISSING_HUGETLBFS))
		return -EOPNOTSUPP;
	return 0;
}

void *upager_map(struct upager_handler *h, struct upager_store *s, size_t len,
		 const struct upager_map_params *params,
		 struct upager_region **out, int *err)
{
	struct upager_map_params p = { .size = sizeof(p) };
	struct upager_region *r = NULL;
	uint64_t mode = UFFDIO_REGISTER_MODE_MISSING, ioctls = 0, need;
	int ret;

	if (params)
		memcpy(&p, params,
		       params->size < sizeof(p) ? params->size : sizeof(p));
	ret = check_params(h, s, len, &p);
	if (ret < 0)
		goto fail;
	ret = -ENOMEM;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto fail;
	r->h = h;
	r->store = s;
	r->len = len;
	r->fill = p.fill;
	r->nunits = len / p.fill;
	r->memtype = p.memtype;
	r->flags = p.flags;
	r->memfd = -1;
	r->store_pgoff = p.store_offset / UPAGER_STORE_PAGE;
	r->st = &r->own;
	r->stats_slot = -1;
	pthread_mutex_init(&r->ra_lock, NULL);
	if (p.readahead_max == (size_t)-1)
		r->ra_max = 1;
	else
		r->ra_max = (p.readahead_max ? p.readahead_max : DEFAULT_RA) /
			    p.fill;
	if (!r->ra_max)
		r->ra_max = 1;
	if (p.fault_around == (size_t)-1)
		r->fa = 1;
	else if (p.fault_around)
		r->fa = p.fault_around / p.fill;
	else
		r->fa = (s->flags & UPAGER_STORE_CHEAP) ? DEFAULT_FA / p.fill
							: 1;
	if (!r->fa)
		r->fa = 1;
	r->state = calloc(r->nunits, 1);
	if (!r->state)
		goto fail;
	ret = map_memory(r);
	if (ret < 0)
		goto fail;

	if (r->flags & UPAGER_MAP_IN_THREAD) {
		ret = handler_sig_uffd(h);
		if (ret < 0)
			goto fail;
		r->uffd = ret;
		/* One unit per slot: in-thread mode does no read-ahead. */
		r->ra_max = 1;
		r->slots = mmap(NULL, INTHREAD_SLOTS * r->fill,
				PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r->slots == MAP_FAILED) {
			r->slots = NULL;
			ret = -ENOMEM;
			goto fail;
		}
	} else {
		r->uffd = h->uffd;
	}
	if (r->memtype == UPAGER_MEM_SHMEM)
		mode |= UFFDIO_REGISTER_MODE_MINOR;
	ret = upager_ll_register(r->uffd, r->addr, r->len, mode, &ioctls);
	if (ret < 0)
		goto fail;
	need = 1ull << _UFFDIO_WAKE;
	need |= r->memtype == UPAGER_MEM_SHMEM ? 1ull << _UFFDIO_CONTINUE
					       : 1ull << _UFFDIO_COPY;
	if ((ioctls & need) != need) {
		upager_ll_unregister(r->uffd, r->addr, r->len);
		ret = -EOPNOTSUPP;
		goto fail;
	}
	r->st = stats_publish_region(h, r, &r->stats_slot);
	ret = handler_add_region(h, r);
	if (ret == 0 && (r->flags & UPAGER_MAP_IN_THREAD)) {
		ret = inthread_add(r);
		if (ret < 0)
			handler_remove_region(h, r);
	}
	if (ret == 0 && STORE_HAS(s->ops, attach)) {
		ret = s->ops->attach(s, r);
		if (ret < 0) {
			if (r->flags & UPAGER_MAP_IN_THREAD)
				inthread_remove(r);
			handler_remove_region(h, r);
		}
	}
	if (ret < 0) {
		upager_ll_unregister(r->uffd, r->addr, r->len);
		stats_publish_release(h, r->stats_slot);
		goto fail;
	}
	if (out)
		*out = r;
	return r->addr;
fail:
	if (r)
		region_free(r);
	if (err)
		*err = ret;
	return NULL;
}

int upager_unmap(struct upager_region *r)
{
	struct upager_handler *h = r->h;
	int ret;

	if (r->flags & UPAGER_MAP_IN_THREAD)
		inthread_remove(r);
	/* Waits for the batches in flight: no worker holds @r after this. */
	handler_remove_region(h, r);
	/*
	 * A pushing store stops installing before the region goes, and only
	 * once no worker can call its fetch() for @r any more: a stale
	 * fault read just before the unmap refetches a present unit, which
	 * the store serves from the region while it is attached.
	 */
	if (STORE_HAS(r->store->ops, detach))
		r->store->ops->detach(r->store, r);
	ret = upager_ll_unregister(r->uffd, r->addr, r->len);
	stats_publish_release(h, r->stats_slot);
	region_free(r);
	return ret;
}

void upager_region_stats(struct upager_region *r, struct upager_stats *s)
{
	stats_read(r->st, s);
}

void *upager_region_addr(struct upager_region *r)
{
	return r->addr;
}

size_t upager_region_len(struct upager_region *r)
{
	return r->len;
}

int upager_region_prefault(struct upager_region *r, size_t off, size_t len)
{
	struct filler f = { 0 };
	int ret = 0;

	if (off > r->len || len > r->len - off)
		return -ERANGE;
	if (r->memtype != UPAGER_MEM_SHMEM &&
	    (ret = filler_reserve(&f, r->fill)) < 0)
		return ret;
	for (size_t u = off / r->fill; u * r->fill < off + len; u++) {
		uint8_t st = atomic_load_explicit(&r->state[u],
						  memory_order_acquire);

		if (st != UNIT_ABSENT)
			continue;
		ret = region_fault(r, &f, (uintptr_t)r->addr + u * r->fill,
				   false, now_ns());
		if (ret < 0)
			break;
	}
	if (f.buf)
		munmap(f.buf, f.cap);
	return ret;
}

long upager_region_install(struct upager_region *r, size_t off,
			   const void *data, size_t len)
{
	struct filler f = { 0 };
	long total = 0, ret = 0;

	if (off % r->fill || len % r->fill)
		return -EINVAL;
	if (off > r->len || len > r->len - off)
		return -ERANGE;
	for (size_t u = off / r->fill, end = (off + len) / r->fill; u < end;) {
		const char *src = data ? (const char *)data + (u * r->fill - off)
				       : NULL;
		uint8_t st = atomic_load_explicit(&r->state[u],
						  memory_order_acquire);
		size_t n = 1;

		if (st == UNIT_PRESENT) {
			STAT_ADD(r->st, eexist, 1);
			u++;
			continue;
		}
		if (st == UNIT_ABSENT && claim(r, u, UNIT_ABSENT)) {
			/* A run of absent units goes in with one ioctl. */
			while (u + n < end && claim(r, u + n, UNIT_ABSENT))
				n++;
			ret = put_units(r, &f, u, n, src);
			settle(r, u, n, ret >= 0 ? UNIT_PRESENT : UNIT_ABSENT);
		} else if (r->memtype == UPAGER_MEM_SHMEM) {
			/*
			 * A unit another thread is filling: on shmem the data
			 * would go into the page cache under a unit its filler
			 * may already have mapped and the application written.
			 * The filler brings the same data; leave it.
			 */
			u++;
			continue;
		} else {
			/*
			 * Elsewhere it is installed anyway: the kernel lets
			 * one of the two in, the other sees -EEXIST, and the
			 * filler settles the state.
			 */
			ret = put_units(r, &f, u, 1, src);
		}
		if (ret < 0)
			break;
		total += ret;
		u += n;
	}
	if (f.buf)
		munmap(f.buf, f.cap);
	if (total)
		STAT_ADD(r->st, pages_filled, (size_t)total / UPAGER_STORE_PAGE);
	return total ? total : ret;
}

bool upager_region_present(struct upager_region *r, size_t off)
{
	return off < r->len &&
	       atomic_load_explicit(&r->state[off / r->fill],
				    memory_order_acquire) == UNIT_PRESENT;
}

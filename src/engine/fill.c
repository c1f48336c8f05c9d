// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Fill mechanics: fetch units from the store, install them with the
 * ioctl the memory type needs, poison what cannot be fetched, wake.
 * Both a worker and an in-thread SIGBUS handler run this code, so
 * nothing here allocates or takes a lock (a staging buffer is reserved
 * by the caller beforehand).
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/engine.h"
#include "engine/store_call.h"

/* Faults fill in chunks of this many bytes (see fault.c). */
#define CHUNK (64u << 10)
/* What a guarded install puts in under rd_lock at a time. */
#define GUARD_PIECE (64u << 10)

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

void filler_release(struct filler *f)
{
	evict_sink_free(f->sink);
	f->sink = NULL;
	if (f->buf)
		munmap(f->buf, f->cap);
	f->buf = NULL;
	f->cap = 0;
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

/* Wake the threads waiting on units [u, u+n): now, or with the batch. */
void fill_wake(struct upager_region *r, struct filler *f, size_t u, size_t n)
{
	char *addr = region_base(r) + u * r->fill;

	if (f->dontwake)
		wake_later(f, r->uffd, addr, n * r->fill);
	else
		upager_ll_wake(r->uffd, addr, n * r->fill);
}

/*
 * A shmem region and its forked copies share one page cache and one
 * unit state: a fault in any of their spaces may wait on a unit the
 * filler of another holds.  Wake them all.
 */
static void wake_copies(struct upager_region *r, size_t u, size_t n)
{
	struct upager_region *root = r->root ? r->root : r;
	size_t off = u * r->fill, len = n * r->fill;

	pthread_mutex_lock(&r->h->fork_lock);
	if (root != r && !atomic_load(&root->gone))
		upager_ll_wake(root->uffd, region_base(root) + off, len);
	for (struct upager_region *c = root->children; c; c = c->sibling)
		if (c != r)
			upager_ll_wake(c->uffd, region_base(c) + off, len);
	pthread_mutex_unlock(&r->h->fork_lock);
}

int fill_settle(struct upager_region *r, struct filler *f, size_t u,
		size_t n, unsigned int to)
{
	bool wake = false;

	for (size_t i = 0; i < n; i++)
		wake |= unit_settle(&r->state[u + i], to);
	if ((to == UNIT_PRESENT || to == UNIT_DIRTY) && r->ev)
		evict_filled(r, u, n);
	if (!wake)
		return 0;
	fill_wake(r, f, u, n);
	if (r->memtype == UPAGER_MEM_SHMEM)
		wake_copies(r, u, n);
	return 0;
}

void region_report(struct upager_region *r, uint64_t addr, int err,
		   const char *what)
{
	struct upager_handler *h = r->h;

	h->on_error(h->error_arg, r, addr, err, what);
}

/*
 * How long a waiter for a still map sleeps, in µs: a random length up to
 * a bound that doubles with each wait, from 1 to 64.  The thread whose
 * event holds the map leaves it still only from its wake-up after the
 * read to its next event, and a waiter on its CPU runs only while that
 * thread does not: one that yielded, or slept a fixed 50 µs, woke after
 * that moment time after time (a worker reading the event itself wakes
 * the thread onto its own CPU).  A thread dropping a page every 20 µs
 * kept a worker waiting 50-150 ms on average and up to 0.9 s; with these
 * sleeps, 0.5 ms and 1.6 ms (docs/BENCHMARKS.md, session 26).
 */
static unsigned int mm_wait_us(unsigned int tries)
{
	static _Thread_local uint32_t x;
	unsigned int cap = tries < 6 ? 1u << tries : 64;

	if (!x)
		x = (uint32_t)now_ns() | 1;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return 1 + x % cap;
}

/*
 * The kernel answered -EAGAIN with nothing done: a non-cooperative event
 * (REMOVE, REMAP, UNMAP, FORK) is queued on the uffd and holds
 * mmap_changing until it has been read and its thread has run on.  A
 * worker reads it itself (the pump), since it may be the only one that
 * can; other threads wait for the workers.  False: give up (the handler
 * stops, or no worker read the event within a second or two), and the
 * caller gives its units back so that the faults come again.
 */
bool fill_mm_wait(struct upager_region *r, struct filler *f,
		  unsigned int *tries)
{
	struct timespec pause = { 0, 0 };

	STAT_ADD(r->st, eagain, 1);
	if (f->pump) {
		if (!f->pump(f, r->sp))
			return false;
	} else if (*tries > 20000) {
		return false;
	}
	pause.tv_nsec = 1000L * mm_wait_us((*tries)++);
	nanosleep(&pause, NULL);
	return true;
}

enum install_op { OP_COPY, OP_MOVE, OP_ZERO, OP_CONTINUE };

static int install_op(struct upager_region *r, enum install_op op, char *dst,
		      const char *src, size_t len, uint64_t mode, size_t *done)
{
	switch (op) {
	case OP_COPY:
		return upager_ll_copy(r->uffd, dst, src, len, mode, done);
	case OP_MOVE:
		return upager_ll_move(r->uffd, dst, (char *)src, len, mode,
				      done);
	case OP_ZERO:
		return upager_ll_zeropage(r->uffd, dst, len, mode, done);
	case OP_CONTINUE:
		break;
	}
	return upager_ll_continue(r->uffd, dst, len, mode, done);
}

/*
 * Installs that must not land where the region no longer is: the
 * program may unmap or move (part of) a region while a fill of it is in
 * flight, and map other memory there, even another region of the same
 * uffd, where the fill's data would read as that region's.  The kernel
 * queues UNMAP and REMAP after the change and holds installs off
 * (-EAGAIN) until they are read; their handling, under rd_lock, records
 * the holes and moves the region's base.  So these installs go in under
 * rd_lock taken shared, at the region's address as it is then, and
 * not into a hole.  CONTINUE maps the page cache of whatever file is
 * mapped there, never this region's data elsewhere; an in-thread
 * region's uffd has no events to wait for.
 *
 * Under the ZERO policy, likewise, a page the program drops reads zeros
 * from the moment its madvise() returns.  The kernel zaps it only after a
 * worker has read the REMOVE event, so a fill whose data goes in after
 * that read may go in after the zap too, and the store's data would stay
 * (tests/remove_inflight).  Under rd_lock a REMOVE read before has marked
 * its pages, which go in as zeros; one read after zaps what went in.
 * Data of zeros needs no such care, nor shmem, whose fills go through
 * the page cache.
 */
static bool install_guarded(const struct upager_region *r,
			    enum install_op op)
{
	return op != OP_CONTINUE && !(r->flags & UPAGER_MAP_IN_THREAD);
}

bool fill_guarded(const struct upager_region *r, const char *src)
{
	return r->remove == UPAGER_REMOVE_ZERO &&
	       r->memtype != UPAGER_MEM_SHMEM &&
	       !(r->flags & UPAGER_MAP_IN_THREAD) && src != r->h->zeros;
}

/*
 * The source to install [at, at+len) of @r from, the part from @off for
 * @want bytes about to go in: @src, or where the program dropped some
 * of those pages since they were fetched, a copy in which they are
 * zeros.  Dropped: by the dropped bits, or where the region keeps none
 * (units of a page) by the unit's RM_PENDING.  The copy is the filler's
 * staging, where @src is not in it already: the store's memory and the
 * caller's data are not ours to change.  NULL when staging is too
 * small.  Caller holds rd_lock.
 */
static const char *rm_zero(struct upager_region *r, struct filler *f,
			   size_t at, const char *src, size_t len, size_t off,
			   size_t want)
{
	size_t first = at / UPAGER_STORE_PAGE;
	char *stage = NULL;

	for (size_t i = off / UPAGER_STORE_PAGE;
	     i < (off + want) / UPAGER_STORE_PAGE; i++) {
		size_t pg = first + i;
		bool gone = r->dropped
				    ? region_dropped(r, pg)
				    : unit_load(&r->state[pg * UPAGER_STORE_PAGE /
							  r->fill]) &
					      UNIT_RM_PENDING;

		if (!gone)
			continue;
		if (!stage && src >= f->buf && src + len <= f->buf + f->cap) {
			stage = (char *)src; /* the filler's own */
		} else if (!stage) {
			if (len > f->cap)
				return NULL;
			stage = memcpy(f->buf, src, len);
		}
		memset(stage + i * UPAGER_STORE_PAGE, 0, UPAGER_STORE_PAGE);
	}
	return stage ? stage : src;
}

/*
 * Is page [at, at+len) of @r one the program unmapped (a hole the
 * region's UNMAP handling recorded)?  Then a fill has nothing to put
 * there, and the rest of the unit is the unit.  An in-thread region
 * (its fills run in signal handlers, which must not take rd_lock) has
 * no UNMAP events, so no holes recorded.
 */
static bool unmapped_page(struct upager_region *r, size_t at, size_t len)
{
	bool hole;

	if (r->flags & UPAGER_MAP_IN_THREAD)
		return false;
	rdlock_shared(&r->sp->rd_lock);
	hole = !region_owns(r, at, len);
	rdlock_shared_end(&r->sp->rd_lock);
	return hole;
}

/*
 * Install [at, at+len) of @r (offsets in the region) with @op, resuming
 * after partial progress.  A page found present (-EEXIST: another
 * resolver won, or the application kept it through a partial
 * MADV_DONTNEED) is skipped; -EAGAIN waits for the map to settle; a
 * range with a hole in it (-ENOENT) goes in page by page around the
 * hole, so the faulting page is there.  A hole the program made (munmap
 * of part of a unit, its UNMAP handled) is no error: the unit is what is
 * left of it, installed (were it given back absent, its pages in and
 * write-protected, a write to one would fault for ever: the write fault
 * takes the unit for absent and fills it again); a unit all hole is
 * GONE (event_unmap()), and one being filled settles so.  Any other hole
 * is reported.  Returns the bytes this call
 * installed (pages found present count as done), or the error that
 * stopped it, with f->partial the bytes from @at on that are all in:
 * -ENOENT (a hole, or nothing there is registered any more, or the
 * region left it), -ESRCH/-ENOSPC (the process is gone), -EAGAIN (gave
 * up waiting, see fill_mm_wait()), -EFAULT (CONTINUE: a page is not in
 * the page cache), -ENOMEM (no page: a hugetlb pool ran out).
 */
static long install(struct upager_region *r, struct filler *f,
		    enum install_op op, size_t at, const char *src, size_t len)
{
	size_t off = 0, page = memtype_page(r->memtype), put = 0, hole = len;
	bool guard = install_guarded(r, op);
	bool zeros = guard && op != OP_ZERO && fill_guarded(r, src);
	char *dst = region_base(r) + at;
	unsigned int tries = 0;
	bool single = false;
	uint64_t mode = 0;
	int ret;

	if (f->dontwake)
		mode = UFFDIO_COPY_MODE_DONTWAKE; /* same bit for every op */
	/* Write tracking: in write-protected (COPY and CONTINUE: same bit). */
	if (r->track && (op == OP_COPY || op == OP_CONTINUE))
		mode |= UFFDIO_COPY_MODE_WP;
	while (off < len) {
		size_t want = single ? page : len - off, done = 0;

		if (guard) {
			/*
			 * In pieces: a read of the uffd waits for the one
			 * in progress, and the next fault is read soon.
			 */
			if (want > GUARD_PIECE && GUARD_PIECE > page)
				want = GUARD_PIECE;
			rdlock_shared(&r->sp->rd_lock);
			dst = region_base(r) + at;
			if (!region_owns(r, at + off, want))
				ret = -ENOENT;
			else if (zeros &&
				 !(src = rm_zero(r, f, at, src, len, off, want)))
				ret = -ENOMEM;
			else
				ret = install_op(r, op, dst + off,
						 src ? src + off : NULL, want,
						 mode, &done);
			rdlock_shared_end(&r->sp->rd_lock);
		} else {
			ret = install_op(r, op, dst + off,
					 src ? src + off : NULL, want, mode,
					 &done);
		}
		off += done;
		put += done;
		if (ret == 0)
			continue;
		if (ret == -EAGAIN) {
			if (!done && !fill_mm_wait(r, f, &tries))
				break;
			continue;
		}
		if (ret == -EEXIST) {
			STAT_ADD(r->st, eexist, 1);
			off = (off + page) & ~(page - 1);
			continue;
		}
		if (ret == -ENOENT && !single && len - off > page) {
			single = true;
			continue;
		}
		if (ret == -ENOENT && single) {
			if (hole == len && !unmapped_page(r, at + off, page))
				hole = off;
			off += page;
			continue;
		}
		break;
	}
	if (off < len || hole < len) {
		f->partial = off < hole ? off : hole;
		if (put && f->dontwake)
			wake_later(f, r->uffd, dst, off);
		return off < len ? ret : -ENOENT;
	}
	if (f->dontwake)
		wake_later(f, r->uffd, dst, len);
	return (long)put;
}

/*
 * UFFDIO_WRITEPROTECT of [at, at+len) of @r (offsets), as install() goes
 * in: where the region is now, and only where it still holds it (-ENOENT
 * when it holds none of it).  Returns the ioctl's 0 or -errno (-EAGAIN: an
 * event is pending; the caller waits, without rd_lock).
 */
int region_writeprotect(struct upager_region *r, size_t at, size_t len,
			uint64_t mode)
{
	int ret;

	/*
	 * Unguarded, the kernel tells a hole (-ENOENT); then the holes say
	 * which parts are still the region's: a unit unmapped in part is
	 * protected, and its protection lifted, where it is mapped.
	 */
	if (!install_guarded(r, OP_COPY)) {
		ret = upager_ll_writeprotect(r->uffd, region_base(r) + at, len,
					     mode);
		if (ret != -ENOENT)
			return ret;
	}
	rdlock_shared(&r->sp->rd_lock);
	ret = region_live_writeprotect(r, at, len, mode);
	rdlock_shared_end(&r->sp->rd_lock);
	return ret;
}

/* Map units [u, u+n) whose data the page cache holds (shmem). */
int fill_map_cached(struct upager_region *r, struct filler *f, size_t u,
		    size_t n)
{
	long ret = install(r, f, OP_CONTINUE, u * r->fill, NULL,
			   n * r->fill);

	return ret < 0 ? (int)ret : 0;
}

/*
 * How much of [addr, addr+len) of a mapped region is hole from @addr on
 * (at least a page, at most 64 of them): pages mincore() finds neither
 * mapped nor in the file's page cache.
 */
static size_t hole_len(char *addr, size_t len)
{
	unsigned char vec[64];
	size_t np = len / UPAGER_STORE_PAGE, n = 1;

	if (np > ARRAY_SIZE(vec))
		np = ARRAY_SIZE(vec);
	if (!mincore(addr, np * UPAGER_STORE_PAGE, vec))
		while (n < np && !(vec[n] & 1))
			n++;
	return n * UPAGER_STORE_PAGE;
}

/*
 * Mapped mode: map units [u, u+n) from the file's page cache.  A page
 * the file does not hold (a hole: CONTINUE fails with -EFAULT) is left
 * unmapped, to the kernel, which answers a touch there as in any
 * private mapping of the file (zeros, no fault comes to us); a page
 * written into the file there later comes as a MINOR fault.  Never a
 * poisoned page nor a store error: the file has nothing else to give.
 * Returns the bytes mapped, or install()'s error (f->partial from the
 * first unit on).
 */
static long map_file(struct upager_region *r, struct filler *f, size_t u,
		     size_t n)
{
	char *dst = region_base(r) + u * r->fill;
	size_t len = n * r->fill, off = 0;
	long total = 0, ret;

	while ((ret = install(r, f, OP_CONTINUE, u * r->fill + off, NULL,
			      len - off)) == -EFAULT) {
		total += (long)f->partial;
		off += f->partial;
		off += hole_len(dst + off, len - off);
		if (off >= len)
			return total;
	}
	if (ret < 0) {
		f->partial += off;
		return ret;
	}
	return total + ret;
}

/*
 * shmem: is [off, off+len) of the memfd all hole (SEEK_DATA finds no
 * data before its end)?  lseek() moves the fd's shared file position,
 * which nothing here uses.
 */
static bool shmem_hole(struct upager_region *r, size_t off, size_t len)
{
	off_t data = lseek(r->memfd, (off_t)off, SEEK_DATA);

	return data < 0 || (size_t)data >= off + len;
}

/*
 * Put @src (NULL: zeros) into units [u, u+n) of a shmem region's page
 * cache, through the alias, then map them.  With @holes_only, pages the
 * cache still holds are left alone: a unit that was REMOVED may have been
 * dropped by MADV_DONTNEED, which keeps a shared mapping's data (perhaps
 * written since), or in part by MADV_REMOVE.
 */
static long shmem_put(struct upager_region *r, struct filler *f, size_t u,
		      size_t n, const char *src, bool holes_only)
{
	size_t base = u * r->fill, len = n * r->fill;
	char *cache = r->alias + base;

	if (!holes_only) {
		if (!src)
			memset(cache, 0, len);
		else if (src != cache)
			memcpy(cache, src, len);
	} else {
		for (size_t off = 0; off < len; off += UPAGER_STORE_PAGE) {
			if (!shmem_hole(r, base + off, UPAGER_STORE_PAGE))
				continue;
			if (src)
				memcpy(cache + off, src + off,
				       UPAGER_STORE_PAGE);
			else
				memset(cache + off, 0, UPAGER_STORE_PAGE);
		}
	}
	return install(r, f, OP_CONTINUE, base, NULL, len);
}

long fill_zero(struct upager_region *r, struct filler *f, size_t u, size_t n)
{
	size_t len = n * r->fill;
	long ret;

	if (r->memtype == UPAGER_MEM_SHMEM)
		return shmem_put(r, f, u, n, NULL, true);
	if (r->track) {
		/* ZEROPAGE has no WP mode: copy zeros, write-protected. */
		long total = 0;

		for (size_t off = 0; off < len; off += ZEROS) {
			size_t k = len - off < ZEROS ? len - off : ZEROS;

			ret = install(r, f, OP_COPY, u * r->fill + off,
				      r->h->zeros, k);
			if (ret < 0) {
				f->partial += off;
				return ret;
			}
			total += ret;
		}
		STAT_ADD(r->st, zero_pages, (size_t)total / UPAGER_STORE_PAGE);
		return total;
	}
	if (r->memtype == UPAGER_MEM_HUGETLB) {
		/* hugetlb has no ZEROPAGE: copy from a zeroed buffer. */
		if (f->cap < len)
			return -ENOMEM;
		memset(f->buf, 0, len);
		return install(r, f, OP_COPY, u * r->fill, f->buf, len);
	}
	ret = install(r, f, OP_ZERO, u * r->fill, NULL, len);
	if (ret > 0)
		STAT_ADD(r->st, zero_pages, (size_t)ret / UPAGER_STORE_PAGE);
	return ret;
}

long fill_data(struct upager_region *r, struct filler *f, size_t u, size_t n,
	       const char *src)
{
	if (r->memtype == UPAGER_MEM_SHMEM)
		return shmem_put(r, f, u, n, src, false);
	return install(r, f, (r->flags & UPAGER_MAP_MOVE) ? OP_MOVE : OP_COPY,
		       u * r->fill, src, n * r->fill);
}

/*
 * Fetch units [u, u+n) into @buf's space and install them.  @from is the
 * state they were claimed from: REMOVED units follow the region's REMOVE
 * policy, and on shmem only the pages the page cache lost are written.
 */
static long fill_store(struct upager_region *r, struct filler *f, size_t u,
		       size_t n, char *buf, unsigned int from)
{
	struct upager_store *s = r->store;
	size_t len = n * r->fill, np = len / UPAGER_STORE_PAGE;
	uint64_t pgoff = r->store_pgoff + u * (r->fill / UPAGER_STORE_PAGE);
	bool removed = from == UNIT_REMOVED;
	bool slow = f->h && !(s->flags & UPAGER_STORE_CHEAP);
	size_t first = u * (r->fill / UPAGER_STORE_PAGE), ndropped = 0;
	const char *src = NULL;
	long ret;

	/*
	 * ZERO: a unit that was installed and dropped (in part) misses only
	 * pages that were dropped: zeros, and the rest is left as it is.
	 * One never filled may have had pages dropped: only those read
	 * zeros, the others the store's data.
	 */
	if (r->mapped) /* the store's file is the memory: map its pages */
		return map_file(r, f, u, n);
	if (removed && r->remove == UPAGER_REMOVE_ZERO)
		return fill_zero(r, f, u, n);
	for (size_t i = 0; r->dropped && i < np; i++)
		ndropped += region_dropped(r, first + i);
	if (ndropped == np)
		return fill_zero(r, f, u, n);
	if (STORE_HAS(s->ops, zero_run) && s->ops->zero_run(s, pgoff, np) >= np)
		return fill_zero(r, f, u, n);
	if (STORE_HAS(s->ops, direct) && !(r->flags & UPAGER_MAP_MOVE) &&
	    !ndropped)
		src = s->ops->direct(s, pgoff, np);
	if (!src) {
		if (slow)
			handler_seat(f->h, true);
		/* In-thread, from a SIGBUS handler (or a prefault). */
		if ((r->flags & UPAGER_MAP_IN_THREAD) &&
		    STORE_HAS(s->ops, fetch_signal))
			ret = s->ops->fetch_signal(s, pgoff, buf, np);
		else
			ret = s->ops->fetch(s, pgoff, buf, np);
		if (slow)
			handler_seat(f->h, false);
		if (ret < 0)
			return ret;
		src = buf;
		for (size_t i = 0; ndropped && i < np; i++)
			if (region_dropped(r, first + i))
				memset(buf + i * UPAGER_STORE_PAGE, 0,
				       UPAGER_STORE_PAGE);
	}
	STAT_ADD(r->st, bytes_fetched, len);
	if (r->memtype == UPAGER_MEM_SHMEM)
		ret = shmem_put(r, f, u, n, src, removed);
	else
		ret = fill_data(r, f, u, n, src);
	if (src != buf && STORE_HAS(s->ops, release))
		s->ops->release(s, pgoff, np);
	return ret;
}

/*
 * Units [u, u+n) (anon, write tracking, REMOVE_ZERO) were just filled,
 * zeros where the program had dropped pages; @buf is their room, free
 * now.  A dropped page that reads zeros holds what its mark promised,
 * the store does not: the mark goes, and the unit settles dirty
 * (UNIT_REDIRTY), so that a write-back takes the zeros there.  Were it
 * kept, a write-back would keep it once the program wrote the page (it
 * cannot tell that data from a drop still to come, see writes.c), and
 * the unit would stay dirty at every sync.  A dropped page that reads
 * data (present before the fill: its drop still to come) keeps its
 * mark; so do all of a unit with a page zapped since (the read stops
 * there).
 */
static void fill_undrop(struct upager_region *r, size_t u, size_t n,
			char *buf)
{
	size_t np = r->fill / UPAGER_STORE_PAGE;

	for (size_t k = u; k < u + n; k++) {
		char *room = buf + (k - u) * r->fill;
		size_t first = k * np, i = 0;
		bool zeroed = false;

		while (i < np && !region_dropped(r, first + i))
			i++;
		/* Short: a page zapped since (EIO from there on), kept. */
		if (i == np ||
		    pread(r->h->self_mem, room, r->fill,
			  (off_t)(uintptr_t)(region_base(r) + k * r->fill)) !=
			    (ssize_t)r->fill)
			continue;
		for (; i < np; i++) {
			if (!region_dropped(r, first + i) ||
			    memcmp(room + i * UPAGER_STORE_PAGE, r->h->zeros,
				   UPAGER_STORE_PAGE))
				continue;
			region_undrop(r, first + i, first + i + 1);
			zeroed = true;
		}
		if (zeroed)
			atomic_fetch_or(&r->state[k], UNIT_REDIRTY);
	}
}

static long fill_chunk(struct upager_region *r, struct filler *f, size_t u,
		       size_t n, char *buf, unsigned int from)
{
	long ret = fill_store(r, f, u, n, buf, from);

	if (ret >= 0 && r->track && r->dropped &&
	    r->memtype != UPAGER_MEM_SHMEM)
		fill_undrop(r, u, n, buf);
	return ret;
}

/*
 * Fetch and install units [u, u+*n) claimed by the caller from state
 * @from, in chunks (the faulting one first, so its thread runs on while
 * the rest is filled; mapped mode, which copies nothing, in one).
 * Returns the bytes installed, with *n cut to the units done when a
 * later chunk failed, or the first chunk's error.
 */
long fill_units(struct upager_region *r, struct filler *f, size_t u,
		size_t *n, unsigned int from)
{
	size_t chunk = r->mapped	  ? *n
		       : CHUNK > r->fill ? CHUNK / r->fill
					 : 1;
	/*
	 * shmem fetches straight into the page cache, unless some of it may
	 * still be there (REMOVED): then into staging, and only the holes
	 * are copied.  Mapped mode fetches nothing.
	 */
	bool staged = !r->mapped && (r->memtype != UPAGER_MEM_SHMEM ||
				     from == UNIT_REMOVED);
	long total = 0, ret;

	if (staged && *n * r->fill > f->cap)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i += chunk) {
		size_t k = *n - i < chunk ? *n - i : chunk;
		char *buf = staged	? f->buf + i * r->fill
			    : r->alias ? r->alias + (u + i) * r->fill
				       : NULL;

		ret = fill_chunk(r, f, u + i, k, buf, from);
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

/*
 * A fetch failed: the faulting thread gets SIGBUS, never zeros.  The
 * unit, claimed by the caller, settles POISONED (the marker is a page
 * table entry: an access raises SIGBUS, no fault comes); if the marker
 * cannot go in, it is given back unfilled and its waiters woken.
 */
void fill_poison(struct upager_region *r, struct filler *f, size_t u,
		 uint64_t addr, int err)
{
	uint64_t mode = f->dontwake ? UFFDIO_POISON_MODE_DONTWAKE : 0;
	bool guard = install_guarded(r, OP_COPY);
	char *dst;
	size_t done;
	int ret;

	STAT_ADD(r->st, store_errors, 1);
	region_report(r, addr, err, "store fetch failed; poisoning the page");
	/* Not where the region no longer is: see install_guarded(). */
	if (guard)
		rdlock_shared(&r->sp->rd_lock);
	dst = region_base(r) + u * r->fill;
	if (guard && !region_owns(r, u * r->fill, r->fill))
		ret = -ENOENT;
	else
		ret = upager_ll_poison(r->uffd, dst, r->fill, mode, &done);
	if (guard)
		rdlock_shared_end(&r->sp->rd_lock);
	if (ret == 0 || ret == -EEXIST) {
		if (ret == 0 && f->dontwake)
			wake_later(f, r->uffd, dst, r->fill);
		fill_settle(r, f, u, 1, UNIT_POISONED);
	} else {
		fill_settle(r, f, u, 1, UNIT_ABSENT);
		fill_wake(r, f, u, 1);
	}
}

/*
 * Poison [addr, addr+len) on @uffd, around the pages that are present:
 * what a process can no longer be served raises SIGBUS, never zeros.
 */
void fill_poison_range(int uffd, char *addr, size_t len, size_t page)
{
	size_t off = 0;
	unsigned int tries = 0;

	while (off < len) {
		size_t done = 0;
		int ret = upager_ll_poison(uffd, addr + off, len - off, 0,
					   &done);

		off += done;
		if (ret == -EEXIST)
			off = (off + page) & ~(page - 1);
		else if (ret == -EAGAIN && !done && ++tries < 10000)
			sched_yield();
		else if (ret < 0 && ret != -EAGAIN)
			return;
	}
}

/*
 * The region will not be served any more but its memory stays (a
 * forked child's copy, whose root is unmapped): poison what was never
 * filled or was dropped.  No fill is in flight (the caller waited).
 */
void fill_poison_absent(struct upager_region *r)
{
	size_t page = memtype_page(r->memtype);

	for (size_t u = 0; u < r->nunits;) {
		size_t n = 0;

		while (u + n < r->nunits &&
		       (unit_state(unit_load(&r->state[u + n])) == UNIT_ABSENT ||
			unit_state(unit_load(&r->state[u + n])) == UNIT_REMOVED))
			n++;
		if (n)
			fill_poison_range(r->uffd, region_base(r) + u * r->fill,
					  n * r->fill, page);
		u += n + 1;
	}
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Write tracking (UPAGER_MAP_TRACK_WRITES).  Units go in write-protected,
 * so the first write to a clean unit is a write-protect fault; its
 * handler marks the unit dirty (and written, for the next incremental
 * snapshot) before it lifts the protection, as the kernel's page asks:
 * the bookkeeping first, then the ioctl, so no write goes unseen.
 *
 * Write-back of a dirty unit (sync, eviction) holds it INFLIGHT, protects
 * it again and then reads it: a thread writing it meanwhile waits on its
 * write fault, which the unit's settle wakes.  The read goes through
 * /proc/self/mem: a page the program drops meanwhile (MADV_DONTNEED)
 * reads as EIO there, where a plain read would fault on our own uffd and
 * wait for a unit this very thread holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/store_call.h"

int writes_setup(struct upager_region *r)
{
	struct upager_handler *h = r->h;
	int ret = 0;

	pthread_rwlockattr_t ga;

	pthread_rwlockattr_init(&ga);
	/* A snapshot's start must not wait behind a stream of write faults. */
	pthread_rwlockattr_setkind_np(
		&ga, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&r->gate, &ga);
	pthread_rwlockattr_destroy(&ga);
	r->track = true;
	r->written_len = (r->nunits + 63) / 64 * 8;
	r->written = region_lazy_alloc(2 * r->written_len);
	if (!r->written) {
		r->written_len = 0;
		return -ENOMEM;
	}
	r->open = r->written + r->written_len / 8;
	pthread_mutex_lock(&h->run_lock);
	if (h->self_mem < 0) {
		h->self_mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
		if (h->self_mem < 0)
			ret = -errno;
	}
	if (!ret && !h->zeros) {
		void *z = mmap(NULL, ZEROS, PROT_READ,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (z == MAP_FAILED)
			ret = -ENOMEM;
		else
			h->zeros = z;
	}
	pthread_mutex_unlock(&h->run_lock);
	return ret;
}

void writes_free(struct upager_region *r)
{
	if (r->track)
		pthread_rwlock_destroy(&r->gate);
	if (r->written_len)
		munmap((void *)r->written, 2 * r->written_len);
	r->written = r->open = NULL;
	r->written_len = 0;
}

/*
 * Protect unit @u (@on) or lift its protection, waking no one: the
 * caller settles the unit first, then wakes.  While an event holds the
 * map (-EAGAIN) a worker reads it (fill_mm_wait()); others wait a while
 * for the workers.
 */
int unit_protect(struct upager_region *r, struct filler *f, size_t u,
		 bool on)
{
	unsigned int tries = 0;

	for (;;) {
		int ret = region_writeprotect(
			r, u * r->fill, r->fill,
			on ? UFFDIO_WRITEPROTECT_MODE_WP
			   : UFFDIO_WRITEPROTECT_MODE_DONTWAKE);

		if (ret != -EAGAIN)
			return ret;
		if (!fill_mm_wait(r, f, &tries))
			return ret;
	}
}

/*
 * Lift the protection of unit @u (held INFLIGHT), @written: for a write.
 * Under the gate's read side (see snapshot.c): a snapshot running first
 * saves the unit as it is, and none starts in between.
 */
static int unit_unprotect(struct upager_region *r, struct filler *f,
			  size_t u, bool written)
{
	int ret;

	/*
	 * A worker does not wait while a snapshot protects the region: it
	 * may be the one to read the event the protection waits for.  The
	 * unit stays protected (-EAGAIN): a write fault comes again.
	 */
	if (f->h) {
		if (pthread_rwlock_tryrdlock(&r->gate))
			return -EAGAIN;
	} else {
		pthread_rwlock_rdlock(&r->gate);
	}
	snap_before_write(r, f, u);
	if (written)
		atomic_fetch_or_explicit(&r->written[u / 64],
					 1ull << (u % 64),
					 memory_order_relaxed);
	ret = unit_protect(r, f, u, false);
	if (ret == 0)
		atomic_fetch_or(&r->open[u / 64], 1ull << (u % 64));
	pthread_rwlock_unlock(&r->gate);
	return ret;
}

/*
 * Page @pg of unit @u was dropped by the program: what a fault would
 * install there (the store's page, or zeros by the REMOVE policy).
 */
static int dropped_page(struct upager_region *r, size_t u, size_t pg,
			char *dst)
{
	size_t page = u * (r->fill / UPAGER_STORE_PAGE) + pg;

	if (r->remove == UPAGER_REMOVE_ZERO || region_dropped(r, page)) {
		memset(dst, 0, UPAGER_STORE_PAGE);
		return 0;
	}
	return r->store->ops->fetch(r->store, r->store_pgoff + page, dst, 1);
}

/*
 * shmem: the pages of [off, off+len) the memfd holds from @off on, in
 * bytes.  SEEK_DATA from each page (SEEK_HOLE would walk to the end of
 * the data, over the whole region when it is all there).
 */
static size_t shmem_data(struct upager_region *r, size_t off, size_t len)
{
	size_t n = 0;

	while (n < len && lseek(r->memfd, (off_t)(off + n), SEEK_DATA) ==
				  (off_t)(off + n))
		n += UPAGER_STORE_PAGE;
	return n;
}

/*
 * Read unit @u (held INFLIGHT by the caller) into @buf as an access would
 * find it, without faulting: installed pages as they are, dropped ones
 * by the REMOVE policy.  0 or -errno (the store's, for a dropped page).
 */
int unit_peek(struct upager_region *r, size_t u, char *buf)
{
	size_t off = u * r->fill, done = 0;
	int ret;

	while (done < r->fill) {
		ssize_t n;

		if (r->memtype == UPAGER_MEM_SHMEM) {
			size_t want = shmem_data(r, off + done, r->fill - done);

			if (!want) {
				n = -1;
				errno = EIO;
			} else {
				n = pread(r->memfd, buf + done, want,
					  (off_t)(off + done));
			}
		} else {
			n = pread(r->h->self_mem, buf + done, r->fill - done,
				  (off_t)(uintptr_t)(region_base(r) + off +
						     done));
		}
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || (errno != EIO && errno != EFAULT))
			return n == 0 ? -EIO : -errno;
		ret = dropped_page(r, u, done / UPAGER_STORE_PAGE, buf + done);
		if (ret < 0)
			return ret;
		done += UPAGER_STORE_PAGE;
	}
	return 0;
}

size_t unit_wb_room(const struct upager_region *r)
{
	size_t np = r->fill / UPAGER_STORE_PAGE;

	return r->fill + (np + 63) / 64 * 8;
}

/* Copy unit @u's drop marks into @had (a bit a page): true if any. */
static bool marks_take(struct upager_region *r, size_t u, uint64_t *had)
{
	size_t np = r->fill / UPAGER_STORE_PAGE, first = u * np;
	bool any = false;

	memset(had, 0, (np + 63) / 64 * 8);
	for (size_t i = 0; r->dropped && i < np; i++) {
		if (!region_dropped(r, first + i))
			continue;
		had[i / 64] |= 1ull << (i % 64);
		any = true;
	}
	return any;
}

/*
 * Was what unit_peek() read of units [@u, @u + @n) the region's, @moved
 * read before it?  The program may unmap or move the region meanwhile
 * and map other memory there (tests/unmap_inflight): then the store
 * must not get it.  The kernel holds an event pending from such a change
 * until it is read (the probe, a protection the units have already,
 * answers -EAGAIN), and its handling counts it (sp->moved) and records
 * the hole, under the rd_lock this holds.  0, -EAGAIN (read again once
 * the event is read), or -ENOENT (the region left one of the units; with
 * @part, all of them: a unit unmapped in part is checked, and its
 * protection probed, where it is still mapped).  A
 * shmem unit is read from the region's memfd (unit_peek()), whatever is
 * mapped at its address: no probe, which under a program dropping pages
 * in a loop waits for a moment with no event pending
 * (tests/snapshot_gate).
 */
static int peek_held(struct upager_region *r, size_t u, size_t n,
		     unsigned int moved, bool part)
{
	size_t at = u * r->fill, len = n * r->fill, live = at;
	int ret;

	rdlock_shared(&r->sp->rd_lock);
	if (!part && !region_owns(r, at, len))
		ret = -ENOENT;
	else if (r->memtype == UPAGER_MEM_SHMEM) /* read from its memfd */
		ret = region_live_run(r, &live, at + len) > live ? 0 : -ENOENT;
	else if (atomic_load(&r->sp->moved) != moved)
		ret = -EAGAIN;
	else
		ret = region_live_writeprotect(r, at, len,
					       UFFDIO_WRITEPROTECT_MODE_WP);
	rdlock_shared_end(&r->sp->rd_lock);
	return ret;
}

/*
 * unit_peek() of units [@u, @u + @n).  More than one: of an anonymous
 * region, in one read, and -EFAULT where a page is not there (a dropped
 * one reads by the REMOVE policy, perhaps from the store, which the
 * caller does unit by unit).
 */
static int peek_units(struct upager_region *r, size_t u, size_t n,
		      char *buf)
{
	size_t len = n * r->fill;

	if (n == 1)
		return unit_peek(r, u, buf);
	return pread(r->h->self_mem, buf, len,
		     (off_t)(uintptr_t)(region_base(r) + u * r->fill)) ==
			       (ssize_t)len
		       ? 0
		       : -EFAULT;
}

/*
 * Read units [@u, @u + @n) (held INFLIGHT, protected) into @buf for a
 * store (the region's, or a snapshot's destination): what unit_peek()
 * finds, once peek_held() says it was the region's (@part: where it
 * still is).
 */
int peek_for_store(struct upager_region *r, struct filler *f, size_t u,
		   size_t n, char *buf, bool part)
{
	unsigned int tries = 0;
	int ret;

	for (;;) {
		unsigned int moved = atomic_load(&r->sp->moved);

		ret = peek_units(r, u, n, buf);
		if (ret == 0)
			ret = peek_held(r, u, n, moved, part);
		if (ret != -EAGAIN || !fill_mm_wait(r, f, &tries))
			return ret;
	}
}

/*
 * Unit @u (anon) was written back from @buf; @had its marks before the
 * peek (REMOVE_ZERO: pages the program dropped, which read zeros).  A
 * marked page written as zeros has them in the store now: its mark
 * goes.  A marked page that read data was still mapped: the drop's zap
 * was still to come (MADV_DONTNEED: the kernel zaps after its REMOVE
 * was read, and the worker marks the page in between), or reclaim
 * takes the page whenever it likes (MADV_FREE), or the program wrote it
 * again since (MADV_FREE, then a write, which a dirty unit takes
 * without a fault): the engine cannot tell which, and the mark stays.
 * Cleared, the page read the data the drop took away once the unit was
 * evicted and filled again (tests/writes_inflight remove_pending).
 *
 * A unit that stays (@going false) stays dirty if such a page was marked
 * before the peek: the next write-back writes what it reads then.  One
 * marked after the peek cannot have been written since (the unit is
 * protected), and its mark says what it reads once its drop lands.
 *
 * A unit that goes (@going): its pages are moved out, and then read the
 * store, zeros where marked.  A drop marked before the peek has had its
 * zap by now, or is under way and holds mmap_lock for reading: mprotect()
 * takes it for writing, and once it returns a page still mapped is one
 * the program kept (MADV_FREE): its mark goes, or an eviction turned
 * what it wrote into zeros (tests/writes_inflight free_write).  A zap
 * whose thread was woken but has not taken mmap_lock yet still lands
 * after: that window stays.  @buf is not needed any more: mincore()
 * writes there.  Returns true if the unit is not clean.
 */
static bool marks_written(struct upager_region *r, size_t u, char *buf,
			  const uint64_t *had, bool going)
{
	size_t np = r->fill / UPAGER_STORE_PAGE, first = u * np;
	unsigned char *vec = (unsigned char *)buf;
	bool kept = false;

	for (size_t i = 0; i < np; i++) {
		if (!region_dropped(r, first + i))
			continue;
		if (!memcmp(buf + i * UPAGER_STORE_PAGE, r->h->zeros,
			    UPAGER_STORE_PAGE))
			region_undrop(r, first + i, first + i + 1);
		else if (had[i / 64] >> (i % 64) & 1)
			kept = true;
	}
	if (!kept || !going)
		return kept;
	mprotect(r->h->zeros, ZEROS, PROT_READ);
	if (mincore(region_base(r) + u * r->fill, r->fill, vec) < 0)
		return false;
	for (size_t i = 0; i < np; i++)
		if ((had[i / 64] >> (i % 64) & 1) && (vec[i] & 1))
			region_undrop(r, first + i, first + i + 1);
	return false;
}

long write_live(struct upager_region *r, struct upager_store *dst, size_t u,
		size_t n, const char *buf)
{
	size_t at = u * r->fill, end = at + n * r->fill, off = at, e;
	long pages = 0;
	int ret = 0;

	for (; ret == 0; off = e) {
		rdlock_shared(&r->sp->rd_lock);
		e = region_live_run(r, &off, end);
		rdlock_shared_end(&r->sp->rd_lock);
		if (e == off)
			break;
		ret = dst->ops->writeback(dst,
					  r->store_pgoff +
					      off / UPAGER_STORE_PAGE,
					  buf + (off - at),
					  (e - off) / UPAGER_STORE_PAGE);
		pages += (long)((e - off) / UPAGER_STORE_PAGE);
	}
	return ret < 0 ? ret : pages;
}

/*
 * Write dirty unit @u (held INFLIGHT) back to the store through @buf
 * (unit_wb_room() bytes): protected first, so that what is written is
 * what stays.  On an error the protection is lifted again (its writers
 * go on) and the unit stays dirty.
 */
int unit_write_back(struct upager_region *r, struct filler *f, size_t u,
		    char *buf, bool going)
{
	struct upager_store *s = r->store;
	size_t np = r->fill / UPAGER_STORE_PAGE;
	uint64_t *had = (uint64_t *)(void *)(buf + r->fill);
	bool marked = false;
	int ret;

	if (!STORE_HAS(s->ops, writeback))
		return -EOPNOTSUPP;
	ret = unit_protect(r, f, u, true);
	if (ret < 0)
		return ret;
	/* Held: no one lifts it again before we settle. */
	atomic_fetch_and(&r->open[u / 64], ~(1ull << (u % 64)));
	/*
	 * shmem: MADV_DONTNEED keeps the page cache, which the peek reads,
	 * so the marks go before it; a REMOVE handled from here on marks
	 * its pages again, and they stay marked (the peek may have read
	 * them before a MADV_REMOVE punched them out).
	 */
	if (r->memtype == UPAGER_MEM_SHMEM)
		region_undrop(r, u * np, (u + 1) * np);
	else
		marked = marks_take(r, u, had);
	ret = peek_for_store(r, f, u, 1, buf, true);
	if (ret == 0) {
		long pages = write_live(r, s, u, 1, buf);

		ret = pages < 0 ? (int)pages : 0;
		if (pages > 0)
			STAT_ADD(r->st, pages_written, (uint64_t)pages);
	}
	if (ret < 0) {
		STAT_ADD(r->st, writeback_errors, 1);
		unit_unprotect(r, f, u, false);
		return ret;
	}
	/* None marked before the peek: those marked since stay. */
	return marked && marks_written(r, u, buf, had, going);
}

int writes_fault(struct upager_region *r, struct filler *f,
		 const struct fault *ft)
{
	size_t u = (ft->addr - (uintptr_t)region_base(r)) / r->fill;
	unit_t *unit = &r->state[u];
	unsigned int from;
	int ret;

	STAT_ADD(r->st, faults, 1);
	STAT_ADD(r->st, faults_wp, 1);
	for (;;) {
		uint8_t v = unit_load(unit);

		from = unit_state(v);
		if (from == UNIT_INFLIGHT) {
			/* Written back, evicted or saved: its holder wakes it. */
			if (!unit_add_waiter(unit, v))
				continue;
			STAT_ADD(r->st, faults_dup, 1);
			return 0;
		}
		if (!unit_resident(from)) {
			struct fault miss = *ft;

			/*
			 * Not installed, yet the page written is there and
			 * protected (a put-back that failed left it, or it
			 * went since): woken as it is, the write would come
			 * back as this same fault for ever.  The unit is
			 * filled (the pages there keep theirs, protected
			 * as installs are), and the write comes again to
			 * an installed unit, which it makes dirty.
			 */
			miss.wp = false;
			region_fault(r, f, &miss);
			fill_wake(r, f, u, 1);
			return 0;
		}
		if (unit_claim(unit, from))
			break;
	}
	ret = unit_unprotect(r, f, u, true);
	if (ret == 0 && from == UNIT_PRESENT)
		STAT_ADD(r->st, pages_dirtied, r->fill / UPAGER_STORE_PAGE);
	if (ret < 0 && ret != -ENOENT && ret != -EAGAIN)
		region_report(r, ft->addr, ret,
			      "lifting a write protection failed");
	fill_settle(r, f, u, 1, ret < 0 ? from : UNIT_DIRTY);
	fill_wake(r, f, u, 1);
	stats_latency(r->st, now_ns() - ft->t0);
	return ret;
}

/*
 * Wait while unit @u is INFLIGHT: a fill, a write fault, an eviction or a
 * snapshot holds it, briefly.  A read-ahead job still queued might wait
 * for a stopped worker: the region's queued jobs are given back once.
 */
static unsigned int wait_unit(struct upager_region *r, size_t u, bool *purged)
{
	struct timespec ts = { 0, 20000 };
	unsigned int s;

	while ((s = unit_state(unit_load(&r->state[u]))) == UNIT_INFLIGHT) {
		if (!*purged) {
			handler_purge_jobs(r->h, r);
			*purged = true;
			continue;
		}
		nanosleep(&ts, NULL);
	}
	return s;
}

int region_sync(struct upager_region *r, size_t off, size_t len)
{
	struct filler f = { 0 };
	bool purged = false;
	int ret, first = 0;
	size_t failed = 0;

	if (!r->track)
		return -EINVAL;
	if (off > r->len || len > r->len - off)
		return -ERANGE;
	ret = filler_reserve(&f, unit_wb_room(r));
	if (ret < 0)
		return ret;
	for (size_t u = off / r->fill; u * r->fill < off + len; u++) {
		if (wait_unit(r, u, &purged) != UNIT_DIRTY)
			continue;
		if (!unit_claim(&r->state[u], UNIT_DIRTY)) {
			u--; /* taken meanwhile: look again */
			continue;
		}
		ret = unit_write_back(r, &f, u, f.buf, false);
		fill_settle(r, &f, u, 1, ret ? UNIT_DIRTY : UNIT_PRESENT);
		if (ret < 0) {
			failed++;
			if (!first)
				first = ret;
		}
	}
	filler_release(&f);
	if (failed)
		region_report(r, (uintptr_t)region_base(r), first,
			      "sync: dirty units could not be written back; "
			      "they stay dirty");
	return first;
}

int upager_region_sync(struct upager_region *r, size_t off, size_t len)
{
	return region_sync(r, off, len);
}

size_t upager_region_resident(struct upager_region *r)
{
	size_t n = 0;

	for (size_t u = 0; u < r->nunits; u++)
		n += unit_resident(unit_state(unit_load(&r->state[u])));
	return n * r->fill;
}

bool upager_region_dirty(struct upager_region *r, size_t off)
{
	return off < r->len &&
	       unit_state(unit_load(&r->state[off / r->fill])) == UNIT_DIRTY;
}

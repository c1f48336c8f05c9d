// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Address spaces: one uffd and the regions it serves, sorted by address.
 * A handler has its own process's space, and one for each forked child
 * it adopted (events.c); the same addresses may then be regions in
 * several spaces.
 *
 * The table's lock is held only to find a region and pin it (users),
 * never across a fill: a store that sleeps delays no other region, and a
 * map or unmap (the writers) waits for no fill but its own region's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/engine.h"

int space_init(struct upager_space *sp, struct upager_handler *h, int uffd,
	       bool self)
{
	memset(sp, 0, sizeof(*sp));
	sp->h = h;
	sp->uffd = uffd;
	sp->self = self;
	sp->pidfd = -1;
	atomic_init(&sp->pagemap, -1);
	rdlock_init(&sp->rd_lock);
	pthread_mutex_init(&sp->read_lock, NULL);
	return -pthread_rwlock_init(&sp->lock, NULL);
}

void space_destroy(struct upager_space *sp)
{
	int pm = atomic_load(&sp->pagemap);

	if (pm >= 0)
		close(pm);
	if (sp->pidfd >= 0)
		close(sp->pidfd);
	pthread_rwlock_destroy(&sp->lock);
	pthread_mutex_destroy(&sp->read_lock);
	mem_free(sp->regions, sp->cap * sizeof(*sp->regions));
}

/*
 * No read of @sp's uffd, no handling of its events, and no guarded
 * install in progress until space_release_events(): what a worker
 * reading it would hold, for those that must see the events read so far
 * handled and no other handled meanwhile.
 */
void space_hold_events(struct upager_space *sp)
{
	pthread_mutex_lock(&sp->read_lock);
	rdlock_excl(&sp->rd_lock);
}

void space_release_events(struct upager_space *sp)
{
	rdlock_excl_end(&sp->rd_lock);
	pthread_mutex_unlock(&sp->read_lock);
}

/*
 * Must a read of @r's uffd wait for @r's installs?  Where a page the
 * program dropped reads zeros (REMOVE_ZERO, not shmem, whose fills go
 * through the page cache, nor in-thread, whose uffd has no events),
 * where a write-back or a snapshot reads the region, and where evictors
 * move units out (a move beside the zap spins in the kernel): an install,
 * move or put-back overlapping the read of a REMOVE may land after its
 * zap.  Elsewhere what lands there is the store's data, as a refetch
 * after the drop would give.
 */
static bool space_guards_reads(const struct upager_region *r)
{
	return (r->remove == UPAGER_REMOVE_ZERO &&
		r->memtype != UPAGER_MEM_SHMEM &&
		!(r->flags & UPAGER_MAP_IN_THREAD)) ||
	       r->track || r->ev;
}

/* Caller holds sp->lock (either way). */
static size_t lookup(struct upager_space *sp, uint64_t addr, bool *found)
{
	size_t lo = 0, hi = sp->nregions;

	*found = false;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct upager_region *r = sp->regions[mid];

		if (addr < (uintptr_t)r->addr) {
			hi = mid;
		} else if (addr >= (uintptr_t)r->addr + r->len) {
			lo = mid + 1;
		} else {
			*found = true;
			return mid;
		}
	}
	return lo;
}

struct upager_region *space_get(struct upager_space *sp, uint64_t addr)
{
	struct upager_region *r = NULL;
	bool found;
	size_t i;

	pthread_rwlock_rdlock(&sp->lock);
	i = lookup(sp, addr, &found);
	if (found) {
		r = sp->regions[i];
		atomic_fetch_add(&r->users, 1);
	}
	pthread_rwlock_unlock(&sp->lock);
	return r;
}

/*
 * Done with a region space_get() (or the job ring) pinned.  Once its
 * users are down to zero an unmap may free @r at once, so nothing here
 * reads @r after the decrement: whether someone waits is the handler's
 * to say (idle_waiters; with the decrement, a Dekker pair with
 * region_wait_idle(): one of the two sees the other).
 */
void region_put(struct upager_region *r)
{
	struct upager_handler *h = r->h;

	if (atomic_fetch_sub(&r->users, 1) == 1 &&
	    atomic_load(&h->idle_waiters)) {
		pthread_mutex_lock(&h->idle_lock);
		pthread_cond_broadcast(&h->idle_cond);
		pthread_mutex_unlock(&h->idle_lock);
	}
}

/* Wait until no thread is inside a fill of @r (taken out of service). */
void region_wait_idle(struct upager_region *r)
{
	struct upager_handler *h = r->h;

	pthread_mutex_lock(&h->idle_lock);
	atomic_fetch_add(&h->idle_waiters, 1);
	while (atomic_load(&r->users))
		pthread_cond_wait(&h->idle_cond, &h->idle_lock);
	atomic_fetch_sub(&h->idle_waiters, 1);
	pthread_mutex_unlock(&h->idle_lock);
}

static void insert_locked(struct upager_space *sp, struct upager_region *r)
{
	bool found;
	size_t i = lookup(sp, (uintptr_t)r->addr, &found);

	memmove(&sp->regions[i + 1], &sp->regions[i],
		(sp->nregions - i) * sizeof(*sp->regions));
	sp->regions[i] = r;
	sp->nregions++;
}

static void erase_locked(struct upager_space *sp, struct upager_region *r)
{
	for (size_t i = 0; i < sp->nregions; i++) {
		if (sp->regions[i] != r)
			continue;
		memmove(&sp->regions[i], &sp->regions[i + 1],
			(sp->nregions - i - 1) * sizeof(*sp->regions));
		sp->nregions--;
		return;
	}
}

/* Does [addr, addr+len) overlap a region of the table?  Caller locks. */
static bool overlaps_locked(struct upager_space *sp, uintptr_t addr,
			    size_t len)
{
	bool found;
	size_t i = lookup(sp, addr, &found);

	if (found)
		return true;
	return i < sp->nregions &&
	       (uintptr_t)sp->regions[i]->addr - addr < len;
}

/* -EEXIST when @r overlaps a region of the table (another process's
 * ranges are the manager's word, not ours to trust). */
/*
 * Caller holds space_hold_events(), or no worker reads @sp yet: a read
 * that began before @r counted in @guarded_reads must not overlap its
 * installs.
 */
int space_add(struct upager_space *sp, struct upager_region *r)
{
	pthread_rwlock_wrlock(&sp->lock);
	if (overlaps_locked(sp, (uintptr_t)r->addr, r->len)) {
		pthread_rwlock_unlock(&sp->lock);
		return -EEXIST;
	}
	if (sp->nregions == sp->cap) {
		/* mem_alloc(): a fork's copies are added while it forks. */
		size_t cap = sp->cap ? 2 * sp->cap : 512;
		struct upager_region **n = mem_alloc(cap * sizeof(*n));

		if (!n) {
			pthread_rwlock_unlock(&sp->lock);
			return -ENOMEM;
		}
		if (sp->nregions)
			memcpy(n, sp->regions, sp->nregions * sizeof(*n));
		mem_free(sp->regions, sp->cap * sizeof(*n));
		sp->regions = n;
		sp->cap = cap;
	}
	insert_locked(sp, r);
	atomic_store(&r->listed, true);
	r->guards_reads = space_guards_reads(r);
	if (r->guards_reads)
		atomic_fetch_add(&sp->guarded_reads, 1);
	pthread_rwlock_unlock(&sp->lock);
	return 0;
}

/* Take @r out of the table: no new fault or job finds it after this. */
void space_remove(struct upager_space *sp, struct upager_region *r)
{
	pthread_rwlock_wrlock(&sp->lock);
	if (atomic_load(&r->listed)) {
		erase_locked(sp, r);
		if (r->guards_reads)
			atomic_fetch_sub(&sp->guarded_reads, 1);
	}
	atomic_store(&r->listed, false);
	pthread_rwlock_unlock(&sp->lock);
	handler_purge_jobs(sp->h, r);
}

/*
 * The region moved to @to (EVENT_REMAP).  Fills in flight install at the
 * old address, find it unregistered (-ENOENT) and give their units back;
 * the faults come again at the new one.
 */
void space_move(struct upager_space *sp, struct upager_region *r, char *to)
{
	pthread_rwlock_wrlock(&sp->lock);
	erase_locked(sp, r);
	__atomic_store_n(&r->addr, to, __ATOMIC_RELEASE);
	insert_locked(sp, r);
	pthread_rwlock_unlock(&sp->lock);
}

/*
 * Pin up to @max regions overlapping [*@cursor, @end), in address order,
 * into @out, and move *@cursor past the last one: a caller walks a range
 * in steps, with no allocation (see mem_alloc()) and no lock held while
 * it handles each region.  Returns how many it pinned; 0 at the end.
 */
size_t space_pin(struct upager_space *sp, uint64_t *cursor, uint64_t end,
		 struct upager_region **out, size_t max)
{
	size_t n = 0;
	bool found;

	pthread_rwlock_rdlock(&sp->lock);
	for (size_t i = lookup(sp, *cursor, &found);
	     i < sp->nregions && n < max; i++) {
		struct upager_region *r = sp->regions[i];
		uint64_t a = (uintptr_t)r->addr;

		if (a >= end)
			break;
		if (a + r->len <= *cursor)
			continue;
		atomic_fetch_add(&r->users, 1);
		out[n++] = r;
		*cursor = a + r->len;
	}
	pthread_rwlock_unlock(&sp->lock);
	return n;
}

/*
 * /proc/PID/pagemap of another process's space: its pid when known
 * (adopted), else the thread @tid a fault came from (a forked child).
 */
static int pagemap_fd(struct upager_space *sp, pid_t tid)
{
	char path[64];
	int fd = atomic_load(&sp->pagemap), expect = -1;

	if (fd >= 0 || !(sp->pid ? sp->pid : tid))
		return fd;
	snprintf(path, sizeof(path), "/proc/%d/pagemap",
		 (int)(sp->pid ? sp->pid : tid));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (!atomic_compare_exchange_strong(&sp->pagemap, &expect, fd)) {
		close(fd);
		fd = expect;
	}
	return fd;
}

#define PM_PRESENT (1ull << 63)

/*
 * Is all of [addr, addr+len) mapped in @sp's page tables?  1 yes, 0 no,
 * -1 unknown.  Our own memory asks mincore() (async-signal-safe, which
 * the in-thread path needs); another process's asks its pagemap, found
 * through the thread @tid that faulted there (UFFD_FEATURE_THREAD_ID).
 */
int space_resident(struct upager_space *sp, const char *addr, size_t len, pid_t tid)
{
	uint64_t ent[64];
	unsigned char vec[64];
	size_t pages = len / 4096;
	int fd;

	if (sp->self) {
		for (size_t i = 0; i < pages; i += sizeof(vec)) {
			size_t k = pages - i < sizeof(vec) ? pages - i
							   : sizeof(vec);

			if (mincore((void *)(addr + i * 4096), k * 4096, vec))
				return -1;
			for (size_t j = 0; j < k; j++)
				if (!(vec[j] & 1))
					return 0;
		}
		return 1;
	}
	fd = pagemap_fd(sp, tid);
	if (fd < 0)
		return -1;
	for (size_t i = 0; i < pages; i += ARRAY_SIZE(ent)) {
		size_t k = pages - i < ARRAY_SIZE(ent) ? pages - i
						     : ARRAY_SIZE(ent);
		off_t off = (off_t)(((uintptr_t)addr / 4096 + i) * 8);

		if (pread(fd, ent, k * 8, off) != (ssize_t)(k * 8))
			return -1;
		for (size_t j = 0; j < k; j++)
			if (!(ent[j] & PM_PRESENT))
				return 0;
	}
	return 1;
}

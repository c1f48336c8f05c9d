// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region's life: map (memory, registration, table), install pages
 * pushed by a store, prefault, unmap (and the forked copies with it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/engine.h"
#include "engine/store_call.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

#define DEFAULT_RA (1ul << 20)
#define DEFAULT_FA (64ul << 10) /* the kernel's fault_around_bytes */
/*
 * Mapped mode: a page mapped around a fault costs a page-table entry
 * (~0.5-1 us here, no copy, no page), a fault that does not come saves
 * a round trip (~20-30 us).  For random 4 KiB reads of a 2 GiB tmpfs
 * file, 2M blocks (64K with the fault, the rest by the workers: see
 * fault.c) ran at about mmap's rate, 256K blocks at 0.35-0.40x; a 2M
 * block's page table is one page, as a 256K block's (BENCHMARKS.md).
 */
#define DEFAULT_FA_MAPPED (2ul << 20)

/* From mem_alloc(): a fork copies regions while a fork is in progress. */
struct upager_region *region_alloc(struct upager_handler *h)
{
	struct upager_region *r = mem_alloc(sizeof(*r));

	if (!r)
		return NULL;
	r->h = h;
	r->memfd = -1;
	r->st = &r->own;
	r->stats_slot = -1;
	pthread_mutex_init(&r->ra_lock, NULL);
	return r;
}

/*
 * Free what the region owns.  The mapping at r->addr is not the
 * region's to free here: upager_unmap() unmaps a root's, a forked copy's
 * is its process's.  A copy borrows its root's shmem backing.
 */
void region_free(struct upager_region *r)
{
	if (!r->root) {
		if (r->alias)
			munmap(r->alias, r->len);
		if (r->memfd >= 0)
			close(r->memfd);
	}
	if (r->slots)
		munmap(r->slots, INTHREAD_SLOTS * r->fill);
	if (r->state_len)
		munmap((void *)r->state, r->state_len);
	if (r->dropped_len)
		munmap((void *)r->dropped, r->dropped_len);
	writes_free(r);
	evict_free(r);
	prefetch_free(r);
	pthread_mutex_destroy(&r->ra_lock);
	mem_free(r, sizeof(*r));
}

/* A root's counters join the handler's, once, when it leaves its table. */
void region_retire(struct upager_region *r)
{
	if (!r->root && !atomic_exchange(&r->retired, true))
		stats_add(r->h->retired, r->st);
}

/* The unit states: one byte each, mapped lazily, so a sparse region of
 * a terabyte costs what it touches. */
void *region_lazy_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int region_state_alloc(struct upager_region *r)
{
	r->state_len = r->nunits;
	r->state = region_lazy_alloc(r->state_len);
	if (!r->state) {
		r->state_len = 0;
		return -ENOMEM;
	}
	/*
	 * Pages dropped under ZERO read zeros: a unit of several pages needs
	 * to know which; so does any tracked unit, which eviction may send
	 * back to a store that still holds the old data.
	 */
	if (r->remove == UPAGER_REMOVE_ZERO &&
	    (r->fill > UPAGER_STORE_PAGE ||
	     (r->flags & UPAGER_MAP_TRACK_WRITES))) {
		r->dropped_len = (r->len / UPAGER_STORE_PAGE + 63) / 64 * 8;
		r->dropped = region_lazy_alloc(r->dropped_len);
		if (!r->dropped) {
			r->dropped_len = 0;
			return -ENOMEM;
		}
	}
	return 0;
}

/* Did the program drop page @page (of 4 KiB) of @r under the ZERO policy? */
bool region_dropped(struct upager_region *r, size_t page)
{
	return r->dropped &&
	       (atomic_load_explicit(&r->dropped[page / 64],
				     memory_order_acquire) >>
		(page % 64)) & 1;
}

/* Pages [lo, hi) were written back: the store has what they hold now. */
void region_undrop(struct upager_region *r, size_t lo, size_t hi)
{
	if (!r->dropped)
		return;
	for (size_t p = lo; p < hi; p++)
		atomic_fetch_and_explicit(&r->dropped[p / 64],
					  ~(1ull << (p % 64)),
					  memory_order_release);
}

/* Pages [lo, hi) of @r were dropped (EVENT_REMOVE); ZERO with bits only. */
void region_drop(struct upager_region *r, size_t lo, size_t hi)
{
	if (!r->dropped)
		return;
	for (size_t p = lo; p < hi; p++)
		atomic_fetch_or_explicit(&r->dropped[p / 64], 1ull << (p % 64),
					 memory_order_release);
}

/*
 * Map the store's own file (memfile()) when it is in memory and the
 * region may: anon, the default REMOVE policy (a dropped page reads the
 * file again, as it does in any private file mapping), no flag that
 * needs our own pages.  Returns the file and its offset, or -1.
 */
static int memfile(struct upager_region *r, uint64_t features, off_t *off)
{
	struct upager_store *s = r->store;
	uint64_t base;
	int fd;

	if (r->memtype != UPAGER_MEM_ANON || r->flags ||
	    r->remove != UPAGER_REMOVE_REFETCH ||
	    !(features & UFFD_FEATURE_MINOR_SHMEM) ||
	    !STORE_HAS(s->ops, memfile))
		return -1;
	fd = s->ops->memfile(s, &base);
	if (fd < 0 || base % UPAGER_STORE_PAGE)
		return -1;
	*off = (off_t)(base + r->store_pgoff * UPAGER_STORE_PAGE);
	return fd;
}

/*
 * The region's memory, inaccessible until region_register() has
 * registered it: a thread that touches the address before (one that
 * kept it from a region the program unmapped there) would map a page
 * of zeros the region never sees; it gets SIGSEGV instead.  The alias
 * of a shmem region is ours alone.
 */
static int map_memory(struct upager_region *r, uint64_t features)
{
	int prot = PROT_NONE, fd;
	off_t off;

	if ((fd = memfile(r, features, &off)) >= 0) {
		r->addr = mmap(NULL, r->len, prot, MAP_PRIVATE | MAP_NORESERVE,
			       fd, off);
		r->mapped = r->addr != MAP_FAILED;
	} else if (r->memtype == UPAGER_MEM_SHMEM) {
		r->memfd = memfd_create("upager", MFD_CLOEXEC);
		if (r->memfd < 0)
			return -errno;
		if (ftruncate(r->memfd, (off_t)r->len) < 0)
			return -errno;
		r->alias = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_NORESERVE, r->memfd, 0);
		if (r->alias == MAP_FAILED) {
			r->alias = NULL;
			return -errno;
		}
		/* Ours alone: a child must not write the cache behind us. */
		madvise(r->alias, r->len, MADV_DONTFORK);
		r->addr = mmap(NULL, r->len, prot, MAP_SHARED | MAP_NORESERVE,
			       r->memfd, 0);
	} else if (r->memtype == UPAGER_MEM_HUGETLB) {
		/* Reserved at mmap: a short pool fails here, not at a fault. */
		r->addr = mmap(NULL, r->len, prot,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
				       MAP_HUGE_2MB,
			       -1, 0);
	} else {
		r->addr = mmap(NULL, r->len, prot,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			       0);
	}
	if (r->addr == MAP_FAILED) {
		r->addr = NULL;
		return -errno;
	}
	return 0;
}

/*
 * Check and complete @p for a region of @len bytes over @s, served
 * through a uffd with the features @have.
 */
/*
 * Write tracking and budgets (@p->fill set): what they need of the
 * region and the kernel.
 */
static int check_writes(struct upager_map_params *p, size_t len,
			uint64_t have)
{
	unsigned int hi = p->high_water ? p->high_water : 90;
	unsigned int lo = p->low_water ? p->low_water : 70;

	if (!p->budget && (p->high_water || p->low_water || p->evict))
		return -EINVAL;
	if (!(p->flags & UPAGER_MAP_TRACK_WRITES))
		return 0;
	if (p->memtype == UPAGER_MEM_HUGETLB ||
	    (p->flags & (UPAGER_MAP_IN_THREAD | UPAGER_MAP_MOVE)) ||
	    p->fork == UPAGER_FORK_FOLLOW)
		return -EINVAL;
	if (p->budget && (p->budget / p->fill < 4 || hi > 100 || lo >= hi ||
			  len / p->fill >= UINT32_MAX))
		return -EINVAL;
	if (!(have & UFFD_FEATURE_PAGEFAULT_FLAG_WP) ||
	    (p->memtype == UPAGER_MEM_SHMEM &&
	     !(have & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)) ||
	    (p->budget && p->memtype == UPAGER_MEM_ANON &&
	     !(have & UFFD_FEATURE_MOVE)))
		return -EOPNOTSUPP;
	p->fork = UPAGER_FORK_DONTFORK;
	return 0;
}

int region_check_params(struct upager_store *s, size_t len,
			struct upager_map_params *p, uint64_t have)
{
	size_t page = memtype_page(p->memtype);
	bool inthread = p->flags & UPAGER_MAP_IN_THREAD;
	int ret;

	if ((unsigned int)p->memtype > UPAGER_MEM_HUGETLB ||
	    (p->flags & ~(UPAGER_MAP_IN_THREAD | UPAGER_MAP_MOVE |
			  UPAGER_MAP_COPY | UPAGER_MAP_TRACK_WRITES)) ||
	    (unsigned int)p->fork > UPAGER_FORK_DONTFORK ||
	    (unsigned int)p->remove > UPAGER_REMOVE_ZERO ||
	    (unsigned int)p->evict > UPAGER_EVICT_FIFO)
		return -EINVAL;
	if (!p->fill)
		p->fill = page;
	if (p->budget)
		p->flags |= UPAGER_MAP_TRACK_WRITES;
	ret = check_writes(p, len, have);
	if (ret < 0)
		return ret;
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
	if (inthread && (p->memtype == UPAGER_MEM_SHMEM ||
			 (!(s->flags & UPAGER_STORE_SIGNAL_SAFE) &&
			  !STORE_HAS(s->ops, fetch_signal)) ||
			 p->fork == UPAGER_FORK_FOLLOW || p->on_touch))
		return -EINVAL;
	if ((p->flags & UPAGER_MAP_MOVE) && p->memtype != UPAGER_MEM_ANON)
		return -EINVAL;
	if ((p->flags & UPAGER_MAP_MOVE) && !(have & UFFD_FEATURE_MOVE))
		return -EOPNOTSUPP;
	if (p->memtype == UPAGER_MEM_SHMEM &&
	    (have & (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM)) !=
		    (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM))
		return -EOPNOTSUPP;
	if (p->memtype == UPAGER_MEM_HUGETLB &&
	    !(have & UFFD_FEATURE_MISSING_HUGETLBFS))
		return -EOPNOTSUPP;
	if (p->fork == UPAGER_FORK_FOLLOW && !(have & UFFD_FEATURE_EVENT_FORK))
		return -EOPNOTSUPP;
	if (p->fork == UPAGER_FORK_AUTO)
		p->fork = !inthread && (have & UFFD_FEATURE_EVENT_FORK)
				  ? UPAGER_FORK_FOLLOW
				  : UPAGER_FORK_DONTFORK;
	return 0;
}

void region_setup(struct upager_region *r, struct upager_store *s,
		  const struct upager_map_params *p)
{
	if (p->readahead_max == (size_t)-1)
		r->ra_max = 1;
	else
		r->ra_max = (p->readahead_max ? p->readahead_max : DEFAULT_RA) /
			    p->fill;
	if (!r->ra_max || (r->flags & UPAGER_MAP_IN_THREAD))
		r->ra_max = 1; /* in-thread: one unit per slot */
	if (p->fault_around == (size_t)-1)
		r->fa = 1;
	else if (p->fault_around)
		r->fa = p->fault_around / p->fill;
	else
		r->fa = (s->flags & UPAGER_STORE_CHEAP) ? DEFAULT_FA / p->fill
							: 1;
	if (!r->fa)
		r->fa = 1;
	r->on_touch = p->on_touch;
	r->touch_arg = p->touch_arg;
}

/* Register the region with its uffd and check the ioctls it needs. */
static int region_register(struct upager_region *r)
{
	uint64_t mode = UFFDIO_REGISTER_MODE_MISSING, ioctls = 0, need;
	int ret;

	/*
	 * A mapped file's pages are all there (a hole reads zeros, which
	 * the kernel gives): its first touches are MINOR faults only.
	 */
	if (r->mapped)
		mode = UFFDIO_REGISTER_MODE_MINOR;
	else if (r->memtype == UPAGER_MEM_SHMEM)
		mode |= UFFDIO_REGISTER_MODE_MINOR;
	if (r->track)
		mode |= UFFDIO_REGISTER_MODE_WP;
	ret = upager_ll_register(r->uffd, r->addr, r->len, mode, &ioctls);
	if (ret < 0)
		return ret;
	need = 1ull << _UFFDIO_WAKE;
	need |= r->memtype == UPAGER_MEM_SHMEM || r->mapped
			? 1ull << _UFFDIO_CONTINUE
			: 1ull << _UFFDIO_COPY;
	if (r->track)
		need |= 1ull << _UFFDIO_WRITEPROTECT;
	if ((ioctls & need) != need) {
		upager_ll_unregister(r->uffd, r->addr, r->len);
		return -EOPNOTSUPP;
	}
	/* Open to the program now that its faults come to us. */
	if (mprotect(r->addr, r->len, PROT_READ | PROT_WRITE) < 0) {
		ret = -errno;
		upager_ll_unregister(r->uffd, r->addr, r->len);
		return ret;
	}
	return 0;
}

static void roots_link(struct upager_region *r, bool add)
{
	struct upager_handler *h = r->h;

	pthread_mutex_lock(&h->fork_lock);
	if (add) {
		r->next_root = h->roots;
		if (h->roots)
			h->roots->prev_root = r;
		h->roots = r;
	} else {
		if (r->prev_root)
			r->prev_root->next_root = r->next_root;
		else
			h->roots = r->next_root;
		if (r->next_root)
			r->next_root->prev_root = r->prev_root;
	}
	pthread_mutex_unlock(&h->fork_lock);
}

void *upager_map(struct upager_handler *h, struct upager_store *s, size_t len,
		 const struct upager_map_params *params,
		 struct upager_region **out, int *err)
{
	struct upager_map_params p = { .size = sizeof(p) };
	struct upager_region *r = NULL;
	bool registered = false, listed = false, inthread = false;
	int ret;

	ret = params_copy(&p, sizeof(p), params);
	if (ret == 0)
		ret = region_check_params(s, len, &p, h->features);
	if (ret < 0)
		goto fail;
	ret = -ENOMEM;
	r = region_alloc(h);
	if (!r)
		goto fail;
	r->sp = &h->self;
	r->store = s;
	r->len = len;
	r->fill = p.fill;
	r->nunits = len / p.fill;
	r->memtype = p.memtype;
	r->flags = p.flags;
	r->fork = p.fork;
	r->remove = p.remove;
	r->store_pgoff = p.store_offset / UPAGER_STORE_PAGE;
	region_setup(r, s, &p);
	ret = region_state_alloc(r);
	if (ret == 0 && (r->flags & UPAGER_MAP_TRACK_WRITES))
		ret = writes_setup(r);
	if (ret < 0)
		goto fail;
	ret = map_memory(r, h->features);
	if (ret < 0)
		goto fail;
	if (r->mapped && !p.fault_around)
		r->fa = DEFAULT_FA_MAPPED > p.fill ? DEFAULT_FA_MAPPED / p.fill
						   : 1;
	if (r->fork == UPAGER_FORK_DONTFORK &&
	    madvise(r->addr, r->len, MADV_DONTFORK) < 0) {
		ret = -errno;
		goto fail;
	}
	if (r->flags & UPAGER_MAP_IN_THREAD) {
		ret = handler_sig_uffd(h);
		if (ret < 0)
			goto fail;
		r->uffd = ret;
		r->slots = mmap(NULL, INTHREAD_SLOTS * r->fill,
				PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r->slots == MAP_FAILED) {
			r->slots = NULL;
			ret = -ENOMEM;
			goto fail;
		}
	} else {
		r->uffd = h->self.uffd;
	}
	/*
	 * Registered and listed under rd_lock: the program may have
	 * unmapped a region here just before (munmap() returned once its
	 * UNMAP was read, and the reader holds rd_lock until that region has
	 * left the table), and a fault it left there must not be taken for
	 * a stray in between (stray() poisons under rd_lock).
	 */
	space_hold_events(&h->self);
	ret = region_register(r);
	if (ret == 0) {
		registered = true;
		r->st = stats_publish_region(h, r, &r->stats_slot);
		/* Its queues exist before a fault can find it. */
		if (p.budget)
			ret = evict_attach(r, &p);
		if (ret == 0)
			ret = space_add(&h->self, r);
		listed = ret == 0;
	}
	space_release_events(&h->self);
	if (ret < 0)
		goto fail;
	if (r->flags & UPAGER_MAP_IN_THREAD) {
		ret = inthread_add(r);
		if (ret < 0)
			goto fail;
		inthread = true;
	}
	if (STORE_HAS(s->ops, attach)) {
		ret = s->ops->attach(s, r);
		if (ret < 0)
			goto fail;
	}
	roots_link(r, true);
	if (out)
		*out = r;
	return region_base(r);
fail:
	if (r)
		evict_detach(r);
	if (inthread)
		inthread_remove(r);
	if (listed)
		space_remove(&h->self, r);
	if (registered) {
		upager_ll_unregister(r->uffd, r->addr, r->len);
		stats_publish_release(h, r->stats_slot);
	}
	if (r) {
		if (r->addr)
			munmap(r->addr, r->len);
		region_free(r);
	}
	if (err)
		*err = ret;
	return NULL;
}

/*
 * Forked copies of @root go with it: each leaves its table, its fills
 * end, and what it never filled is poisoned in its process (SIGBUS
 * there, never the zeros the kernel would give once no one serves it).
 * A child space left with no region is dropped (handler.c reaps it).
 * Each child's space is held (users) from the moment its copy leaves
 * the space's list: the sweep reaps a space whose list is empty and that
 * no one holds, and it may run meanwhile (its child exited).
 */
static void teardown_children(struct upager_region *root)
{
	struct upager_handler *h = root->h;
	struct upager_region *c, *next;

	pthread_mutex_lock(&h->fork_lock);
	c = root->children;
	root->children = NULL;
	root->forks_closed = true;
	for (next = c; next; next = next->sibling) {
		struct upager_region **q = &next->sp->owned;

		while (*q && *q != next)
			q = &(*q)->next_owned;
		if (*q)
			*q = next->next_owned;
		atomic_fetch_add(&next->sp->users, 1);
	}
	pthread_mutex_unlock(&h->fork_lock);
	for (; c; c = next) {
		struct upager_space *sp = c->sp;
		bool empty;

		next = c->sibling;
		space_remove(sp, c);
		region_wait_idle(c);
		if (!atomic_load(&c->gone) && !atomic_load(&sp->dead))
			fill_poison_absent(c);
		region_free(c);
		pthread_mutex_lock(&h->fork_lock);
		empty = !sp->owned;
		pthread_mutex_unlock(&h->fork_lock);
		if (empty)
			handler_drop(h, sp);
		atomic_fetch_sub(&sp->users, 1);
	}
}

/*
 * A region over another process's memory (upager_space_map()): stop
 * serving it.  Nothing is unmapped or unregistered: the memory is the
 * process's; what was never filled is poisoned while the process lives,
 * so a fault there ends in SIGBUS, not in a wait no worker ends.
 */
static int unmap_foreign(struct upager_region *r)
{
	struct upager_handler *h = r->h;
	struct upager_space *sp = r->sp;
	struct upager_region **q;

	atomic_store(&r->closing, true);
	handler_purge_jobs(h, r);
	region_wait_idle(r);
	teardown_children(r);
	if (!atomic_load(&r->gone) && !atomic_load(&sp->dead))
		fill_poison_absent(r);
	space_remove(sp, r);
	region_wait_idle(r);
	region_retire(r);
	pthread_mutex_lock(&h->fork_lock);
	for (q = &sp->owned; *q && *q != r; q = &(*q)->next_owned)
		;
	if (*q)
		*q = r->next_owned;
	pthread_mutex_unlock(&h->fork_lock);
	stats_publish_release(h, r->stats_slot);
	region_free(r);
	return 0;
}

/*
 * The next run of the region's memory still its own from offset *@off
 * (moved past holes): returns where it ends (== *@off at the end).  The
 * holes stay as they are once the range is unregistered.  The caller
 * holds the space's rd_lock (the holes change under it).
 */
size_t region_live_end(struct upager_region *r, size_t *off)
{
	for (unsigned int i = 0; i < r->nholes; i++) {
		if (r->holes[i].hi <= *off)
			continue;
		if (r->holes[i].lo <= *off) {
			*off = r->holes[i].hi;
			continue;
		}
		return r->holes[i].lo;
	}
	return *off < r->len ? r->len : *off;
}

/*
 * Is [at, at+len) of @r still the region's: no hole the program unmapped
 * there (the holes hold every unit gone, unless there were more than fit:
 * then the units say)?  Caller holds the space's rd_lock.
 */
bool region_owns(struct upager_region *r, size_t at, size_t len)
{
	size_t lo = at;

	if (region_live_end(r, &lo) < at + len || lo != at)
		return false;
	for (size_t u = at / r->fill; r->holes_lost && u * r->fill < at + len;
	     u++) {
		uint8_t v = unit_load(&r->state[u]);

		if (unit_state(v) == UNIT_GONE || (v & UNIT_GONE_PENDING))
			return false;
	}
	return true;
}

/*
 * The next run of [*@at, @end) still the region's: *@at moved past the
 * holes to where it starts, and where it ends returned (*@at == @end:
 * none left).  A unit the program unmapped in part keeps the rest of its
 * pages, whose writes are still tracked and written back.  Caller holds
 * the space's rd_lock.
 */
size_t region_live_run(struct upager_region *r, size_t *at, size_t end)
{
	size_t e = region_live_end(r, at);

	if (*at >= end) {
		*at = end;
		return end;
	}
	return e < end ? e : end;
}

int region_live_writeprotect(struct upager_region *r, size_t at, size_t len,
			     uint64_t mode)
{
	size_t off = at, end;
	int ret = -ENOENT;

	while ((end = region_live_run(r, &off, at + len)) > off) {
		if (!region_owns(r, off, end - off))
			return -ENOENT; /* more holes than the table holds */
		ret = upager_ll_writeprotect(r->uffd, region_base(r) + off,
					     end - off, mode);
		if (ret < 0)
			return ret;
		off = end;
	}
	return ret;
}

/*
 * Unmap @r; with write tracking, its dirty units are written back first
 * (over a store with writeback).  A write-back that fails keeps the
 * region as it is (nothing is lost) unless @force
 * (upager_handler_free()), which reports the loss.
 */
int region_unmap(struct upager_region *r, bool force)
{
	struct upager_handler *h = r->h;
	bool gone = atomic_load(&r->gone);
	int ret = 0;

	if (r->sp->foreign)
		return unmap_foreign(r);
	/* Over a store that takes no writes, the writes are the region's
	 * own, and go with it as anonymous memory's do. */
	if (r->track && !gone && STORE_HAS(r->store->ops, writeback)) {
		ret = region_sync(r, 0, r->len);
		if (ret < 0 && !force)
			return ret;
		if (ret < 0)
			region_report(r, (uintptr_t)region_base(r), ret,
				      "unmap: dirty units lost");
		ret = 0;
	}
	evict_detach(r);

	if (r->flags & UPAGER_MAP_IN_THREAD)
		inthread_remove(r);
	teardown_children(r);
	/*
	 * Faults from now on are left waiting, and the fills in flight end
	 * (a store may still read the region meanwhile: the remote store
	 * copies pages it holds from there).  Then the range is closed and
	 * unregistered: the waiting threads are woken and meet PROT_NONE
	 * (SIGSEGV, or EFAULT in a syscall), never the zero pages an
	 * unregistered range would give them.  (A munmap of the registered
	 * range would send EVENT_UNMAP and wait for a worker to read it,
	 * which may not be running.)
	 */
	atomic_store(&r->closing, true);
	handler_purge_jobs(h, r);
	region_wait_idle(r);
	/*
	 * What the program unmapped is no longer ours, even if it mapped
	 * something there since: the UNMAP events say what (holes).  Their
	 * handling is done under rd_lock, and munmap() returns once the
	 * event is read: taking rd_lock waits for the handling to end.
	 */
	space_hold_events(r->sp);
	gone = atomic_load(&r->gone) || r->holes_lost;
	if (r->holes_lost)
		region_report(r, (uintptr_t)region_base(r), -ENOMEM,
			      "unmap: too many holes unmapped in the region "
			      "to tell what is left; its mapping is leaked");
	for (size_t off = 0; !gone && off < r->len;) {
		size_t end = region_live_end(r, &off);

		if (off == end)
			break;
		mprotect(region_base(r) + off, end - off, PROT_NONE);
		ret = upager_ll_unregister(r->uffd, region_base(r) + off,
					   end - off) ?: ret;
		off = end;
	}
	space_release_events(r->sp);
	space_remove(&h->self, r);
	region_wait_idle(r);
	evict_tell_rest(r);
	/*
	 * A pushing store stops installing before the region goes, and only
	 * once no worker can call its fetch() for @r any more.
	 */
	if (STORE_HAS(r->store->ops, detach))
		r->store->ops->detach(r->store, r);
	region_retire(r);
	roots_link(r, false);
	stats_publish_release(h, r->stats_slot);
	for (size_t off = 0; !gone && off < r->len;) {
		size_t end = region_live_end(r, &off);

		if (off == end)
			break;
		munmap(region_base(r) + off, end - off);
		off = end;
	}
	region_free(r);
	return ret;
}

int upager_unmap(struct upager_region *r)
{
	return region_unmap(r, false);
}

void upager_region_stats(struct upager_region *r, struct upager_stats *s)
{
	stats_read(r->st, s);
}

void *upager_region_addr(struct upager_region *r)
{
	return region_base(r);
}

size_t upager_region_len(struct upager_region *r)
{
	return r->len;
}

/* A filler for an application thread: no job ring, no pump. */
static int app_filler(struct filler *f, size_t len)
{
	memset(f, 0, sizeof(*f));
	return filler_reserve(f, len);
}

/*
 * Wait until unit @u is not in flight, for prefault: the thread filling
 * it settles it soon.  A unit claimed by a read-ahead job still queued
 * might wait for a worker that is stopped: the region's queued jobs are
 * given back once (absent again), and this thread fills those itself.
 * Returns whether the unit is settled (false: fill it).
 */
static bool wait_settled(struct upager_region *r, size_t u, bool *purged)
{
	struct timespec ts = { 0, 20000 };

	while (unit_state(unit_load(&r->state[u])) == UNIT_INFLIGHT) {
		if (!*purged) {
			handler_purge_jobs(r->h, r);
			*purged = true;
			continue;
		}
		nanosleep(&ts, NULL);
	}
	return unit_state(unit_load(&r->state[u])) != UNIT_ABSENT;
}

int upager_region_prefault(struct upager_region *r, size_t off, size_t len)
{
	unsigned int again = 0;
	bool purged = false;
	struct filler f;
	int ret;

	if (off > r->len || len > r->len - off)
		return -ERANGE;
	if (atomic_load(&r->gone))
		return -ENOENT;
	ret = app_filler(&f, r->fill);
	for (size_t u = off / r->fill; !ret && u * r->fill < off + len; u++) {
		unsigned int st = unit_state(unit_load(&r->state[u]));
		struct fault ft = { .addr = (uintptr_t)region_base(r) + u * r->fill,
				    .minor = r->mapped,
				    .t0 = now_ns() };

		if (st == UNIT_ABSENT || st == UNIT_REMOVED)
			ret = region_fault(r, &f, &ft);
		/*
		 * Another thread's fill: wait for it.  A unit given back
		 * absent (an install cut short by an event) is filled again,
		 * a bounded number of times.
		 */
		if (!ret && !wait_settled(r, u, &purged)) {
			if (++again > 1000)
				ret = -EAGAIN;
			u--;
		}
	}
	filler_release(&f);
	return ret;
}

/* What upager_region_install() stages at a time, when it must. */
#define PUSH_STAGE (1u << 20)

/*
 * Claim the absent units of [u, end) that follow one another from @u:
 * how many it got (a run goes in with one ioctl).
 */
static size_t claim_absent(struct upager_region *r, size_t u, size_t end)
{
	size_t n = 0;

	while (u + n < end && unit_claim(&r->state[u + n], UNIT_ABSENT))
		n++;
	return n;
}

long upager_region_install(struct upager_region *r, size_t off,
			   const void *data, size_t len)
{
	struct filler f;
	long total = 0, ret = 0;
	size_t most = 0; /* units per install, when staged */

	if (off % r->fill || len % r->fill)
		return -EINVAL;
	if (off > r->len || len > r->len - off)
		return -ERANGE;
	if (atomic_load(&r->gone))
		return -ENOENT;
	if (r->mapped) /* its pages are the store's file already */
		return -EOPNOTSUPP;
	/* The caller's data goes in through staging where drops need it. */
	if (data && fill_guarded(r, data))
		most = PUSH_STAGE > r->fill ? PUSH_STAGE / r->fill : 1;
	if (app_filler(&f, most ? most * r->fill
			  : r->memtype == UPAGER_MEM_HUGETLB ? r->fill
							     : 0))
		return -ENOMEM;
	for (size_t u = off / r->fill, end = (off + len) / r->fill; u < end;) {
		const char *src = data ? (const char *)data + (u * r->fill - off)
				       : NULL;
		unsigned int st = unit_state(unit_load(&r->state[u]));
		size_t n = claim_absent(r, u,
					most && end - u > most ? u + most : end);

		if (n) {
			size_t ok = n;

			ret = src ? fill_data(r, &f, u, n, src)
				  : fill_zero(r, &f, u, n);
			if (ret < 0) {
				/* What went in before the error stays in. */
				ok = f.partial / r->fill;
				total += (long)(ok * r->fill);
				fill_settle(r, &f, u + ok, n - ok, UNIT_ABSENT);
				fill_wake(r, &f, u + ok, n - ok);
			}
			fill_settle(r, &f, u, ok, UNIT_PRESENT);
		} else if (st == UNIT_INFLIGHT &&
			   r->memtype != UPAGER_MEM_SHMEM) {
			/*
			 * Another thread is filling it: install anyway, the
			 * kernel lets one of the two in, the other sees
			 * -EEXIST, and the filler settles the state.  (On
			 * shmem the data would go into the page cache under
			 * a unit its filler may already have mapped and the
			 * application written: the filler brings the same.)
			 */
			n = 1;
			ret = src ? fill_data(r, &f, u, 1, src)
				  : fill_zero(r, &f, u, 1);
		} else {
			/*
			 * Installed, dropped by the application (it reads by
			 * the REMOVE policy, from the store), unmapped, or
			 * poisoned: left alone.
			 */
			if (unit_resident(st))
				STAT_ADD(r->st, eexist, 1);
			u++;
			continue;
		}
		if (ret < 0)
			break;
		total += ret;
		u += n;
	}
	filler_release(&f);
	if (total)
		STAT_ADD(r->st, pages_filled, (size_t)total / UPAGER_STORE_PAGE);
	/* An error is the caller's to see, even after a part went in. */
	return ret < 0 ? ret : total;
}

bool upager_region_present(struct upager_region *r, size_t off)
{
	return off < r->len &&
	       unit_resident(unit_state(unit_load(&r->state[off / r->fill])));
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The paging engine's internal types.  One file a concern
 * (docs/ARCHITECTURE.md has the map, the locks and the thread contexts):
 *
 *   handler.c   a handler: its uffds, worker threads, the job ring
 *   space.c     an address space: one uffd and the regions it serves
 *               (this process, or a forked child adopted by EVENT_FORK)
 *   events.c    FORK, REMOVE, REMAP, UNMAP: the engine follows the memory
 *   fault.c     one fault: claim, plan, fill, settle
 *   readahead.c the read-ahead policy (pure)
 *   fill.c      fill mechanics: fetch, install, poison, wake
 *   region.c    a region's life: map, unmap, install, prefault
 *   adopt.c     another process's memory: adopt its uffd, map its ranges
 *   inthread.c  the SIGBUS entry of in-thread regions
 *   writes.c    write tracking: write-protect faults, write-back, sync
 *   evict.c     budgets: the eviction policy and the evictor threads
 *   snapshot.c  point-in-time copies of a running region
 *   stats.c     counters and their publication
 */
#ifndef UPAGER_ENGINE_H
#define UPAGER_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "upager/upager.h"
#include "engine/rdlock.h"
#include "engine/readahead.h"
#include "engine/unit.h"

struct upager_region;
struct upager_space;
struct filler;
struct evict;
struct snap;
struct sink;

#define INTHREAD_SLOTS 4

struct upager_region {
	struct upager_handler *h;
	struct upager_space *sp;	/* the address space it lives in */
	struct upager_store *store;
	char *addr;		/* moves with EVENT_REMAP */
	size_t len;
	size_t fill;		/* bytes per unit */
	size_t nunits;
	size_t ra_max;		/* read-ahead limit, in units (1: off) */
	size_t fa;		/* fault-around block, in units (1: off) */
	uint64_t store_pgoff;	/* first store page */
	enum upager_memtype memtype;
	enum upager_fork_policy fork;
	enum upager_remove_policy remove;
	unsigned int flags;
	int uffd;		/* sp->uffd, or the handler's SIGBUS uffd */
	int memfd;		/* shmem: the backing memfd, else -1 */
	/*
	 * A private mapping of the store's own file in memory (its
	 * memfile(), UPAGER_MAP_COPY not asked): faults are MINOR and map
	 * the file's pages with UFFDIO_CONTINUE, nothing is fetched.
	 */
	bool mapped;
	char *alias;		/* shmem: second mapping the store fills */
	unit_t *state;		/* one per unit (shmem: shared with forks) */
	size_t state_len;	/* bytes mapped for it, if owned; else 0 */
	/*
	 * UPAGER_REMOVE_ZERO with units of several pages: a bit per page
	 * the program dropped, so that only those read zeros (the rest of
	 * the unit reads the store, or what is there).  NULL otherwise.
	 */
	_Atomic uint64_t *dropped;
	size_t dropped_len;	/* bytes mapped for it, if owned; else 0 */

	pthread_mutex_t ra_lock;
	struct ra_table ra;

	/* In-thread mode: staging buffers a signal handler can claim. */
	char *slots;
	atomic_uint slot_busy;

	/*
	 * Lifetime.  @users counts the threads inside a fill of this region
	 * (workers, jobs, event handlers); unmap waits for it to drop to
	 * zero after taking the region out of its space's table, so no
	 * lock is held across a store call.  @gone: the memory is no longer
	 * ours to touch (the application unmapped all of it, or its
	 * process exited): nothing is installed, unregistered or unmapped
	 * there any more.
	 */
	atomic_uint users;
	atomic_bool closing; /* upager_unmap() runs: faults wait for it */
	atomic_bool gone;
	atomic_bool listed; /* in its space's table */
	bool guards_reads;  /* counted in its space's guarded_reads */
	/*
	 * What the program unmapped of it (EVENT_UNMAP), as offsets from
	 * its start, sorted and merged: no longer upager's to touch, not
	 * even at upager_unmap().  Changed and read under the space's
	 * rd_lock.  More holes than fit: @holes_lost, and unmap leaves all
	 * of the region's mapping alone.
	 */
	struct {
		size_t lo, hi;
	} holes[16];
	unsigned int nholes;
	bool holes_lost;
	size_t holes_bytes; /* ever added to the holes (a snapshot's check) */
	atomic_bool retired; /* its counters went to the handler's */
	struct upager_region *next_root, *prev_root; /* h->roots (fork_lock) */

	/*
	 * Forks: the region the application mapped is the root; a child's
	 * copy (adopted with EVENT_FORK) points at it, shares its store,
	 * counters and (shmem) backing, and goes when the root goes.
	 */
	struct upager_region *root;
	struct upager_region *children; /* copies in children's spaces */
	bool forks_closed; /* its copies are torn down: no more (fork_lock) */
	struct upager_region *sibling;	/* next in the root's children */
	struct upager_region *next_owned; /* next in its space's owned */

	/* upager_map_params.on_touch (roots only: a copy has none). */
	upager_touch_fn on_touch;
	void *touch_arg;

	/*
	 * A prefetch list (prefetch.c), set once: @pf_units in order, and
	 * for each unit its position + 1 in the list (0: not listed), so a
	 * fault finds where the program is.  @pf_next counts positions
	 * taken, over two passes (position q is entry q % pf_n).  Listed on
	 * the handler's prefetch list (job_lock) while @pf_listed.
	 */
	uint64_t *pf_units;
	size_t pf_n;
	uint32_t *pf_pos; /* published last (release), read without a lock */
	size_t pf_pos_len;
	atomic_size_t pf_next;
	bool pf_listed;
	struct upager_region *pf_link;

	/*
	 * Write tracking (UPAGER_MAP_TRACK_WRITES, writes.c): @written has a
	 * bit per unit written since the last snapshot began, @open a bit per
	 * unit whose protection was lifted since it was last protected (set
	 * after the lift, so a unit without it is protected, or being lifted
	 * under the gate's read side); @ev is the budget's state (evict.c),
	 * @snap the snapshot running (snapshot.c).
	 */
	bool track;
	atomic_bool snapped;	/* a snapshot began once */
	pthread_rwlock_t gate;	/* lifting a protection vs a snapshot's start */
	_Atomic uint64_t *written, *open;
	size_t written_len; /* each of @written and @open */
	struct evict *ev;
	struct snap *_Atomic snap;

	struct upager_stats *st; /* the root's: in the published page, or own */
	struct upager_stats own;
	int stats_slot;
};

/*
 * An address space served through one uffd: this process's (the
 * handler's main uffd), or a forked child's, whose uffd EVENT_FORK
 * handed us.  Its regions are sorted by address; the table's lock is
 * held only to look one up and pin it (users), never across a fill.
 */
struct upager_space {
	struct upager_handler *h;
	int uffd;
	uint64_t id;		 /* epoll's name for it; 0: the handler's own */
	uint64_t features;	 /* the uffd's UFFD_FEATURE_* */
	bool self;		 /* our own memory: mincore() sees it */
	atomic_int pagemap;	 /* another process's /proc/TID/pagemap, or -1 */
	/*
	 * Adopted from another process (upager_space_adopt()): its regions
	 * are the manager's to unmap, and the space is freed only once the
	 * manager released it.  Its exit shows on @pidfd (-1: pid unknown).
	 */
	bool foreign;
	atomic_bool released;
	int pidfd;
	pid_t pid;
	upager_space_exit_fn on_exit;
	void *exit_arg;
	struct upager_space *next;	 /* in the handler's list, or its graveyard */

	/*
	 * Held across a read of the uffd and the handling of the events in
	 * it: the kernel queues an mremap's UNMAP only once its REMAP was
	 * read, and the two must be handled in that order, so a second
	 * worker may not read on while the first still handles the REMAP.
	 */
	pthread_mutex_t read_lock;
	/*
	 * Events against the installs that must not overtake them (rdlock.h;
	 * fill.c, install_guarded()): taken exclusive, under read_lock, to
	 * handle events, and shared by installs.  A read of the uffd takes it
	 * exclusive before the read(2) only while @guarded_reads: the program
	 * zaps what a REMOVE drops as soon as the event is read, so an
	 * install that overlaps that read may land after the zap.  Only
	 * regions whose dropped pages must not come back as the store's data
	 * count (space_guards_reads()); for the others a read of faults
	 * alone waits for no install.
	 */
	struct rdlock rd_lock;
	atomic_uint guarded_reads;
	pthread_rwlock_t lock;	 /* the table */
	struct upager_region **regions;
	size_t nregions, cap;
	struct upager_region *owned; /* its regions, if not self's (fork_lock) */

	atomic_bool dead;	 /* the process exited: ESRCH */
	atomic_bool dropped;	 /* being taken out of the handler's list */
	bool unlisted;		 /* out of it, and of the epoll sets
				    (spaces_lock) */
	bool buried;		 /* in its graveyard (spaces_lock) */
	atomic_uint users;	 /* workers holding it between two reads */
	atomic_ulong drains;	 /* reads that emptied its queue */
	/*
	 * UNMAP and REMAP events handled (under rd_lock): a reader of a
	 * region's memory without the lock (write-back's peek) knows the
	 * memory it read was the region's if this did not change and no
	 * event is pending after it.
	 */
	atomic_uint moved;
};

/* Units claimed by read-ahead or fault-around, for any worker to fill. */
struct ra_job {
	struct upager_region *r;
	size_t u, n;
};

#define RA_JOBS 256
#define STRAYS 8

struct upager_handler {
	struct upager_space self;   /* this process: the main uffd */
	int sig_uffd;	     /* SIGBUS-mode uffd, -1 until an in-thread region */
	int stopfd;	     /* eventfd: stop workers and run() */
	int workfd;	     /* eventfd: read-ahead jobs are queued */
	int timerfd;	     /* the sweep of adopted children */
	char *probe;	     /* a page children do not inherit (DONTFORK) */
	uint64_t features;   /* of the main uffd */
	unsigned int nthreads;
	bool pin;	     /* upager_handler_params.pin_workers */
	unsigned int batch;
	uint64_t poll_ns;    /* a worker's look for work before it sleeps */
	uint32_t fault_wake; /* a uffd's epoll events: EPOLLEXCLUSIVE or not */
	upager_error_fn on_error;
	void *error_arg;

	/*
	 * Adopted children's spaces (self is not on the list), and the
	 * dropped ones waiting until no worker holds them.
	 */
	pthread_rwlock_t spaces_lock;
	struct upager_space *children;
	struct upager_space *graveyard;
	uint64_t next_id;
	bool sweep_armed;	     /* timerfd ticking (spaces_lock) */
	pthread_mutex_t fork_lock; /* roots, their children, spaces' owned */
	struct upager_region *roots; /* the regions the application mapped */

	/* Unmapped regions' counters and stray faults: in the published
	 * page, or retired_own. */
	struct upager_stats *retired;
	struct upager_stats retired_own;

	pthread_mutex_t run_lock; /* start/stop/run, sig_uffd, epoll sets */
	pthread_cond_t run_cond;
	pthread_t *threads;
	unsigned int running;	  /* workers started */
	unsigned int runners;	  /* threads inside upager_handler_run() */
	int eps[128];		  /* every serving thread's epoll set */
	unsigned int neps;
	atomic_bool stopping;

	/*
	 * Seats: a worker about to wait in a slow store (one without
	 * UPAGER_STORE_CHEAP) gives up its seat; when no seated server is
	 * left, a spare worker takes the seat, so a store that sleeps delays
	 * only its own region.  Parked spares wait in @park_ep, and only a
	 * fault that comes while the seats are empty wakes one (@listen_ep,
	 * handler.c: spare_listen()).  Spares step aside once the seats are
	 * full again, and wait a while to be called back before they leave:
	 * a store that sleeps on every miss would otherwise cost a thread's
	 * creation per miss.
	 */
	atomic_int seated;	  /* servers not in a slow store, not parked */
	atomic_uint spares;	  /* spare workers alive */
	unsigned int spare_max;
	unsigned int parked;	  /* spares parked in park_ep (run_lock) */
	int park_ep;		  /* epoll: stopfd, and listen_ep when armed */
	int listen_ep;		  /* epoll: every space's uffd */
	uint64_t vacancies;	  /* times the seats emptied (run_lock) */

	pthread_mutex_t idle_lock; /* region_wait_idle() */
	pthread_cond_t idle_cond;
	atomic_uint idle_waiters;

	pthread_mutex_t job_lock; /* the read-ahead job ring, prefetch list */
	struct ra_job jobs[RA_JOBS];
	unsigned int job_head;
	atomic_uint njobs;
	/* Regions with a prefetch list left, taken in turn (job_lock). */
	struct upager_region *pf_head, *pf_tail;
	atomic_uint npf;

	/* Faults at addresses in no region (see handler.c stray()). */
	pthread_mutex_t stray_lock;
	struct {
		struct upager_space *sp;
		uint64_t page;
		uint64_t drains; /* the space's when first seen */
		uint64_t first, last; /* ns */
	} strays[STRAYS];
	unsigned int stray_next;

	/*
	 * Write tracking: /proc/self/mem, read to copy a unit without
	 * faulting on a page dropped meanwhile (a read there of a missing
	 * page fails with EIO instead of waiting for the uffd), and zeros to
	 * install write-protected (ZEROPAGE has no WP mode).  Set up with
	 * the first tracked region (run_lock).
	 */
	int self_mem;
	char *zeros;

	/*
	 * Evictors (evict.c): threads of the handler's that keep regions
	 * with a budget under it, moving pages out through @evict_uffd (no
	 * events: a sink registered there only).  @ev_lock guards the list
	 * of such regions, the threads and their wake-ups, and how many of
	 * them are inside a region (@ev_busy).  They leave the regions alone
	 * while @ev_paused: from the handler's creation to start() or run(),
	 * and from stop() on (evict_pause()).
	 */
	pthread_mutex_t ev_lock;
	pthread_cond_t ev_cond;
	struct evict *ev_list;
	pthread_t ev_threads[16];
	unsigned int nev, ev_max, ev_busy;
	bool ev_stop;
	atomic_bool ev_paused;
	int evict_uffd;

	struct stats_page *pub; /* published statistics, or NULL */
	int pub_fd;		/* its file, locked while published (flock) */
	char pub_path[64];
};

/* A message read but left for later (see filler.pump). */
struct deferred {
	struct upager_space *sp;
	struct uffd_msg msg;
};

#define DEFERRED_MAX 64

/* A filler's scratch space: a worker's, or a slot of in-thread mode. */
struct filler {
	char *buf;
	size_t cap;
	/* Ranges to wake after a batch installed with DONTWAKE. */
	struct {
		char *addr;
		size_t len;
		int uffd;
	} wake[64];
	unsigned int nwake;
	bool dontwake;
	size_t partial; /* bytes a failed install put in before its error */
	/*
	 * A worker's, set by the handler; NULL elsewhere (in-thread, an
	 * application thread in install or prefault).  queue() hands
	 * claimed units to the job ring (false when it is full); pump()
	 * reads the events that keep an install waiting (-EAGAIN while
	 * the kernel holds mmap_changing), keeping the faults it reads on
	 * @deferred for the worker's loop; its return is false when
	 * nothing can come (the handler stops).
	 */
	struct upager_handler *h;
	bool (*queue)(struct filler *f, struct upager_region *r, size_t u,
		      size_t n);
	bool (*pump)(struct filler *f, struct upager_space *sp);
	struct deferred deferred[DEFERRED_MAX];
	unsigned int ndeferred;
	struct sink *sink; /* evict.c: where it moves pages it evicts */
};

/*
 * Where the region is now: EVENT_REMAP moves it (space_move(), under its
 * table's write lock) while fills of it may be running.
 */
static inline char *region_base(const struct upager_region *r)
{
	return __atomic_load_n(&r->addr, __ATOMIC_ACQUIRE);
}

static inline size_t memtype_page(enum upager_memtype t)
{
	return t == UPAGER_MEM_HUGETLB ? (2ul << 20) : 4096;
}

/* fault.c */
struct fault {
	uint64_t addr;
	bool minor;
	bool wp;	/* a write to a write-protected page */
	pid_t tid; /* the faulting thread, 0 when unknown */
	uint64_t t0;
};
int region_fault(struct upager_region *r, struct filler *f,
		 const struct fault *ft);
size_t region_job(struct upager_region *r, struct filler *f, size_t u,
		  size_t n);

/* fill.c */
int filler_reserve(struct filler *f, size_t len);
void filler_release(struct filler *f);
void filler_flush(struct filler *f);
void fill_wake(struct upager_region *r, struct filler *f, size_t u,
	       size_t n);
bool fill_mm_wait(struct upager_region *r, struct filler *f,
		  unsigned int *tries);
long fill_units(struct upager_region *r, struct filler *f, size_t u,
		size_t *n, unsigned int from);
long fill_zero(struct upager_region *r, struct filler *f, size_t u,
	       size_t n);
long fill_data(struct upager_region *r, struct filler *f, size_t u, size_t n,
	       const char *src);
/* Must data @src go in through the filler's staging (see fill.c)? */
bool fill_guarded(const struct upager_region *r, const char *src);
int region_writeprotect(struct upager_region *r, size_t at, size_t len,
			uint64_t mode);
int fill_map_cached(struct upager_region *r, struct filler *f, size_t u,
		    size_t n);
void fill_poison(struct upager_region *r, struct filler *f, size_t u,
		 uint64_t addr, int err);
void fill_poison_absent(struct upager_region *r);
void fill_poison_range(int uffd, char *addr, size_t len, size_t page);
int fill_settle(struct upager_region *r, struct filler *f, size_t u,
		size_t n, unsigned int to);
void region_report(struct upager_region *r, uint64_t addr, int err,
		   const char *what);

/* space.c */
int space_init(struct upager_space *sp, struct upager_handler *h, int uffd,
	       bool self);
void space_destroy(struct upager_space *sp);
void space_hold_events(struct upager_space *sp);
void space_release_events(struct upager_space *sp);
struct upager_region *space_get(struct upager_space *sp, uint64_t addr);
size_t space_pin(struct upager_space *sp, uint64_t *cursor, uint64_t end,
		 struct upager_region **out, size_t max);

#define PIN_STEP 16
void region_put(struct upager_region *r);
int space_add(struct upager_space *sp, struct upager_region *r);
void space_remove(struct upager_space *sp, struct upager_region *r);
void space_move(struct upager_space *sp, struct upager_region *r, char *to);
int space_resident(struct upager_space *sp, const char *addr, size_t len,
		   pid_t tid);

/* events.c */
void event_fork(struct upager_space *sp, int child_uffd);
void event_remove(struct upager_space *sp, uint64_t start, uint64_t end);
void event_unmap(struct upager_space *sp, uint64_t start, uint64_t end);
void event_remap(struct upager_space *sp, uint64_t from, uint64_t to, uint64_t len);
void space_exited(struct upager_space *sp);

/* region.c */
struct upager_region *region_alloc(struct upager_handler *h);
int region_check_params(struct upager_store *s, size_t len,
			struct upager_map_params *p, uint64_t have);
void region_setup(struct upager_region *r, struct upager_store *s,
		  const struct upager_map_params *p);
void *region_lazy_alloc(size_t len);
int region_state_alloc(struct upager_region *r);
int region_unmap(struct upager_region *r, bool force);
size_t region_live_end(struct upager_region *r, size_t *off);
bool region_owns(struct upager_region *r, size_t at, size_t len);
size_t region_live_run(struct upager_region *r, size_t *at, size_t end);
/*
 * Write-protect (or lift, by @mode) what of [at, at+len) (offsets) is
 * still the region's, run by run between the holes the program unmapped.
 * 0, -ENOENT (none of it is, or the holes outnumber the table), or the
 * ioctl's error.  Caller holds the space's rd_lock.
 */
int region_live_writeprotect(struct upager_region *r, size_t at, size_t len,
			     uint64_t mode);
bool region_dropped(struct upager_region *r, size_t page);
void region_drop(struct upager_region *r, size_t lo, size_t hi);
void region_undrop(struct upager_region *r, size_t lo, size_t hi);
void region_wait_idle(struct upager_region *r);
void region_free(struct upager_region *r);
void region_retire(struct upager_region *r);

/* writes.c */
#define ZEROS (256u << 10)
int writes_setup(struct upager_region *r);
void writes_free(struct upager_region *r);
int writes_fault(struct upager_region *r, struct filler *f,
		 const struct fault *ft);
int unit_peek(struct upager_region *r, size_t u, char *buf);
/*
 * unit_peek() of units [@u, @u + @n) (held INFLIGHT, protected), checked
 * afterwards with one probe: 0, -ENOENT (the program unmapped one of
 * them meanwhile: what was read is not the region's; with @part, all of
 * them: write-back writes what is left of a unit unmapped in part),
 * -EFAULT (@n > 1, of an anonymous region only: a page is not there;
 * read them one by one), or -errno (-EAGAIN: an event stayed unread).
 */
int peek_for_store(struct upager_region *r, struct filler *f, size_t u,
		   size_t n, char *buf, bool part);
/*
 * Write units [@u, @u + @n), read into @buf, to @dst (at the region's
 * store offsets) where they are still the region's: all of them, or the
 * runs munmap()s of parts of them left; @dst's pages under a hole keep
 * their data.  Holes only grow: a page unmapped since it was read is
 * not written.  The pages written, or the first -errno of @dst.
 */
long write_live(struct upager_region *r, struct upager_store *dst, size_t u,
		size_t n, const char *buf);
int unit_protect(struct upager_region *r, struct filler *f, size_t u,
		 bool on);
/* Bytes of room unit_write_back() needs. */
size_t unit_wb_room(const struct upager_region *r);
/*
 * Write dirty unit @u (held INFLIGHT) back; @going: it is evicted next.
 * 0 (clean now), 1 (written, but not clean: a page the program dropped
 * may go yet, see marks_written(); only when not @going) or -errno.
 */
int unit_write_back(struct upager_region *r, struct filler *f, size_t u,
		    char *buf, bool going);
int region_sync(struct upager_region *r, size_t off, size_t len);

/* evict.c */
int evict_attach(struct upager_region *r, const struct upager_map_params *p);
void evict_detach(struct upager_region *r);
void evict_tell_rest(struct upager_region *r);
void evict_filled(struct upager_region *r, size_t u, size_t n);
void evict_dropped(struct upager_region *r, size_t u, size_t n);
void evict_free(struct upager_region *r);
void evict_help(struct upager_region *r, struct filler *f);
/*
 * Of a REMOVE of [@start, @end) read for @r: the run from @start on that
 * is, or is not (*@own), an evictor's own drop (evict.c drop_pages()):
 * returns where the run ends.  Any thread that reads events.
 */
uint64_t evict_own_run(struct upager_region *r, uint64_t start, uint64_t end,
		       bool *own);
void evict_sink_free(struct sink *sk);
void evict_stop(struct upager_handler *h);
void evict_pause(struct upager_handler *h);
void evict_resume(struct upager_handler *h);

/* snapshot.c */
void snap_before_write(struct upager_region *r, struct filler *f, size_t u);

/* prefetch.c */
bool prefetch_step(struct upager_region *r, struct filler *f);
void prefetch_jump(struct upager_region *r, size_t u);
void prefetch_free(struct upager_region *r);

/* handler.c */
int handler_sig_uffd(struct upager_handler *h);
void handler_prefetch(struct upager_handler *h, struct upager_region *r);
int handler_adopt(struct upager_handler *h, struct upager_space *sp);
void handler_drop(struct upager_handler *h, struct upager_space *sp);
void handler_purge_jobs(struct upager_handler *h, struct upager_region *r);
/*
 * A fault waits on unit @u of @r: if a job still in the ring claimed it,
 * take that job off and fill it here (true).  Only the regular workers
 * serve the ring, and they may all be in a slow store's fetch.
 */
bool handler_run_job_of(struct upager_handler *h, struct filler *f,
			struct upager_region *r, size_t u);
void handler_seat(struct upager_handler *h, bool leave);

/* inthread.c */
int inthread_add(struct upager_region *r);
void inthread_remove(struct upager_region *r);

/* stats.c */
#define STAT_ADD(st, field, n) \
	__atomic_fetch_add(&(st)->field, (n), __ATOMIC_RELAXED)
void stats_latency(struct upager_stats *st, uint64_t ns);
void stats_add(struct upager_stats *dst, const struct upager_stats *src);
void stats_read(const struct upager_stats *src, struct upager_stats *dst);
int stats_publish_open(struct upager_handler *h, const char *name);
void stats_publish_close(struct upager_handler *h);
struct upager_stats *stats_publish_region(struct upager_handler *h,
					  struct upager_region *r, int *slot);
void stats_publish_release(struct upager_handler *h, int slot);
uint64_t now_ns(void);

#endif

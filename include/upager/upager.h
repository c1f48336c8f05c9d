/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * upager high-level API: regions of memory filled on first touch from page
 * stores, served by fault handlers.
 *
 *   struct upager_handler *h = upager_handler_new(NULL, &err);
 *   struct upager_store *s = upager_store_open("file:/data/img", &err);
 *   struct upager_region *r;
 *   char *p = upager_map(h, s, len, NULL, &r, &err);
 *   upager_handler_start(h);      // worker threads; or upager_handler_run()
 *   ... use p[0..len) ...
 *   upager_unmap(r); upager_handler_free(h); upager_store_close(s);
 *
 * A handler owns one userfaultfd (two when it serves in-thread regions:
 * the SIGBUS feature is per descriptor) and its worker threads.  Any
 * number of handlers, regions and stores coexist in one process without
 * knowing of each other: a library using upager never collides with the
 * application using it too.  The only process-wide state is the SIGBUS
 * handler of in-thread mode, which chains to the previous handler for
 * addresses that are not an upager region's.
 *
 * Functions returning int return 0 or -errno; those returning a pointer
 * store -errno in *err (when err is not NULL) and return NULL.
 */
#ifndef UPAGER_H
#define UPAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <upager/ll.h>
#include <upager/store.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

struct upager_handler;
struct upager_region;

/* ---- statistics -------------------------------------------------------- */

/* Latency buckets: bucket i counts service times in [2^(i-1), 2^i) µs,
 * bucket 0 those under 1 µs; the last bucket takes everything longer. */
#define UPAGER_LAT_BUCKETS 24

struct upager_stats {
	uint64_t faults;	 /* PAGEFAULT events (and in-thread SIGBUSes) */
	uint64_t faults_missing; /* of which MISSING */
	uint64_t faults_minor;	 /* of which MINOR (shmem page cache hit) */
	uint64_t faults_wp;	 /* of which write-protect */
	uint64_t faults_inthread; /* resolved in the faulting thread */
	uint64_t faults_dup;	 /* fault on a unit another thread was filling */
	uint64_t faults_stray;	 /* fault on an address in no region */
	uint64_t pages_filled;	 /* 4 KiB pages installed (incl. zero pages) */
	uint64_t bytes_fetched;	 /* bytes read from the store */
	uint64_t zero_pages;	 /* 4 KiB pages installed with ZEROPAGE */
	uint64_t ra_pages;	 /* 4 KiB pages installed by read-ahead */
	uint64_t ra_used;	 /* read-ahead pages the access stream reached */
	uint64_t ra_wasted;	 /* read-ahead pages a broken stream left */
	uint64_t eexist;	 /* installs that found the page present */
	uint64_t eagain;	 /* installs cut short while the map changed */
	uint64_t store_errors;	 /* failed fetches (the fault got SIGBUS) */
	/* Service time of each fault served: not faults_dup (another's fill
	 * wakes them), nor stale ones on poisoned or unmapped units. */
	uint64_t lat_hist[UPAGER_LAT_BUCKETS];
	/*
	 * A MISSING fault on a unit already installed and still resident: a
	 * second thread's message for a page the first one's fill brought
	 * in.  Woken without fetching.
	 */
	uint64_t faults_spurious;
	uint64_t pages_removed;	 /* 4 KiB pages dropped (EVENT_REMOVE) */
	uint64_t forks;		 /* child copies adopted (EVENT_FORK) */
	uint64_t remaps;	 /* moves followed (EVENT_REMAP) */
	uint64_t pages_unmapped; /* 4 KiB pages the application unmapped */
	/* 4 KiB pages installed from a prefetch list (upager_region_prefetch()) */
	uint64_t prefetch_pages;
	/* Write tracking (UPAGER_MAP_TRACK_WRITES) and budgets: */
	uint64_t pages_dirtied;	 /* first writes seen (units marked dirty),
				    in 4 KiB pages */
	uint64_t pages_evicted;	 /* 4 KiB pages evicted to keep the budget */
	uint64_t pages_written;	 /* 4 KiB pages written back to the store */
	uint64_t writeback_errors; /* write-backs that failed (reported) */
	uint64_t snapshot_pages; /* 4 KiB pages saved by snapshots */
	uint64_t reserved[5];	 /* zero; room to grow without a new size */
};
/* Percentile @p (0..100) of a latency histogram, in µs (bucket bound). */
double upager_stats_percentile(const struct upager_stats *s, double p);

/* ---- handlers ---------------------------------------------------------- */

/* Called for errors that have no caller to return to (a fetch that failed
 * inside a worker, a fault outside every region).  May be called from any
 * worker thread, or from a SIGBUS handler for in-thread regions (so it
 * must then be async-signal-safe, as the default one is).  @r is NULL for
 * a stray fault. */
typedef void (*upager_error_fn)(void *arg, struct upager_region *r,
				uint64_t addr, int err, const char *what);

/*
 * Which of a handler's idle workers a fault wakes.  Each worker waits in
 * an epoll set of its own that holds the uffd.
 */
enum upager_wake {
	/*
	 * Every idle one: the first to run reads the fault, the others find
	 * the queue empty and wait again.  The first is most often the one
	 * the scheduler can run on the CPU the faulting thread has just left
	 * idle, a wake-up that crosses no CPU, where a wake-up of an idle
	 * CPU is dear (a VM's vCPU asleep in its host: ~25 µs each way on
	 * the 2-vCPU KVM guest of docs/BENCHMARKS.md, "Which worker a fault
	 * wakes", where this made a 4 KiB fault's p50 4.6 µs against 60 µs
	 * with ONE, and its CPU time lower too).  The price: the wake-ups of
	 * the others, on CPUs that were idle.
	 */
	UPAGER_WAKE_ALL = 0,
	/*
	 * One (EPOLLEXCLUSIVE): no wake-up wasted, but the one woken is the
	 * first idle worker, wherever it last ran.
	 */
	UPAGER_WAKE_ONE,
};

/*
 * Parameter structs (this one, upager_map_params) start with their size:
 * set it to sizeof the struct as your program was built.  A library newer
 * than the program takes the defaults for fields the program's struct
 * lacks; an older library refuses (-E2BIG) a struct whose fields it does
 * not know unless they are zero; a size below 4 is -EINVAL.
 */
struct upager_handler_params {
	uint32_t size;	      /* sizeof(struct upager_handler_params) */
	unsigned int threads; /* workers for upager_handler_start(); 0: one
				 per online CPU, at most 4 */
	unsigned int batch;   /* messages per read(2); 0: 32 */
	upager_error_fn on_error; /* NULL: print one line to stderr */
	void *error_arg;
	/*
	 * Publish live statistics in a shared-memory file
	 * /dev/shm/upager-PID-ID for `upager stat` (name below, or NULL).
	 * The file is readable by its owner only (it holds addresses).
	 */
	const char *stats_name;
	/*
	 * Spare workers the handler may start while workers wait in slow
	 * stores (stores without UPAGER_STORE_CHEAP), so that a store that
	 * sleeps delays only its own region.  A spare wakes only for a
	 * fault that comes while every worker is in such a store, and
	 * exits after a second in which none went in while none is in.
	 * 0: 64; -1: none.
	 */
	int spare_workers;
	/*
	 * Microseconds a worker keeps looking for the next fault (epoll
	 * without sleeping) after it served one, before it sleeps: the
	 * wake-up of a sleeping worker is then saved while faults keep
	 * coming, at the price of a CPU busy for that long after each.
	 * Spares never poll.  0: sleep at once (the default); at most
	 * 10000.
	 */
	unsigned int poll_us;
	/*
	 * Evictor threads for regions with a budget (upager_map_params):
	 * started with the first such region; they evict while the handler
	 * is served (from start() or run() to stop(), which waits for an
	 * eviction in progress).  0: 1; at most 16.
	 */
	unsigned int evictors;
	enum upager_wake wake; /* which idle workers a fault wakes; 0: all */
	/*
	 * Nonzero: upager_handler_start() pins each worker to one CPU, in
	 * turn over the CPUs the calling thread may run on, so that with a
	 * worker per CPU (the default count, up to 4) every CPU has one to
	 * wake at a fault there.  It lowers the tail of a fault's latency
	 * on an idle machine (docs/BENCHMARKS.md, "Which worker a fault
	 * wakes"); the price is that a worker whose CPU is busy waits for
	 * it while another CPU may be idle.  Spares are not pinned.  0: none.
	 */
	unsigned int pin_workers;
};

/*
 * A new handler with its uffd.  Features are probed and used when the
 * kernel has them: POISON (a failed fetch becomes SIGBUS in the faulting
 * thread), EVENT_REMOVE/REMAP/UNMAP (the engine follows MADV_DONTNEED,
 * mremap and munmap), EVENT_FORK (a forked child's copy of a region is
 * served too; needs CAP_SYS_PTRACE, without it regions are not inherited),
 * THREAD_ID.  Because of the events, a thread that calls madvise(), mremap()
 * or munmap() on a region, or fork(), waits until a worker (or run()) has
 * read the event: serve the handler while the program does those.  @p may
 * be NULL for defaults.  NULL and *err = -errno on failure (those of
 * upager_ll_open()/upager_ll_api(), -EINVAL/-E2BIG for @p, -ENOMEM).
 */
struct upager_handler *upager_handler_new(const struct upager_handler_params *p,
					  int *err);
/* Start the worker threads.  0, -EALREADY (running), -errno of
 * pthread_create. */
int upager_handler_start(struct upager_handler *h);
/*
 * Serve faults in the calling thread until upager_handler_stop().  Same
 * contract as the workers of upager_handler_start() (one more server).
 * Returns 0 when stopped, -errno on a fatal uffd error.
 */
int upager_handler_run(struct upager_handler *h);
/*
 * Ask every worker and run() to return and join the workers.  Faults
 * still waiting stay blocked until a later start()/run() or until their
 * region is unmapped.  Any thread but a worker may call it.  0 or -errno.
 */
int upager_handler_stop(struct upager_handler *h);
/* Stop, unmap every region left, close the uffds, free. */
void upager_handler_free(struct upager_handler *h);
/* Sum of the statistics of all regions, past and present. */
void upager_handler_stats(struct upager_handler *h, struct upager_stats *s);
/* The handler's main uffd (for poll loops of one's own; do not close). */
int upager_handler_fd(struct upager_handler *h);

/* ---- regions ----------------------------------------------------------- */

enum upager_memtype {
	UPAGER_MEM_ANON = 0, /* private anonymous: COPY / ZEROPAGE / MOVE */
	UPAGER_MEM_SHMEM,    /* memfd: the store fills the page cache through a
				second mapping, faults resolve with CONTINUE */
	UPAGER_MEM_HUGETLB,  /* private 2 MiB hugetlb pages: COPY */
};

/*
 * What a forked child sees of a region.  A child's copy of memory the
 * handler serves would otherwise be ordinary memory in the child, reading
 * zeros where the parent had not yet filled it.
 */
enum upager_fork_policy {
	/* FOLLOW when the handler has EVENT_FORK, else DONTFORK. */
	UPAGER_FORK_AUTO = 0,
	/*
	 * The handler adopts the child's uffd (UFFD_FEATURE_EVENT_FORK) and
	 * serves its copy from the same store: the child reads the parent's
	 * data as of the fork for the pages the parent had, the store's for
	 * the rest, two and more levels deep.  The copy is served while the
	 * parent's region is mapped: upager_unmap() of it (and
	 * upager_handler_free()) poisons what children have not yet filled
	 * (SIGBUS there, never zeros).  A parent that exits without either
	 * leaves its children's unfilled pages to the kernel, which makes
	 * them zero: keep the parent alive while its children use the
	 * region.  -EOPNOTSUPP at map without EVENT_FORK (CAP_SYS_PTRACE).
	 */
	UPAGER_FORK_FOLLOW,
	/* MADV_DONTFORK: the child has no such mapping (SIGSEGV there). */
	UPAGER_FORK_DONTFORK,
};

/* What an access reads after MADV_DONTNEED (or MADV_REMOVE, MADV_FREE). */
enum upager_remove_policy {
	/*
	 * The store's data again, as a private mapping of a file reads the
	 * file after MADV_DONTNEED: the next access fetches the unit anew
	 * (only the pages dropped are installed; the others keep what was
	 * written there).  shmem regions are shared mappings: MADV_DONTNEED
	 * keeps their data; MADV_REMOVE drops it, and the store's comes back.
	 */
	UPAGER_REMOVE_REFETCH = 0,
	/*
	 * Zeros, as anonymous memory reads after MADV_DONTNEED (a balloon's
	 * semantics: what the program gave back comes back empty), also
	 * when the unit's fill was in flight as madvise() ran.  Such a
	 * region's installs exclude the reading of its events for their
	 * duration (a shared lock among workers), so that none lands after
	 * a zap whose REMOVE was read.
	 */
	UPAGER_REMOVE_ZERO,
};

/*
 * A fault came on the unit of @r at offset @off, never filled before
 * (upager_map_params.on_touch): called once per unit, from the worker
 * that serves the fault, before it fills the unit (a thread's faults are
 * told in the order it took them, whichever workers serve them; a fill
 * that then fails is SIGBUS as always).  Not called for units filled by
 * read-ahead, fault-around, prefetch, upager_region_install() or
 * upager_region_prefault(), for a unit filled again after the program
 * dropped it, nor in forked children's copies of the region.  Keep it
 * short and lock-free: it runs on the fault path of every worker.
 */
typedef void (*upager_touch_fn)(void *arg, struct upager_region *r,
				size_t off);

/* Region flags. */
/*
 * In-thread mode: the faulting thread gets SIGBUS and resolves its own
 * fault in upager's signal handler, with no switch to a worker.  The
 * store must be UPAGER_STORE_SIGNAL_SAFE or have fetch_signal() (the
 * memcached: store), which the fills then call.  Faults taken in kernel mode
 * (a read(2) or write(2) whose buffer is in the region, futexes...) do
 * not raise SIGBUS: the syscall fails with EFAULT instead, so prefault
 * such buffers with upager_region_prefault() first.  anon and hugetlb
 * only.  Not inherited by fork() (UPAGER_FORK_DONTFORK; FOLLOW is
 * -EINVAL); MADV_DONTNEED is seen at the next access, with no event.  A
 * page whose fetch failed raises SIGBUS once more after on_error: the
 * application's handler (or the default action) gets it.
 */
#define UPAGER_MAP_IN_THREAD (1u << 0)
/* Install anon pages with UFFDIO_MOVE from the staging buffer instead of
 * UFFDIO_COPY (no copy in the kernel; needs UFFD_FEATURE_MOVE). */
#define UPAGER_MAP_MOVE (1u << 1)
/*
 * Copy pages into the region even when the store's pages are a file in
 * memory (the store's memfile(): tmpfs, a memfd).  Without it, an anon
 * region over such a store with the default REMOVE policy and no other
 * flag (write tracking, a budget, in-thread or MOVE copy) maps the file
 * itself, privately: a first touch is a MINOR fault that upager resolves
 * with UFFDIO_CONTINUE (it sees and counts every first touch, with
 * read-ahead and fault-around, fetching nothing: bytes_fetched stays 0),
 * and a write makes the page the region's own, copy-on-write.  Needs
 * UFFD_FEATURE_MINOR_SHMEM.
 */
#define UPAGER_MAP_COPY (1u << 2)
/*
 * Track writes: units go in write-protected (UFFDIO_COPY_MODE_WP,
 * UFFDIO_CONTINUE_MODE_WP), and the first write to a unit is a
 * write-protect fault that marks it dirty before the write goes on (one
 * fault round trip per unit written; docs/WRITES.md has the cost, and
 * why the kernel's asynchronous mode is not used here).  Dirty units are
 * written back to the store by upager_region_sync(), upager_unmap() and
 * eviction (a budget implies this flag).  anon and shmem; needs
 * UFFD_FEATURE_PAGEFAULT_FLAG_WP (shmem: WP_HUGETLBFS_SHMEM).  Not with
 * UPAGER_MAP_IN_THREAD or UPAGER_MAP_MOVE (-EINVAL); not inherited by
 * fork() (UPAGER_FORK_FOLLOW is -EINVAL): a child's writes are not the
 * store's.
 */
#define UPAGER_MAP_TRACK_WRITES (1u << 3)

/*
 * Which resident units a region over its budget evicts.  userfaultfd
 * reports no access to a present page, so the engine judges by faults.
 */
enum upager_evict_policy {
	/*
	 * 2Q: a unit faulted in for the first time waits in a probation
	 * queue and goes first; one faulted in again soon after its
	 * eviction (it is in the history of recent evictions) is hot and
	 * goes to the main queue, which keeps it longer.
	 */
	UPAGER_EVICT_AUTO = 0,
	UPAGER_EVICT_FIFO, /* oldest fill first (UMap's policy) */
};

struct upager_map_params {
	uint32_t size;		  /* sizeof(struct upager_map_params) */
	enum upager_memtype memtype;
	unsigned int flags;	  /* UPAGER_MAP_* */
	size_t fill;		  /* bytes per fill unit: a power of two, at
				     least the page size (4 KiB; 2 MiB for
				     hugetlb); 0: the page size */
	size_t readahead_max;	  /* read-ahead window limit in bytes; 0: 1 MiB,
				     (size_t)-1: off */
	uint64_t store_offset;	  /* byte offset into the store (page aligned) */
	/*
	 * Fault-around: a fault that starts no stream fills its unit, and
	 * the workers then fill the rest of the aligned block of this many
	 * bytes around it in the background (as the kernel maps the page
	 * cache around a file fault).  A region that maps a file in memory
	 * (see UPAGER_MAP_COPY) maps the absent units of the aligned
	 * 64 KiB around the fault (its unit, if larger) with the fault
	 * itself, in one UFFDIO_CONTINUE, before the thread runs on (no
	 * copy: the pages are the file's), and the workers map the rest of
	 * the block; the file's holes are skipped.  A power of two; 0:
	 * 2 MiB for such a region, else 64 KiB over a UPAGER_STORE_CHEAP
	 * store, none otherwise;
	 * (size_t)-1: none, and every first touch is a fault (with
	 * read-ahead off too).  No effect in-thread, with read-ahead off,
	 * or when not larger than the fill unit.
	 */
	size_t fault_around;
	enum upager_fork_policy fork;
	enum upager_remove_policy remove;
	/*
	 * Told each first touch (see upager_touch_fn), e.g. to record a
	 * working set; NULL: none.  Not with UPAGER_MAP_IN_THREAD (-EINVAL):
	 * a signal handler may not call it.  To see every touch, turn
	 * read-ahead and fault-around off: the pages they bring in are
	 * touched without a fault.
	 */
	upager_touch_fn on_touch;
	void *touch_arg;
	/*
	 * Resident budget in bytes (0: none): above @high_water percent of
	 * it, the handler's evictor threads evict units down to @low_water
	 * percent; clean ones are dropped (moved out with UFFDIO_MOVE, no
	 * event; shmem: a hole punched in the memfd), dirty ones written
	 * back first, write-protected meanwhile so that no write is lost
	 * or torn.  An evicted unit reads the store again.  Over a store
	 * without writeback, dirty units stay resident past the budget
	 * (reported once through on_error).  Implies
	 * UPAGER_MAP_TRACK_WRITES; at least 4 fill units; anon needs
	 * UFFD_FEATURE_MOVE.
	 */
	size_t budget;
	unsigned int high_water; /* percent of the budget, 1..100; 0: 90 */
	unsigned int low_water;	 /* percent, below high_water; 0: 70 */
	enum upager_evict_policy evict;
};

/*
 * Map @len bytes (a multiple of the fill unit) whose pages are filled on
 * first touch from @s, served by @h.  The mapping reserves no memory
 * (MAP_NORESERVE; hugetlb reserves its pages at map), so a region may be
 * far larger than memory: it costs one byte of state per unit, allocated
 * as the units are touched.  The region does not own the store: close it
 * after upager_unmap().  Any thread may call this, also while workers run.
 * Returns the address, or NULL with *err = -EINVAL (bad length, fill,
 * flags or policy, in-thread with a store that is not signal-safe),
 * -E2BIG (see the parameter structs), -ERANGE (the region reaches past
 * the store), -EOPNOTSUPP (the kernel or the privileges lack a feature
 * the memory type or UPAGER_FORK_FOLLOW needs), -ENOMEM.
 */
void *upager_map(struct upager_handler *h, struct upager_store *s, size_t len,
		 const struct upager_map_params *p, struct upager_region **out,
		 int *err);
/*
 * Unmap a region: unregisters (waking any waiter: an access racing with
 * unmap is the caller's bug, as with munmap), waits for this region's
 * fills in flight (no other region's), tears down forked children's
 * copies (see UPAGER_FORK_FOLLOW) and releases the memory.  A region the
 * application already unmapped itself (munmap, EVENT_UNMAP) is only
 * freed: its address range is no longer upager's to touch.  With
 * UPAGER_MAP_TRACK_WRITES over a store with writeback, the dirty units
 * are written back first (upager_region_sync()): if that fails, the
 * error is returned and the region stays mapped as it is, nothing lost
 * (upager_handler_free() unmaps it anyway and reports the loss).  Over a
 * store without writeback (zero:), the writes are the region's own and
 * go with it, as anonymous memory's do.  Any thread but a worker.  0 or
 * -errno.
 */
int upager_unmap(struct upager_region *r);
void upager_region_stats(struct upager_region *r, struct upager_stats *s);
/* The region's address: where it lives now (it follows mremap()). */
void *upager_region_addr(struct upager_region *r);
size_t upager_region_len(struct upager_region *r);
/*
 * Fill [off, off+len) of the region now, from the calling thread, e.g.
 * before handing it to a syscall in in-thread mode; units another thread
 * is filling are waited for, so on 0 every unit of the range is present
 * (or was dropped, unmapped or poisoned meanwhile).  Read-ahead jobs of
 * the region still queued are given back and filled here.  Any thread
 * but a worker.  0 or -errno (the store's error; -ERANGE outside the
 * region; -ENOENT when it is gone; -EAGAIN when the memory map kept
 * changing and no worker read its events).
 */
int upager_region_prefault(struct upager_region *r, size_t off, size_t len);
/*
 * Install @len bytes of @data at offset @off of the region, whether or not
 * anything faulted there (a page pushed by a remote source); @data NULL
 * installs zero pages.  @off and @len are multiples of the fill unit.
 * Units already present are left alone (counted as EEXIST races), so a
 * page is never installed twice; threads waiting on the range are woken.
 * Any thread may call it, typically a store's receiver between attach()
 * and detach().  Units the application dropped (MADV_DONTNEED), unmapped
 * or that are poisoned are left alone too.  Returns the bytes newly
 * installed, or -errno when a unit could not be installed (the units
 * before it that went in stay in; upager_region_present() tells which):
 * -EINVAL misaligned, -ERANGE outside the region, -ENOENT/-ESRCH when
 * the region or the process is going away, -EAGAIN when the memory map
 * kept changing and no worker read its events for a second.
 */
long upager_region_install(struct upager_region *r, size_t off,
			   const void *data, size_t len);
/* Is the unit holding offset @off present (installed)? */
bool upager_region_present(struct upager_region *r, size_t off);
/*
 * Fill the units at the @n offsets @offs of the region in the
 * background, in that order (a working set recorded on an earlier run,
 * replayed): the handler's workers take them in small batches when no
 * fault is waiting, and read their uffds between batches, so faults come
 * first.  A fault on a listed unit the list has not reached yet moves
 * the list on past it (the program is there now: the workers go ahead
 * of it); units skipped so are taken in a second pass at the end.  Only
 * units never filled are installed: present, in-flight, dropped
 * (MADV_DONTNEED), unmapped or poisoned ones are passed over, so a
 * prefetch never brings back a page the program gave back.  A fill that
 * fails is given back (the fault that comes there meets the error).
 * Offsets are multiples of the fill unit, in any order, repeats allowed
 * (the first counts); the list is copied.  Once per region.
 * prefetch_pages counts the pages installed.  Any thread but a worker.
 * 0, -EINVAL (misaligned, an in-thread region), -ERANGE (an offset
 * outside the region), -EBUSY (a list was given before), -E2BIG (more
 * than 2^32 - 2 offsets), -ENOMEM.
 */
int upager_region_prefetch(struct upager_region *r, const uint64_t *offs,
			   size_t n);

/*
 * Write back the dirty units of [off, off+len) of a region with
 * UPAGER_MAP_TRACK_WRITES (msync(MS_SYNC)-like): each is write-protected,
 * written to the store and then clean; a write meanwhile waits for its
 * unit, then makes it dirty again.  With UPAGER_REMOVE_ZERO, a unit
 * holding a page the program dropped that still read data (a drop still
 * to land, MADV_FREE's lazy free) stays dirty: the next sync writes what
 * the page reads then.  Units whose write-back fails stay
 * dirty and resident (the error is returned and told to on_error, never
 * dropped).  Any thread but a worker.  0, -EINVAL (no write tracking),
 * -ERANGE (outside the region), -EOPNOTSUPP (the store has no writeback
 * and a unit is dirty), or the store's first error.
 */
int upager_region_sync(struct upager_region *r, size_t off, size_t len);
/* Bytes of the region's units now installed (present or dirty). */
size_t upager_region_resident(struct upager_region *r);
/* Has the unit holding offset @off been written since it was last clean? */
bool upager_region_dirty(struct upager_region *r, size_t off);
/*
 * Fill [off, off+len) (as upager_region_prefault()) and keep it resident:
 * eviction passes it over until upager_unmap() (UMap's
 * umap_fetch_and_pin()).  Pinned units count against the budget.  Any
 * thread but a worker.  0 or the errors of upager_region_prefault().
 */
int upager_region_pin(struct upager_region *r, size_t off, size_t len);

/*
 * Snapshots.  UPAGER_SNAP_INCREMENTAL: only the units written since the
 * previous snapshot of the region began (the first one is whole, and so
 * is the one after a snapshot that failed once it had begun copying).
 */
#define UPAGER_SNAP_INCREMENTAL (1u << 0)

struct upager_snapshot_info {
	uint32_t size;		/* sizeof(struct upager_snapshot_info) */
	uint64_t units;		/* units written to the destination */
	uint64_t units_early;	/* of which saved by a write fault first */
	uint64_t ns;		/* from the protect to the last unit */
	uint64_t protect_ns;	/* the write-protection of the region */
	uint64_t held_ns;	/* of which write faults were held: the
				   last pass, under the region's gate */
};

/*
 * Write a point-in-time copy of a running region with write tracking to
 * @dst (its writeback(), at the same page offsets as the region's store):
 * the region is write-protected while the application goes on, pass
 * after pass over what it wrote meanwhile, and the last, short pass is
 * the instant (write faults wait for it); then it is copied unit by unit
 * while the application goes on; a write to a unit not yet copied waits
 * while that unit is saved (a few units, not the region).  Units never
 * filled, or evicted, are read from the region's store.  What the
 * program unmapped before the instant is left out (@dst keeps its pages
 * there); of a unit it unmapped in part, the pages still mapped are
 * copied.  Returns when every unit is in @dst.  One snapshot of a region at
 * a time.  @info may be NULL.  Any thread but a worker.  0, -EINVAL (no
 * write tracking, flags), -EBUSY (a snapshot runs), -ERANGE (@dst too
 * small), -EOPNOTSUPP (@dst has no writeback), -EAGAIN (the memory map
 * kept changing, e.g. MADV_DONTNEED after MADV_DONTNEED, for a second
 * or more: at the instant, with the writers held, and then nothing was
 * taken and the next snapshot sees every write; or while a unit was
 * read, and then @dst lacks it and the next snapshot is whole; try
 * again), -ENOENT (the program
 * unmapped a unit, or part of one, after the instant, before it was
 * copied: @dst lacks it, the units still mapped are copied, and memory mapped there since
 * is never taken for the region's), or the first error of a store.
 */
int upager_region_snapshot(struct upager_region *r, struct upager_store *dst,
			   unsigned int flags,
			   struct upager_snapshot_info *info);

/* ---- another process's memory ----------------------------------------- */
/*
 * The non-cooperative side of userfaultfd: a process creates a uffd,
 * registers its ranges and hands the descriptor over a unix socket
 * (SCM_RIGHTS); a manager adopts it into one of its handlers as a space
 * and maps regions over those ranges, which the handler's workers then
 * serve from stores as they serve the manager's own, one process among
 * many (the seeds' "same manager process could handle the userfaults of
 * a multitude of different processes"; upagerd).  The engine follows
 * that process's memory-map events as it follows its own (fork: the
 * space's children are adopted too, where the uffd has EVENT_FORK) and
 * notices its exit (a pidfd, -ESRCH from the ioctls).
 */
struct upager_space;

/*
 * The process of @sp is gone: called once, from a worker, after its
 * regions stopped being served.  Release the space afterwards, from a
 * thread of yours: not from here (a worker must not wait for fills).
 */
typedef void (*upager_space_exit_fn)(void *arg, struct upager_space *sp);

struct upager_space_params {
	uint32_t size; /* sizeof(struct upager_space_params) */
	/*
	 * The process (from SO_PEERCRED): its exit is watched with a pidfd
	 * and its page tables read through /proc/PID/pagemap (to tell a
	 * second thread's message for a page from a page the kernel
	 * dropped); 0: unknown (exit seen at the next install, -ESRCH).
	 */
	pid_t pid;
	/* The UFFD_FEATURE_* the process enabled (UFFDIO_API is its). */
	uint64_t features;
	upager_space_exit_fn on_exit; /* may be NULL */
	void *exit_arg;
};

/*
 * Serve @uffd, another process's userfaultfd with its UFFDIO_API done.
 * The handler takes the descriptor (closed by upager_space_release(),
 * also on error) and makes it non-blocking.  Returns the space, or NULL
 * with *err = -EBADF (not a userfaultfd), -EINVAL (not set up with
 * UFFDIO_API, or bad params), -E2BIG (see the parameter structs),
 * -ESRCH (@pid is gone), -ENOMEM.  Any thread but a worker.
 */
struct upager_space *upager_space_adopt(struct upager_handler *h, int uffd,
					const struct upager_space_params *p,
					int *err);
/*
 * A region over [@addr, @addr+@len) of the space's process, a range it
 * registered with UFFDIO_REGISTER_MODE_MISSING, filled from @s as faults
 * come (read-ahead, fault-around, REMOVE policy, statistics: as for
 * upager_map()).  anon (or hugetlb) memory; the memory is the process's,
 * so upager_unmap() of such a region stops serving it (what was never
 * filled is poisoned: SIGBUS there, never zeros) but unmaps nothing.
 * Returns the region, or NULL with *err = -EINVAL (misaligned, empty, past
 * the address space, overflowing, a memory type or flag that needs the
 * memory to be ours: shmem, in-thread, MOVE), -EEXIST (overlaps a region
 * of the space), -ERANGE (reaches past the store), -EOPNOTSUPP
 * (UPAGER_FORK_FOLLOW without EVENT_FORK on the uffd), -ESRCH (the
 * process is gone), -ENOMEM.  Any thread but a worker.
 */
struct upager_region *upager_space_map(struct upager_space *sp,
				       struct upager_store *s, uint64_t addr,
				       size_t len,
				       const struct upager_map_params *p,
				       int *err);
/*
 * Stop serving the space: every region of it is unmapped as by
 * upager_unmap() (poisoned where never filled, while the process lives),
 * then the uffd is closed.  Faults in flight end first.  Any thread but
 * a worker; also after on_exit.  0 or -errno.
 */
int upager_space_release(struct upager_space *sp);
/* The pid given at adopt (0: unknown). */
pid_t upager_space_pid(struct upager_space *sp);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif

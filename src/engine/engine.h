/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The paging engine's internal types: handler, region, fill path.
 * Layering (../docs/DESIGN.md): handler.c owns threads and the region
 * table; region.c owns policy (claim state, read-ahead) and the fill path;
 * inthread.c is the SIGBUS entry; stats.c aggregates and publishes.
 */
#ifndef UPAGER_ENGINE_H
#define UPAGER_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "upager/upager.h"

/* Claim state of one fill unit. */
enum {
	UNIT_ABSENT = 0, /* never filled, or removed */
	UNIT_INFLIGHT,	 /* claimed by one filler; others leave it alone */
	UNIT_PRESENT,	 /* installed */
};

/*
 * One access stream seen by read-ahead.  Once a stream is confirmed, the
 * window after the one being read is filled in the background and its
 * first unit, the marker, is left absent: the stream's fault there says
 * the reader moved on, and starts the next window (the kernel's
 * PG_readahead, with a fault as the only signal userfaultfd gives).
 */
struct ra_stream {
	size_t next;	/* the marker: the unit whose fault continues it */
	size_t ahead;	/* first unit after what the stream has claimed */
	size_t window;	/* units in the last window */
	size_t near;	/* read-ahead units before the marker */
	size_t far;	/* read-ahead units after it */
	uint64_t stamp; /* last use, for replacement */
};

#define RA_STREAMS 4
#define INTHREAD_SLOTS 4

struct upager_region {
	struct upager_handler *h;
	struct upager_store *store;
	char *addr;
	size_t len;
	size_t fill;	       /* bytes per unit */
	size_t nunits;
	size_t ra_max;	       /* read-ahead limit, in units (1: off) */
	size_t fa;	       /* fault-around block, in units (1: off) */
	uint64_t store_pgoff;  /* first store page */
	enum upager_memtype memtype;
	unsigned int flags;
	int uffd;	       /* the handler uffd serving this region */
	int memfd;	       /* shmem: the backing memfd, else -1 */
	char *alias;	       /* shmem: second mapping the store fills */
	_Atomic uint8_t *state; /* one per unit */

	pthread_mutex_t ra_lock;
	struct ra_stream ra[RA_STREAMS];
	uint64_t ra_clock;

	/* In-thread mode: staging buffers a signal handler can claim. */
	char *slots;
	atomic_uint slot_busy;
	atomic_int users; /* signal handlers inside this region */

	struct upager_stats *st; /* in the published page, or &own */
	struct upager_stats own;
	int stats_slot;
};

/* Units claimed by read-ahead, for any worker to fill. */
struct ra_job {
	struct upager_region *r;
	size_t u, n;
};

#define RA_JOBS 256

struct upager_handler {
	int uffd;
	int sig_uffd; /* SIGBUS-mode uffd, -1 until an in-thread region */
	int stopfd;   /* eventfd: stop workers and run() */
	int workfd;   /* eventfd: read-ahead jobs are queued */
	uint64_t features;
	unsigned int nthreads;
	unsigned int batch;
	upager_error_fn on_error;
	void *error_arg;

	pthread_rwlock_t lock; /* region table; held for reading while
				  a worker resolves a batch */
	struct upager_region **regions; /* sorted by address */
	size_t nregions, cap;
	/* Unmapped regions' counters and stray faults: in the published
	 * page, or retired_own. */
	struct upager_stats *retired;
	struct upager_stats retired_own;

	pthread_mutex_t run_lock; /* start/stop/run and sig_uffd */
	pthread_cond_t run_cond;
	pthread_t *threads;
	unsigned int running;	  /* workers started */
	unsigned int runners;	  /* threads inside upager_handler_run() */
	atomic_bool stopping;

	pthread_mutex_t job_lock; /* the read-ahead job ring */
	struct ra_job jobs[RA_JOBS];
	unsigned int job_head;
	atomic_uint njobs;

	struct stats_page *pub; /* published statistics, or NULL */
	char pub_path[64];
};

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
	bool worker; /* a handler's server: may queue read-ahead jobs */
};

/* region.c */
int region_fault(struct upager_region *r, struct filler *f, uint64_t addr,
		 bool minor, uint64_t t0);
void region_job(struct upager_region *r, struct filler *f, size_t u,
		size_t n);
void filler_flush(struct filler *f);
int filler_reserve(struct filler *f, size_t len);
void region_report(struct upager_region *r, uint64_t addr, int err,
		   const char *what);

/* handler.c */
struct upager_region *handler_lookup(struct upager_handler *h, uint64_t addr);
int handler_add_region(struct upager_handler *h, struct upager_region *r);
void handler_remove_region(struct upager_handler *h, struct upager_region *r);
int handler_sig_uffd(struct upager_handler *h);
bool handler_queue(struct upager_handler *h, struct upager_region *r,
		   size_t u, size_t n);

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

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Handler and region lifecycles, and what the engine does when a store
 * fails:
 *
 * unmap_inflight  four threads fault while no worker runs; one worker
 *                 reads the four messages in one batch and fetches from a
 *                 store that takes 50 ms a page; the main thread unmaps
 *                 during the first fetch.  unmap waits for that fetch
 *                 (none runs when it returns) and returns 0; no fetch
 *                 begins after it (the batch's other faults are left
 *                 waiting for unmap).  The threads read the pages with
 *                 write(2)
 *                 into a pipe, so an access that loses the race with
 *                 unmap ends in EFAULT, not a crash: each gets the
 *                 store's page or EFAULT, never zeros (unmap closes the
 *                 range before it unregisters it).  An access racing
 *                 unmap is the caller's bug, the point is that nothing
 *                 breaks.
 * unmap_jobs      a sequential reader's fault on a read-ahead marker
 *                 queues the next window as a job while its own fetch
 *                 waits at a gate; the region is unmapped then: unmap
 *                 waits for the batch, drops the queued job (no fetch
 *                 starts after it returns, and nothing is left to touch
 *                 the freed region: ASan in CI), and the handler serves
 *                 a new region afterwards.
 * stop_jobs       a fault in the middle of a fault-around block queues its
 *                 two runs as two jobs; the first one's fetch waits at the
 *                 gate while the handler stops: the worker ends that job
 *                 and leaves, the other still queued.  The region is
 *                 unmapped while no worker runs: its job goes with it.  A
 *                 new region over another store (where the freed one's
 *                 memory may be reused) and a start: nothing is fetched
 *                 or filled that no fault asked for.
 * prefault_waits  upager_region_prefault() over a region whose units a
 *                 read-ahead job holds: one job's fetch waits at the gate,
 *                 another is queued.  prefault waits for the first (it
 *                 sits blocked until the gate opens) and fills the
 *                 queued one's units itself; when it returns, every page
 *                 is present.  Again with the handler stopped while the
 *                 second job is queued: no worker will run it, prefault
 *                 fills its units and returns.
 * job_error       a thread waits on a page of a read-ahead job (the other
 *                 worker read its fault and found the page claimed) when
 *                 the job's fetch fails: the job gives its pages back and
 *                 wakes it, and its own fault then fills the page (it is
 *                 not the bad one).
 * stop_start      a fault taken while no worker runs waits through a
 *                 stop() and is served by a later start().
 * stop_eagain     a worker's install waits (-EAGAIN) for a REMOVE event
 *                 (a MADV_DONTNEED of another page, whose thread waits
 *                 for a worker to read it) when the handler stops: the
 *                 worker gives up, gives the unit back and wakes the
 *                 faulting thread, whose fault comes again and is served
 *                 after a start().  No spare workers: one would read the
 *                 event.
 * unmap_closed    upager_unmap() unregisters the range before it unmaps
 *                 it, and an access in between would read the kernel's
 *                 zero page: the range is closed first.  The store's
 *                 detach(), called in between, looks: a page filled and
 *                 one never filled both raise SIGSEGV.
 * free_mapped     upager_handler_free() with regions still mapped (one of
 *                 them in-thread) and a thread waiting on a fault: the
 *                 waiter is released, the memory and descriptors are gone.
 * store_error     a fetch failing with -EIO: SIGBUS in the faulting
 *                 thread, on_error with the region, the address and -EIO,
 *                 store_errors 1, and the poisoned page raises SIGBUS
 *                 again without fetching; other pages are fine.  With
 *                 read-ahead, a window that covers the failing page fails
 *                 as a whole, and the faulting page is still delivered
 *                 alone (page 2 failing: the window the faulting worker
 *                 fills itself, retried as its own page; page 20: mostly
 *                 a job's).  On anon, and on shmem with read-ahead.
 * run             upager_handler_run() in a thread serves faults and
 *                 returns 0 after upager_handler_stop().
 * bad_params      -EINVAL for a zero length, a length not a multiple of
 *                 the fill unit, a fill unit that is not a power of two
 *                 or below the page size, a misaligned store offset,
 *                 unknown flags or memory type, in-thread mode with a
 *                 store that is not signal-safe or with shmem, MOVE with
 *                 shmem; -ERANGE for a region reaching past the store.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096

static struct upager_handler *handler(unsigned int threads,
				      upager_error_fn on_error, void *arg)
{
	return t_upager_handler(threads, on_error, arg);
}

static char *map_type(struct upager_handler *h, struct upager_store *s,
		      enum upager_memtype type, size_t len, size_t ra,
		      unsigned int flags, struct upager_region **r)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = ra,
					.flags = flags };
	int err;
	char *p = upager_map(h, s, len, &mp, r, &err);

	CHECK(p, "map: %s", strerror(-err));
	return p;
}

static char *map(struct upager_handler *h, struct upager_store *s,
		 size_t len, size_t ra, unsigned int flags,
		 struct upager_region **r)
{
	return map_type(h, s, UPAGER_MEM_ANON, len, ra, flags, r);
}

/*
 * A call that blocks, made in a thread of its own: call_start(), then
 * call_wait_blocked() returns once it sits blocked (in the kernel, or
 * on a lock), and call_join() gives its return.
 */
struct call {
	int (*fn)(void *arg);
	void *arg;
	pthread_t t;
	_Atomic pid_t tid;
	int ret;
};

static void *call_main(void *arg)
{
	struct call *c = arg;

	atomic_store(&c->tid, gettid());
	c->ret = c->fn(c->arg);
	return NULL;
}

static void call_start(struct call *c, int (*fn)(void *), void *arg)
{
	memset(c, 0, sizeof(*c));
	c->fn = fn;
	c->arg = arg;
	CHECK(pthread_create(&c->t, NULL, call_main, c) == 0,
	      "pthread_create");
}

static void call_wait_blocked(struct call *c)
{
	pid_t tid;

	for (int ms = 0; !(tid = atomic_load(&c->tid)); ms++) {
		CHECK(ms < 5000, "thread never started");
		t_sleep_ms(1);
	}
	t_wait_blocked(tid);
}

static int call_join(struct call *c)
{
	pthread_join(c->t, NULL);
	return c->ret;
}

static int stop_fn(void *h)
{
	return upager_handler_stop(h);
}

/* ---- unmap while a batch is being served ------------------------------ */

static void unmap_inflight(void)
{
	struct upager_handler *h = handler(1, NULL, NULL);
	struct tstore *t = tstore_open(16);
	struct toucher to[4];
	struct upager_region *r;
	struct upager_stats st;
	unsigned int fetched;
	int fd[4][2];
	char *p, buf[PG];

	t->delay_ms = 50;
	p = map(h, &t->s, 16 * PG, (size_t)-1, 0, &r);
	for (int i = 0; i < 4; i++) {
		CHECK(pipe(fd[i]) == 0, "pipe: %s", strerror(errno));
		toucher_start(&to[i], p + (size_t)(3 * i + 1) * PG, fd[i][1]);
	}
	for (int i = 0; i < 4; i++)
		toucher_wait_blocked(&to[i]);
	CHECK_RET(upager_handler_start(h), 0);
	for (int ms = 0; !atomic_load(&t->busy); ms++) {
		CHECK(ms < 5000, "no fetch started");
		t_sleep_ms(1);
	}
	CHECK_RET(upager_unmap(r), 0);
	fetched = atomic_load(&t->fetches);
	CHECK(fetched >= 1 && !atomic_load(&t->busy),
	      "unmap returned with %u fetches begun, %u running", fetched,
	      atomic_load(&t->busy));
	for (int i = 0; i < 4; i++) {
		pthread_join(to[i].t, NULL);
		fprintf(stderr, "unmap_inflight: thread %d: %s\n", i,
			to[i].ret < 0 ? strerror(to[i].err) : "the page");
		if (to[i].ret < 0) {
			CHECK(to[i].err == EFAULT, "write(2): %s",
			      strerror(to[i].err));
		} else {
			CHECK(to[i].ret == PG, "write(2) %zd", to[i].ret);
			CHECK(read(fd[i][0], buf, PG) == PG, "read(2)");
			CHECK(t_verify(buf, PG, (uint64_t)(3 * i + 1)),
			      "thread %d got the wrong page", i);
		}
		close(fd[i][0]);
		close(fd[i][1]);
	}
	CHECK_RET(upager_handler_stop(h), 0);
	CHECK(atomic_load(&t->fetches) == fetched,
	      "%u fetches began after unmap returned",
	      atomic_load(&t->fetches) - fetched);
	upager_handler_stats(h, &st);
	CHECK(st.pages_filled <= fetched && st.store_errors == 0,
	      "%llu pages filled, %llu store errors",
	      (unsigned long long)st.pages_filled,
	      (unsigned long long)st.store_errors);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* ---- unmap with read-ahead jobs queued ---------------------------------- */

/*
 * Read pages 0-6 of a new region: windows 1, 2 and 4, the window after
 * (8-10) queued behind them, page 7 left absent as the marker.  Returns
 * once the worker is done.
 */
static char *stream_to_marker(struct upager_handler *h, struct tstore *t,
			      struct upager_region **r)
{
	char *p = map(h, &t->s, 256 * PG, 0, 0, r);

	CHECK_RET(upager_handler_start(h), 0);
	for (size_t i = 0; i < 7; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
	for (int ms = 0; ms < 5000 && (atomic_load(&t->busy) ||
				       !upager_region_present(*r, 10 * PG));
	     ms++)
		t_sleep_ms(1);
	CHECK(!upager_region_present(*r, 7 * PG), "the marker is present");
	return p;
}

struct unmapper {
	struct upager_region *r;
	pthread_t t;
	atomic_bool done;
	int ret;
};

static void *unmapper_main(void *arg)
{
	struct unmapper *u = arg;

	u->ret = upager_unmap(u->r);
	atomic_store(&u->done, true);
	return NULL;
}

static void unmap_jobs(void)
{
	/*
	 * One server only, no spare: the marker's fault is the worker's,
	 * which the gate holds, and nothing takes the job meanwhile.  (A
	 * spare, which a fault wakes too, served it in 4 runs of 20, and
	 * the worker, idle, ran the job before the unmap.)
	 */
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = 1,
					    .spare_workers = -1 };
	struct upager_handler *h;
	struct tstore *t = tstore_open(256);
	struct unmapper um = { 0 };
	struct toucher to;
	int fd[2], err;
	char *p;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	p = stream_to_marker(h, t, &um.r);

	/*
	 * The marker's fault queues the next window as a job, then fetches
	 * page 7, which waits at the gate: the job stays queued.
	 */
	t->hold_at = atomic_load(&t->fetches) + 1;
	CHECK(pipe(fd) == 0, "pipe: %s", strerror(errno));
	toucher_start(&to, p + 7 * PG, fd[1]);
	tstore_wait_held(t, "the marker's fetch");
	/* unmap waits for the batch holding page 7, then drops the job. */
	CHECK(pthread_create(&um.t, NULL, unmapper_main, &um) == 0,
	      "pthread_create");
	t_sleep_ms(50);
	CHECK(!atomic_load(&um.done), "unmap did not wait for the batch");
	tstore_release(t);
	pthread_join(um.t, NULL);
	CHECK_RET(um.ret, 0);
	pthread_join(to.t, NULL);
	t_sleep_ms(100);
	/* The marker's fetch was the last: the job never ran. */
	CHECK(atomic_load(&t->fetches) == t->hold_at,
	      "%u fetches after the marker's: a queued job outlived its "
	      "region", atomic_load(&t->fetches) - t->hold_at);
	close(fd[0]);
	close(fd[1]);
	/* The handler goes on serving. */
	p = map(h, &t->s, 16 * PG, (size_t)-1, 0, &um.r);
	CHECK(t_verify(p + 5 * PG, PG, 5), "page 5 of a new region");
	CHECK_RET(upager_unmap(um.r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* ---- prefault over units another thread fills --------------------------- */

/*
 * A region of 16 pages over @t with a fault-around block of all 16 and one
 * worker running: page 5 is read, and the first fault-around job's fetch
 * (pages 0-4) waits at the gate, the second job (6-15) queued behind it.
 */
static char *held_job_region(struct upager_handler *h, struct tstore *t,
			     struct upager_region **r)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.fault_around = 16 * PG };
	int err;
	char *p = upager_map(h, &t->s, 16 * PG, &mp, r, &err);

	CHECK(p, "map: %s", strerror(-err));
	/* Fetch 1 is page 5's, 2 the first job's (pages 0-4). */
	t->hold_at = 2;
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(t_verify(p + 5 * PG, PG, 5), "page 5");
	tstore_wait_held(t, "the first job's fetch");
	return p;
}

static int prefault_fn(void *r)
{
	return upager_region_prefault(r, 0, 16 * PG);
}

static void prefault_waits_one(bool stopped)
{
	struct upager_handler *h = handler(1, NULL, NULL);
	struct tstore *t = tstore_open(16);
	struct upager_region *r;
	struct call c;
	char *p = held_job_region(h, t, &r);

	if (stopped) {
		call_start(&c, stop_fn, h);
		call_wait_blocked(&c);
		tstore_release(t);
		CHECK_RET(call_join(&c), 0);
		CHECK_RET(upager_region_prefault(r, 0, 16 * PG), 0);
	} else {
		call_start(&c, prefault_fn, r);
		call_wait_blocked(&c);
		tstore_release(t);
		CHECK_RET(call_join(&c), 0);
	}
	for (size_t i = 0; i < 16; i++)
		CHECK(upager_region_present(r, i * PG),
		      "%s: page %zu not present when prefault returned",
		      stopped ? "stopped" : "running", i);
	for (size_t i = 0; i < 16; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

static void prefault_waits(void)
{
	prefault_waits_one(false);
	prefault_waits_one(true);
}

/* ---- jobs a stop left queued -------------------------------------------- */

static void stop_jobs(void)
{
	struct upager_handler *h = handler(1, NULL, NULL);
	struct tstore *t = tstore_open(16), *t2 = tstore_open(16);
	struct upager_map_params mp = { .size = sizeof(mp),
					.fault_around = 16 * PG };
	struct upager_region *r;
	struct call stop;
	int err;
	char *p;

	held_job_region(h, t, &r);
	call_start(&stop, stop_fn, h);
	call_wait_blocked(&stop);
	tstore_release(t);
	CHECK_RET(call_join(&stop), 0);
	CHECK(atomic_load(&t->fetches) == 2,
	      "%u fetches: the second job ran after the stop",
	      atomic_load(&t->fetches));

	CHECK_RET(upager_unmap(r), 0);
	t2->seed = 1000;
	mp.fault_around = (size_t)-1;
	mp.readahead_max = (size_t)-1;
	p = upager_map(h, &t2->s, 16 * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	t_sleep_ms(100);
	CHECK(atomic_load(&t->fetches) == 2 && atomic_load(&t2->fetches) == 0,
	      "%u fetches of the unmapped region's store, %u of the new "
	      "one's, with no fault: a queued job outlived its region",
	      atomic_load(&t->fetches) - 2, atomic_load(&t2->fetches));
	for (size_t i = 0; i < 16; i++)
		CHECK(!upager_region_present(r, i * PG),
		      "page %zu of the new region filled with no fault", i);
	CHECK(t_verify(p + 7 * PG, PG, 1000 + 7), "page 7 of the new region");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
	upager_store_close(&t2->s);
}

/* ---- a read-ahead job fails under a waiter ------------------------------- */

static void job_error(void)
{
	struct upager_handler *h = handler(2, NULL, NULL);
	struct tstore *t = tstore_open(256);
	struct upager_region *r;
	struct toucher marker, waiter;
	int fd[2];
	char *p = stream_to_marker(h, t, &r);

	/*
	 * The marker's fault fills page 7 and queues pages 12-18 as a job,
	 * whose fetch waits at the gate and then fails: page 14 is bad.
	 */
	t->bad = 14;
	t->hold_bad = true;
	CHECK(pipe(fd) == 0, "pipe: %s", strerror(errno));
	toucher_start(&marker, p + 7 * PG, fd[1]);
	tstore_wait_held(t, "the job's fetch");
	pthread_join(marker.t, NULL);
	CHECK(marker.ret == PG, "the marker page: %zd", marker.ret);
	/*
	 * Page 13 is the job's: the other worker reads this fault, finds
	 * the page claimed and leaves it to the job's wake.
	 */
	toucher_start(&waiter, p + 13 * PG, fd[1]);
	toucher_wait_blocked(&waiter);
	tstore_release(t);
	CHECK(toucher_wait_done(&waiter, 2000),
	      "the waiter was not woken when its job failed");
	pthread_join(waiter.t, NULL);
	CHECK(waiter.ret == PG, "page 13: %zd", waiter.ret);
	CHECK(t_verify(p + 13 * PG, PG, 13) && t_verify(p + 12 * PG, PG, 12),
	      "pages 12 and 13 after the failed job");
	CHECK(atomic_load(&t->failed_multi) == 1, "%u multi-page failures",
	      atomic_load(&t->failed_multi));
	close(fd[0]);
	close(fd[1]);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* ---- a waiter across stop() and start() -------------------------------- */

static void stop_start(void)
{
	struct upager_handler *h = handler(2, NULL, NULL);
	struct tstore *t = tstore_open(8);
	struct upager_region *r;
	struct toucher to;
	char *p = map(h, &t->s, 8 * PG, 0, 0, &r);

	CHECK_RET(upager_handler_start(h), 0);
	CHECK(t_verify(p, PG, 0), "page 0 while running");
	CHECK_RET(upager_handler_stop(h), 0);

	toucher_start(&to, p + 5 * PG, -1);
	toucher_wait_blocked(&to);
	CHECK_RET(upager_handler_stop(h), 0); /* no worker: nothing to do */
	t_sleep_ms(50);
	CHECK(!atomic_load(&to.done), "served with no worker");
	CHECK_RET(upager_handler_start(h), 0);
	pthread_join(to.t, NULL);
	CHECK(t_verify(p + 5 * PG, PG, 5), "page 5 after restart");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* ---- stop while an install waits for an event --------------------------- */

static int dontneed_fn(void *p)
{
	return madvise(p, PG, MADV_DONTNEED) ? -errno : 0;
}

static void stop_eagain(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 1,
					    .spare_workers = -1 };
	struct tstore *t = tstore_open(16);
	struct upager_region *r;
	struct upager_stats st;
	struct upager_handler *h;
	struct call stop, drop;
	struct toucher to;
	int err;
	char *p;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	p = map(h, &t->s, 16 * PG, (size_t)-1, 0, &r);
	t->hold_at = 1;
	CHECK_RET(upager_handler_start(h), 0);
	toucher_start(&to, p + 5 * PG, -1);
	tstore_wait_held(t, "page 5's fetch");
	call_start(&stop, stop_fn, h);
	call_wait_blocked(&stop);
	/* Its REMOVE event is queued: installs meet -EAGAIN until read. */
	call_start(&drop, dontneed_fn, p + 9 * PG);
	call_wait_blocked(&drop);
	tstore_release(t);
	CHECK_RET(call_join(&stop), 0);
	upager_region_stats(r, &st);
	CHECK(st.eagain >= 1, "page 5's install never waited for the event");
	CHECK(!atomic_load(&to.done), "page 5 read with no worker running");

	CHECK_RET(upager_handler_start(h), 0);
	CHECK(toucher_wait_done(&to, 5000),
	      "the thread whose install was given up is never woken: its "
	      "fault was lost");
	pthread_join(to.t, NULL);
	CHECK_RET(call_join(&drop), 0);
	CHECK(t_verify(p + 5 * PG, PG, 5), "page 5 after the restart");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* ---- the range between unregister and munmap ---------------------------- */

static struct {
	const char *p;
	unsigned int calls;
	bool filled_segv, absent_segv;
} at_detach;

static void look_at_detach(struct tstore *t, struct upager_region *r)
{
	(void)t;
	(void)r;
	at_detach.calls++;
	at_detach.filled_segv = t_read_sigsegv(at_detach.p + 2 * PG);
	at_detach.absent_segv = t_read_sigsegv(at_detach.p + 9 * PG);
}

static void unmap_closed(void)
{
	struct upager_handler *h = handler(1, NULL, NULL);
	struct tstore *t = tstore_open(16);
	struct upager_region *r;
	char *p = map(h, &t->s, 16 * PG, (size_t)-1, 0, &r);

	t->on_detach = look_at_detach;
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(t_verify(p + 2 * PG, PG, 2), "page 2");
	at_detach.p = p;
	CHECK_RET(upager_unmap(r), 0);
	CHECK(at_detach.calls == 1, "detach() called %u times",
	      at_detach.calls);
	CHECK(at_detach.filled_segv && at_detach.absent_segv,
	      "between unregister and munmap the range reads: a page filled "
	      "%s, a page never filled %s; want SIGSEGV for both",
	      at_detach.filled_segv ? "SIGSEGV" : "readable",
	      at_detach.absent_segv ? "SIGSEGV" : "readable (zeros)");
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* ---- free with regions mapped ------------------------------------------ */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d, "opendir: %s", strerror(errno));
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static bool mapped(const void *p)
{
	unsigned char v;

	return mincore((void *)((uintptr_t)p & ~(uintptr_t)(PG - 1)), PG,
		       &v) == 0;
}

static void free_mapped(void)
{
	int fds = count_fds(), err;
	struct upager_handler *h = handler(2, NULL, NULL);
	struct upager_store *mem = upager_store_mem_new(64 * PG, &err);
	struct upager_region *r1, *r2, *r3;
	char *p1, *p2, *p3;
	struct toucher to;
	int fd[2];

	CHECK(mem, "mem store: %s", strerror(-err));
	t_fill(upager_store_mem_data(mem), PG, 7);
	p1 = map(h, mem, 16 * PG, 0, 0, &r1);
	p2 = map(h, mem, 64 * PG, 0, 0, &r2);
	p3 = map(h, mem, 16 * PG, 0, UPAGER_MAP_IN_THREAD, &r3);
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(t_verify(p1, PG, 7) && t_verify(p2, PG, 7) &&
	      t_verify(p3, PG, 7), "page 0 of the regions");
	CHECK_RET(upager_handler_stop(h), 0);

	/* A waiter on a fault no worker will serve. */
	CHECK(pipe(fd) == 0, "pipe: %s", strerror(errno));
	/* Past the 64 KiB around page 0 that fault-around filled. */
	toucher_start(&to, p2 + 40 * PG, fd[1]);
	toucher_wait_blocked(&to);

	upager_handler_free(h);
	pthread_join(to.t, NULL);
	/* Released by the unregister: zeros or, once unmapped, EFAULT. */
	CHECK(to.ret == PG || (to.ret < 0 && to.err == EFAULT),
	      "waiter: write(2) %zd: %s", to.ret, strerror(to.err));
	close(fd[0]);
	close(fd[1]);
	CHECK(!mapped(p1) && !mapped(p2) && !mapped(p3),
	      "a region is still mapped after upager_handler_free()");
	CHECK(count_fds() == fds, "%d descriptors open, %d before",
	      count_fds(), fds);
	upager_store_close(mem);
}

/* ---- a failing store ---------------------------------------------------- */

/*
 * Page @bad fails.  At 20 the window that covers it is mostly the
 * lookahead a job fills; at 2, the second fault's own window (pages 1-2:
 * the stream is not confirmed yet, there is no job), which the faulting
 * worker must retry as page 1 alone.
 */
static void store_error(enum upager_memtype type, size_t ra, size_t bad)
{
	struct t_errors e = { 0 };
	struct upager_handler *h = handler(1, t_on_error, &e);
	struct tstore *t = tstore_open(64);
	struct upager_region *r;
	struct upager_stats st;
	unsigned int fetches;
	char *p;

	t->bad = bad;
	p = map_type(h, &t->s, type, 64 * PG, ra, 0, &r);
	CHECK_RET(upager_handler_start(h), 0);
	/* Sequential: read-ahead windows double until one covers 20. */
	for (size_t i = 0; i < 64; i++) {
		if (i == bad)
			continue;
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
	}
	CHECK(atomic_load(&e.calls) == 0, "on_error before the bad page");
	CHECK(t_read_sigbus(p + bad * PG + 100), "no SIGBUS on a failed page");
	fetches = atomic_load(&t->fetches);
	CHECK(t_read_sigbus(p + bad * PG), "no SIGBUS the second time");
	CHECK(atomic_load(&t->fetches) == fetches,
	      "a poisoned page was fetched again");
	CHECK_RET(upager_handler_stop(h), 0);
	CHECK(atomic_load(&e.calls) == 1, "on_error called %u times",
	      atomic_load(&e.calls));
	CHECK(atomic_load(&e.err) == -EIO && atomic_load(&e.r) == r &&
		      atomic_load(&e.addr) >= (uintptr_t)p + bad * PG &&
		      atomic_load(&e.addr) < (uintptr_t)p + (bad + 1) * PG,
	      "on_error(%p, %#llx, %d)", (void *)atomic_load(&e.r),
	      (unsigned long long)atomic_load(&e.addr), atomic_load(&e.err));
	upager_region_stats(r, &st);
	CHECK(st.store_errors == 1, "store_errors %llu",
	      (unsigned long long)st.store_errors);
	CHECK(st.pages_filled == 63, "pages_filled %llu",
	      (unsigned long long)st.pages_filled);
	if (ra != (size_t)-1)
		CHECK(atomic_load(&t->failed_multi) >= 1 && st.ra_pages > 0,
		      "no read-ahead window covered the bad page");
	CHECK(t_verify(p + (bad - 1) * PG, PG, bad - 1) &&
		      t_verify(p + (bad + 1) * PG, PG, bad + 1),
	      "the neighbours of the bad page");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* ---- upager_handler_run() ---------------------------------------------- */

struct runner {
	struct upager_handler *h;
	int ret;
};

static void *runner_main(void *arg)
{
	struct runner *rn = arg;

	rn->ret = upager_handler_run(rn->h);
	return NULL;
}

static void run(void)
{
	struct runner rn = { .h = handler(0, NULL, NULL), .ret = -1 };
	struct tstore *t = tstore_open(256);
	struct upager_region *r;
	struct upager_stats st;
	pthread_t thr;
	char *p = map(rn.h, &t->s, 256 * PG, 0, 0, &r);

	CHECK(pthread_create(&thr, NULL, runner_main, &rn) == 0,
	      "pthread_create");
	for (size_t i = 0; i < 256; i += 3)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
	CHECK_RET(upager_handler_stop(rn.h), 0);
	pthread_join(thr, NULL);
	CHECK_RET(rn.ret, 0);
	upager_region_stats(r, &st);
	CHECK(st.faults >= 1 && st.pages_filled >= 86, "%llu faults",
	      (unsigned long long)st.faults);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(rn.h);
	upager_store_close(&t->s);
}

/* ---- bad parameters ---------------------------------------------------- */

static void bad_map(struct upager_handler *h, struct upager_store *s,
		    size_t len, struct upager_map_params mp, int want,
		    const char *what)
{
	struct upager_region *r;
	int err = 0;
	void *p;

	mp.size = sizeof(mp);
	p = upager_map(h, s, len, &mp, &r, &err);
	CHECK(!p && err == want, "%s: map gave %p, %s (want %s)", what, p,
	      strerror(-err), strerror(-want));
}

static void bad_params(void)
{
	struct upager_handler *h = handler(1, NULL, NULL);
	struct upager_store *mem;
	struct tstore *t = tstore_open(256); /* not SIGNAL_SAFE */
	struct upager_stats st;
	int err;

	mem = upager_store_mem_new(256 * PG, &err);
	CHECK(mem, "mem store: %s", strerror(-err));
	bad_map(h, mem, 0, (struct upager_map_params){ 0 }, -EINVAL,
		"len 0");
	bad_map(h, mem, 17 * PG,
		(struct upager_map_params){ .fill = 16 * PG }, -EINVAL,
		"len not a multiple of fill");
	bad_map(h, mem, 24 * PG, (struct upager_map_params){ .fill = 3 * PG },
		-EINVAL, "fill not a power of two");
	bad_map(h, mem, 16 * PG, (struct upager_map_params){ .fill = 2048 },
		-EINVAL, "fill below the page size");
	bad_map(h, mem, 4u << 20,
		(struct upager_map_params){ .memtype = UPAGER_MEM_HUGETLB,
					    .fill = PG },
		-EINVAL, "hugetlb with 4 KiB fill");
	bad_map(h, mem, 16 * PG,
		(struct upager_map_params){ .store_offset = 100 }, -EINVAL,
		"misaligned store offset");
	bad_map(h, mem, 16 * PG, (struct upager_map_params){ .flags = 1u << 7 },
		-EINVAL, "unknown flag");
	bad_map(h, mem, 16 * PG, (struct upager_map_params){ .memtype = 3 },
		-EINVAL, "unknown memory type");
	bad_map(h, mem, 257 * PG, (struct upager_map_params){ 0 }, -ERANGE,
		"region larger than the store");
	bad_map(h, mem, 16 * PG,
		(struct upager_map_params){ .store_offset = 250 * PG },
		-ERANGE, "region reaching past the store");
	bad_map(h, mem, 16 * PG,
		(struct upager_map_params){ .store_offset = 300 * PG },
		-ERANGE, "store offset past the store");
	bad_map(h, &t->s, 16 * PG,
		(struct upager_map_params){ .flags = UPAGER_MAP_IN_THREAD },
		-EINVAL, "in-thread with a store that is not signal-safe");
	bad_map(h, mem, 16 * PG,
		(struct upager_map_params){ .memtype = UPAGER_MEM_SHMEM,
					    .flags = UPAGER_MAP_IN_THREAD },
		-EINVAL, "in-thread shmem");
	bad_map(h, mem, 16 * PG,
		(struct upager_map_params){ .memtype = UPAGER_MEM_SHMEM,
					    .flags = UPAGER_MAP_MOVE },
		-EINVAL, "MOVE with shmem");
	upager_handler_stats(h, &st);
	CHECK(st.faults == 0 && st.pages_filled == 0, "stats moved");
	upager_handler_free(h);
	upager_store_close(mem);
	upager_store_close(&t->s);
}

int main(void)
{
	unmap_inflight();
	unmap_jobs();
	stop_jobs();
	prefault_waits();
	job_error();
	stop_start();
	stop_eagain();
	unmap_closed();
	free_mapped();
	store_error(UPAGER_MEM_ANON, (size_t)-1, 20);
	store_error(UPAGER_MEM_ANON, 0, 20);
	store_error(UPAGER_MEM_ANON, 0, 2);
	store_error(UPAGER_MEM_SHMEM, 0, 20);
	run();
	bad_params();
	return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the engine tests share beyond harness.h: a page store of their own
 * (registered as "engine-test", opened as "engine-test:NPAGES") whose
 * fetches can be slow, fail, or wait at a gate; a store of pages in
 * memory whose write-backs can wait at a gate or fail (wbstore); threads
 * that sit blocked in a fault, and an on_error callback that records
 * what it is told.
 * Header-only, so each test program stays one file plus the harness.
 */
#ifndef UPAGER_TEST_TSTORE_H
#define UPAGER_TEST_TSTORE_H

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <upager/upager.h>

#include "harness.h"

#define TSTORE_NONE UINT64_MAX

/*
 * Page i holds the pattern t_fill(seed + i).  Set the knobs after
 * tstore_open(), before the store is mapped.
 */
struct tstore {
	struct upager_store s;
	uint64_t seed;
	unsigned int delay_ms; /* every fetch sleeps this long first */
	atomic_uint delay_us;  /* and this long (may change meanwhile) */
	uint64_t bad;	       /* a fetch covering this page is -EIO */
	atomic_uint hold_at;   /* fetch number hold_at (from 1) waits at
				  the gate until tstore_release(); 0: none */
	atomic_bool hold_bad;  /* a fetch covering page bad waits there too */
	atomic_uint fetches;   /* fetch() calls begun */
	atomic_uint busy;      /* fetch() calls not yet returned */
	atomic_uint failed;    /* of which -EIO, ... */
	atomic_uint failed_multi; /* ... for more than one page */
	atomic_bool held, released;
	/* Called by detach(), which upager_unmap() calls (may be NULL). */
	void (*on_detach)(struct tstore *t, struct upager_region *r);
};

static inline void t_sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A write of 'w' at @at from another thread, waited for up to 5 s. */
struct t_writer {
	volatile char *at;
	atomic_bool done;
};

static inline void *t_writer_main(void *arg)
{
	struct t_writer *w = arg;

	*w->at = 'w';
	atomic_store(&w->done, true);
	return NULL;
}

/*
 * Write 'w' at @at from a thread: true once it went through, false if it
 * was still stuck after 5 s (its thread is then left behind: a failed
 * test exits).  *@ms: how long it took.
 */
static inline bool t_write_in_thread(volatile char *at, int *ms)
{
	static struct t_writer w;
	pthread_t t;

	w.at = at;
	atomic_store(&w.done, false);
	CHECK(!pthread_create(&t, NULL, t_writer_main, &w), "thread");
	for (*ms = 0; *ms < 5000 && !atomic_load(&w.done); ++*ms)
		t_sleep_ms(1);
	if (!atomic_load(&w.done))
		return false;
	pthread_join(t, NULL);
	return true;
}

static const struct upager_store_ops tstore_ops;

static inline int tstore_open_op(const char *arg, struct upager_store **out)
{
	struct tstore *t;
	char *end;
	unsigned long long n = strtoull(arg, &end, 0);

	if (!*arg || *end || !n)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->s.ops = &tstore_ops;
	t->s.npages = n;
	t->bad = TSTORE_NONE;
	*out = &t->s;
	return 0;
}

static inline int tstore_fetch_op(struct upager_store *s, uint64_t pgoff,
				  void *dst, size_t npages)
{
	struct tstore *t = (struct tstore *)s;
	unsigned int nr = atomic_fetch_add(&t->fetches, 1) + 1;
	int ret = 0;

	atomic_fetch_add(&t->busy, 1);
	if (t->delay_ms)
		t_sleep_ms(t->delay_ms);
	if (atomic_load(&t->delay_us))
		usleep(atomic_load(&t->delay_us));
	if (nr == t->hold_at ||
	    (t->hold_bad && t->bad >= pgoff && t->bad < pgoff + npages)) {
		atomic_store(&t->held, true);
		for (int i = 0; i < 5000 && !atomic_load(&t->released); i++)
			t_sleep_ms(1);
	}
	if (t->bad >= pgoff && t->bad < pgoff + npages) {
		atomic_fetch_add(&t->failed, 1);
		if (npages > 1)
			atomic_fetch_add(&t->failed_multi, 1);
		ret = -EIO;
	} else {
		for (size_t i = 0; i < npages; i++)
			t_fill((char *)dst + i * UPAGER_STORE_PAGE,
			       UPAGER_STORE_PAGE, t->seed + pgoff + i);
	}
	atomic_fetch_sub(&t->busy, 1);
	return ret;
}

static inline void tstore_close_op(struct upager_store *s)
{
	free(s);
}

static inline void tstore_detach_op(struct upager_store *s,
				    struct upager_region *r)
{
	struct tstore *t = (struct tstore *)s;

	if (t->on_detach)
		t->on_detach(t, r);
}

static const struct upager_store_ops tstore_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "engine-test",
	.help = "engine-test:NPAGES  slow, failing or gated test pages",
	.open = tstore_open_op,
	.fetch = tstore_fetch_op,
	.close = tstore_close_op,
	.detach = tstore_detach_op,
};

/* Register the kind (once) and open a store of @npages pages. */
static inline struct tstore *tstore_open(uint64_t npages)
{
	struct upager_store *s;
	char spec[64];
	int err = upager_store_register(&tstore_ops);

	CHECK(err == 0 || err == -EEXIST, "register: %s", strerror(-err));
	snprintf(spec, sizeof(spec), "engine-test:%llu",
		 (unsigned long long)npages);
	s = upager_store_open(spec, &err);
	CHECK(s, "open %s: %s", spec, strerror(-err));
	return (struct tstore *)s;
}

/* Wait (at most 5 s) until @flag is set; @what names it on failure. */
static inline void t_wait_set(atomic_bool *flag, const char *what)
{
	for (int ms = 0; ms < 5000 && !atomic_load(flag); ms++)
		t_sleep_ms(1);
	CHECK(atomic_load(flag), "%s never came", what);
}

/* Wait until a fetch waits at the gate; @what names it on failure. */
static inline void tstore_wait_held(struct tstore *t, const char *what)
{
	t_wait_set(&t->held, what);
}

static inline void tstore_release(struct tstore *t)
{
	atomic_store(&t->released, true);
}

/*
 * Pages in memory, page i t_fill(i) at first, whose writeback() the test
 * can hold at a gate or make fail: what the tests of write-back watch the
 * engine through.  wbstore_init() it in place (it is not registered: map
 * &w->s), set the knobs, and wbstore_free() it after the unmap;
 * t_wait_set(&w->held, ...) waits for a write-back at the gate.
 */
struct wbstore {
	struct upager_store s;
	char *img; /* the pages, as written back */
	/*
	 * The next writeback() @may_hold lets through waits at the gate
	 * (setting @held) until @release, 60 s at most: longer than any
	 * test holds it, shorter than the runner's limit.
	 */
	atomic_bool hold, held, release;
	atomic_bool fail;  /* writeback() is -EIO */
	atomic_uint fail_every; /* so is every fail_every-th call (0: none) */
	atomic_uint calls; /* writeback() calls */
	atomic_uint failed; /* of which -EIO */
	atomic_uint wrote; /* of which wrote their pages */
	/* First in each writeback() (may be NULL): false passes the gate. */
	bool (*may_hold)(struct wbstore *w);
	/*
	 * The next fetch() waits at a gate of its own (setting
	 * @fetch_held) until @fetch_release, 60 s at most.
	 */
	atomic_bool fetch_hold, fetch_held, fetch_release;
};

static inline int wbstore_fetch_op(struct upager_store *s, uint64_t pgoff,
				   void *dst, size_t npages)
{
	struct wbstore *w = (struct wbstore *)s;

	if (atomic_exchange(&w->fetch_hold, false)) {
		atomic_store(&w->fetch_held, true);
		for (int i = 0; i < 60000 && !atomic_load(&w->fetch_release);
		     i++)
			t_sleep_ms(1);
	}
	memcpy(dst, w->img + pgoff * UPAGER_STORE_PAGE,
	       npages * UPAGER_STORE_PAGE);
	return 0;
}

static inline int wbstore_writeback_op(struct upager_store *s, uint64_t pgoff,
				       const void *src, size_t npages)
{
	struct wbstore *w = (struct wbstore *)s;
	unsigned int every = atomic_load(&w->fail_every);
	unsigned int nr = atomic_fetch_add(&w->calls, 1) + 1;

	if ((!w->may_hold || w->may_hold(w)) &&
	    atomic_exchange(&w->hold, false)) {
		atomic_store(&w->held, true);
		for (int i = 0; i < 60000 && !atomic_load(&w->release); i++)
			t_sleep_ms(1);
	}
	if (atomic_load(&w->fail) || (every && nr % every == 0)) {
		atomic_fetch_add(&w->failed, 1);
		return -EIO;
	}
	memcpy(w->img + pgoff * UPAGER_STORE_PAGE, src,
	       npages * UPAGER_STORE_PAGE);
	atomic_fetch_add(&w->wrote, 1);
	return 0;
}

/* The store is the test's: wbstore_free() frees its pages. */
static inline void wbstore_close_op(struct upager_store *s)
{
	(void)s;
}

static const struct upager_store_ops wbstore_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "writeback-test",
	.fetch = wbstore_fetch_op,
	.writeback = wbstore_writeback_op,
	.close = wbstore_close_op,
};

static inline void wbstore_init(struct wbstore *w, uint64_t npages)
{
	memset(w, 0, sizeof(*w));
	w->s.ops = &wbstore_ops;
	w->s.npages = npages;
	w->img = malloc(npages * UPAGER_STORE_PAGE);
	CHECK(w->img, "malloc");
	for (uint64_t i = 0; i < npages; i++)
		t_fill(w->img + i * UPAGER_STORE_PAGE, UPAGER_STORE_PAGE, i);
}

static inline void wbstore_free(struct wbstore *w)
{
	free(w->img);
	w->img = NULL;
}

/*
 * Wait (@ms at most) until @r has from @lo to @hi bytes resident: a unit
 * counts once its filler settled it, after the faulting thread's wake,
 * and stops counting once an evictor let it go.
 */
static inline void t_wait_resident(struct upager_region *r, size_t lo,
				   size_t hi, unsigned int ms)
{
	for (unsigned int i = 0;; i++) {
		size_t n = upager_region_resident(r);

		if (n >= lo && n <= hi)
			return;
		CHECK(i < ms, "%zu bytes resident after %u ms, not %zu to %zu",
		      n, ms, lo, hi);
		t_sleep_ms(1);
	}
}

/*
 * Workers held in fetches: each of occupy()'s @n regions (a page over a
 * wbstore of its own) has a thread touching it, whose fault a worker
 * takes and holds at the store's fetch gate until vacate().  The stores
 * are cheap, so no spare worker is started for them: with every worker
 * held, nobody reads the handler's events but a thread that meets one
 * pending in its own install.
 */
struct occupied {
	struct wbstore w[4];
	struct upager_region *r[4];
	pthread_t t[4];
	unsigned int n;
};

static inline void *occupy_touch(void *arg)
{
	(void)*(volatile char *)arg;
	return NULL;
}

/* Hold @n (at most 4) of @h's workers in fetches until vacate(). */
static inline void occupy(struct occupied *o, struct upager_handler *h,
			  enum upager_memtype type, unsigned int n)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	int err;

	CHECK(n <= 4, "occupy: %u workers", n);
	o->n = n;
	for (unsigned int i = 0; i < n; i++) {
		char *p;

		wbstore_init(&o->w[i], 1);
		o->w[i].s.flags |= UPAGER_STORE_CHEAP;
		atomic_store(&o->w[i].fetch_hold, true);
		p = upager_map(h, &o->w[i].s, UPAGER_STORE_PAGE, &mp, &o->r[i],
			       &err);
		CHECK(p, "occupy: map: %s", strerror(-err));
		CHECK(pthread_create(&o->t[i], NULL, occupy_touch, p) == 0,
		      "pthread_create");
		t_wait_set(&o->w[i].fetch_held, "a worker's fetch (occupy)");
	}
}

static inline void vacate(struct occupied *o)
{
	for (unsigned int i = 0; i < o->n; i++)
		atomic_store(&o->w[i].fetch_release, true);
	for (unsigned int i = 0; i < o->n; i++) {
		CHECK(pthread_join(o->t[i], NULL) == 0, "pthread_join");
		CHECK_RET(upager_unmap(o->r[i]), 0);
		wbstore_free(&o->w[i]);
	}
}

/*
 * Wait (at most 5 s) until thread @tid is asleep: called right after the
 * thread said it is about to touch a missing page, it then sits blocked
 * in the fault, its message queued.  Asleep is S, or D: a thread that
 * caused a non-cooperative event (madvise, munmap, fork) waits killable
 * until a worker reads it.
 */
static inline void t_wait_blocked(pid_t tid)
{
	char path[64], buf[256], *s;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	for (int ms = 0; ms < 5000; ms++) {
		FILE *f = fopen(path, "r");
		size_t n;

		CHECK(f, "%s: %s", path, strerror(errno));
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		s = strrchr(buf, ')');
		if (s && s[1] == ' ' && (s[2] == 'S' || s[2] == 'D'))
			return;
		t_sleep_ms(1);
	}
	FAIL("thread %d never blocked", (int)tid);
}

/*
 * A thread that touches @p, a missing page: it reads a byte, or with @fd
 * >= 0 it write(2)s the page to @fd, so that an access the region's
 * unmapping overtakes fails with EFAULT instead of killing the test.
 * Start it with toucher_start(), then toucher_wait_blocked() returns
 * once it sits in its fault.
 */
struct toucher {
	const volatile char *p;
	int fd;
	pthread_t t;
	_Atomic pid_t tid;
	atomic_bool done;
	ssize_t ret; /* write(2)'s */
	int err;     /* and its errno */
	char byte;
};

static inline void *toucher_main(void *arg)
{
	struct toucher *to = arg;

	atomic_store(&to->tid, gettid());
	if (to->fd >= 0) {
		to->ret = write(to->fd, (const char *)to->p, 4096);
		to->err = errno;
	} else {
		to->byte = *to->p;
	}
	atomic_store(&to->done, true);
	return NULL;
}

static inline void toucher_start(struct toucher *to, const void *p, int fd)
{
	memset(to, 0, sizeof(*to));
	to->p = p;
	to->fd = fd;
	CHECK(pthread_create(&to->t, NULL, toucher_main, to) == 0,
	      "pthread_create");
}

static inline void toucher_wait_blocked(struct toucher *to)
{
	pid_t tid;

	for (int ms = 0; !(tid = atomic_load(&to->tid)); ms++) {
		CHECK(ms < 5000, "thread never started");
		t_sleep_ms(1);
	}
	t_wait_blocked(tid);
	CHECK(!atomic_load(&to->done), "the access did not block");
}

/* Wait up to @ms for the access to end; false if it did not. */
static inline bool toucher_wait_done(struct toucher *to, unsigned int ms)
{
	for (unsigned int i = 0; i < ms && !atomic_load(&to->done); i++)
		t_sleep_ms(1);
	return atomic_load(&to->done);
}

/*
 * The engine's memory type named by argv[1] (anon, shmem, hugetlb);
 * skips hugetlb unless @hugetlb.  The caller reserves hugetlb pages.
 */
static inline enum upager_memtype t_upager_memtype(int argc, char **argv,
						   bool hugetlb)
{
	switch (t_memtype(argc, argv)) {
	case UPAGER_LL_MEM_ANON:
		return UPAGER_MEM_ANON;
	case UPAGER_LL_MEM_SHMEM:
		return UPAGER_MEM_SHMEM;
	default:
		if (!hugetlb)
			SKIP("anon and shmem only");
		return UPAGER_MEM_HUGETLB;
	}
}

/*
 * A test in named parts over the engine's memory types: argv[1] the type
 * (anon or shmem; hugetlb skips), argv[2] one part's name, or none for
 * every part in order.  A part prints "NAME: ok" once it returns (its
 * checks fail the test, they do not return).  main() returns this.
 */
struct t_part {
	const char *name;
	void (*run)(enum upager_memtype type);
};

static inline int t_parts(int argc, char **argv, const struct t_part *parts)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	const char *only = argc > 2 ? argv[2] : NULL;

	for (; parts->name; parts++) {
		if (only && strcmp(only, parts->name))
			continue;
		parts->run(type);
		printf("%s: ok\n", parts->name);
	}
	return 0;
}

/*
 * A handler (not started) with @threads workers, reporting to @on_error
 * (NULL: one line to stderr).
 */
static inline struct upager_handler *
t_upager_handler(unsigned int threads, upager_error_fn on_error, void *arg)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = threads,
					    .on_error = on_error,
					    .error_arg = arg };
	struct upager_handler *h;
	int err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	return h;
}

/*
 * Start @h's workers: the threads upager_handler_start() added to the
 * process, at most @max of them into @tids.  Their number.
 */
static inline int t_start_workers(struct upager_handler *h, pid_t *tids,
				  int max)
{
	pid_t before[64];
	int nb = 0, n = 0;
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");

	CHECK(d, "/proc/self/task");
	while ((e = readdir(d)) && nb < 64)
		if (e->d_name[0] != '.')
			before[nb++] = (pid_t)atoi(e->d_name);
	CHECK_RET(upager_handler_start(h), 0);
	rewinddir(d);
	while ((e = readdir(d)) && n < max) {
		pid_t t = e->d_name[0] != '.' ? (pid_t)atoi(e->d_name) : 0;
		int i = 0;

		while (t && i < nb && before[i] != t)
			i++;
		if (t && i == nb)
			tids[n++] = t;
	}
	closedir(d);
	return n;
}

/* Thread @tid's voluntary context switches: a sleep is one, a preemption
 * is not. */
static inline long t_voluntary_switches(pid_t tid)
{
	char path[64], line[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	CHECK(f, "%s", path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	CHECK(v >= 0, "no voluntary_ctxt_switches in %s", path);
	return v;
}

/*
 * The sleeps of a handler's workers per fault (@hp: its parameters,
 * threads included), serving a reader that takes one fault every
 * @gap_us over @npages pages of @s, page i holding t_fill(i), each one
 * checked; @what names the case in a failure.
 */
static inline double t_sleeps_per_fault(struct upager_store *s,
					size_t npages,
					const struct upager_handler_params *hp,
					unsigned int gap_us, const char *what)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct upager_region *r;
	struct upager_handler *h;
	struct upager_stats st;
	long before = 0, after = 0;
	pid_t tid[8];
	int n, err;
	char *p;

	h = upager_handler_new(hp, &err);
	CHECK(h, "%s: handler: %s", what, strerror(-err));
	p = upager_map(h, s, npages * 4096, &mp, &r, &err);
	CHECK(p, "%s: map: %s", what, strerror(-err));
	n = t_start_workers(h, tid, 8);
	CHECK(n == (int)hp->threads, "%s: %d workers, not %u", what, n,
	      hp->threads);
	t_sleep_ms(20); /* past their start, and any first poll window */
	for (int i = 0; i < n; i++)
		before += t_voluntary_switches(tid[i]);
	for (size_t i = 0; i < npages; i++) {
		CHECK(t_verify(p + i * 4096, 4096, i), "%s: page %zu", what, i);
		usleep(gap_us);
	}
	for (int i = 0; i < n; i++)
		after += t_voluntary_switches(tid[i]);
	upager_region_stats(r, &st);
	CHECK(st.faults >= npages, "%s: %llu faults for %zu pages", what,
	      (unsigned long long)st.faults, npages);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	return (double)(after - before) / (double)st.faults;
}

/* An on_error callback that keeps the last report and counts them. */
struct t_errors {
	atomic_uint calls;
	struct upager_region *_Atomic r;
	_Atomic uint64_t addr;
	atomic_int err;
};

static inline void t_on_error(void *arg, struct upager_region *r,
			      uint64_t addr, int err, const char *what)
{
	struct t_errors *e = arg;

	(void)what;
	atomic_store(&e->r, r);
	atomic_store(&e->addr, addr);
	atomic_store(&e->err, err);
	atomic_fetch_add(&e->calls, 1);
}

#endif

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * snapshot: a consistent copy of running memory written to a file while
 * the application keeps writing (issue 10, benchmark (c)): fork(), as
 * Redis does, against upager_region_snapshot(), in one run.
 *
 * Each row runs in a child process of its own.  A region of --size
 * (4 GiB) is written whole first (every page stamped with generation 1),
 * then an application thread writes random 4 KiB pages, each stamped
 * over all of its 512 words with the next generation, and reads the
 * clock after every write.  For --before seconds no snapshot runs (the
 * rate and the longest gap between two writes of the application alone),
 * then the snapshot is taken to a file in --dir and made durable
 * (fdatasync), and the same is measured from its start to its end:
 *   fork                a plain anonymous region; fork(); the child
 *                       write()s the region to the file and exits; the
 *                       parent waits for it (Redis's BGSAVE)
 *   upager              a region over mem: with UPAGER_MAP_TRACK_WRITES;
 *                       upager_region_snapshot() into file:PATH,writable
 *   upager_incremental  in the same process, --before seconds of writes
 *                       later, UPAGER_SNAP_INCREMENTAL into the same file
 *   alone               no snapshot: a plain anonymous region, written
 *                       for as long as the round's longest snapshot took
 * The longest stall is the longest gap between two writes of the
 * application during the snapshot (the time fork() itself blocks the
 * process is in it).  After each snapshot the file is read back: every
 * page whole (one generation in all of its words, none zero) and none
 * from after the snapshot returned.
 *
 * A longest stall is one event, and on a VM the host alone makes gaps of
 * milliseconds, the more the longer the window: a thread that only reads
 * the clock saw 7.8 ms in 8 s and 10.1 ms in 25 s here (2026-12-03).  The
 * `alone` row measures that floor in the same run, over the same time as
 * the snapshots.  --rounds N repeats the rows in turn and the summary
 * gives the median over the rounds of each row's longest stall and of its
 * ratio to fork's in the same round.
 *
 * --drop US adds a second application thread that gives the region's
 * last page back (MADV_DONTNEED) and then works for US µs, again and
 * again (0: back to back), as a balloon or an allocator returning memory
 * does.  On a region of upager's each drop is an event the handler must
 * read before the kernel lets it protect or install anything, so this
 * measures what such a program costs a snapshot.  The writer leaves that
 * page alone, and the check of the image skips it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <upager/upager.h>

#include "bench.h"
#include "cli.h"

#define NAME	 "snapshot"
#define STALL_NS 1000000 /* writes that waited longer are counted */

enum { R_FORK, R_UPAGER, R_INCR, R_ALONE, R_N };
static const char *const row_id[R_N] = {"fork", "upager", "upager_incremental",
					"alone"};

/* What the application saw, in one window of time. */
struct window {
	double secs;
	uint64_t writes, max_gap_ns, stalls; /* stalls: gaps > STALL_NS */
	uint64_t drops0, drops;		     /* --drop's, in the window */
};

struct result {
	struct window before, during;
	uint64_t units, units_early; /* upager's snapshot info */
	double protect_ms; /* upager: the protect passes; fork: fork() */
	double held_ms;	   /* upager: the pass writes waited for; fork: fork() */
	uint64_t rss; /* the row's process's peak RSS, bytes */
	bool ran;
};

struct snap {
	/* options */
	const char *dir;
	uint64_t size;
	double before;
	unsigned int rounds;
	bool quick, json, keep;
	bool drop;	  /* --drop given */
	uint64_t drop_us; /* the dropper's work between two drops */
	char path[512];
	struct result *all; /* [rounds][R_N], shared with the rows' children */
	struct result *res; /* this round's [R_N] */
	/* one row, in its child */
	char *base;
	size_t npages;
	volatile int state; /* 0 before, 1 during a window, 2 stop */
	struct window win;
	uint64_t gen;	  /* the application's last generation */
	uint64_t last_ns; /* and when it was written */
	uint64_t drops;
	pthread_t app, dropper;
};

/* ---- the application
 * --------------------------------------------------------- */

static void stamp(char *page, uint64_t gen)
{
	uint64_t *w = (uint64_t *)page;

	for (size_t i = 0; i < PAGE / 8; i++)
		w[i] = gen;
}

static void *app(void *arg)
{
	struct snap *s = arg;
	uint64_t seed = 0x2545f4914f6cdd1dull, prev = clock_ns(), t;
	int state;

	while ((state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE)) < 2) {
		size_t pg = (size_t)(rng_next(&seed) % (s->npages - s->drop));
		uint64_t gen = __atomic_load_n(&s->gen, __ATOMIC_RELAXED) + 1;

		stamp(s->base + pg * PAGE, gen);
		__atomic_store_n(&s->gen, gen, __ATOMIC_RELEASE);
		t = clock_ns();
		if (state == 1) {
			/* The only writer; atomics for the reader. */
			struct window *w = &s->win;
			uint64_t gap = t - prev;

			__atomic_store_n(&w->writes, w->writes + 1,
					 __ATOMIC_RELAXED);
			if (gap > w->max_gap_ns)
				__atomic_store_n(&w->max_gap_ns, gap,
						 __ATOMIC_RELAXED);
			if (gap > STALL_NS)
				__atomic_store_n(&w->stalls, w->stalls + 1,
						 __ATOMIC_RELAXED);
		}
		prev = t;
		__atomic_store_n(&s->last_ns, t, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* --drop: the last page, given back again and again. */
static void *dropper(void *arg)
{
	struct snap *s = arg;
	char *last = s->base + (s->npages - 1) * PAGE;

	while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) < 2) {
		uint64_t t0;

		if (madvise(last, PAGE, MADV_DONTNEED))
			die("madvise(MADV_DONTNEED): %s", strerror(errno));
		__atomic_store_n(&s->drops, s->drops + 1, __ATOMIC_RELAXED);
		for (t0 = clock_ns(); clock_ns() - t0 < s->drop_us * 1000;)
			; /* the application's work between two drops */
	}
	return NULL;
}

static void sleep_s(double secs)
{
	struct timespec ts = {.tv_sec = (time_t)secs,
			      .tv_nsec =
				  (long)((secs - (double)(time_t)secs) * 1e9)};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Count the application's writes from here to window_end(). */
static double window_begin(struct snap *s)
{
	memset(&s->win, 0, sizeof(s->win));
	s->win.drops0 = __atomic_load_n(&s->drops, __ATOMIC_RELAXED);
	__atomic_store_n(&s->state, 1, __ATOMIC_RELEASE);
	return cli_now();
}

static void window_end(struct snap *s, double t0, struct window *out)
{
	/* A stall still going on counts too: the application may be in it. */
	uint64_t now = clock_ns(),
		 last = __atomic_load_n(&s->last_ns, __ATOMIC_RELAXED);

	out->secs = cli_now() - t0;
	__atomic_store_n(&s->state, 0, __ATOMIC_RELEASE);
	out->writes = __atomic_load_n(&s->win.writes, __ATOMIC_RELAXED);
	out->max_gap_ns = __atomic_load_n(&s->win.max_gap_ns, __ATOMIC_RELAXED);
	out->stalls = __atomic_load_n(&s->win.stalls, __ATOMIC_RELAXED);
	out->drops = __atomic_load_n(&s->drops, __ATOMIC_RELAXED) -
		     s->win.drops0;
	if (now > last && now - last > out->max_gap_ns) {
		out->max_gap_ns = now - last;
		out->stalls += now - last > STALL_NS;
	}
}

static void app_start(struct snap *s)
{
	for (size_t pg = 0; pg < s->npages; pg++)
		stamp(s->base + pg * PAGE, 1);
	s->gen = 1;
	s->state = 0;
	if (pthread_create(&s->app, NULL, app, s) ||
	    (s->drop && pthread_create(&s->dropper, NULL, dropper, s)))
		die("pthread_create failed");
}

/*
 * The newest generation an image taken before now may hold: the last
 * one written, and the write then in flight, not published yet.
 */
static uint64_t gen_bound(struct snap *s)
{
	return __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) + 1;
}

static void app_stop(struct snap *s)
{
	__atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
	pthread_join(s->app, NULL);
	if (s->drop)
		pthread_join(s->dropper, NULL);
}

/* The application alone, for --before seconds. */
static void measure_before(struct snap *s, struct result *r)
{
	double t0 = window_begin(s);

	sleep_s(s->before);
	window_end(s, t0, &r->before);
}

/* ---- the image
 * ------------------------------------------------------------------ */

/*
 * Every page whole (but for the one write in flight at the snapshot's
 * instant), not zero, and from no generation after @gen_max; --drop's
 * page is whatever it was.
 */
static void check_image(const struct snap *s, const char *what,
			uint64_t gen_max)
{
	const size_t chunk = 1 << 20;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	uint64_t *buf = xmalloc(chunk);
	unsigned int torn = 0;

	if (fd < 0)
		die("%s: %s", s->path, strerror(errno));
	for (uint64_t off = 0; off < s->size; off += chunk) {
		size_t len = s->size - off < chunk ? s->size - off : chunk;

		if (pread(fd, buf, len, (off_t)off) != (ssize_t)len)
			die("%s: reading the image back: %s", what,
			    strerror(errno));
		for (size_t pg = 0; pg < len / PAGE; pg++) {
			const uint64_t *w = buf + pg * PAGE / 8;
			uint64_t at = off / PAGE + pg;

			size_t i = 1;

			if (s->drop && at == s->npages - 1)
				continue;
			if (!w[0] || w[0] > gen_max)
				die("%s: page %" PRIu64 " of the image holds "
				    "generation %" PRIu64 " (want 1 to %" PRIu64
				    ")",
				    what, at, w[0], gen_max);
			while (i < PAGE / 8 && w[i] == w[0])
				i++;
			if (i == PAGE / 8)
				continue;
			/*
			 * Memory at an instant may hold the one write then
			 * in flight: its first words new, the rest old.
			 */
			for (size_t k = i + 1; k < PAGE / 8; k++)
				if (w[k] != w[i])
					i = 0;
			if (!i || w[i] >= w[0] || ++torn > 1)
				die("%s: page %" PRIu64 " of the image is torn "
				    "(word %zu holds %" PRIu64
				    ", word 0 %" PRIu64 ")",
				    what, at, i, w[i], w[0]);
		}
	}
	close(fd);
	free(buf);
}

static int open_image(const struct snap *s, int flags)
{
	int fd = open(s->path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);

	if (fd < 0)
		die("%s: %s", s->path, strerror(errno));
	return fd;
}

/* ---- fork(), as Redis does
 * -------------------------------------------------------- */

static void save_child(const struct snap *s)
{
	int fd = open_image(s, O_TRUNC);

	for (uint64_t off = 0; off < s->size;) {
		size_t len =
		    s->size - off < (8u << 20) ? s->size - off : (8u << 20);
		ssize_t n = write(fd, s->base + off, len);

		if (n <= 0)
			_exit(1);
		off += (uint64_t)n;
	}
	_exit(fdatasync(fd) || close(fd) ? 1 : 0);
}

static void row_fork(void *arg)
{
	struct snap *s = arg;
	struct result *r = &s->res[R_FORK];
	uint64_t gen_fork;
	double t0, tf;
	pid_t pid;
	int st;

	s->base = anon_map("fork", s->size);
	app_start(s);
	measure_before(s, r);
	t0 = window_begin(s);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid)
		save_child(s);
	tf = cli_now();
	gen_fork = gen_bound(s);
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		die("fork: the child did not write the image");
	window_end(s, t0, &r->during);
	r->protect_ms = r->held_ms = (tf - t0) * 1e3;
	app_stop(s);
	/* The child's copy is the memory as it was at fork(). */
	check_image(s, "fork", gen_fork);
	r->rss = rss_peak_since(0);
	r->ran = true;
}

/* ---- upager_region_snapshot()
 * -------------------------------------------------------- */

static void upager_snap(struct snap *s, struct upager_region *reg,
			struct upager_store *dst, unsigned int flags,
			struct result *r)
{
	struct upager_snapshot_info in = {.size = sizeof(in)};
	int fd = open_image(s, 0), err;
	double t0;

	measure_before(s, r);
	t0 = window_begin(s);
	err = upager_region_snapshot(reg, dst, flags, &in);
	if (err)
		die("%s: upager_region_snapshot: %s", row_id[r - s->res],
		    strerror(-err));
	if (fdatasync(fd))
		die("%s: %s", s->path, strerror(errno));
	window_end(s, t0, &r->during);
	close(fd);
	r->units = in.units;
	r->units_early = in.units_early;
	r->protect_ms = (double)in.protect_ns / 1e6;
	r->held_ms = (double)in.held_ns / 1e6;
	r->ran = true;
}

static void row_upager(void *arg)
{
	struct snap *s = arg;
	struct upager_map_params mp = {.size = sizeof(mp),
				       .flags = UPAGER_MAP_TRACK_WRITES};
	struct upager_store *src, *dst = NULL;
	struct upager_region *reg;
	struct upager_handler *h;
	char spec[600], mem[32];
	int err, fd;

	/* The destination, as large as the region, before it is opened. */
	fd = open_image(s, O_TRUNC);
	if (ftruncate(fd, (off_t)s->size) || close(fd))
		die("%s: %s", s->path, strerror(errno));
	snprintf(spec, sizeof(spec), "file:%s,writable", s->path);
	/*
	 * mem:, not zero:: upager_unmap() writes the dirty units back, and
	 * over a store without writeback it refuses (-EOPNOTSUPP).
	 */
	snprintf(mem, sizeof(mem), "mem:%" PRIu64, s->size);
	src = upager_store_open(mem, &err);
	if (src)
		dst = upager_store_open(spec, &err);
	if (!src || !dst)
		die("%s: %s", src ? spec : mem, strerror(-err));
	h = upager_handler_new(NULL, &err);
	if (!h)
		die("cannot open a userfaultfd: upager_handler_new: %s",
		    strerror(-err));
	s->base = upager_map(h, src, s->size, &mp, &reg, &err);
	if (!s->base)
		die("upager_map with UPAGER_MAP_TRACK_WRITES: %s",
		    strerror(-err));
	if ((err = upager_handler_start(h)))
		die("upager_handler_start: %s", strerror(-err));
	app_start(s);
	upager_snap(s, reg, dst, 0, &s->res[R_UPAGER]);
	check_image(s, "upager", gen_bound(s));
	upager_snap(s, reg, dst, UPAGER_SNAP_INCREMENTAL, &s->res[R_INCR]);
	app_stop(s);
	check_image(s, "upager_incremental", gen_bound(s));
	if ((err = upager_unmap(reg)))
		die("upager_unmap: %s", strerror(-err));
	upager_handler_free(h);
	upager_store_close(dst);
	upager_store_close(src);
	s->res[R_UPAGER].rss = s->res[R_INCR].rss = rss_peak_since(0);
}

/* ---- no snapshot: the machine's own stalls
 * ------------------------------------------------ */

static void row_alone(void *arg)
{
	struct snap *s = arg;
	struct result *r = &s->res[R_ALONE];
	double secs = 0, t0;

	for (int i = 0; i < R_ALONE; i++)
		if (s->res[i].during.secs > secs)
			secs = s->res[i].during.secs;
	s->base = anon_map("alone", s->size);
	app_start(s);
	t0 = window_begin(s);
	sleep_s(secs);
	window_end(s, t0, &r->during);
	app_stop(s);
	r->rss = rss_peak_since(0);
	r->ran = true;
}

/* ---- the report
 * ------------------------------------------------------------------------ */

static double rate(const struct window *w)
{
	return w->secs > 0 ? (double)w->writes / w->secs : 0;
}

static double drop_rate(const struct window *w)
{
	return w->secs > 0 ? (double)w->drops / w->secs : 0;
}

/* Row @i's longest stall over fork's in the same round. */
static double vs_fork(const struct result *res, int i)
{
	return (double)res[i].during.max_gap_ns /
	       (double)res[R_FORK].during.max_gap_ns;
}

/* The median over the rounds of @f of row @i. */
static double over_rounds(const struct snap *s, int i,
			  double (*f)(const struct result *, int))
{
	double v[MAX_ROUNDS];

	for (unsigned int k = 0; k < s->rounds; k++)
		v[k] = f(s->all + k * R_N, i);
	return median(v, s->rounds);
}

static double stall_ms(const struct result *res, int i)
{
	return (double)res[i].during.max_gap_ns / 1e6;
}

static void json_rows(struct json *j, const char *key, const struct result *res)
{
	json_arr_open(j, key);
	for (int i = 0; i < R_N; i++) {
		const struct result *r = &res[i];

		json_obj_open(j, NULL);
		json_str(j, "id", row_id[i]);
		json_f64(j, "snapshot_s", r->during.secs);
		json_f64(j, "max_stall_us", (double)r->during.max_gap_ns / 1e3);
		json_u64(j, "stalls_over_1ms", r->during.stalls);
		json_f64(j, "writes_per_s", rate(&r->during));
		json_f64(j, "drops_per_s", drop_rate(&r->during));
		json_f64(j, "writes_per_s_before", rate(&r->before));
		json_f64(j, "max_stall_us_before",
			 (double)r->before.max_gap_ns / 1e3);
		json_f64(j, "stall_vs_fork", vs_fork(res, i));
		json_f64(j, "protect_ms", r->protect_ms);
		json_f64(j, "held_ms", r->held_ms);
		json_u64(j, "units", r->units);
		json_u64(j, "units_early", r->units_early);
		json_u64(j, "peak_rss_kib", r->rss >> 10);
		json_obj_close(j);
	}
	json_arr_close(j);
}

/*
 * "rows": the first round's (with one round, the run), "rounds": every
 * round's, "median": over the rounds.
 */
static void report_json(const struct snap *s)
{
	struct json j;

	bench_json_begin(&j, NAME);
	json_u64(&j, "size", s->size);
	json_f64(&j, "before_s", s->before);
	if (s->drop)
		json_u64(&j, "drop_us", s->drop_us);
	json_u64(&j, "rounds", s->rounds);
	json_rows(&j, "rows", s->all);
	json_arr_open(&j, "each_round");
	for (unsigned int k = 0; k < s->rounds; k++) {
		json_obj_open(&j, NULL);
		json_rows(&j, "rows", s->all + k * R_N);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_arr_open(&j, "median");
	for (int i = 0; i < R_N; i++) {
		json_obj_open(&j, NULL);
		json_str(&j, "id", row_id[i]);
		json_f64(&j, "max_stall_us", over_rounds(s, i, stall_ms) * 1e3);
		json_f64(&j, "stall_vs_fork", over_rounds(s, i, vs_fork));
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_end(&j);
}

static void report_round(const struct snap *s, const struct result *res)
{
	printf("%-19s %8s %11s %8s %7s %10s %10s %6s %11s %9s %8s %8s\n",
	       "row", "snap s", "stall max", "x fork", ">1ms", "writes/s",
	       "before/s", "ratio", "before max", "setup ms", "held ms",
	       "RSS MiB");
	for (int i = 0; i < R_ALONE; i++) {
		const struct result *r = &res[i];
		double before = rate(&r->before);

		printf("%-19s %8.2f %8.0f us %8.3f %7" PRIu64
		       " %10.0f %10.0f %6.2f %8.0f us %9.1f %8.2f %8" PRIu64 "\n",
		       row_id[i], r->during.secs,
		       (double)r->during.max_gap_ns / 1e3, vs_fork(res, i),
		       r->during.stalls, rate(&r->during), before,
		       before > 0 ? rate(&r->during) / before : 0,
		       (double)r->before.max_gap_ns / 1e3, r->protect_ms,
		       r->held_ms, r->rss >> 20);
	}
	printf("%-19s %8.2f %8.0f us %8.3f %7" PRIu64 " %10.0f\n", row_id[R_ALONE],
	       res[R_ALONE].during.secs,
	       (double)res[R_ALONE].during.max_gap_ns / 1e3,
	       vs_fork(res, R_ALONE), res[R_ALONE].during.stalls,
	       rate(&res[R_ALONE].during));
	printf("upager units saved: %" PRIu64 " (%" PRIu64
	       " before their first write), incremental: %" PRIu64 " (%" PRIu64
	       ")\n",
	       res[R_UPAGER].units, res[R_UPAGER].units_early,
	       res[R_INCR].units, res[R_INCR].units_early);
	if (s->drop)
		printf("pages dropped per second during each: fork %.0f, "
		       "upager %.0f, upager_incremental %.0f, alone %.0f\n",
		       drop_rate(&res[R_FORK].during),
		       drop_rate(&res[R_UPAGER].during),
		       drop_rate(&res[R_INCR].during),
		       drop_rate(&res[R_ALONE].during));
}

static void report_tables(const struct snap *s)
{
	printf("snapshot of a %" PRIu64 " MiB region to a file (fdatasync "
	       "included) while one thread writes\nrandom 4 KiB pages; "
	       "'before': the same thread for %.1f s with no snapshot\n",
	       s->size >> 20, s->before);
	if (s->drop)
		printf("and another gives the region's last page back "
		       "(MADV_DONTNEED), then works %" PRIu64 " us, "
		       "again and again\n",
		       s->drop_us);
	for (unsigned int k = 0; k < s->rounds; k++) {
		if (s->rounds > 1)
			printf("\nround %u of %u\n", k + 1, s->rounds);
		else
			putchar('\n');
		report_round(s, s->all + k * R_N);
	}
	printf("\nsetup: fork() itself, or upager's write-protect passes; "
	       "held: what of it the writer could wait for (fork: all; "
	       "upager: the last pass, under the gate)\n"
	       "alone: no snapshot, the same writer for as long as the "
	       "round's longest snapshot:\nthe longest stall this machine "
	       "gives an application that makes no system call\n");
	if (s->rounds > 1) {
		printf("\nmedian over %u rounds   stall max   x fork\n",
		       s->rounds);
		for (int i = 0; i < R_N; i++)
			printf("%-19s %8.0f us %8.3f\n", row_id[i],
			       over_rounds(s, i, stall_ms) * 1e3,
			       over_rounds(s, i, vs_fork));
	}
	printf("\nfork's longest stall is %.1fx the machine's own (alone)%s\n",
	       1 / over_rounds(s, R_ALONE, vs_fork),
	       s->rounds > 1 ? ", the median over the rounds" : "");
}

static void usage(void)
{
	printf("usage: " NAME " [--dir DIR] [--size SIZE] [--before S] "
	       "[--rounds N] [--drop US]\n"
	       "       [--keep] [--quick] [--json]\n\n"
	       "A live snapshot of a region one thread keeps writing: "
	       "fork() with the child\nwriting the image (as Redis does) "
	       "against upager_region_snapshot() of a\nUPAGER_MAP_TRACK_WRITES "
	       "region, full and incremental; the application's longest\n"
	       "stall and its write rate during each.\n\n"
	       "  --dir DIR     where the image goes (default /var/tmp)\n"
	       "  --size SIZE   the region (default 4G; --quick 64M)\n"
	       "  --before S    seconds of writes measured before each "
	       "snapshot (default 2;\n"
	       "                --quick 0.3)\n"
	       "  --rounds N    the rows N times in turn, the median of each "
	       "row's longest\n"
	       "                stall and of its ratio to fork's (default 1)\n"
	       "  --drop US     a second thread gives the last page back "
	       "(MADV_DONTNEED), then\n"
	       "                works US microseconds, again and again (0: "
	       "back to back)\n"
	       "  --keep        keep the image file\n"
	       "  --quick       a smoke run (CI)\n"
	       "  --json        one JSON object\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"size", required_argument, NULL, 's'},
	    {"before", required_argument, NULL, 'b'},
	    {"keep", no_argument, NULL, 'k'},
	    {"rounds", required_argument, NULL, 'n'},
	    {"drop", required_argument, NULL, 'D'},
	    BENCH_OPTIONS};
	static struct snap s = {.dir = "/var/tmp"};
	uint64_t size = 0, rounds = 1, drop_us = 0;
	int c;

	bench_set_name(NAME);
	while ((c = bench_getopt(NAME, argc, argv, lopts, &s.quick,
				 &s.json, usage)) != -1) {
		switch (c) {
		case 'd':
			s.dir = optarg;
			break;
		case 's':
			if (!cli_parse_u64(NAME, "--size", optarg, MIB,
					   UINT64_MAX, true, &size))
				return 2;
			break;
		case 'b':
			if (!bench_parse_secs(NAME, "--before", optarg, 600,
					      &s.before))
				return 2;
			break;
		case 'k':
			s.keep = true;
			break;
		case 'D':
			if (!cli_parse_u64(NAME, "--drop", optarg, 0, 1000000,
					   false, &drop_us))
				return 2;
			s.drop = true;
			s.drop_us = drop_us;
			break;
		case 'n':
			if (!cli_parse_u64(NAME, "--rounds", optarg, 1,
					   MAX_ROUNDS, false, &rounds))
				return 2;
			break;
		}
	}
	s.size = size ? size : s.quick ? 64 * MIB : 4 * GIB;
	if (!s.before)
		s.before = s.quick ? 0.3 : 2;
	if (s.size % PAGE)
		return cli_usage_error(NAME, "--size: want whole 4 KiB pages");
	if (s.drop && s.size < 2 * PAGE)
		return cli_usage_error(NAME, "--drop: want a --size of two "
					     "pages or more");
	if (!bench_check_dir(NAME, s.dir))
		return 2;
	snprintf(s.path, sizeof(s.path), "%s/upager-snapshot-%d.img", s.dir,
		 (int)getpid());
	s.npages = s.size / PAGE;
	s.rounds = (unsigned int)rounds;
	s.all = shared_map("results", s.rounds * R_N * sizeof(*s.all));
	for (unsigned int k = 0; k < s.rounds; k++) {
		s.res = s.all + k * R_N;
		if (!s.json)
			progress("round %u of %u: fork", k + 1, s.rounds);
		run_child("fork", row_fork, &s);
		if (!s.json)
			progress("round %u of %u: upager, then "
				 "upager_incremental",
				 k + 1, s.rounds);
		run_child("upager", row_upager, &s);
		if (!s.json)
			progress("round %u of %u: alone", k + 1, s.rounds);
		run_child("alone", row_alone, &s);
	}
	if (!s.keep)
		unlink(s.path);
	if (s.json)
		report_json(&s);
	else
		report_tables(&s);
	return 0;
}

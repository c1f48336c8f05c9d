// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * outofcore: a data set larger than the memory it may use (issue 10,
 * benchmark (a)), upager against the kernel's own answer in one run.
 *
 * A file of --size (4 GiB) is made once in --dir and kept: random bytes,
 * every page's word 0 its pattern() (checked on every access: a wrong or
 * zero page stops the run) and word 1 a counter the writes increment.
 * Each row runs in a child process moved into a cgroup v1 memory
 * controller group limited to --budget (1 GiB) plus --slack (64 MiB, for
 * the process itself), made for the row and removed after it:
 *   kernel       mmap(MAP_SHARED) of the file, MADV_RANDOM (no read-around
 *                for a random stream): the kernel's page cache, reclaimed
 *                by the cgroup
 *   upager_auto  a region over file:PATH,direct,writable with a budget of
 *                --budget, policy UPAGER_EVICT_AUTO (2Q); 4 KiB units,
 *                read-ahead and fault-around off.  O_DIRECT, as UMap's
 *                programs open their files: the data is held once, in
 *                the region, and a miss reads the disk, as the kernel's
 *                major fault does
 *   upager_fifo  the same with UPAGER_EVICT_FIFO
 *   upager_buffered  upager_auto over file:PATH,writable (the page
 *                cache): not run unless --rows names it; it shows what
 *                the page cache in the same cgroup costs the file store
 * The page cache is dropped before each row (fdatasync, then
 * POSIX_FADV_DONTNEED; --cache warm reads the file first instead, in the
 * parent: then the kernel row's pages are charged outside its cgroup).
 * --threads (2) threads make 4 KiB accesses at random pages, Zipf
 * (s = 0.99; hot pages scattered over the file) or uniform: reads (every
 * word of the page summed), or reads and writes half and half (a write
 * increments the page's counter and stores it over the rest of the
 * page).  Each thread owns the pages of its own residue, so a model of
 * every counter, shared by the rows, checks that no write was lost
 * through eviction and write-back, whichever row made it.  After
 * --warmup seconds the accesses and faults of --seconds are counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <upager/upager.h>

#include "bench.h"
#include "cli.h"

#define NAME	    "outofcore"
#define ZIPF_S	    0.99
#define MAX_THREADS 16
#define CGROUP_ROOT "/sys/fs/cgroup/memory"

enum { W_READ_ZIPF, W_READ_UNIFORM, W_RW_ZIPF, W_RW_UNIFORM, W_N };
static const char *const work_id[W_N] = {"read_zipf", "read_uniform", "rw_zipf",
					 "rw_uniform"};

enum { R_KERNEL, R_AUTO, R_FIFO, R_BUFFERED, R_N };
static const char *const row_id[R_N] = {"kernel", "upager_auto", "upager_fifo",
					"upager_buffered"};

struct result {
	double secs, warmup; /* counted; warm-up, until the memory was full */
	bool full;	     /* it was, before --warmup-max */
	uint64_t accesses, misses, faults, major;
	uint64_t rss;	  /* the child's peak RSS, bytes */
	uint64_t cg_peak; /* the cgroup's memory.max_usage_in_bytes */
	uint64_t cg_failcnt;
};

struct ooc {
	/* options */
	const char *dir;
	uint64_t size, budget, slack;
	unsigned int threads;
	double warmup, warmup_max, seconds;
	bool quick, json, warm;
	unsigned int rows; /* bit per R_* */
	/* the file and the tables every row shares (MAP_SHARED) */
	char path[512];
	size_t npages, per_thread;
	uint32_t *perm;	     /* rank * threads + t -> page */
	double *cdf;	     /* Zipf over per_thread ranks, cdf[m - 1] == 1 */
	uint32_t *model;     /* per page: counter + 1, 0 when not seen yet */
	struct result *res;  /* [W_N][R_N] */
	double resident_max; /* page cache left after a drop, worst row */
	/* one row, in the child */
	int work, row;
	char *base;
	volatile int phase; /* 0 warm-up, 1 counted, 2 stop */
};

struct worker {
	struct ooc *o;
	unsigned int t;
	uint64_t seed, accesses;
	pthread_t thread;
};

/* ---- the file ------------------------------------------------------------ */

/* Make the file unless a file of that size is there; then check page 0. */
static void make_file(struct ooc *o)
{
	const size_t chunk = 1 << 20;
	struct stat st;
	uint64_t seed = 0x9e3779b97f4a7c15ull, done = 0;
	double t0 = cli_now();
	uint64_t *buf;
	int fd;

	snprintf(o->path, sizeof(o->path), "%s/upager-outofcore-%" PRIu64 "M",
		 o->dir, o->size >> 20);
	if (!stat(o->path, &st) && (uint64_t)st.st_size == o->size)
		return;
	fd = open(o->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("%s: %s", o->path, strerror(errno));
	buf = xmalloc(chunk);
	if (!o->json)
		progress("writing %s (%" PRIu64 " MiB of random bytes, once)",
			 o->path, o->size >> 20);
	while (done < o->size) {
		for (size_t i = 0; i < chunk / 8; i++)
			buf[i] = rng_next(&seed);
		for (size_t pg = 0; pg < chunk / PAGE; pg++) {
			buf[pg * PAGE / 8] = pattern(done / PAGE + pg);
			buf[pg * PAGE / 8 + 1] = 0;
		}
		if (pwrite(fd, buf, chunk, (off_t)done) != (ssize_t)chunk)
			die("writing %s: %s", o->path, strerror(errno));
		done += chunk;
		if (isatty(2) && !o->json)
			cli_progress("file", done, o->size, cli_now() - t0,
				     done == o->size);
	}
	if (fsync(fd) || close(fd))
		die("%s: %s", o->path, strerror(errno));
	free(buf);
}

/* Drop the file's page cache; the fraction of it still resident. */
static double drop_cache(const struct ooc *o)
{
	int fd = open(o->path, O_RDONLY | O_CLOEXEC);
	size_t left = 0, n = o->npages;
	unsigned char *vec = xmalloc(n);
	void *p;

	if (fd < 0 || fdatasync(fd) ||
	    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
		die("dropping the cache of %s: %s", o->path, strerror(errno));
	p = mmap(NULL, o->size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED || mincore(p, o->size, vec))
		die("mincore of %s: %s", o->path, strerror(errno));
	for (size_t i = 0; i < n; i++)
		left += vec[i] & 1;
	munmap(p, o->size);
	close(fd);
	free(vec);
	return (double)left / (double)n;
}

static void warm_cache(const struct ooc *o)
{
	int fd = open(o->path, O_RDONLY | O_CLOEXEC);
	char *buf = xmalloc(1 << 20);

	if (fd < 0)
		die("%s: %s", o->path, strerror(errno));
	while (read(fd, buf, 1 << 20) > 0)
		;
	close(fd);
	free(buf);
}

/* ---- the access stream ------------------------------------------------------
 */

static void make_tables(struct ooc *o)
{
	uint64_t seed = 42;
	double sum = 0;

	o->perm = shared_map("tables", o->npages * sizeof(*o->perm));
	o->cdf = shared_map("tables", o->per_thread * sizeof(*o->cdf));
	o->model = shared_map("tables", o->npages * sizeof(*o->model));
	o->res = shared_map("results", W_N * R_N * sizeof(*o->res));
	/* Hot pages anywhere in the file, not in a run read-ahead finds. */
	for (size_t i = 0; i < o->npages; i++)
		o->perm[i] = (uint32_t)i;
	for (size_t i = o->npages - 1; i > 0; i--) {
		size_t j = rng_next(&seed) % (i + 1);
		uint32_t x = o->perm[i];

		o->perm[i] = o->perm[j];
		o->perm[j] = x;
	}
	for (size_t k = 0; k < o->per_thread; k++) {
		sum += 1.0 / pow((double)(k + 1), ZIPF_S);
		o->cdf[k] = sum;
	}
	for (size_t k = 0; k < o->per_thread; k++)
		o->cdf[k] /= sum;
}

static size_t zipf_rank(const struct ooc *o, uint64_t *seed)
{
	double u = rng_unit(seed);
	size_t lo = 0, hi = o->per_thread - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (o->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* One 4 KiB access to page @pg; dies on a wrong page or a lost write. */
static uint64_t access_page(struct ooc *o, size_t pg, bool write)
{
	uint64_t *w = (uint64_t *)(o->base + pg * PAGE), sum = 0, c;

	if (w[0] != pattern(pg))
		die("%s %s: page %zu word 0 is %#" PRIx64 ", want %#" PRIx64,
		    work_id[o->work], row_id[o->row], pg, w[0], pattern(pg));
	c = w[1];
	if (o->model[pg] && c + 1 != o->model[pg])
		die("%s %s: page %zu counter %" PRIu64 ", want %u: a write "
		    "was lost",
		    work_id[o->work], row_id[o->row], pg, c, o->model[pg] - 1);
	if (!write) {
		for (size_t i = 0; i < PAGE / 8; i++)
			sum += w[i];
		o->model[pg] = (uint32_t)c + 1;
		return sum;
	}
	c++;
	for (size_t i = 2; i < PAGE / 8; i++)
		w[i] = c;
	w[1] = c;
	o->model[pg] = (uint32_t)c + 1;
	return c;
}

static void *work(void *arg)
{
	struct worker *wk = arg;
	struct ooc *o = wk->o;
	bool zipf = o->work == W_READ_ZIPF || o->work == W_RW_ZIPF;
	bool rw = o->work == W_RW_ZIPF || o->work == W_RW_UNIFORM;
	uint64_t seed = wk->seed, sink = 0;
	int phase;

	while ((phase = __atomic_load_n(&o->phase, __ATOMIC_RELAXED)) < 2) {
		size_t r = zipf ? zipf_rank(o, &seed)
				: (size_t)(rng_next(&seed) % o->per_thread);
		size_t pg = o->perm[r * o->threads + wk->t];

		sink += access_page(o, pg, rw && (rng_next(&seed) & 1));
		if (phase == 1)
			wk->accesses++;
	}
	return (void *)(uintptr_t)sink;
}

/* ---- a row, in its child ---------------------------------------------------
 */

static void sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s,
			      .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * Misses and faults so far: the kernel's for this process (kernel row),
 * or the engine's (a miss is a MISSING fault, read from the store).
 */
static void count_faults(struct upager_handler *h, uint64_t *misses,
			 uint64_t *faults, uint64_t *major)
{
	struct upager_stats st;
	struct rusage ru;

	if (h) {
		upager_handler_stats(h, &st);
		*misses = st.faults_missing;
		*faults = st.faults;
		*major = 0;
		return;
	}
	/*
	 * A miss is a major fault (the page read from the file again); a
	 * minor one found the page in memory, or was the kernel's own
	 * write-notify fault on a clean shared page.
	 */
	getrusage(RUSAGE_SELF, &ru);
	*faults = (uint64_t)(ru.ru_minflt + ru.ru_majflt);
	*misses = *major = (uint64_t)ru.ru_majflt;
}

static uint64_t cg_read(const char *file);

/*
 * Warm up for --warmup seconds and until the memory is full (the kernel
 * row's cgroup reached its limit; upager evicted; with a warm cache,
 * just --warmup), or --warmup-max:
 * counting before would measure the fill, not the steady state.  The
 * seconds it took.
 */
static double warm_up(const struct ooc *o, struct upager_handler *h)
{
	double t0 = cli_now(), t;

	for (;;) {
		struct upager_stats st;
		bool full;

		sleep_s(0.1);
		t = cli_now() - t0;
		if (t >= o->warmup_max)
			return o->warmup_max;
		if (t < o->warmup)
			continue;
		/* Warm, the kernel row's pages are not the group's. */
		if (o->warm) {
			return t;
		} else if (h) {
			upager_handler_stats(h, &st);
			full = st.pages_evicted > 0;
		} else {
			full = cg_read("memory.failcnt") > 0;
		}
		if (full)
			return t;
	}
}

static struct upager_handler *map_upager(struct ooc *o, struct upager_store **s,
					 struct upager_region **r)
{
	struct upager_handler_params hp = {.size = sizeof(hp)};
	struct upager_map_params mp = {
	    .size = sizeof(mp),
	    .readahead_max = (size_t)-1,
	    .fault_around = (size_t)-1,
	    .budget = o->budget,
	    .evict = o->row == R_FIFO ? UPAGER_EVICT_FIFO : UPAGER_EVICT_AUTO,
	};
	struct upager_handler *h;
	char spec[600];
	int err;

	snprintf(spec, sizeof(spec), "file:%s%s,writable", o->path,
		 o->row == R_BUFFERED ? "" : ",direct");
	*s = upager_store_open(spec, &err);
	if (!*s)
		die("%s: %s", spec, strerror(-err));
	h = upager_handler_new(&hp, &err);
	if (!h)
		die("cannot open a userfaultfd: upager_handler_new: %s",
		    strerror(-err));
	o->base = upager_map(h, *s, o->size, &mp, r, &err);
	if (!o->base)
		die("%s: upager_map with a budget of %" PRIu64 " MiB: %s",
		    row_id[o->row], o->budget >> 20, strerror(-err));
	if ((err = upager_handler_start(h)))
		die("upager_handler_start: %s", strerror(-err));
	return h;
}

static void run_row(void *arg)
{
	struct ooc *o = arg;
	struct result *res = &o->res[o->work * R_N + o->row];
	struct worker wk[MAX_THREADS];
	struct upager_handler *h = NULL;
	struct upager_region *r = NULL;
	struct upager_store *s = NULL;
	uint64_t m0, f0, j0, m1, f1, j1;
	double t0, t1;
	int fd = -1, err;

	if (o->row == R_KERNEL) {
		fd = open(o->path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			die("%s: %s", o->path, strerror(errno));
		o->base = mmap(NULL, o->size, PROT_READ | PROT_WRITE,
			       MAP_SHARED, fd, 0);
		if (o->base == MAP_FAILED)
			die("mmap of %s: %s", o->path, strerror(errno));
		madvise(o->base, o->size, MADV_RANDOM);
	} else {
		h = map_upager(o, &s, &r);
	}
	o->phase = 0;
	for (unsigned int t = 0; t < o->threads; t++) {
		wk[t] = (struct worker){.o = o,
					.t = t,
					.seed = 0x1234567ull * (t + 1) +
						(uint64_t)o->work};
		if (pthread_create(&wk[t].thread, NULL, work, &wk[t]))
			die("pthread_create failed");
	}
	res->warmup = warm_up(o, h);
	res->full = res->warmup < o->warmup_max;
	count_faults(h, &m0, &f0, &j0);
	t0 = cli_now();
	__atomic_store_n(&o->phase, 1, __ATOMIC_RELAXED);
	sleep_s(o->seconds);
	__atomic_store_n(&o->phase, 2, __ATOMIC_RELAXED);
	t1 = cli_now();
	count_faults(h, &m1, &f1, &j1);
	res->accesses = 0;
	for (unsigned int t = 0; t < o->threads; t++) {
		pthread_join(wk[t].thread, NULL);
		res->accesses += wk[t].accesses;
	}
	res->secs = t1 - t0;
	res->misses = m1 - m0;
	res->faults = f1 - f0;
	res->major = j1 - j0;
	if (h) {
		/* Every dirty unit back in the file, or the row failed. */
		if ((err = upager_handler_stop(h)) || (err = upager_unmap(r)))
			die("%s: stop and unmap: %s", row_id[o->row],
			    strerror(-err));
		upager_handler_free(h);
		upager_store_close(s);
	} else if (munmap(o->base, o->size) || close(fd)) {
		die("munmap: %s", strerror(errno));
	}
	res->rss = rss_peak_since(0);
}

/* ---- the memory cgroup ------------------------------------------------------
 */

static char cgroup[128];
static pid_t cgroup_owner; /* a row's child inherits atexit(cg_remove) */

static void cg_write(const char *file, const char *val)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", cgroup, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) < 0)
		die("%s: %s", path, strerror(errno));
	close(fd);
}

static uint64_t cg_read(const char *file)
{
	char path[256], buf[64];

	snprintf(path, sizeof(path), "%s/%s", cgroup, file);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		die("%s: %s", path, strerror(errno));
	return strtoull(buf, NULL, 10);
}

static void cg_remove(void)
{
	if (getpid() != cgroup_owner)
		return;
	if (*cgroup && rmdir(cgroup) && errno != ENOENT)
		progress("could not remove %s: %s", cgroup, strerror(errno));
	*cgroup = 0;
}

static void cg_make(const struct ooc *o)
{
	char val[32];

	snprintf(cgroup, sizeof(cgroup), CGROUP_ROOT "/upager-outofcore-%d",
		 (int)getpid());
	cgroup_owner = getpid();
	if (mkdir(cgroup, 0755) && errno != EEXIST)
		die("the rows run in a cgroup v1 memory group: %s: %s "
		    "(root and the memory controller at " CGROUP_ROOT
		    " are needed)",
		    cgroup, strerror(errno));
	snprintf(val, sizeof(val), "%" PRIu64, o->budget + o->slack);
	cg_write("memory.limit_in_bytes", val);
	cg_write("memory.max_usage_in_bytes", "0");
}

/* The child's first act: into the group, before it touches the file. */
static void run_row_in_cgroup(void *arg)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	cg_write("cgroup.procs", pid);
	run_row(arg);
}

static void one_row(struct ooc *o, int w, int row)
{
	struct result *res = &o->res[w * R_N + row];
	char what[64];

	if (o->warm) {
		warm_cache(o);
	} else {
		double left = drop_cache(o);

		if (left > o->resident_max)
			o->resident_max = left;
	}
	o->work = w;
	o->row = row;
	snprintf(what, sizeof(what), "%s %s", work_id[w], row_id[row]);
	if (!o->json)
		progress("%s", what);
	cg_make(o);
	run_child(what, run_row_in_cgroup, o);
	res->cg_peak = cg_read("memory.max_usage_in_bytes");
	res->cg_failcnt = cg_read("memory.failcnt");
	cg_remove();
}

/* ---- the report
 * --------------------------------------------------------------- */

static double rate(const struct result *r)
{
	return r->secs > 0 ? (double)r->accesses / r->secs : 0;
}

static double hit(const struct result *r)
{
	return r->accesses ? 1 - (double)r->misses / (double)r->accesses : 0;
}

static void report_json(const struct ooc *o)
{
	struct json j;

	bench_json_begin(&j, NAME);
	json_u64(&j, "size", o->size);
	json_u64(&j, "budget", o->budget);
	json_u64(&j, "cgroup_limit", o->budget + o->slack);
	json_u64(&j, "threads", o->threads);
	json_f64(&j, "seconds", o->seconds);
	json_f64(&j, "warmup", o->warmup);
	json_f64(&j, "warmup_max", o->warmup_max);
	json_str(&j, "cache", o->warm ? "warm" : "cold");
	json_f64(&j, "resident_after_drop_max", o->resident_max);
	json_arr_open(&j, "rows");
	for (int w = 0; w < W_N; w++)
		for (int row = 0; row < R_N; row++) {
			const struct result *r = &o->res[w * R_N + row];

			if (!(o->rows & 1u << row))
				continue;
			json_obj_open(&j, NULL);
			json_str(&j, "workload", work_id[w]);
			json_str(&j, "id", row_id[row]);
			json_f64(&j, "accesses_per_s", rate(r));
			if (o->rows & 1u << R_KERNEL)
				json_f64(&j, "vs_kernel",
					 rate(r) /
					     rate(&o->res[w * R_N + R_KERNEL]));
			json_f64(&j, "hit_rate", hit(r));
			json_u64(&j, "accesses", r->accesses);
			json_u64(&j, "misses", r->misses);
			json_u64(&j, "faults", r->faults);
			json_u64(&j, "major_faults", r->major);
			json_u64(&j, "peak_rss_kib", r->rss >> 10);
			json_u64(&j, "cgroup_peak", r->cg_peak);
			json_u64(&j, "cgroup_failcnt", r->cg_failcnt);
			json_f64(&j, "warmup_s", r->warmup);
			json_bool(&j, "full", r->full);
			json_obj_close(&j);
		}
	json_arr_close(&j);
	json_end(&j);
}

static void report_tables(const struct ooc *o)
{
	printf("%" PRIu64 " MiB file; upager's budget %" PRIu64
	       " MiB; each row's memory cgroup %" PRIu64 " MiB; %u threads, "
	       "4 KiB accesses;\n%.1f s counted after a warm-up of %.0f s "
	       "or more, until the memory was full\n(warm s: the cgroup "
	       "at its limit, or upager evicting; * not full after %.0f s); "
	       "page cache %s\n\n",
	       o->size >> 20, o->budget >> 20, (o->budget + o->slack) >> 20,
	       o->threads, o->seconds, o->warmup, o->warmup_max,
	       o->warm ? "warm (read first, outside the cgroup)"
		       : "dropped before each row");
	printf("%-12s %-13s %11s %8s %7s %9s %9s %8s %8s %7s\n", "workload",
	       "row", "accesses/s", "x kernel", "hit %", "faults/a", "major/a",
	       "RSS MiB", "cg MiB", "warm s");
	for (int w = 0; w < W_N; w++)
		for (int row = 0; row < R_N; row++) {
			const struct result *r = &o->res[w * R_N + row];
			double a = r->accesses ? (double)r->accesses : 1;
			double k = rate(&o->res[w * R_N + R_KERNEL]);

			if (!(o->rows & 1u << row))
				continue;
			printf("%-12s %-13s %11.0f %8.2f %7.1f %9.3f %9.3f "
			       "%8" PRIu64 " %8" PRIu64 " %6.0f%s\n",
			       work_id[w], row_id[row], rate(r),
			       k > 0 ? rate(r) / k : 0, 100 * hit(r),
			       (double)r->faults / a, (double)r->major / a,
			       r->rss >> 20, r->cg_peak >> 20, r->warmup,
			       r->full ? "" : "*");
		}
	if (!o->warm)
		printf("\npage cache left after a drop: %.2f%% of the file at "
		       "most\n",
		       100 * o->resident_max);
}

static void usage(void)
{
	printf(
	    "usage: " NAME " [--dir DIR] [--size SIZE] [--budget SIZE] "
	    "[--threads N]\n"
	    "                 [--seconds S] [--warmup S] [--warmup-max S] "
	    "[--slack SIZE]\n"
	    "                 [--rows LIST] [--cache cold|warm] [--quick] "
	    "[--json]\n\n"
	    "Random 4 KiB reads and read-writes (Zipf s=0.99 and uniform) "
	    "over a file larger\nthan the memory allowed: the kernel "
	    "(mmap MAP_SHARED in a memory cgroup of BUDGET)\nagainst "
	    "upager regions over file:,direct,writable with a budget of BUDGET "
	    "(2Q and FIFO).\nNeeds root and the cgroup v1 memory "
	    "controller at " CGROUP_ROOT ".\n\n"
	    "  --dir DIR      where the file is made and kept (default "
	    "/var/tmp): a disk\n"
	    "  --size SIZE    the file (default 4G; --quick 256M)\n"
	    "  --budget SIZE  upager's budget, and each row's cgroup limit "
	    "with --slack\n"
	    "                 (default 1G; --quick 64M)\n"
	    "  --slack SIZE   added to the cgroup limit for the process "
	    "itself (default\n"
	    "                 64M; --quick 16M)\n"
	    "  --threads N    accessing threads (default 2)\n"
	    "  --seconds S    counted time per row (default 10; --quick "
	    "1)\n"
	    "  --warmup S     time before counting at least, and until the "
	    "memory is full\n"
	    "                 (default 10; --quick 1)\n"
	    "  --warmup-max S  time before counting at most (default 180; "
	    "--quick 10)\n"
	    "  --rows LIST    the rows to run: kernel, upager_auto, "
	    "upager_fifo,\n"
	    "                 upager_buffered (default: all but "
	    "upager_buffered)\n"
	    "  --cache MODE   cold: drop the file's page cache before each "
	    "row (default);\n"
	    "                 warm: read the file first\n"
	    "  --quick        a smoke run (CI)\n"
	    "  --json         one JSON object\n");
}

/* "kernel,upager_fifo": a bit per row named. */
static bool parse_rows(const char *arg, unsigned int *rows)
{
	char buf[128], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", arg);
	*rows = 0;
	for (char *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		int r = 0;

		while (r < R_N && strcmp(t, row_id[r]))
			r++;
		if (r == R_N) {
			cli_usage_error(NAME,
					"--rows: no row '%s' (kernel, "
					"upager_auto, upager_fifo, "
					"upager_buffered)",
					t);
			return false;
		}
		*rows |= 1u << r;
	}
	if (!*rows)
		cli_usage_error(NAME, "--rows: name at least one row");
	return *rows != 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"size", required_argument, NULL, 's'},
	    {"budget", required_argument, NULL, 'b'},
	    {"threads", required_argument, NULL, 't'},
	    {"seconds", required_argument, NULL, 'S'},
	    {"warmup", required_argument, NULL, 'W'},
	    {"warmup-max", required_argument, NULL, 'M'},
	    {"cache", required_argument, NULL, 'c'},
	    {"rows", required_argument, NULL, 'r'},
	    {"slack", required_argument, NULL, 'l'},
	    BENCH_OPTIONS};
	static struct ooc o = {
	    .dir = "/var/tmp", .threads = 2, .rows = (1u << R_BUFFERED) - 1};
	uint64_t v, size = 0, budget = 0;
	double seconds = 0, warmup = 0;
	bool slack_set = false;
	int c;

	bench_set_name(NAME);
	while ((c = bench_getopt(NAME, argc, argv, lopts, &o.quick,
				 &o.json, usage)) != -1) {
		switch (c) {
		case 'd':
			o.dir = optarg;
			break;
		case 's':
			if (!cli_parse_u64(NAME, "--size", optarg, 4 * MIB,
					   (uint64_t)UINT32_MAX * PAGE, true,
					   &size))
				return 2;
			break;
		case 'b':
			if (!cli_parse_u64(NAME, "--budget", optarg, MIB,
					   UINT64_MAX, true, &budget))
				return 2;
			break;
		case 't':
			if (!cli_parse_u64(NAME, "--threads", optarg, 1,
					   MAX_THREADS, false, &v))
				return 2;
			o.threads = (unsigned int)v;
			break;
		case 'S':
			if (!bench_parse_secs(NAME, "--seconds", optarg, 3600,
					      &seconds))
				return 2;
			break;
		case 'W':
			if (!bench_parse_secs(NAME, "--warmup", optarg, 3600,
					      &warmup))
				return 2;
			break;
		case 'M':
			if (!bench_parse_secs(NAME, "--warmup-max", optarg,
					      3600, &o.warmup_max))
				return 2;
			break;
		case 'c':
			if (strcmp(optarg, "cold") && strcmp(optarg, "warm"))
				return cli_usage_error(
				    NAME, "--cache '%s': want cold or warm",
				    optarg);
			o.warm = !strcmp(optarg, "warm");
			break;
		case 'l':
			if (!cli_parse_u64(NAME, "--slack", optarg, 0,
					   UINT64_MAX, true, &o.slack))
				return 2;
			slack_set = true;
			break;
		case 'r':
			if (!parse_rows(optarg, &o.rows))
				return 2;
			break;
		}
	}
	o.size = size ? size : o.quick ? 256 * MIB : 4 * GIB;
	o.budget = budget ? budget : o.quick ? 64 * MIB : GIB;
	o.seconds = seconds ? seconds : o.quick ? 1 : 10;
	o.warmup = warmup ? warmup : o.quick ? 1 : 10;
	if (!o.warmup_max)
		o.warmup_max = o.quick ? 10 : 180;
	if (o.warmup_max < o.warmup)
		return cli_usage_error(NAME, "--warmup-max: want at least "
					     "--warmup");
	if (!slack_set)
		o.slack = o.quick ? 16 * MIB : 64 * MIB;
	if (o.size % (PAGE * o.threads))
		return cli_usage_error(NAME,
				       "--size: want a multiple of %u "
				       "pages (--threads)",
				       o.threads);
	if (o.budget >= o.size || o.budget % PAGE)
		return cli_usage_error(NAME, "--budget: want whole pages, "
					     "less than --size");
	if (!bench_check_dir(NAME, o.dir))
		return 2;
	o.npages = o.size / PAGE;
	o.per_thread = o.npages / o.threads;
	make_file(&o);
	make_tables(&o);
	atexit(cg_remove);
	for (int w = 0; w < W_N; w++)
		for (int row = 0; row < R_N; row++)
			if (o.rows & 1u << (row + w) % R_N)
				one_row(&o, w, (row + w) % R_N);
	if (o.json)
		report_json(&o);
	else
		report_tables(&o);
	return 0;
}

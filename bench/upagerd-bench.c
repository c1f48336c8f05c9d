// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upagerd-bench: what serving another process costs, and what a replayed
 * working set saves, side by side in one run.
 *
 *   L  4 KiB fault latency seen from the faulting thread, a file store
 *      over a file in the page cache, read-ahead and fault-around off:
 *      the region in-process (upager_map(), the baseline) vs a client
 *      process served by a manager (upagerd's library in this process,
 *      the client attached with upager_attach()).
 *   R  the restore of a memory image (2 GiB; --size): a client attaches
 *      a region over all of it and reads a working set of a quarter of
 *      its pages, scattered, in a fixed random order, all of each page:
 *      on demand with the manager's defaults (read-ahead and
 *      fault-around on), on demand with 4 KiB faults only (REAP's
 *      baseline), and with the working set replayed from a trace a
 *      first client recorded reading the same pages.  Faults the manager took
 *      for the client, and the time from the attach call to the last
 *      page read.
 *
 * The clients are this program again (--client), so nothing but the
 * socket joins them to the manager.  Rows run interleaved in an order
 * that rotates every round; the tables show the medians of the rounds.
 * Every page read is checked against the image's pattern: a wrong page
 * fails the run (exit 1), never a number.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <upager/manager.h>
#include <upager/store.h>
#include <upager/trace.h>

#include "bench.h"
#include "cli.h"

struct mopts {
	bool quick, json;
	const char *dir;
	uint64_t size; /* R: the image */
	unsigned int rounds;
	size_t lat_pages; /* L: pages per run */
	unsigned int workers;
};

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The pages in an order @seed fixes: a working set is its first n. */
static uint32_t *working_set(uint64_t npages, uint64_t seed)
{
	uint32_t *perm = xmalloc(npages * sizeof(*perm));
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (uint64_t i = 0; i < npages; i++)
		perm[i] = (uint32_t)i;
	for (uint64_t i = npages - 1; i > 0; i--) {
		uint64_t j;
		uint32_t t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % (i + 1);
		t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	return perm;
}

/* Every page of the image is 0x5a bytes but its first word, pattern(). */
#define FILLER 0x5a5a5a5a5a5a5a5aull

static uint64_t image_sum(uint64_t pg)
{
	return pattern(pg) + (PAGE / 8 - 1) * FILLER;
}

/* Read all of a page, as a program that uses it does. */
static uint64_t page_sum_of(const char *page)
{
	const volatile uint64_t *w = (const volatile uint64_t *)page;
	uint64_t sum = 0;

	for (size_t k = 0; k < PAGE / 8; k++)
		sum += w[k];
	return sum;
}

/* ---- the client (this program, --client) ----------------------------------
 */

/*
 * Attach @npages of @export and read: "lat" every page in order, each
 * access timed (writes p50 and p99 in ns); "ws" the working set of @n
 * pages (writes the ns from before the attach to the last page).  Exit
 * 1 on a wrong page.
 */
static int client(const char *sock, const char *export, const char *mode,
		  uint64_t npages, uint64_t n, int out)
{
	size_t len = npages * PAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct upager_attach_region r = {.addr = p, .len = len, .name = export};
	struct upager_attach_result res = {.size = sizeof(res)};
	uint64_t result[2], t0, *lat = NULL;
	uint32_t *ws = NULL;
	int fd;

	if (p == MAP_FAILED)
		die("client: mmap: %s", strerror(errno));
	madvise(p, len, MADV_NOHUGEPAGE);
	if (!strcmp(mode, "lat"))
		lat = xmalloc(npages * sizeof(*lat));
	else
		ws = working_set(npages, 7);
	t0 = ns_now();
	fd = upager_attach(sock, &r, 1, NULL, &res);
	if (fd < 0)
		die("client: attach: %s (%s: %s)", strerror(-fd), res.field,
		    res.text);
	if (lat) {
		for (uint64_t i = 0; i < npages; i++) {
			uint64_t a = ns_now(), v;

			v = *(volatile uint64_t *)(p + i * PAGE);
			lat[i] = ns_now() - a;
			if (v != pattern(i))
				die("client: page %" PRIu64 " is wrong", i);
		}
		qsort(lat, npages, sizeof(*lat), cmp_u64);
		result[0] = lat[npages / 2];
		result[1] = lat[npages * 99 / 100];
	} else {
		for (uint64_t i = 0; i < n; i++)
			if (page_sum_of(p + (uint64_t)ws[i] * PAGE) !=
			    image_sum(ws[i]))
				die("client: page %u is wrong", ws[i]);
		result[0] = ns_now() - t0;
		result[1] = 0;
	}
	if (write(out, result, sizeof(result)) != sizeof(result))
		die("client: writing the result: %s", strerror(errno));
	close(fd);
	return 0;
}

/* Run a client of @export and read its two numbers. */
static void run_client(const char *sock, const char *export, const char *mode,
		       uint64_t npages, uint64_t n, uint64_t result[2])
{
	char a[3][32], fdarg[16];
	int pfd[2], status;
	pid_t pid;

	if (pipe(pfd) < 0)
		die("pipe: %s", strerror(errno));
	snprintf(a[0], sizeof(a[0]), "%" PRIu64, npages);
	snprintf(a[1], sizeof(a[1]), "%" PRIu64, n);
	snprintf(fdarg, sizeof(fdarg), "%d", pfd[1]);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[0]);
		execl("/proc/self/exe", "upagerd-bench", "--client", sock,
		      export, mode, a[0], a[1], fdarg, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	if (read(pfd[0], result, 2 * sizeof(*result)) != 2 * sizeof(*result))
		result[0] = result[1] = UINT64_MAX;
	close(pfd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		die("a %s client of '%s' failed (status %#x)", mode, export,
		    status);
	if (result[0] == UINT64_MAX)
		die("a %s client of '%s' said nothing", mode, export);
}

/* ---- the image and the manager ----------------------------------------------
 */

/* A file of @size bytes whose page pg starts with pattern(pg). */
static char *make_image(const char *dir, uint64_t size)
{
	static char path[4096];
	char *buf = xmalloc(MIB);
	int fd;

	snprintf(path, sizeof(path), "%s/upagerd-bench.%d.img", dir,
		 (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	memset(buf, FILLER & 0xff, MIB);
	for (uint64_t off = 0; off < size; off += MIB) {
		for (size_t k = 0; k < MIB; k += PAGE)
			*(uint64_t *)(buf + k) = pattern((off + k) / PAGE);
		if (pwrite(fd, buf, MIB, (off_t)off) != (ssize_t)MIB)
			die("%s: write: %s", path, strerror(errno));
	}
	close(fd);
	free(buf);
	return path;
}

struct mgr {
	struct upager_manager *m;
	char sock[108];
};

/* Exports of @s: "lat" (read-ahead off), "demand", and "replay" (@t). */
static void mgr_up(struct mgr *g, struct upager_store *s,
		   const struct upager_trace *t, const char *record_dir,
		   unsigned int workers, const char *tag)
{
	struct upager_manager_params mp = {.size = sizeof(mp),
					   .threads = workers};
	struct upager_listen_params lp = {
	    .size = sizeof(lp), .owner = (uid_t)-1, .group = (gid_t)-1};
	struct upager_export_params off = {.size = sizeof(off),
					   .readahead_max = (size_t)-1,
					   .fault_around = (size_t)-1};
	struct upager_export_params rec = {.size = sizeof(rec),
					   .record_dir = record_dir};
	struct upager_export_params rep = {.size = sizeof(rep), .replay = t};
	int err;

	g->m = upager_manager_new(&mp, &err);
	if (!g->m)
		die("manager: %s", strerror(-err));
	snprintf(g->sock, sizeof(g->sock), "/tmp/upagerd-bench.%d.%s.sock",
		 (int)getpid(), tag);
	lp.path = g->sock;
	if ((err = upager_manager_export(g->m, "lat", s, &off)) ||
	    (err = upager_manager_export(g->m, "demand", s,
					 record_dir ? &rec : NULL)) ||
	    (t && (err = upager_manager_export(g->m, "replay", s, &rep))) ||
	    (err = upager_manager_listen(g->m, &lp)) ||
	    (err = upager_manager_start(g->m)))
		die("manager: %s", strerror(-err));
}

static uint64_t mgr_faults(struct mgr *g)
{
	struct upager_manager_stats st = {.size = sizeof(st)};

	upager_manager_stats(g->m, &st);
	return st.total.faults;
}

/* Wait until the manager let its last client go (its exit is seen
 * after the client is gone). */
static void mgr_idle(struct mgr *g)
{
	for (int i = 0; i < 10000; i++) {
		struct upager_manager_stats st = {.size = sizeof(st)};

		upager_manager_stats(g->m, &st);
		if (!st.clients)
			return;
		usleep(1000);
	}
	die("the manager kept a client that exited");
}

/* ---- L: fault latency
 * --------------------------------------------------------- */

/* In-process: the same timed loop as the client, on upager_map(). */
static void lat_inproc(struct upager_store *s, const struct mopts *o,
		       double *p50, double *p99)
{
	struct upager_handler_params hp = {.size = sizeof(hp),
					   .threads = o->workers};
	struct upager_map_params mp = {.size = sizeof(mp),
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	uint64_t *lat = xmalloc(o->lat_pages * sizeof(*lat));
	struct upager_handler *h;
	struct upager_region *r;
	char *p;
	int err;

	h = upager_handler_new(&hp, &err);
	if (!h)
		die("handler: %s", strerror(-err));
	p = upager_map(h, s, o->lat_pages * PAGE, &mp, &r, &err);
	if (!p)
		die("map: %s", strerror(-err));
	upager_handler_start(h);
	for (size_t i = 0; i < o->lat_pages; i++) {
		uint64_t a = ns_now(), v;

		v = *(volatile uint64_t *)(p + i * PAGE);
		lat[i] = ns_now() - a;
		if (v != pattern(i))
			die("in-process: page %zu is wrong", i);
	}
	upager_unmap(r);
	upager_handler_free(h);
	qsort(lat, o->lat_pages, sizeof(*lat), cmp_u64);
	*p50 = (double)lat[o->lat_pages / 2] / 1000;
	*p99 = (double)lat[o->lat_pages * 99 / 100] / 1000;
	free(lat);
}

static void lat_client(struct mgr *g, const struct mopts *o, double *p50,
		       double *p99, uint64_t *faults)
{
	uint64_t res[2], f0 = mgr_faults(g);

	run_client(g->sock, "lat", "lat", o->lat_pages, 0, res);
	mgr_idle(g);
	*p50 = (double)res[0] / 1000;
	*p99 = (double)res[1] / 1000;
	*faults = mgr_faults(g) - f0;
}

/* ---- R: restore
 * ------------------------------------------------------------------ */

static void restore(struct mgr *g, const char *export, uint64_t npages,
		    uint64_t n, double *ms, double *faults)
{
	uint64_t res[2], f0 = mgr_faults(g);

	run_client(g->sock, export, "ws", npages, n, res);
	mgr_idle(g);
	*ms = (double)res[0] / 1e6;
	*faults = (double)(mgr_faults(g) - f0);
}

/* Record the working set once: the trace a first restore leaves. */
static struct upager_trace *record(struct upager_store *s, const char *dir,
				   uint64_t npages, uint64_t n,
				   const struct mopts *o)
{
	char rec_dir[4200], path[4400], why[256];
	struct upager_trace *t;
	double ms, faults;
	struct mgr g;
	FILE *ls;
	int err;

	snprintf(rec_dir, sizeof(rec_dir), "%s/upagerd-bench.%d.rec", dir,
		 (int)getpid());
	if (mkdir(rec_dir, 0700) < 0)
		die("%s: %s", rec_dir, strerror(errno));
	mgr_up(&g, s, NULL, rec_dir, o->workers, "rec");
	restore(&g, "demand", npages, n, &ms, &faults);
	upager_manager_free(g.m);
	progress("recorded the working set: %.0f faults, %.0f ms", faults, ms);
	snprintf(path, sizeof(path), "ls %s/*.trace", rec_dir);
	ls = popen(path, "r");
	if (!ls || !fgets(path, sizeof(path), ls))
		die("no trace in %s", rec_dir);
	pclose(ls);
	path[strcspn(path, "\n")] = 0;
	t = upager_trace_read(path, why, sizeof(why), &err);
	if (!t)
		die("%s: %s", path, why);
	if (t->count != n)
		die("the trace holds %" PRIu64
		    " pages, the client read %" PRIu64,
		    t->count, n);
	unlink(path);
	rmdir(rec_dir);
	return t;
}

/* ---- the run
 * -------------------------------------------------------------------- */

enum { L_IN, L_MGR, L_N };
enum { R_DEMAND, R_DEMAND_4K, R_REPLAY, R_N };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: upagerd-bench [--quick] [--json] [--dir DIR] [--size "
		"SIZE]\n"
		"                     [--rounds N] [--workers N]\n\n"
		"A client served by a manager (upagerd's library) vs the same\n"
		"store in-process, and a restore on demand vs a replayed\n"
		"working set:\n"
		"  L  4 KiB fault latency, read-ahead off (20000 pages a run)\n"
		"  R  a client reads a quarter of a memory image (--size,\n"
		"     default 2G), scattered: faults and time, on demand vs\n"
		"     replaying the trace a first client recorded\n\n"
		"  --quick       a smoke run: 1 round, 256 MiB, 2000 pages\n"
		"  --dir DIR     where the image goes (default /var/tmp)\n"
		"  --rounds N    rounds of interleaved rows (default 5)\n"
		"  --workers N   engine workers of both sides (default 2)\n"
		"  --json        one JSON object instead of the tables\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"quick", no_argument, NULL, 'q'},
	    {"json", no_argument, NULL, 'j'},
	    {"dir", required_argument, NULL, 'd'},
	    {"size", required_argument, NULL, 's'},
	    {"rounds", required_argument, NULL, 'r'},
	    {"workers", required_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    {0}};
	struct mopts o = {.dir = "/var/tmp",
			  .size = 2 * GIB,
			  .rounds = 5,
			  .lat_pages = 20000,
			  .workers = 2};
	double lp50[L_N][MAX_ROUNDS], lp99[L_N][MAX_ROUNDS];
	double rms[R_N][MAX_ROUNDS], rf[R_N][MAX_ROUNDS];
	uint64_t rounds, workers, lat_faults = 0, npages, n;
	struct upager_store *s;
	struct upager_trace *t;
	char spec[4200], *img;
	struct mgr g;
	int c, err;

	/* Messages read "upagerd-bench: ...": bench_util.c's die() and
	 * progress() name the command "bench". */
	cli_set_program("upagerd-");
	if (argc == 8 && !strcmp(argv[1], "--client"))
		return client(argv[2], argv[3], argv[4],
			      strtoull(argv[5], NULL, 10),
			      strtoull(argv[6], NULL, 10), atoi(argv[7]));
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o.quick = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 's':
			if (!cli_parse_u64("bench", "--size", optarg, 64 * MIB,
					   1ull << 40, true, &o.size))
				return 2;
			break;
		case 'r':
			if (!cli_parse_u64("bench", "--rounds", optarg, 1,
					   MAX_ROUNDS, false, &rounds))
				return 2;
			o.rounds = (unsigned int)rounds;
			break;
		case 'w':
			if (!cli_parse_u64("bench", "--workers", optarg, 1,
					   MAX_WORKERS, false, &workers))
				return 2;
			o.workers = (unsigned int)workers;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (o.quick) {
		o.rounds = 1;
		o.size = 256 * MIB;
		o.lat_pages = 2000;
	}
	o.size -= o.size % PAGE;
	npages = o.size / PAGE;
	n = npages / 4;
	if ((uint64_t)o.lat_pages > npages)
		o.lat_pages = (size_t)npages;
	img = make_image(o.dir, o.size);
	snprintf(spec, sizeof(spec), "file:%s", img);
	s = upager_store_open(spec, &err);
	if (!s)
		die("%s: %s", spec, strerror(-err));
	progress("image of %" PRIu64 " MiB in %s (page cache warm), "
		 "working set %" PRIu64 " pages",
		 o.size / MIB, o.dir, n);
	t = record(s, o.dir, npages, n, &o);
	mgr_up(&g, s, t, NULL, o.workers, "run");
	for (unsigned int r = 0; r < o.rounds; r++) {
		for (int k = 0; k < L_N; k++) {
			int row = (k + (int)r) % L_N;
			uint64_t f;

			if (row == L_IN) {
				lat_inproc(s, &o, &lp50[row][r], &lp99[row][r]);
			} else {
				lat_client(&g, &o, &lp50[row][r], &lp99[row][r],
					   &f);
				lat_faults += f;
			}
		}
		for (int k = 0; k < R_N; k++) {
			int row = (k + (int)r) % R_N;

			static const char *const ex[R_N] = {
			    [R_DEMAND] = "demand",
			    [R_DEMAND_4K] = "lat",
			    [R_REPLAY] = "replay",
			};

			restore(&g, ex[row], npages, n, &rms[row][r],
				&rf[row][r]);
		}
		progress("round %u of %u", r + 1, o.rounds);
	}
	/* Read-ahead off: every page the client read was a fault. */
	if (lat_faults < (uint64_t)o.lat_pages * o.rounds)
		die("the manager took %" PRIu64 " faults for %" PRIu64
		    " first touches with read-ahead off",
		    lat_faults, (uint64_t)o.lat_pages * o.rounds);
	upager_manager_free(g.m);
	upager_trace_free(t);
	upager_store_close(s);
	unlink(img);

	{
		double in50 = median(lp50[L_IN], o.rounds),
		       in99 = median(lp99[L_IN], o.rounds),
		       m50 = median(lp50[L_MGR], o.rounds),
		       m99 = median(lp99[L_MGR], o.rounds),
		       dms = median(rms[R_DEMAND], o.rounds),
		       kms = median(rms[R_DEMAND_4K], o.rounds),
		       pms = median(rms[R_REPLAY], o.rounds),
		       df = median(rf[R_DEMAND], o.rounds),
		       kf = median(rf[R_DEMAND_4K], o.rounds),
		       pf = median(rf[R_REPLAY], o.rounds);

		if (o.json) {
			printf(
			    "{\"rounds\": %u, \"workers\": %u, "
			    "\"latency\": {\"pages\": %zu, "
			    "\"inprocess_p50_us\": %.2f, "
			    "\"inprocess_p99_us\": %.2f, "
			    "\"manager_p50_us\": %.2f, "
			    "\"manager_p99_us\": %.2f}, "
			    "\"restore\": {\"image_bytes\": %" PRIu64
			    ", \"working_set_pages\": %" PRIu64
			    ", \"demand_faults\": %.0f, "
			    "\"demand_ms\": %.1f, \"demand_4k_faults\": %.0f, "
			    "\"demand_4k_ms\": %.1f, \"replay_faults\": %.0f, "
			    "\"replay_ms\": %.1f}}\n",
			    o.rounds, o.workers, o.lat_pages, in50, in99, m50,
			    m99, o.size, n, df, dms, kf, kms, pf, pms);
			return 0;
		}
		printf("L  4 KiB fault latency, %zu pages a run, read-ahead "
		       "off, %u workers (median of %u rounds)\n",
		       o.lat_pages, o.workers, o.rounds);
		printf("  %-34s %9s %9s %9s %9s\n", "", "p50 us", "p99 us",
		       "p50 x", "p99 x");
		printf("  %-34s %9.2f %9.2f %9.2f %9.2f\n",
		       "in-process (upager_map)", in50, in99, 1.0, 1.0);
		printf("  %-34s %9.2f %9.2f %9.2f %9.2f\n",
		       "client of the manager (attach)", m50, m99, m50 / in50,
		       m99 / in99);
		printf("\nR  restore of a %" PRIu64 " MiB image, working set "
		       "%" PRIu64 " pages (25%%) scattered, page cache warm "
		       "(median of %u rounds)\n",
		       o.size / MIB, n, o.rounds);
		printf("  %-38s %8s %9s %18s\n", "", "faults", "ms",
		       "replay: fewer, x");
		printf("  %-38s %8.0f %9.1f %11.1f%% %5.1fx\n",
		       "on demand (read-ahead, fault-around)", df, dms,
		       df ? 100.0 * (1 - pf / df) : 0.0, pms ? dms / pms : 0);
		printf("  %-38s %8.0f %9.1f %11.1f%% %5.1fx\n",
		       "on demand, 4 KiB faults only", kf, kms,
		       kf ? 100.0 * (1 - pf / kf) : 0.0, pms ? kms / pms : 0);
		printf("  %-38s %8.0f %9.1f\n", "replay of the recorded trace",
		       pf, pms);
		printf("  (the replay's faults fewer than that row's, and how "
		       "many times faster it read the working set)\n");
	}
	return 0;
}

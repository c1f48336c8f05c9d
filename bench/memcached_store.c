// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * memcached-store: the memcached: store against its floor and against
 * file: (docs/BENCHMARKS.md, "The memcached store").
 *
 * Three memcached servers are started on loopback ports (as nobody), the
 * data is pushed into them (and written to a file in --dir, read once so
 * that its page cache is warm), then, in the same run:
 *   - 4 KiB reads of random pages, p50 and p99, six ways request by
 *     request in turn: the floor, memcached_get() of one page by a bare
 *     libmemcached client (ketama) from the same three servers; the
 *     store's fetch() of one page without a region (the store's cost
 *     over the floor); the first touch of a page of a region over
 *     memcached: (2 workers, the defaults: a random fault fetches its
 *     page alone), and of one in-thread (the faulting thread fetches from
 *     its SIGBUS handler, the store's fetch_signal()): what a fault adds;
 *     and both faults served bare (a handler thread, a SIGBUS handler)
 *     with the floor's memcached_get() and a UFFDIO_COPY: the floor
 *     plus the kernel's share of each fault, no upager (the least such
 *     a fault can cost with this client);
 *   - the same first touches over file: with fault-around and read-ahead
 *     off (every touch a fault: the engine's own cost of a fault, with
 *     the page cache behind it);
 *   - sequential reads of the whole region: memcached: with multi-get
 *     windows (the default mget=256), without (mget=1: a get per page),
 *     and file:, MB/s, the median of --rounds.
 */
#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libmemcached/memcached.h>

#include <upager/memcached.h>
#include <upager/upager.h>

#include "bench.h"
#include "cli.h"
#include "memcached_server.h"

#define NSERVERS 3
#define NS	 "bench"

static pid_t pids[NSERVERS];
static unsigned int ports[NSERVERS];
static char servers[256];

static void stop_servers(void)
{
	for (int i = 0; i < NSERVERS; i++)
		mcsrv_kill(pids[i]);
}

static void start_servers(uint64_t mib)
{
	size_t k = 0;
	int ret;

	atexit(stop_servers);
	for (int i = 0; i < NSERVERS; i++) {
		ret = mcsrv_start(mib, &pids[i], &ports[i]);
		if (ret < 0)
			die("memcached on a loopback port: %s", strerror(-ret));
		k += (size_t)snprintf(servers + k, sizeof(servers) - k,
				      "%s127.0.0.1:%u", i ? "," : "", ports[i]);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double q)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(size_t)(q * (double)(n - 1))];
}

/* A random page order (the same every run). */
static size_t *shuffled(size_t n)
{
	size_t *o = malloc(n * sizeof(*o));

	if (!o)
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		o[i] = i;
	srand(1);
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1), x = o[i];

		o[i] = o[j];
		o[j] = x;
	}
	return o;
}

struct region {
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	char *p;
};

/* How a region is mapped. */
enum mode {
	DEFAULTS,
	ALONE,	  /* no fault-around, no read-ahead: every first touch a fault */
	IN_THREAD /* UPAGER_MAP_IN_THREAD */
};

static void region_map(struct region *g, const char *spec, uint64_t len,
		       enum mode mode)
{
	struct upager_map_params mp = {.size = sizeof(mp)};
	int err;

	if (mode == ALONE)
		mp.fault_around = mp.readahead_max = (size_t)-1;
	if (mode == IN_THREAD)
		mp.flags = UPAGER_MAP_IN_THREAD;
	g->s = upager_store_open(spec, &err);
	if (!g->s)
		die("%s: %s", spec, strerror(-err));
	g->h = upager_handler_new(NULL, &err);
	if (!g->h)
		die("handler: %s", strerror(-err));
	g->p = upager_map(g->h, g->s, len, &mp, &g->r, &err);
	if (!g->p || (err = upager_handler_start(g->h)))
		die("map %s: %s", spec, strerror(-err));
}

static void region_unmap(struct region *g)
{
	upager_unmap(g->r);
	upager_handler_free(g->h);
	upager_store_close(g->s);
}

/* First touches of @n random pages of @spec: seconds each into @lat. */
static void faults(const char *spec, uint64_t len, const size_t *order,
		   size_t n, double *lat, const char *data)
{
	struct region g;

	region_map(&g, spec, len, ALONE);
	for (size_t i = 0; i < n; i++) {
		volatile const char *pg = g.p + order[i] * PAGE;
		double t0 = cli_now();
		char c = pg[0];

		lat[i] = cli_now() - t0;
		if (c != data[order[i] * PAGE])
			die("%s: page %zu reads wrong", spec, order[i]);
	}
	region_unmap(&g);
}

/* Every page of @spec in order: seconds. */
static double sequential(const char *spec, uint64_t len, const char *data)
{
	struct region g;
	double t0, t;

	region_map(&g, spec, len, DEFAULTS);
	t0 = cli_now();
	for (uint64_t off = 0; off < len; off += PAGE)
		(void)*(volatile const char *)(g.p + off);
	t = cli_now() - t0;
	if (memcmp(g.p, data, len))
		die("%s: the pages read back wrong", spec);
	region_unmap(&g);
	return t;
}

/* The ways to one page of memcached that side_by_side() compares. */
enum way {
	FLOOR,
	FETCH,
	REGION,
	REGION_IN_THREAD,
	BARE,
	BARE_IN_THREAD,
	NWAYS
};

static memcached_st *bench_mc; /* the floor's client */

/* memcached_get() of page @pg into @page: the floor's call. */
static void get_page(size_t pg, char *page)
{
	char key[64], *v;
	memcached_return_t rc;
	uint32_t flags;
	size_t vlen;

	snprintf(key, sizeof(key), NS "/%016zx", pg);
	v = memcached_get(bench_mc, key, strlen(key), &vlen, &flags, &rc);
	if (rc != MEMCACHED_SUCCESS || (vlen != PAGE && vlen))
		die("get %s: %s, %zu bytes", key,
		    memcached_strerror(bench_mc, rc), vlen);
	if (vlen)
		memcpy(page, v, PAGE);
	else
		memset(page, 0, PAGE);
	free(v);
}

/*
 * The floor, memcached_get() of one page by a bare client; the store's
 * fetch() of one page without a region; a first touch of a page of a
 * region over the store (the defaults: a worker fetches), and of one
 * in-thread (the faulting thread fetches, fetch_signal()); and the same
 * two faults served bare, by a handler thread and by a SIGBUS handler
 * that get the page with the floor's memcached_get() and copy it in:
 * the floor plus the kernel's share of each kind of fault, in the order
 * the region's takes them, and no upager (libmemcached is not
 * async-signal-safe, but here the signal only ever comes at the access
 * below, never inside it).  @n random pages each, seconds each into lat[way][i].  Request
 * by request in turn, the way that goes first rotating, each way on its
 * own part of the order: a loopback round trip costs 20 us when the
 * scheduler puts client and server on one vCPU here and 60-80 us
 * across, and that placement follows what ran just before (two
 * separate loops measured the second one 0.6x to 2.2x the first,
 * whichever it was).
 */
static void side_by_side(const char *spec, uint64_t len, const size_t *order,
			 size_t n, double *lat[NWAYS], const char *data)
{
	struct region g[2];
	struct upager_store *s;
	struct bare bl;
	char buf[PAGE], *base[NWAYS] = { NULL };
	int err;

	bench_mc = memcached_create(NULL);
	if (!bench_mc)
		die("memcached_create");
	memcached_behavior_set(bench_mc, MEMCACHED_BEHAVIOR_KETAMA, 1);
	memcached_behavior_set(bench_mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
	/* As the store sets it: the floor is the same client at its best. */
	memcached_behavior_set(bench_mc, MEMCACHED_BEHAVIOR_NO_BLOCK, 1);
	for (int i = 0; i < NSERVERS; i++)
		memcached_server_add(bench_mc, "127.0.0.1",
				     (in_port_t)ports[i]);
	s = upager_store_open(spec, &err);
	if (!s)
		die("%s: %s", spec, strerror(-err));
	region_map(&g[0], spec, len, DEFAULTS);
	region_map(&g[1], spec, len, IN_THREAD);
	bare_up(&bl, NULL, get_page, len);
	base[REGION] = g[0].p;
	base[REGION_IN_THREAD] = g[1].p;
	base[BARE] = bl.base;
	/* After upager's SIGBUS handler, which it passes the region's to. */
	base[BARE_IN_THREAD] = bare_sig_up(NULL, get_page, len);
	for (size_t i = 0; i < n; i++) {
		for (int k = 0; k < NWAYS; k++) {
			int w = (int)((i + (size_t)k) % NWAYS);
			size_t pg = order[(i + (size_t)w * n / NWAYS) % n];
			char key[64], got, *v;
			memcached_return_t rc;
			uint32_t flags;
			size_t vlen;
			double t0;

			switch (w) {
			case FLOOR:
				snprintf(key, sizeof(key), NS "/%016zx", pg);
				t0 = cli_now();
				v = memcached_get(bench_mc, key, strlen(key),
						  &vlen, &flags, &rc);
				lat[w][i] = cli_now() - t0;
				if (rc != MEMCACHED_SUCCESS)
					die("get %s: %s", key,
					    memcached_strerror(bench_mc, rc));
				got = vlen ? v[0] : 0;
				free(v);
				break;
			case FETCH:
				t0 = cli_now();
				err = upager_store_fetch(s, pg, buf, 1);
				lat[w][i] = cli_now() - t0;
				if (err)
					die("%s: page %zu: %s", spec, pg,
					    strerror(-err));
				got = buf[0];
				break;
			default:
				t0 = cli_now();
				got = *(volatile const char *)(base[w] +
							       pg * PAGE);
				lat[w][i] = cli_now() - t0;
				break;
			}
			if (got != data[pg * PAGE])
				die("%s: page %zu reads wrong (way %d)", spec,
				    pg, w);
		}
	}
	bare_sig_down();
	bare_down(&bl);
	region_unmap(&g[1]);
	region_unmap(&g[0]);
	upager_store_close(s);
	memcached_free(bench_mc);
}

static int usage(void)
{
	printf("usage: memcached-store [--raw FILE] [--size SIZE] [--dir DIR] "
	       "[--rounds N]\n"
	       "                       [--faults N] [--json]\n\n"
	       "The memcached: store on three loopback memcached servers "
	       "against a bare\nmemcached_get() (the floor) and file:, in "
	       "one run.\n\n"
	       "  --raw FILE  the data (default: generated, memory-like)\n"
	       "  --size SIZE bytes of it to use (default 256M)\n"
	       "  --dir DIR   where the file: copy goes (default /var/tmp)\n"
	       "  --rounds N  sequential runs per case, the median shown "
	       "(default 3)\n"
	       "  --faults N  random 4 KiB faults per round (default 5000)\n"
	       "  --json      one JSON object\n");
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"raw", required_argument, NULL, 'r'},
	    {"size", required_argument, NULL, 's'},
	    {"dir", required_argument, NULL, 'd'},
	    {"rounds", required_argument, NULL, 'n'},
	    {"faults", required_argument, NULL, 'f'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0, 0, 0, 0}};
	const char *raw = NULL, *dir = "/var/tmp";
	uint64_t len = 256ull << 20, rounds = 3, nfaults = 5000, npages;
	static const char *const seqs[] = {"memcached (mget=256)",
					   "memcached (mget=1)", "file"};
	double fl[NWAYS + 1][2], seq[3], *lat, *ts;
	char path[512], spec[3][700], why[256];
	struct upager_store *s;
	bool json = false;
	size_t *order;
	char *data;
	int c, fd, err;

	bench_set_name("memcached-store");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			raw = optarg;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			return usage();
		case 's':
			if (upager_store_parse_size(optarg, &len) ||
			    len < PAGE) {
				fprintf(stderr,
					"memcached-store: --size '%s': not a "
					"size of a page or more\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
			if (!cli_parse_u64("memcached-store", "--rounds",
					   optarg, 1, 100, false, &rounds))
				return 2;
			break;
		case 'f':
			if (!cli_parse_u64("memcached-store", "--faults",
					   optarg, 100, 1000000, false,
					   &nfaults))
				return 2;
			break;
		default:
			return 2;
		}
	}
	if (access("/usr/bin/memcached", X_OK))
		die("no /usr/bin/memcached (tools/deps.sh installs it)");
	len &= ~(uint64_t)(PAGE - 1);
	npages = len / PAGE;
	if (nfaults > npages)
		nfaults = npages;
	data = malloc(len);
	lat = malloc((NWAYS + 1) * nfaults * rounds * sizeof(*lat));
	ts = malloc(3 * rounds * sizeof(*ts));
	if (!data || !lat || !ts)
		die("out of memory");
	if (raw) {
		fd = open(raw, O_RDONLY);
		if (fd < 0 || pread(fd, data, len, 0) != (ssize_t)len)
			die("%s: cannot read %llu bytes", raw,
			    (unsigned long long)len);
		close(fd);
	} else {
		for (uint64_t pg = 0; pg < npages; pg++) {
			char *d = data + pg * PAGE;

			if (pg % 11 == 5)
				memset(d, 0, PAGE);
			else
				for (unsigned int k = 0; k < PAGE; k += 8)
					memcpy(d + k, &(uint64_t){pg * k + k},
					       8);
		}
	}
	start_servers(len * 2 >> 20);
	snprintf(path, sizeof(path), "%s/upager-memcached-bench.raw", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		die("%s: %s", path, strerror(errno));
	close(fd);

	snprintf(spec[0], sizeof(spec[0]), "memcached:%s/" NS, servers);
	snprintf(spec[1], sizeof(spec[1]), "memcached:%s/" NS ",mget=1",
		 servers);
	snprintf(spec[2], sizeof(spec[2]), "file:%s", path);
	double t0 = cli_now();

	s = upager_memcached_create(spec[0] + 10, npages, why, sizeof(why),
				    &err);
	if (!s)
		die("%s: %s", spec[0], why);
	for (uint64_t pg = 0; pg < npages; pg += 256) {
		size_t n = npages - pg < 256 ? npages - pg : 256;

		if ((err = upager_store_writeback(s, pg, data + pg * PAGE, n)))
			die("push: %s", strerror(-err));
	}
	if ((err = upager_memcached_commit(s)))
		die("push: %s", strerror(-err));
	upager_store_close(s);
	double push_s = cli_now() - t0;

	order = shuffled(npages);
	fprintf(stderr,
		"memcached-store: %llu MiB pushed in %.2f s; "
		"measuring\n",
		(unsigned long long)(len >> 20), push_s);
	/* Warm the file's page cache: file: is the in-memory baseline. */
	sequential(spec[2], len, data);
	/*
	 * The ways to memcached (enum way) request by request in turn, then
	 * faults over file: (k == NWAYS), round by round, so that the
	 * machine's noise falls on every case alike.
	 */
	for (uint64_t r = 0; r < rounds; r++) {
		double *at[NWAYS + 1];

		for (int k = 0; k <= NWAYS; k++)
			at[k] = lat + ((size_t)k * rounds + r) * nfaults;
		side_by_side(spec[0], len, order, nfaults, at, data);
		faults(spec[2], len, order, nfaults, at[NWAYS], data);
	}
	for (int k = 0; k <= NWAYS; k++) {
		double *at = lat + (size_t)k * rounds * nfaults;

		fl[k][0] = pct(at, nfaults * rounds, 0.5) * 1e6;
		fl[k][1] = pct(at, nfaults * rounds, 0.99) * 1e6;
	}
	for (uint64_t r = 0; r < rounds; r++)
		for (int k = 0; k < 3; k++)
			ts[(size_t)k * rounds + r] =
			    sequential(spec[k], len, data);
	for (int k = 0; k < 3; k++)
		seq[k] = pct(ts + (size_t)k * rounds, rounds, 0.5);
	unlink(path);
	free(order);
	free(ts);
	free(lat);
	free(data);
	if (json) {
		struct json j;

		json_begin(&j, stdout);
		json_u64(&j, "bytes", len);
		json_u64(&j, "rounds", rounds);
		json_f64(&j, "push_seconds", push_s);
		json_f64(&j, "fault_memcached_p50_us", fl[REGION][0]);
		json_f64(&j, "fault_memcached_p99_us", fl[REGION][1]);
		json_f64(&j, "fault_memcached_inthread_p50_us",
			 fl[REGION_IN_THREAD][0]);
		json_f64(&j, "fault_memcached_inthread_p99_us",
			 fl[REGION_IN_THREAD][1]);
		json_f64(&j, "fault_bare_p50_us", fl[BARE][0]);
		json_f64(&j, "fault_bare_p99_us", fl[BARE][1]);
		json_f64(&j, "fault_bare_inthread_p50_us", fl[BARE_IN_THREAD][0]);
		json_f64(&j, "fault_bare_inthread_p99_us", fl[BARE_IN_THREAD][1]);
		json_f64(&j, "fault_file_p50_us", fl[NWAYS][0]);
		json_f64(&j, "fault_file_p99_us", fl[NWAYS][1]);
		json_f64(&j, "memcached_get_p50_us", fl[FLOOR][0]);
		json_f64(&j, "memcached_get_p99_us", fl[FLOOR][1]);
		json_f64(&j, "store_fetch_p50_us", fl[FETCH][0]);
		json_f64(&j, "store_fetch_p99_us", fl[FETCH][1]);
		json_f64(&j, "seq_mget_seconds", seq[0]);
		json_f64(&j, "seq_nomget_seconds", seq[1]);
		json_f64(&j, "seq_file_seconds", seq[2]);
		json_end(&j);
		return 0;
	}
	printf("data: %llu MiB%s%s, 3 memcached servers on loopback, %llu "
	       "round(s); push %.2f s (%.0f MB/s)\n\n",
	       (unsigned long long)(len >> 20), raw ? " of " : " generated",
	       raw ? raw : "", (unsigned long long)rounds, push_s,
	       (double)len / push_s / 1e6);
	printf("4 KiB random faults (%llu per round)   p50 us    p99 us   "
	       "p50 vs floor\n",
	       (unsigned long long)nfaults);
	printf("  memcached_get, bare (the floor)    %8.1f  %8.1f       1.00\n",
	       fl[FLOOR][0], fl[FLOOR][1]);
	printf("  memcached: fetch() alone, no region%8.1f  %8.1f  %9.2f\n",
	       fl[FETCH][0], fl[FETCH][1], fl[FETCH][0] / fl[FLOOR][0]);
	printf("  region over memcached:             %8.1f  %8.1f  %9.2f\n",
	       fl[REGION][0], fl[REGION][1], fl[REGION][0] / fl[FLOOR][0]);
	printf("  region over memcached:, in-thread  %8.1f  %8.1f  %9.2f\n",
	       fl[REGION_IN_THREAD][0], fl[REGION_IN_THREAD][1],
	       fl[REGION_IN_THREAD][0] / fl[FLOOR][0]);
	printf("  bare handler thread: get, COPY     %8.1f  %8.1f  %9.2f\n",
	       fl[BARE][0], fl[BARE][1], fl[BARE][0] / fl[FLOOR][0]);
	printf("  bare in-thread: memcached_get, COPY%8.1f  %8.1f  %9.2f\n",
	       fl[BARE_IN_THREAD][0], fl[BARE_IN_THREAD][1],
	       fl[BARE_IN_THREAD][0] / fl[FLOOR][0]);
	printf(
	    "  region over file: (warm, a fault each)%5.1f  %8.1f  %9.2f\n",
	    fl[NWAYS][0], fl[NWAYS][1], fl[NWAYS][0] / fl[FLOOR][0]);
	printf("  (what upager adds: p50 over the bare handler's %.2f, "
	       "in-thread %.2f)\n\n",
	       fl[REGION][0] / fl[BARE][0],
	       fl[REGION_IN_THREAD][0] / fl[BARE_IN_THREAD][0]);
	printf("sequential read of the region         seconds      MB/s\n");
	for (int k = 0; k < 3; k++)
		printf("  %-34s %7.3f  %8.0f\n", seqs[k], seq[k],
		       (double)len / seq[k] / 1e6);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager migrate: a postcopy live migration of a region between two
 * processes, end to end, every page verified.
 *
 * The source holds SIZE bytes of known content and exports them as a live
 * region (upager_store_mem_wrap + a page server).  The destination maps
 * remote:ADDR/mig and starts its workload at once: threads that read and
 * write random pages while the background stream pushes the rest.  Faults
 * become urgent requests.  With --precopy the destination first waits for
 * every page and only then starts, the baseline postcopy is measured
 * against.  At the end every byte of every page is checked against the
 * source's pattern and the workload's own writes.
 *
 * By default both sides run on this machine (the source is a child
 * process); --source and --dest run one side each, for two hosts or two
 * network namespaces.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <upager/remote.h>
#include <upager/upager.h>

#include "cli.h"
#include "cmds.h"

#define PAGE 4096u
#define WORDS (PAGE / 8)
#define ZERO_EVERY 64 /* every 64th page is all zeros: sent as a marker */
#define EXPORT "mig"

struct opts {
	uint64_t size;
	bool precopy, json, source, dest;
	const char *listen;  /* source: where to listen */
	const char *connect; /* dest: HOST:PORT or unix:PATH of the source */
	const char *psk;     /* the key file both sides hold, or NULL */
	bool plaintext;	     /* no TLS, asked for */
	uint64_t rate;	     /* source: stream limit, bytes/s */
	int stream_cpu;	     /* both: the stream's CPU; -1: any */
	uint64_t link_rate;  /* for the report: bits/s of the link */
	uint64_t deadline;
	unsigned int threads;
	unsigned int restart_pct; /* local: kill and restart the source */
	bool progress;
	/* Local mode: the source child, to restart it (--restart-source). */
	pid_t source_pid;
	const char *self;
	const char *source_addr;
};

/* ---- the content ------------------------------------------------------- */

static uint64_t word(uint64_t page, uint64_t k)
{
	uint64_t x = page * WORDS + k + 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

static bool zero_page(uint64_t page)
{
	return page % ZERO_EVERY == ZERO_EVERY - 1;
}

/* What the workload writes into word 1 of a page it visits. */
static uint64_t marker(uint64_t page)
{
	return ~word(page, 1);
}

static void fill(uint64_t *mem, uint64_t npages)
{
	for (uint64_t i = 0; i < npages; i++)
		for (uint64_t k = 0; k < WORDS; k++)
			mem[i * WORDS + k] = zero_page(i) ? 0 : word(i, k);
}

static bool page_ok(const uint64_t *p, uint64_t i, bool written)
{
	for (uint64_t k = 0; k < WORDS; k++) {
		uint64_t want = zero_page(i) ? 0 : word(i, k);

		if (k == 1 && written)
			want = marker(i);
		if (p[k] != want)
			return false;
	}
	return true;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- source ------------------------------------------------------------ */

static volatile sig_atomic_t quit;

static void on_term(int sig)
{
	(void)sig;
	quit = 1;
}

static void source_log(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "upager migrate: source: %s\n", msg);
}

static int run_source(const struct opts *o)
{
	struct upager_server_params sp = { .size = sizeof(sp),
					   .listen = o->listen,
					   .stream_rate = o->rate,
					   .log = source_log };
	uint64_t npages = o->size / PAGE;
	cpu_set_t cpus;
	struct upager_server *srv;
	struct upager_store *s;
	char addr[300];
	uint64_t *mem;
	int err;

	mem = mmap(NULL, o->size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return cli_error("migrate", "source: cannot allocate %" PRIu64
			     " bytes: %s", o->size, strerror(errno));
	fill(mem, npages);
	s = upager_store_mem_wrap(mem, o->size, &err);
	if (!s)
		return cli_error("migrate", "source: %s", strerror(-err));
	if (o->stream_cpu >= 0) {
		CPU_ZERO(&cpus);
		CPU_SET(o->stream_cpu, &cpus);
		sp.stream_cpus = &cpus;
	}
	srv = upager_server_new(&sp, &err);
	if (!srv)
		return cli_error("migrate", "source: listen on %s: %s",
				 o->listen, strerror(-err));
	err = o->psk ? upager_server_tls_psk(srv, o->psk)
		     : upager_server_plaintext(srv);
	if (!err)
		err = upager_server_export(srv, EXPORT, s);
	if (!err)
		err = upager_server_start(srv);
	if (err)
		return cli_error("migrate", "source: %s", strerror(-err));
	upager_server_address(srv, addr, sizeof(addr));
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	printf("%s\n", addr);
	fflush(stdout);
	while (!quit)
		pause();
	upager_server_free(srv);
	upager_store_close(s);
	munmap(mem, o->size);
	return 0;
}

/* Start the source as a child; its first line is the address. */
static pid_t spawn_source(const struct opts *o, const char *self,
			  const char *listen, char *addr, size_t len)
{
	char size[32], rate[32], cpu[16];
	const char *argv[16] = { self, "migrate", "--source", "--listen",
				 listen, "--size", size, "--rate", rate };
	int pfd[2], n = 9;
	pid_t pid;
	FILE *f;

	if (pipe(pfd) < 0)
		return -1;
	snprintf(size, sizeof(size), "%" PRIu64, o->size);
	snprintf(rate, sizeof(rate), "%" PRIu64, o->rate);
	if (o->psk) {
		argv[n++] = "--psk-file";
		argv[n++] = o->psk;
	} else {
		argv[n++] = "--plaintext";
	}
	if (o->stream_cpu >= 0) {
		snprintf(cpu, sizeof(cpu), "%d", o->stream_cpu);
		argv[n++] = "--stream-cpu";
		argv[n++] = cpu;
	}
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execv(self, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	if (pid < 0 || !f || !fgets(addr, (int)len, f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	addr[strcspn(addr, "\n")] = '\0';
	return pid;
}

/*
 * Kill the source (SIGKILL: no goodbye) once the destination holds
 * restart_pct percent of the pages, and start a new one on the same
 * address 300 ms later.  The new source has never seen this migration:
 * the destination tells it what it already has.
 */
static void maybe_restart(struct opts *o, const struct upager_remote_stats *rs)
{
	char addr[300];
	int status;

	if (!o->restart_pct || !o->source_pid ||
	    rs->pages_received * 100 < (uint64_t)o->restart_pct * rs->npages)
		return;
	kill(o->source_pid, SIGKILL);
	waitpid(o->source_pid, &status, 0);
	usleep(300 * 1000);
	o->source_pid = spawn_source(o, o->self, o->source_addr, addr,
				     sizeof(addr));
	o->restart_pct = 0;
	if (o->source_pid < 0) {
		o->source_pid = 0;
		fprintf(stderr, "upager migrate: the source did not restart\n");
	}
}

/* ---- destination ------------------------------------------------------- */

struct dest {
	const struct opts *o;
	uint64_t *mem;
	uint64_t npages;
	uint8_t *written; /* per page: the workload wrote its marker */
	atomic_bool stop;
	atomic_uint_fast64_t accesses, bad;
	double t_first;	  /* when the first access completed */
	pthread_mutex_t lock;
};

/*
 * Thread k of n touches random pages i with i % n == k: checks the page,
 * writes its marker into word 1 the first time.  Owning its pages makes
 * the final check exact without locks.
 */
struct worker {
	struct dest *d;
	unsigned int k, n;
	pthread_t t;
};

static void *workload(void *arg)
{
	struct worker *w = arg;
	struct dest *d = w->d;
	uint64_t x = 0x853c49e6748fea9bull * (w->k + 1);

	while (!atomic_load(&d->stop)) {
		uint64_t i, *p;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		i = (x % (d->npages / w->n)) * w->n + w->k;
		if (i >= d->npages)
			continue;
		p = d->mem + i * WORDS;
		if (!page_ok(p, i, d->written[i]))
			atomic_fetch_add(&d->bad, 1);
		if (!d->written[i]) {
			p[1] = marker(i);
			d->written[i] = 1;
		}
		if (atomic_fetch_add(&d->accesses, 1) == 0) {
			pthread_mutex_lock(&d->lock);
			d->t_first = now_s();
			pthread_mutex_unlock(&d->lock);
		}
	}
	return NULL;
}

static void progress(const struct opts *o, const struct upager_remote_stats *rs,
		     double t0, bool done)
{
	double el = now_s() - t0, frac;
	double mb = (double)rs->bytes_received / (1 << 20);
	double eta;

	if (!o->progress)
		return;
	frac = rs->npages ? (double)rs->pages_received / (double)rs->npages : 0;
	eta = frac > 0 ? el / frac - el : 0;
	fprintf(stderr,
		"\r[%-30.*s] %5.1f%% %" PRIu64 "/%" PRIu64
		" pages (pushed %" PRIu64 ", urgent %" PRIu64 ") %6.1f MB/s ETA "
		"%4.1fs ",
		(int)(frac * 30), "##############################", frac * 100,
		rs->pages_received, rs->npages, rs->pages_pushed,
		rs->pages_urgent, el > 0 ? mb / el : 0, eta);
	if (done)
		fputc('\n', stderr);
}

static void report(const struct opts *o, struct dest *d,
		   const struct upager_remote_stats *rs, double total,
		   double t_first, uint64_t verified, uint64_t bad)
{
	double bound = o->link_rate ? (double)o->size * 8 / (double)o->link_rate
				    : 0;
	double p50 = upager_remote_percentile(rs, 50);
	double p99 = upager_remote_percentile(rs, 99);
	/*
	 * What an urgent page cannot beat: a round trip (measured on the
	 * urgent channel before the stream started) and one page's time on
	 * the link.  The p99 is put beside it.
	 */
	double page_us = o->link_rate ? PAGE * 8e6 / (double)o->link_rate : 0;
	double floor_us = (double)rs->rtt_us + page_us;

	if (o->json) {
		struct json j;

		json_begin(&j, stdout);
		json_str(&j, "mode", o->precopy ? "precopy" : "postcopy");
		json_u64(&j, "bytes", o->size);
		json_u64(&j, "pages", d->npages);
		json_f64(&j, "total_s", total);
		json_f64(&j, "first_access_s", t_first);
		if (bound > 0) {
			json_f64(&j, "bandwidth_bound_s", bound);
			json_f64(&j, "ratio_to_bound", total / bound);
		}
		json_u64(&j, "pages_pushed", rs->pages_pushed);
		json_u64(&j, "pages_urgent", rs->pages_urgent);
		json_u64(&j, "pages_zero", rs->pages_zero);
		json_u64(&j, "duplicates", rs->duplicates);
		json_u64(&j, "requests", rs->requests);
		json_u64(&j, "reconnects", rs->reconnects);
		json_u64(&j, "timeouts", rs->timeouts);
		json_u64(&j, "bytes_received", rs->bytes_received);
		json_f64(&j, "urgent_p50_us", p50);
		json_f64(&j, "urgent_p99_us", p99);
		json_u64(&j, "rtt_us", rs->rtt_us);
		json_f64(&j, "page_us", page_us);
		json_f64(&j, "urgent_p99_to_floor", floor_us > 0 ? p99 / floor_us
								: 0);
		json_arr_open(&j, "urgent_hist_us");
		for (int i = 0; i < UPAGER_LAT_BUCKETS; i++)
			json_u64(&j, NULL, rs->lat_hist[i]);
		json_arr_close(&j);
		json_u64(&j, "accesses", atomic_load(&d->accesses));
		json_u64(&j, "pages_verified", verified);
		json_u64(&j, "pages_bad", bad);
		json_end(&j);
		return;
	}
	printf("%s: %.2f GiB in %.2f s (%.2f Gbit/s)", o->precopy ? "precopy"
								  : "postcopy",
	       (double)o->size / (1 << 30), total,
	       (double)rs->bytes_received * 8 / total / 1e9);
	if (bound > 0)
		printf(", %.2fx the bandwidth bound", total / bound);
	printf("; first access after %.1f ms; pushed %" PRIu64 ", urgent %" PRIu64
	       " (p50 %.0f us, p99 %.0f us; round trip %" PRIu64 " us, a page "
	       "%.0f us), reconnects %" PRIu64
	       "; %" PRIu64 " pages verified, %" PRIu64 " bad\n",
	       t_first * 1e3, rs->pages_pushed, rs->pages_urgent, p50, p99,
	       rs->rtt_us, page_us, rs->reconnects, verified, bad);
}

/* What a refused connection means for the operator. */
static const char *refusal_hint(int err)
{
	switch (err) {
	case -EKEYREJECTED:
		return " (the source holds another key: give both sides the "
		       "same --psk-file)";
	case -ENOKEY:
		return " (the source requires TLS: give --psk-file FILE)";
	case -EPROTONOSUPPORT:
		return " (the source speaks plaintext: give it --psk-file, or "
		       "this side --plaintext)";
	default:
		return "";
	}
}

static int run_dest(struct opts *o)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 2 };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct upager_remote_stats rs = { .size = sizeof(rs) };
	struct dest d = { .o = o };
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	struct worker *w;
	uint64_t verified = 0, bad = 0;
	double t0 = now_s(), total;
	char spec[4096 + 512], cpu[32] = "";
	int err, ret;

	pthread_mutex_init(&d.lock, NULL);
	if (o->stream_cpu >= 0)
		snprintf(cpu, sizeof(cpu), ",stream_cpu=%d", o->stream_cpu);
	if (o->psk)
		snprintf(spec, sizeof(spec),
			 "remote:%s/" EXPORT ",deadline=%" PRIu64 ",psk=%s%s",
			 o->connect, o->deadline, o->psk, cpu);
	else
		snprintf(spec, sizeof(spec),
			 "remote:%s/" EXPORT ",deadline=%" PRIu64
			 ",plaintext%s",
			 o->connect, o->deadline, cpu);
	s = upager_store_open(spec, &err);
	if (!s)
		return cli_error("migrate", "connecting to %s: %s%s", o->connect,
				 strerror(-err), refusal_hint(err));
	d.npages = s->npages;
	if (d.npages * PAGE != o->size)
		return cli_error("migrate", "the source holds %" PRIu64
				 " bytes, --size says %" PRIu64,
				 d.npages * PAGE, o->size);
	d.written = calloc(d.npages, 1);
	w = calloc(o->threads, sizeof(*w));
	h = upager_handler_new(&hp, &err);
	if (!h || !d.written || !w)
		return cli_error("migrate", "destination: %s",
				 strerror(h ? ENOMEM : -err));
	d.mem = upager_map(h, s, o->size, &mp, &r, &err);
	if (!d.mem)
		return cli_error("migrate", "destination map: %s",
				 strerror(-err));
	err = upager_handler_start(h);
	if (err)
		return cli_error("migrate", "handler: %s", strerror(-err));

	if (o->precopy) {
		/* The baseline: nothing runs until every page is here. */
		while ((ret = upager_remote_wait_complete(s, 100)) == -ETIMEDOUT) {
			upager_remote_stats(s, &rs);
			progress(o, &rs, t0, false);
		}
	}
	for (unsigned int k = 0; k < o->threads; k++) {
		w[k] = (struct worker){ .d = &d, .k = k, .n = o->threads };
		pthread_create(&w[k].t, NULL, workload, &w[k]);
	}
	while ((ret = upager_remote_wait_complete(s, 100)) == -ETIMEDOUT) {
		upager_remote_stats(s, &rs);
		progress(o, &rs, t0, false);
		maybe_restart(o, &rs);
	}
	total = now_s() - t0;
	/* Precopy's workload may not have run yet: let each thread in once. */
	for (int i = 0; i < 1000 && atomic_load(&d.accesses) < o->threads; i++)
		usleep(1000);
	atomic_store(&d.stop, true);
	for (unsigned int k = 0; k < o->threads; k++)
		pthread_join(w[k].t, NULL);
	upager_remote_stats(s, &rs);
	progress(o, &rs, t0, true);
	if (ret < 0)
		return cli_error("migrate", "waiting for the pages: %s",
				 strerror(-ret));
	for (uint64_t i = 0; i < d.npages; i++, verified++)
		if (!page_ok(d.mem + i * WORDS, i, d.written[i]))
			bad++;
	bad += atomic_load(&d.bad);
	report(o, &d, &rs, total, d.t_first ? d.t_first - t0 : 0, verified,
	       bad);
	upager_unmap(r);
	upager_handler_free(h);
	upager_store_close(s);
	free(d.written);
	free(w);
	if (bad)
		return cli_error("migrate", "%" PRIu64 " pages differ from the "
				 "source", bad);
	return 0;
}

/* ---- both sides on this machine ---------------------------------------- */

static int run_local(struct opts *o)
{
	char addr[300], connect[300];
	int ret, status;

	o->source_pid = spawn_source(o, o->self, o->listen, addr, sizeof(addr));
	if (o->source_pid < 0)
		return cli_error("migrate", "cannot start the source process");
	/* A restarted source binds the port the first one got. */
	o->source_addr = addr;
	/* "tcp:127.0.0.1:PORT" -> "127.0.0.1:PORT"; unix stays as it is. */
	snprintf(connect, sizeof(connect), "%s",
		 strncmp(addr, "tcp:", 4) ? addr : addr + 4);
	o->connect = connect;
	ret = run_dest(o);
	if (o->source_pid > 0) {
		kill(o->source_pid, SIGTERM);
		waitpid(o->source_pid, &status, 0);
	}
	return ret;
}

static int usage(void)
{
	printf("usage: upager migrate [OPTIONS]\n\n"
	       "Postcopy live migration of a region of known content from a "
	       "source process\nto a destination process that starts reading "
	       "and writing at once; every\npage is verified at the end.\n\n"
	       "  --size SIZE        region size (default 1G; K/M/G suffixes)\n"
	       "  --precopy          baseline: send everything, then start the "
	       "workload\n"
	       "  --threads N        workload threads on the destination "
	       "(default 2)\n"
	       "  --rate RATE        limit the background stream, bytes/s "
	       "(default none)\n"
	       "  --link-rate BITS   the link's rate in bit/s, to report the "
	       "bandwidth bound\n"
	       "  --deadline SEC     a fault waits at most SEC for its page "
	       "(default 30)\n"
	       "  --stream-cpu N     the background stream's threads (the "
	       "source's sender,\n"
	       "                     the destination's receiver) on CPU N "
	       "only, the other\n"
	       "                     CPUs left to the workload and its urgent "
	       "pages\n"
	       "  --json             one JSON object instead of the summary "
	       "line\n"
	       "  --psk-file FILE    TLS 1.3 with the pre-shared key in FILE "
	       "(IDENTITY:HEXKEY,\n"
	       "                     mode 0600; both sides the same file's "
	       "content)\n"
	       "  --plaintext        no TLS (loopback tests and benchmarks); "
	       "one of the two\n"
	       "                     is required\n"
	       "  --source --listen ADDR   run only the source (tcp:HOST:PORT "
	       "or unix:PATH);\n"
	       "                           prints the bound address, serves "
	       "until SIGTERM\n"
	       "  --dest --connect HOST:PORT   run only the destination\n"
	       "  --restart-source PCT  (both here) kill the source with "
	       "SIGKILL when PCT%%\n"
	       "                     of the pages arrived and start a new one "
	       "300 ms later\n"
	       "Without --source/--dest both run here, the source as a child "
	       "on\n--listen (default tcp:127.0.0.1:0).  A progress bar goes to "
	       "stderr on a\nterminal.\n");
	return 0;
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "precopy", no_argument, NULL, 'p' },
		{ "threads", required_argument, NULL, 't' },
		{ "rate", required_argument, NULL, 'r' },
		{ "link-rate", required_argument, NULL, 'L' },
		{ "deadline", required_argument, NULL, 'D' },
		{ "stream-cpu", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "source", no_argument, NULL, 'S' },
		{ "dest", no_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "restart-source", required_argument, NULL, 'R' },
		{ "psk-file", required_argument, NULL, 'k' },
		{ "plaintext", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct opts o = { .size = 1ull << 30, .listen = "tcp:127.0.0.1:0",
			  .deadline = 30, .threads = 2, .stream_cpu = -1 };
	char why[256];
	unsigned int cpu;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (!cli_parse_u64("migrate", "--size", optarg, PAGE,
					   1ull << 40, true, &o.size))
				return 2;
			if (o.size % PAGE)
				return cli_usage_error(
					"migrate",
					"--size %s is not a multiple of 4096",
					optarg);
			break;
		case 'p':
			o.precopy = true;
			break;
		case 't':
			if (!cli_parse_u64("migrate", "--threads", optarg, 1, 64,
					   false, &v))
				return 2;
			o.threads = (unsigned int)v;
			break;
		case 'r':
			if (!cli_parse_u64("migrate", "--rate", optarg, 0,
					   UINT64_MAX, true, &o.rate))
				return 2;
			break;
		case 'L':
			if (!cli_parse_u64("migrate", "--link-rate", optarg, 1,
					   UINT64_MAX, true, &o.link_rate))
				return 2;
			break;
		case 'D':
			if (!cli_parse_u64("migrate", "--deadline", optarg, 0,
					   86400, false, &o.deadline))
				return 2;
			break;
		case 'C':
			if (!cli_parse_cpu("migrate", "--stream-cpu", optarg,
					   &cpu))
				return 2;
			o.stream_cpu = (int)cpu;
			break;
		case 'j':
			o.json = true;
			break;
		case 'S':
			o.source = true;
			break;
		case 'd':
			o.dest = true;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 'c':
			o.connect = optarg;
			break;
		case 'R':
			if (!cli_parse_u64("migrate", "--restart-source", optarg,
					   1, 99, false, &v))
				return 2;
			o.restart_pct = (unsigned int)v;
			break;
		case 'k':
			o.psk = optarg;
			break;
		case 'P':
			o.plaintext = true;
			break;
		case 'h':
			return usage();
		default:
			return cli_usage_error("migrate", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("migrate", "unexpected argument '%s'",
				       argv[optind]);
	if (o.source && o.dest)
		return cli_usage_error("migrate",
				       "--source and --dest exclude each other");
	if (o.dest && !o.connect)
		return cli_usage_error("migrate", "--dest needs --connect");
	if (o.restart_pct && (o.source || o.dest))
		return cli_usage_error("migrate", "--restart-source needs both "
				       "sides here (no --source or --dest)");
	if (!o.psk && !o.plaintext)
		return cli_usage_error("migrate", "no key: give --psk-file FILE "
				       "(TLS with a pre-shared key, see --help) "
				       "or --plaintext (pages in clear, for "
				       "loopback tests)");
	if (o.psk && o.plaintext)
		return cli_usage_error("migrate", "--psk-file and --plaintext "
				       "exclude each other");
	if (o.psk && strchr(o.psk, ','))
		return cli_usage_error("migrate", "--psk-file %s: the path may "
				       "not hold a ','", o.psk);
	if (o.psk && upager_psk_check(o.psk, why, sizeof(why)) < 0)
		return cli_error("migrate", "key file %s: %s", o.psk, why);
	o.progress = !o.json && isatty(STDERR_FILENO);
	if (o.source)
		return run_source(&o);
	if (o.dest)
		return run_dest(&o);
	o.self = "/proc/self/exe";
	return run_local(&o);
}

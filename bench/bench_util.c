// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager-bench: what every section uses (bench.h): messages, the page
 * pattern and the checked sweep, /proc, and a handler with one region.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <upager/upager.h>

#include "bench.h"
#include "cli.h"

/* ---- small things -------------------------------------------------------- */

static const char *bench_cmd = "bench";

void bench_set_name(const char *name)
{
	cli_set_program("");
	bench_cmd = name;
}

/* "upager bench: ..." on stderr, as every message of the benchmark. */
void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verror(1, bench_cmd, fmt, ap);
	exit(1);
}

void progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_verror(1, bench_cmd, fmt, ap);
	va_end(ap);
}

/*
 * The usage error for what getopt_long() returned in @c for the option
 * before optind: ':' (its value is missing; the option string starts
 * with ':') or anything else (unknown); 0: the argument at optind is
 * left over after the options.  Returns 2.
 */
static int bench_opt_error(const char *name, int c, char **argv)
{
	if (!c)
		return cli_usage_error(name, "unexpected argument '%s'",
				       argv[optind]);
	if (c == ':')
		return cli_usage_error(name, "%s needs a value",
				       argv[optind - 1]);
	return cli_usage_error(name, "unknown option '%s'", argv[optind - 1]);
}

int bench_getopt(const char *name, int argc, char **argv,
		 const struct option *lopts, bool *quick, bool *json,
		 void (*usage)(void))
{
	for (;;) {
		int c = getopt_long(argc, argv, ":h", lopts, NULL);

		switch (c) {
		case 'q':
			*quick = true;
			break;
		case 'j':
			*json = true;
			break;
		case 'h':
			usage();
			exit(0);
		case -1:
			if (optind < argc)
				exit(bench_opt_error(name, 0, argv));
			return -1;
		case ':':
		case '?':
			exit(bench_opt_error(name, c, argv));
		default:
			return c;
		}
	}
}

bool bench_check_dir(const char *name, const char *dir)
{
	struct stat st;

	if (stat(dir, &st)) {
		cli_usage_error(name, "--dir '%s': %s", dir, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_usage_error(name, "--dir '%s': not a directory", dir);
		return false;
	}
	return true;
}

void bench_json_begin(struct json *j, const char *name)
{
	struct utsname u;

	uname(&u);
	json_begin(j, stdout);
	json_str(j, "bench", name);
	json_str(j, "kernel", u.release);
}

bool bench_parse_secs(const char *name, const char *what, const char *s,
		      double max, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || !(*out > 0) || *out > max) {
		cli_usage_error(name,
				"%s '%s': want seconds, more than 0 and at "
				"most %g",
				what, s, max);
		return false;
	}
	return true;
}

void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (!p)
		die("out of memory (%zu bytes)", len);
	return p;
}

/* The sum of page @pg of the C file: word k is pattern(pg) + k. */
uint64_t page_sum(uint64_t pg)
{
	const uint64_t k = PAGE / 8;

	return k * pattern(pg) + k * (k - 1) / 2;
}

/*
 * Touch page idx[i] (or i, when @idx is NULL) of @base for i < @n and
 * check what it read: 0 when @zero, else pattern(page) (page_sum(page)
 * for TOUCH_PAGE; for TOUCH_WORDS, the bits that differ: 0).  With @lat, time each access alone into lat[i].
 * Returns the wall time of the whole sweep.
 */
uint64_t sweep(const char *what, char *base, const uint32_t *idx,
		      size_t n, enum touch how, bool zero, uint64_t *lat)
{
	uint64_t start = clock_ns(), t0 = 0;

	for (size_t i = 0; i < n; i++) {
		size_t pg = idx ? idx[i] : i;
		uint64_t want = zero || how == TOUCH_WORDS ? 0
				: how == TOUCH_PAGE		   ? page_sum(pg)
							   : pattern(pg),
			 v;

		if (lat)
			t0 = clock_ns();
		if (how == TOUCH_WORDS)
			v = touch_words(base + pg * PAGE, pattern(pg));
		else
			v = touch(base + pg * PAGE, how);
		if (lat)
			lat[i] = clock_ns() - t0;
		if (v != want)
			die("%s: content mismatch at page %zu: read %#" PRIx64
			    ", want %#" PRIx64,
			    what, pg, v, want);
	}
	return clock_ns() - start;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double median(const double *v, unsigned int n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

char *anon_map(const char *what, size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("%s: mmap of %zu bytes: %s", what, len, strerror(errno));
	/* The 4 KiB first-touch fault, whatever the THP setting. */
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* A mem store of @len bytes whose page pg starts with pattern(pg). */
struct upager_store *pattern_store(uint64_t len)
{
	struct upager_store *s;
	char *img;
	int err;

	s = upager_store_mem_new(len, &err);
	if (!s)
		die("mem store of %" PRIu64 " bytes: %s", len, strerror(-err));
	img = upager_store_mem_data(s);
	for (uint64_t pg = 0; pg < len / PAGE; pg++)
		*(uint64_t *)(img + pg * PAGE) = pattern(pg);
	return s;
}

/* ---- /proc ------------------------------------------------------------------ */

ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

/* The number after @key in @buf, or -1 when @key is not there. */
int64_t field(const char *buf, const char *key)
{
	const char *s = strstr(buf, key);

	return s ? (int64_t)strtoull(s + strlen(key), NULL, 10) : -1;
}

static int list_tids(pid_t *tids, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while (n < max && (e = readdir(d)))
		if (e->d_name[0] != '.')
			tids[n++] = (pid_t)atoi(e->d_name);
	closedir(d);
	return n;
}

uint64_t minflt_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t)ru.ru_minflt;
}

void *shared_map(const char *what, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("%s: mmap of %zu shared bytes: %s", what, len,
		    strerror(errno));
	return p;
}

void run_child(const char *what, void (*fn)(void *arg), void *arg)
{
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("%s: fork: %s", what, strerror(errno));
	if (!pid) {
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("%s: waitpid: %s", what, strerror(errno));
	if (WIFSIGNALED(st))
		die("%s: the row's process was killed by %s%s", what,
		    strsignal(WTERMSIG(st)),
		    WTERMSIG(st) == SIGKILL ? " (out of memory?)" : "");
	if (WEXITSTATUS(st))
		die("%s: the row's process exited %d", what, WEXITSTATUS(st));
}

/*
 * rss_peak_reset() sets the kernel's high-water mark (VmHWM) back to the
 * current RSS (clear_refs 5).  Read it before unmapping: the kernel folds
 * the RSS into the mark at unmap and zap time, and when /proc asks.
 * Bytes.
 */
static uint64_t status_kib(const char *key)
{
	char buf[4096];
	int64_t kb;

	if (slurp("/proc/self/status", buf, sizeof(buf)) <= 0 ||
	    (kb = field(buf, key)) < 0)
		die("/proc/self/status: no %s", key);
	return (uint64_t)kb << 10;
}

uint64_t rss_peak_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, "5", 1) != 1)
		die("/proc/self/clear_refs: %s", strerror(errno));
	close(fd);
	return status_kib("VmRSS:");
}

/* hugetlb pages are not RSS: what the process maps now is added. */
uint64_t rss_peak_since(uint64_t start)
{
	uint64_t hwm = status_kib("VmHWM:") + status_kib("HugetlbPages:");

	return hwm > start ? hwm - start : 0;
}

/* ---- an upager handler with one region ----------------------------------- */


/*
 * A handler with @threads workers (0: none, for an in-thread region) and
 * one region of @len bytes over @s.
 */
void engine_up(struct engine *e, const char *what,
		      struct upager_store *s, size_t len, unsigned int threads,
		      const struct upager_handler_params *hpp, size_t fill,
		      size_t ra, size_t fa, unsigned int flags,
		      enum upager_memtype memtype)
{
	struct upager_handler_params hp = { .size = sizeof(hp) };
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = memtype,
					.flags = flags,
					.fill = fill,
					.readahead_max = ra,
					.fault_around = fa };
	pid_t before[64], after[64];
	int nb, na, err = 0;

	if (hpp)
		hp = *hpp;
	hp.threads = threads ? threads : 1;
	memset(e, 0, sizeof(*e));
	e->h = upager_handler_new(&hp, &err);
	if (!e->h)
		die("%s: cannot open a userfaultfd: upager_handler_new: %s",
		    what, strerror(-err));
	e->addr = upager_map(e->h, s, len, &mp, &e->r, &err);
	if (!e->addr)
		die("%s: upager_map: %s", what, strerror(-err));
	if (!threads)
		return;
	nb = list_tids(before, ARRAY_SIZE(before));
	err = upager_handler_start(e->h);
	if (err)
		die("%s: upager_handler_start: %s", what, strerror(-err));
	na = list_tids(after, ARRAY_SIZE(after));
	for (int i = 0; i < na && e->nworkers < MAX_WORKERS; i++) {
		int j = 0;

		while (j < nb && before[j] != after[i])
			j++;
		if (j == nb)
			e->workers[e->nworkers++] = after[i];
	}
	/* The first fault must not time a thread start. */
	usleep(10000);
}

void engine_down(struct engine *e, struct upager_stats *st)
{
	int err;

	err = upager_handler_stop(e->h);
	if (err)
		die("upager_handler_stop: %s", strerror(-err));
	if (st)
		upager_handler_stats(e->h, st);
	err = upager_unmap(e->r);
	if (err)
		die("upager_unmap: %s", strerror(-err));
	upager_handler_free(e->h);
}

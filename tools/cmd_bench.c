// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager bench: what a fault costs through upager, measured side by side
 * with what the kernel does without it, in one run.
 *
 *   A  4 KiB fault latency seen from the faulting thread: the kernel's
 *      anonymous first touch, a bare poll/read/COPY loop (the floor of any
 *      handler-thread design), upager with 1 and 2 workers, a bare
 *      SIGBUS handler (the floor of in-thread mode), upager in-thread.
 *   B  sequential demand paging from the mem store with read-ahead, vs
 *      the kernel's anonymous first touch over the same size.
 *   C  file reads (every byte of each page read and checked),
 *      sequential and random, warm and cold page cache, through a
 *      file: region vs a plain mmap of the same file.
 *   D  (measured with A) where a fault's time goes: context switches,
 *      read(2)s and CPU time per fault, from the kernel's per-thread
 *      counters (/proc/self/task/TID/{schedstat,status,io}).
 *
 * Rows run interleaved, in a rotating order, for several rounds; a table
 * shows the median of the per-round values.  Every measured access checks
 * one word of its page against the pattern the store holds, so a broken
 * engine fails the run (exit 1) instead of producing numbers.  Exit 2 for
 * a bad argument.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <upager/upager.h>

#include "cli.h"
#include "sysfs.h"
#include "base/util.h" /* parse_size(), ARRAY_SIZE() */

#define PAGE ((size_t)UPAGER_STORE_PAGE)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)
#define MAX_ROUNDS 25
#define MAX_WORKERS 8

enum { SEC_A = 1, SEC_B = 2, SEC_C = 4 };

struct opts {
	bool quick, json;
	const char *dir;
	uint64_t size;	   /* C: the file */
	unsigned int rounds;
	unsigned int only; /* SEC_* */
	size_t a_pages;	   /* A: pages per run */
	uint64_t b_bytes;  /* B: bytes swept per run */
	size_t c_reads;	   /* C: random reads per run, warm cache */
	size_t c_cold_reads; /* and cold: disk-bound, fewer with --quick */
};

/* Per-thread counters of the kernel, summed over some threads. */
struct tstat {
	uint64_t cpu_ns;  /* schedstat: time on a CPU */
	uint64_t wait_ns; /* schedstat: time runnable, waiting for a CPU */
	uint64_t csw;	  /* status: voluntary + nonvoluntary switches */
	uint64_t syscr;	  /* io: read(2)-family syscalls */
};

/* ---- section A and D rows ----------------------------------------------- */

enum {
	A_KERNEL,
	A_KERNEL_READ,
	A_BARE,
	A_H1,
	A_H2,
	A_BARE_SIG,
	A_INTHREAD,
	A_N
};

static const struct row_def {
	const char *id, *label;
	int baseline; /* row the ratio is against, or -1 */
} a_rows[A_N] = {
	[A_KERNEL] = { "kernel", "kernel anon first touch (write)", -1 },
	[A_KERNEL_READ] = { "kernel_read",
			    "kernel anon first touch (read: zero page)",
			    A_KERNEL },
	[A_BARE] = { "bare", "bare loop: poll/read/COPY, ll only", -1 },
	[A_H1] = { "handler_1", "upager handler, mem, 1 worker", A_BARE },
	[A_H2] = { "handler_2", "upager handler, mem, 2 workers", A_BARE },
	[A_BARE_SIG] = { "bare_sigbus", "bare SIGBUS handler: COPY, ll only",
			 A_KERNEL },
	[A_INTHREAD] = { "inthread", "upager in-thread (SIGBUS), mem",
			 A_KERNEL },
};

struct a_result {
	double p50[MAX_ROUNDS], p99[MAX_ROUNDS], rate[MAX_ROUNDS]; /* ns, /s */
	/* D: summed over the rounds */
	uint64_t accesses;	/* pages touched */
	uint64_t faults;	/* the engine's count, or the kernel's */
	struct tstat faulting;	/* the thread that touched the pages */
	struct tstat server;	/* the threads that served the faults */
	uint64_t polls, copies; /* bare loop only: counted in its code */
	bool has_server, counters_ok;
};

/* ---- section B rows ------------------------------------------------------ */

enum { B_KERNEL, B_KERNEL_READ, B_RA2, B_RA1, B_N };

static const struct row_def b_rows[B_N] = {
	[B_KERNEL] = { "kernel", "kernel anon first touch (write)", -1 },
	[B_KERNEL_READ] = { "kernel_read",
			    "kernel anon first touch (read: zero page)",
			    B_KERNEL },
	[B_RA2] = { "upager_ra_2", "upager mem, read-ahead 1M, 2 workers",
		    B_KERNEL },
	[B_RA1] = { "upager_ra_1", "upager mem, read-ahead 1M, 1 worker",
		    B_KERNEL },
};

/* ---- section C cases ----------------------------------------------------- */

enum { C_MMAP_PRIVATE, C_MMAP_SHARED, C_REGION };

struct c_case {
	const char *id, *label;
	int kind;
	size_t fill, ra;      /* region: map parameters (0: defaults) */
	unsigned int threads; /* region: workers */
	enum upager_memtype memtype;
};

static const struct c_case c_seq[] = {
	{ "mmap_private", "mmap MAP_PRIVATE, PROT_READ", C_MMAP_PRIVATE },
	{ "mmap_shared", "mmap MAP_SHARED, PROT_READ", C_MMAP_SHARED },
	{ "region_4k_1", "region fill 4K, ra 1M, 1 worker", C_REGION, 0, 0, 1 },
	{ "region_4k_2", "region fill 4K, ra 1M, 2 workers", C_REGION, 0, 0, 2 },
	{ "region_64k_1", "region fill 64K, ra 1M, 1 worker", C_REGION,
	  64 << 10, 0, 1 },
	{ "region_64k_2", "region fill 64K, ra 1M, 2 workers", C_REGION,
	  64 << 10, 0, 2 },
	{ "region_2m_1", "region fill 2M, ra 8M, 1 worker", C_REGION, 2 << 20,
	  8 << 20, 1 },
	{ "region_2m_2", "region fill 2M, ra 8M, 2 workers", C_REGION,
	  2 << 20, 8 << 20, 2 },
	{ "region_huge_1", "region hugetlb 2M, ra 8M, 1 worker", C_REGION,
	  2 << 20, 8 << 20, 1, UPAGER_MEM_HUGETLB },
	{ "region_huge_2", "region hugetlb 2M, ra 8M, 2 workers", C_REGION,
	  2 << 20, 8 << 20, 2, UPAGER_MEM_HUGETLB },
};
#define C_SEQ_N ARRAY_SIZE(c_seq)
#define C_SEQ_DEFAULT 3 /* region_4k_2: the defaults on 2 CPUs */

static const struct c_case c_rand[] = {
	{ "mmap_private", "mmap MAP_PRIVATE, PROT_READ", C_MMAP_PRIVATE },
	{ "mmap_shared", "mmap MAP_SHARED, PROT_READ", C_MMAP_SHARED },
	{ "region_4k", "region fill 4K, 2 workers", C_REGION, 0, 0, 2 },
	{ "region_64k", "region fill 64K, 2 workers", C_REGION, 64 << 10, 0,
	  2 },
};
#define C_RAND_N ARRAY_SIZE(c_rand)
#define C_RAND_4K 2 /* region_4k: the random-read target's case */

struct c_result {
	double rate[MAX_ROUNDS]; /* GiB/s (sequential) or reads/s (random) */
	uint64_t faults;	 /* region: the engine's, summed over rounds */
};

struct bench {
	struct opts o;
	double timer_ns; /* cost of the clock_gettime() pair around an access */
	struct a_result a[A_N];
	double b_rate[B_N][MAX_ROUNDS]; /* GiB/s */
	uint64_t b_faults[B_N];		/* summed over rounds */
	struct c_result cseq[2][C_SEQ_N], crand[2][C_RAND_N]; /* [cold] */
	double cold_resident_max; /* fraction of the file left after a drop */
	bool cold_dropped;	  /* every drop left < 1% of the file cached */
	bool huge_ok;		  /* hugetlb pages reserved for C's rows */
};

/* ---- small things -------------------------------------------------------- */

static void __attribute__((format(printf, 1, 0)))
vreport(const char *fmt, va_list ap, const char *tail)
{
	fputs("upager bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap, "\n");
	exit(1);
}

static void __attribute__((format(printf, 1, 2))) progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap, "\n");
	va_end(ap);
}

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (!p)
		die("out of memory (%zu bytes)", len);
	return p;
}

static inline uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Word 0 of store page @pg; never 0, so a zero page can't pass for it. */
static inline uint64_t pattern(uint64_t pg)
{
	return (pg + 1) * 0x9e3779b97f4a7c15ull;
}

enum touch { TOUCH_WRITE, TOUCH_READ, TOUCH_PAGE };

/*
 * One access to the first word of a page, or a read of all of it.  The
 * write is a locked add of 0: a write fault (so the kernel's first touch
 * allocates and zeroes a page, as UFFDIO_COPY allocates and fills one)
 * that still returns the word to check.  TOUCH_PAGE returns the sum of
 * the page's words: what reading a file costs is reading its bytes.
 */
static inline uint64_t touch(char *p, enum touch how)
{
	volatile uint64_t *w = (volatile uint64_t *)p;
	const uint64_t *words = (const uint64_t *)p;
	uint64_t sum = 0;

	if (how == TOUCH_WRITE)
		return __atomic_fetch_add(w, 0, __ATOMIC_RELAXED);
	if (how == TOUCH_READ)
		return *w;
	for (size_t i = 0; i < PAGE / 8; i++)
		sum += words[i];
	return sum;
}

/* The sum of page @pg of the C file: word k is pattern(pg) + k. */
static uint64_t page_sum(uint64_t pg)
{
	const uint64_t k = PAGE / 8;

	return k * pattern(pg) + k * (k - 1) / 2;
}

/*
 * Touch page idx[i] (or i, when @idx is NULL) of @base for i < @n and
 * check what it read: 0 when @zero, else pattern(page) (page_sum(page)
 * for TOUCH_PAGE).  With @lat, time each access alone into lat[i].
 * Returns the wall time of the whole sweep.
 */
static uint64_t sweep(const char *what, char *base, const uint32_t *idx,
		      size_t n, enum touch how, bool zero, uint64_t *lat)
{
	uint64_t start = clock_ns(), t0 = 0;

	for (size_t i = 0; i < n; i++) {
		size_t pg = idx ? idx[i] : i;
		uint64_t want = zero		   ? 0
				: how == TOUCH_PAGE ? page_sum(pg)
						    : pattern(pg),
			 v;

		if (lat)
			t0 = clock_ns();
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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of @n sorted values. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double p)
{
	size_t rank = (size_t)(p / 100 * (double)n + 0.999999);

	return sorted[rank ? rank - 1 : 0];
}

static double median(const double *v, unsigned int n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static char *anon_map(const char *what, size_t len)
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
static struct upager_store *pattern_store(uint64_t len)
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

/* ---- per-thread counters ------------------------------------------------ */

static ssize_t slurp(const char *path, char *buf, size_t len)
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
static int64_t field(const char *buf, const char *key)
{
	const char *s = strstr(buf, key);

	return s ? (int64_t)strtoull(s + strlen(key), NULL, 10) : -1;
}

/* Add thread @tid's counters to @t; false if the kernel lacks one. */
static bool tstat_add(pid_t tid, struct tstat *t)
{
	char path[64], buf[4096];
	unsigned long long run, wait;
	int64_t vol, invol, syscr;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
	if (slurp(path, buf, sizeof(buf)) <= 0 ||
	    sscanf(buf, "%llu %llu", &run, &wait) != 2)
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return false;
	vol = field(buf, "\nvoluntary_ctxt_switches:");
	invol = field(buf, "\nnonvoluntary_ctxt_switches:");
	snprintf(path, sizeof(path), "/proc/self/task/%d/io", (int)tid);
	if (vol < 0 || invol < 0 || slurp(path, buf, sizeof(buf)) <= 0 ||
	    (syscr = field(buf, "syscr:")) < 0)
		return false;
	t->cpu_ns += run;
	t->wait_ns += wait;
	t->csw += (uint64_t)(vol + invol);
	t->syscr += (uint64_t)syscr;
	return true;
}

static void tstat_sub(struct tstat *acc, const struct tstat *end,
		      const struct tstat *start)
{
	acc->cpu_ns += end->cpu_ns - start->cpu_ns;
	acc->wait_ns += end->wait_ns - start->wait_ns;
	acc->csw += end->csw - start->csw;
	acc->syscr += end->syscr - start->syscr;
}

/* The faulting thread and the threads serving it, counted around a run. */
struct probe {
	pid_t servers[MAX_WORKERS];
	int nservers;
	struct tstat f0, s0;
	bool ok;
};

static void probe_snap(struct probe *p, struct tstat *f, struct tstat *s)
{
	memset(f, 0, sizeof(*f));
	memset(s, 0, sizeof(*s));
	p->ok &= tstat_add(gettid(), f);
	for (int i = 0; i < p->nservers; i++)
		p->ok &= tstat_add(p->servers[i], s);
}

static void probe_begin(struct probe *p)
{
	p->ok = true;
	probe_snap(p, &p->f0, &p->s0);
}

static void probe_end(struct probe *p, struct a_result *r)
{
	struct tstat f, s;

	probe_snap(p, &f, &s);
	r->counters_ok = p->ok;
	tstat_sub(&r->faulting, &f, &p->f0);
	tstat_sub(&r->server, &s, &p->s0);
	r->has_server = p->nservers > 0;
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

static uint64_t minflt_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return (uint64_t)ru.ru_minflt;
}

/* ---- an upager handler with one region ----------------------------------- */

struct engine {
	struct upager_handler *h;
	struct upager_region *r;
	char *addr;
	pid_t workers[MAX_WORKERS];
	int nworkers;
};

/*
 * A handler with @threads workers (0: none, for an in-thread region) and
 * one region of @len bytes over @s.
 */
static void engine_up(struct engine *e, const char *what,
		      struct upager_store *s, size_t len, unsigned int threads,
		      size_t fill, size_t ra, unsigned int flags,
		      enum upager_memtype memtype)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = threads ? threads : 1 };
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = memtype,
					.flags = flags,
					.fill = fill,
					.readahead_max = ra };
	pid_t before[64], after[64];
	int nb, na, err = 0;

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

static void engine_down(struct engine *e, struct upager_stats *st)
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

/* ---- the bare loop: the floor of a handler-thread design ---------------- */

/*
 * What any handler thread must do per fault, and nothing else: poll(2),
 * read(2) the message, UFFDIO_COPY (with its wake) from a page prepared
 * in memory, here the same mem store image the engine installs from.
 */
struct bare {
	int uffd, stopfd;
	char *base;
	size_t len;
	const char *src;
	pthread_t thread;
	atomic_int tid;
	uint64_t polls, reads, copies;
};

static void *bare_main(void *arg)
{
	struct bare *b = arg;
	struct uffd_msg msgs[16];

	atomic_store(&b->tid, (int)gettid());
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = b->uffd, .events = POLLIN },
			{ .fd = b->stopfd, .events = POLLIN },
		};
		int n;

		b->polls++;
		n = poll(pfd, 2, -1);
		if (n < 0 && errno != EINTR)
			die("bare loop: poll: %s", strerror(errno));
		if (n <= 0)
			continue;
		if (pfd[1].revents)
			return NULL;
		b->reads++;
		n = upager_ll_read(b->uffd, msgs, ARRAY_SIZE(msgs));
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0)
			die("bare loop: read: %s", strerror(-n));
		for (int i = 0; i < n; i++) {
			uint64_t off;
			size_t done;
			int ret;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			off = (msgs[i].arg.pagefault.address &
			       ~(uint64_t)(PAGE - 1)) -
			      (uintptr_t)b->base;
			b->copies++;
			ret = upager_ll_copy(b->uffd, b->base + off,
					     b->src + off, PAGE, 0, &done);
			if (ret < 0 && ret != -EEXIST)
				die("bare loop: UFFDIO_COPY: %s",
				    strerror(-ret));
		}
	}
}

static void bare_up(struct bare *b, const char *src, size_t len)
{
	int ret;

	memset(b, 0, sizeof(*b));
	b->uffd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL);
	if (b->uffd < 0)
		die("bare loop: cannot open a userfaultfd: %s",
		    strerror(-b->uffd));
	ret = upager_ll_api(b->uffd, 0, NULL);
	if (ret < 0)
		die("bare loop: UFFDIO_API: %s", strerror(-ret));
	b->base = anon_map("bare loop", len);
	b->len = len;
	b->src = src;
	ret = upager_ll_register(b->uffd, b->base, len,
				 UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret < 0)
		die("bare loop: UFFDIO_REGISTER: %s", strerror(-ret));
	b->stopfd = eventfd(0, EFD_CLOEXEC);
	if (b->stopfd < 0)
		die("bare loop: eventfd: %s", strerror(errno));
	ret = pthread_create(&b->thread, NULL, bare_main, b);
	if (ret)
		die("bare loop: pthread_create: %s", strerror(ret));
	while (!atomic_load(&b->tid))
		sched_yield();
	usleep(10000);
}

static void bare_down(struct bare *b)
{
	uint64_t one = 1;

	if (write(b->stopfd, &one, sizeof(one)) != sizeof(one))
		die("bare loop: eventfd write: %s", strerror(errno));
	pthread_join(b->thread, NULL);
	upager_ll_unregister(b->uffd, b->base, b->len);
	munmap(b->base, b->len);
	close(b->stopfd);
	close(b->uffd);
}

/*
 * The floor of in-thread mode: a SIGBUS handler that copies the page in
 * with one UFFDIO_COPY and returns, with no lookup, claim or statistics.
 * One at a time (a signal handler has only globals to go by).
 */
static struct {
	int uffd;
	char *base;
	const char *src;
	struct sigaction previous;
} bare_sig;

static void bare_sig_handler(int sig, siginfo_t *si, void *uc)
{
	uintptr_t off = ((uintptr_t)si->si_addr & ~(uintptr_t)(PAGE - 1)) -
			(uintptr_t)bare_sig.base;
	size_t done;

	(void)sig;
	(void)uc;
	upager_ll_copy(bare_sig.uffd, bare_sig.base + off, bare_sig.src + off,
		       PAGE, 0, &done);
}

static char *bare_sig_up(const char *src, size_t len)
{
	struct sigaction sa = { .sa_sigaction = bare_sig_handler,
				.sa_flags = SA_SIGINFO };
	int ret;

	bare_sig.uffd = upager_ll_open(0, NULL);
	if (bare_sig.uffd < 0)
		die("bare SIGBUS handler: cannot open a userfaultfd: %s",
		    strerror(-bare_sig.uffd));
	ret = upager_ll_api(bare_sig.uffd, UFFD_FEATURE_SIGBUS, NULL);
	if (ret < 0)
		die("bare SIGBUS handler: UFFDIO_API: %s", strerror(-ret));
	bare_sig.base = anon_map("bare SIGBUS handler", len);
	bare_sig.src = src;
	ret = upager_ll_register(bare_sig.uffd, bare_sig.base, len,
				 UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret < 0)
		die("bare SIGBUS handler: UFFDIO_REGISTER: %s",
		    strerror(-ret));
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &bare_sig.previous))
		die("sigaction: %s", strerror(errno));
	return bare_sig.base;
}

static void bare_sig_down(size_t len)
{
	sigaction(SIGBUS, &bare_sig.previous, NULL);
	munmap(bare_sig.base, len);
	close(bare_sig.uffd);
}

/* ---- A: fault latency ----------------------------------------------------- */

/* Median cost of the two clock reads around an access, in ns. */
static double timer_overhead(uint64_t *lat, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t t0 = clock_ns();

		lat[i] = clock_ns() - t0;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	return (double)percentile(lat, n, 50);
}

/* One run of mode @m over @n pages; @round < 0: a warm-up, not kept. */
static void a_run(struct bench *b, int m, struct upager_store *s, size_t n,
		  uint64_t *lat, int round)
{
	struct a_result *res = &b->a[m];
	struct upager_stats st = { 0 };
	struct probe pr = { .nservers = 0 };
	size_t len = n * PAGE;
	const char *what = a_rows[m].id;
	struct engine e;
	struct bare bl;
	uint64_t wall, flt;
	char *base = NULL;

	switch (m) {
	case A_KERNEL:
	case A_KERNEL_READ:
		base = anon_map(what, len);
		break;
	case A_BARE:
		bare_up(&bl, upager_store_mem_data(s), len);
		base = bl.base;
		pr.servers[pr.nservers++] = (pid_t)atomic_load(&bl.tid);
		break;
	case A_H1:
	case A_H2:
		engine_up(&e, what, s, len, m == A_H1 ? 1 : 2, 0, (size_t)-1,
			  0, UPAGER_MEM_ANON);
		base = e.addr;
		memcpy(pr.servers, e.workers, sizeof(e.workers));
		pr.nservers = e.nworkers;
		break;
	case A_BARE_SIG:
		base = bare_sig_up(upager_store_mem_data(s), len);
		break;
	case A_INTHREAD:
		engine_up(&e, what, s, len, 0, 0, 0, UPAGER_MAP_IN_THREAD,
			  UPAGER_MEM_ANON);
		base = e.addr;
		break;
	}
	probe_begin(&pr);
	flt = minflt_self();
	wall = sweep(what, base, NULL, n,
		     m == A_KERNEL_READ ? TOUCH_READ : TOUCH_WRITE,
		     m == A_KERNEL || m == A_KERNEL_READ, lat);
	flt = minflt_self() - flt;
	if (round >= 0)
		probe_end(&pr, res);
	switch (m) {
	case A_KERNEL:
	case A_KERNEL_READ:
		munmap(base, len);
		st.faults = flt;
		break;
	case A_BARE_SIG:
		bare_sig_down(len);
		st.faults = n;
		break;
	case A_BARE:
		bare_down(&bl);
		st.faults = bl.copies;
		if (round >= 0) {
			res->polls += bl.polls;
			res->copies += bl.copies;
		}
		break;
	default:
		engine_down(&e, &st);
		break;
	}
	if (round < 0)
		return;
	qsort(lat, n, sizeof(*lat), cmp_u64);
	res->p50[round] = (double)percentile(lat, n, 50);
	res->p99[round] = (double)percentile(lat, n, 99);
	res->rate[round] = (double)n * 1e9 / (double)wall;
	res->accesses += n;
	res->faults += st.faults;
}

static void section_a(struct bench *b)
{
	size_t n = b->o.a_pages;
	struct upager_store *s = pattern_store(n * PAGE);
	uint64_t *lat = xmalloc(n * sizeof(*lat));

	progress("[A] 4 KiB fault latency: %d modes x %u round(s) x %zu pages",
		 A_N, b->o.rounds, n);
	b->timer_ns = timer_overhead(lat, n);
	/* Untimed: code paths, the SIGBUS handler, staging buffers. */
	for (int m = 0; m < A_N; m++)
		a_run(b, m, s, n < 256 ? n : 256, lat, -1);
	/* The order rotates each round: no mode always runs first. */
	for (unsigned int r = 0; r < b->o.rounds; r++)
		for (int k = 0; k < A_N; k++)
			a_run(b, (int)(k + r) % A_N, s, n, lat, (int)r);
	free(lat);
	upager_store_close(s);
}

/* ---- B: sequential demand paging ----------------------------------------- */

static void b_run(struct bench *b, int m, struct upager_store *s, int round)
{
	size_t len = b->o.b_bytes, n = len / PAGE;
	struct upager_stats st = { 0 };
	const char *what = b_rows[m].id;
	struct engine e;
	uint64_t wall;
	char *base;

	if (m == B_KERNEL || m == B_KERNEL_READ) {
		uint64_t flt = minflt_self();

		base = anon_map(what, len);
		wall = sweep(what, base, NULL, n,
			     m == B_KERNEL ? TOUCH_WRITE : TOUCH_READ, true,
			     NULL);
		st.faults = minflt_self() - flt;
		munmap(base, len);
	} else {
		engine_up(&e, what, s, len, m == B_RA2 ? 2 : 1, 0, 0, 0,
			  UPAGER_MEM_ANON);
		wall = sweep(what, e.addr, NULL, n, TOUCH_WRITE, false, NULL);
		engine_down(&e, &st);
	}
	b->b_rate[m][round] = (double)len / GIB * 1e9 / (double)wall;
	b->b_faults[m] += st.faults;
}

static void section_b(struct bench *b)
{
	struct upager_store *s;

	progress("[B] sequential demand paging: %d modes x %u round(s) x %" PRIu64
		 " MiB",
		 B_N, b->o.rounds, b->o.b_bytes / MIB);
	s = pattern_store(b->o.b_bytes);
	for (unsigned int r = 0; r < b->o.rounds; r++)
		for (int k = 0; k < B_N; k++)
			b_run(b, (int)(k + r) % B_N, s, (int)r);
	upager_store_close(s);
}

/* ---- C: file reads -------------------------------------------------------- */

struct cfile {
	int fd;
	uint64_t size;
	size_t npages;
	struct upager_store *store;
	char *view;	    /* MAP_SHARED, never touched: for mincore() */
	unsigned char *vec; /* mincore() output */
};

/*
 * A file of @size bytes in @dir whose word k of page pg is pattern(pg) + k,
 * opened as a store.  It is unlinked at once: the store's descriptor and
 * ours keep it alive, and nothing is left behind however the run ends.
 */
static void cfile_create(struct cfile *f, const char *dir, uint64_t size)
{
	size_t chunk = 1 << 20;
	uint64_t *buf = xmalloc(chunk);
	char path[PATH_MAX], spec[PATH_MAX + 8];
	int err;

	if (snprintf(path, sizeof(path), "%s/upager-bench.XXXXXX", dir) >=
	    (int)sizeof(path))
		die("--dir '%s': path too long", dir);
	f->fd = mkstemp(path);
	if (f->fd < 0)
		die("--dir '%s': cannot create a file there: %s", dir,
		    strerror(errno));
	f->size = size;
	f->npages = size / PAGE;
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk, done = 0;

		for (size_t i = 0; i < len / 8; i++)
			buf[i] = pattern((off + i * 8) / PAGE) + i % (PAGE / 8);
		while (done < len) {
			ssize_t w = pwrite(f->fd, (char *)buf + done,
					   len - done, (off_t)(off + done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				unlink(path);
				die("writing %s: %s", path,
				    w < 0 ? strerror(errno) : "short write");
			}
			done += (size_t)w;
		}
	}
	free(buf);
	if (fdatasync(f->fd)) {
		unlink(path);
		die("fdatasync %s: %s", path, strerror(errno));
	}
	snprintf(spec, sizeof(spec), "file:%s", path);
	f->store = upager_store_open(spec, &err);
	unlink(path);
	if (!f->store)
		die("upager_store_open(%s): %s", spec, strerror(-err));
	f->view = mmap(NULL, size, PROT_READ, MAP_SHARED, f->fd, 0);
	if (f->view == MAP_FAILED)
		die("mmap of the file: %s", strerror(errno));
	f->vec = xmalloc(f->npages);
}

static void cfile_close(struct cfile *f)
{
	munmap(f->view, f->size);
	free(f->vec);
	upager_store_close(f->store);
	close(f->fd);
}

/* The fraction of the file in the page cache. */
static double cfile_resident(struct cfile *f)
{
	size_t in = 0;

	if (mincore(f->view, f->size, f->vec))
		die("mincore: %s", strerror(errno));
	for (size_t i = 0; i < f->npages; i++)
		in += f->vec[i] & 1;
	return (double)in / (double)f->npages;
}

/*
 * Cold: write back, then drop the file's pages (no root needed).  The
 * store is opened again first: pages its mapping still maps (a block a
 * random reader touched in part) cannot be dropped.
 */
static void cfile_cold(struct bench *b, struct cfile *f)
{
	char spec[64];
	double left;
	int err;

	upager_store_close(f->store);
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d", f->fd);
	f->store = upager_store_open(spec, &err);
	if (!f->store)
		die("upager_store_open(%s): %s", spec, strerror(-err));
	if (fdatasync(f->fd))
		die("fdatasync: %s", strerror(errno));
	err = posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED);
	if (err)
		die("posix_fadvise(DONTNEED): %s", strerror(err));
	left = cfile_resident(f);
	if (left > b->cold_resident_max)
		b->cold_resident_max = left;
	if (left >= 0.01)
		b->cold_dropped = false;
}

/* Warm: the whole file in the page cache (read it if any page is not). */
static void cfile_warm(struct cfile *f)
{
	size_t chunk = 1 << 20;
	char *buf;

	if (cfile_resident(f) >= 1.0)
		return;
	buf = xmalloc(chunk);
	for (uint64_t off = 0; off < f->size; off += chunk)
		if (pread(f->fd, buf, chunk, (off_t)off) < 0)
			die("reading the file: %s", strerror(errno));
	free(buf);
}

static void c_run(struct bench *b, struct cfile *f, const struct c_case *c,
		  struct c_result *res, const uint32_t *idx, bool cold,
		  int round)
{
	size_t n = !idx ? f->npages : cold ? b->o.c_cold_reads : b->o.c_reads;
	struct upager_stats st = { 0 };
	char what[64];
	struct engine e;
	uint64_t wall;
	char *base;

	snprintf(what, sizeof(what), "C %s %s %s", idx ? "random" : "seq",
		 cold ? "cold" : "warm", c->id);
	if (c->memtype == UPAGER_MEM_HUGETLB && !b->huge_ok)
		return; /* no pages: the row is left out (rate 0) */
	if (cold)
		cfile_cold(b, f);
	else
		cfile_warm(f);
	if (c->kind == C_REGION) {
		engine_up(&e, what, f->store, f->size, c->threads, c->fill,
			  c->ra, 0, c->memtype);
		wall = sweep(what, e.addr, idx, n, TOUCH_PAGE, false, NULL);
		engine_down(&e, &st);
	} else {
		base = mmap(NULL, f->size, PROT_READ,
			    c->kind == C_MMAP_SHARED ? MAP_SHARED : MAP_PRIVATE,
			    f->fd, 0);
		if (base == MAP_FAILED)
			die("%s: mmap: %s", what, strerror(errno));
		wall = sweep(what, base, idx, n, TOUCH_PAGE, false, NULL);
		munmap(base, f->size);
	}
	res->rate[round] = idx ? (double)n * 1e9 / (double)wall
			       : (double)f->size / GIB * 1e9 / (double)wall;
	res->faults += st.faults;
}

/* ---- C's hugetlb pages ---------------------------------------------------- */

/*
 * Reserve the 2 MiB pages the hugetlb rows map (the file's size, and a
 * few for the staging of a fill), and put nr_hugepages back at exit
 * however the run ends.  False, with a note, when that is not possible
 * (not root, or memory too fragmented): the rows are then left out.
 */
static bool huge_reserve(uint64_t bytes)
{
	size_t need = (size_t)(bytes >> 21) + 8;
	int ret = hugetlb_reserve(need);

	if (ret < 0)
		progress("[C] cannot reserve %zu hugetlb pages (%s): the "
			 "hugetlb rows are left out",
			 need, ret == -EPERM ? "not root" : strerror(-ret));
	return ret == 0;
}

static void section_c(struct bench *b)
{
	struct cfile f;
	uint32_t *idx;
	uint64_t x = 0x2545f4914f6cdd1dull;

	progress("[C] file reads: writing a %" PRIu64 " MiB file in %s",
		 b->o.size / MIB, b->o.dir);
	cfile_create(&f, b->o.dir, b->o.size);
	/* The same uniform random pages for every case (xorshift64). */
	idx = xmalloc(b->o.c_reads * sizeof(*idx));
	for (size_t i = 0; i < b->o.c_reads; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		idx[i] = (uint32_t)(x % f.npages);
	}
	b->cold_dropped = true;
	b->huge_ok = huge_reserve(b->o.size);
	if (b->huge_ok) {
		/*
		 * Untimed, once: the pool's pages get their first touch,
		 * which in a VM is the host backing them, as they would be
		 * in a pool that has served before.
		 */
		struct engine e;

		cfile_warm(&f);
		engine_up(&e, "C hugetlb warm-up", f.store, f.size, 1, 2 << 20,
			  8 << 20, 0, UPAGER_MEM_HUGETLB);
		sweep("C hugetlb warm-up", e.addr, NULL, f.npages, TOUCH_PAGE,
		      false, NULL);
		engine_down(&e, NULL);
	}
	for (int cold = 0; cold < 2; cold++) {
		progress("[C] %s page cache: %zu sequential + %zu random cases "
			 "x %u round(s)",
			 cold ? "cold" : "warm", C_SEQ_N, C_RAND_N,
			 b->o.rounds);
		for (unsigned int r = 0; r < b->o.rounds; r++) {
			for (size_t k = 0; k < C_SEQ_N; k++) {
				size_t i = (k + r) % C_SEQ_N;

				c_run(b, &f, &c_seq[i], &b->cseq[cold][i],
				      NULL, cold, (int)r);
			}
			for (size_t k = 0; k < C_RAND_N; k++) {
				size_t i = (k + r) % C_RAND_N;

				c_run(b, &f, &c_rand[i], &b->crand[cold][i],
				      idx, cold, (int)r);
			}
		}
	}
	if (!b->cold_dropped)
		progress("[C] warning: up to %.0f%% of the file stayed cached "
			 "after a drop (tmpfs?): the cold rows are not cold",
			 b->cold_resident_max * 100);
	free(idx);
	cfile_close(&f);
	hugetlb_restore();
}

/* ---- results ------------------------------------------------------------- */

struct target {
	const char *id, *label;
	double ratio, goal;
	bool at_most; /* met when ratio <= goal, else when >= */
};

static double a_p50(struct bench *b, int m)
{
	return median(b->a[m].p50, b->o.rounds);
}

static double c_med(struct bench *b, bool rnd, int cold, size_t i)
{
	struct c_result *r = rnd ? &b->crand[cold][i] : &b->cseq[cold][i];

	return median(r->rate, b->o.rounds);
}

/* The best region case of a sequential cache state. */
static size_t c_best(struct bench *b, int cold)
{
	size_t best = 0;

	for (size_t i = 0; i < C_SEQ_N; i++)
		if (c_seq[i].kind == C_REGION &&
		    (!best || c_med(b, false, cold, i) >
				      c_med(b, false, cold, best)))
			best = i;
	return best;
}

static size_t targets(struct bench *b, struct target *t)
{
	static const char *const cache[2] = { "warm", "cold" };
	static const double seq_goal[2] = { 0.6, 1.0 };
	static char text[2][2][2][96]; /* [cold][best][id, label] */
	size_t n = 0;

	if (b->o.only & SEC_A) {
		t[n++] = (struct target){
			"handler_1_p50_vs_bare",
			"handler-thread p50, 1 worker / bare loop",
			a_p50(b, A_H1) / a_p50(b, A_BARE), 1.15, true
		};
		t[n++] = (struct target){
			"handler_2_p50_vs_bare",
			"handler-thread p50, 2 workers / bare loop",
			a_p50(b, A_H2) / a_p50(b, A_BARE), 1.15, true
		};
		t[n++] = (struct target){
			"inthread_p50_vs_kernel",
			"in-thread p50 / kernel first touch",
			a_p50(b, A_INTHREAD) / a_p50(b, A_KERNEL), 2.0, true
		};
	}
	for (int cold = 0; cold < 2 && (b->o.only & SEC_C); cold++) {
		double mmap = c_med(b, false, cold, C_MMAP_PRIVATE);
		size_t best = c_best(b, cold);
		char(*s)[2][96] = text[cold];

		snprintf(s[0][0], sizeof(s[0][0]), "file_seq_%s_vs_mmap",
			 cache[cold]);
		snprintf(s[0][1], sizeof(s[0][1]),
			 "seq %s file read, defaults (4K, ra 1M, 2 workers) "
			 "/ mmap",
			 cache[cold]);
		snprintf(s[1][0], sizeof(s[1][0]), "file_seq_%s_best_vs_mmap",
			 cache[cold]);
		snprintf(s[1][1], sizeof(s[1][1]),
			 "seq %s file read, best (%s) / mmap", cache[cold],
			 c_seq[best].id);
		t[n++] = (struct target){
			s[0][0], s[0][1],
			c_med(b, false, cold, C_SEQ_DEFAULT) / mmap,
			seq_goal[cold], false
		};
		t[n++] = (struct target){ s[1][0], s[1][1],
					  c_med(b, false, cold, best) / mmap,
					  seq_goal[cold], false };
	}
	if (b->o.only & SEC_B)
		t[n++] = (struct target){
			"demand_paging_vs_kernel",
			"seq demand paging, mem, ra on, 2 workers / kernel "
			"first touch",
			median(b->b_rate[B_RA2], b->o.rounds) /
				median(b->b_rate[B_KERNEL], b->o.rounds),
			1.5, false
		};
	if (b->o.only & SEC_C)
		t[n++] = (struct target){
			"file_random_warm_vs_mmap",
			"random 4K warm reads, region fill 4K / mmap",
			c_med(b, true, 0, C_RAND_4K) /
				c_med(b, true, 0, C_MMAP_PRIVATE),
			0.1, false
		};
	return n;
}

static bool target_met(const struct target *t)
{
	return t->at_most ? t->ratio <= t->goal : t->ratio >= t->goal;
}

/* Per-fault value of counter @v over @faults, or -1 when not known. */
static double per_fault(uint64_t v, uint64_t faults, bool ok)
{
	return ok && faults ? (double)v / (double)faults : -1;
}

struct d_row {
	double f_csw, s_csw, s_reads, s_polls, s_ioctls; /* per fault */
	double f_cpu_us, s_cpu_us, s_wait_us;
};

static void d_row(const struct a_result *r, bool bare, struct d_row *d)
{
	bool ok = r->counters_ok, srv = ok && r->has_server;
	uint64_t n = r->faults;

	d->f_csw = per_fault(r->faulting.csw, n, ok);
	d->f_cpu_us = per_fault(r->faulting.cpu_ns, n, ok) / 1000;
	d->s_csw = per_fault(r->server.csw, n, srv);
	d->s_reads = per_fault(r->server.syscr, n, srv);
	d->s_cpu_us = per_fault(r->server.cpu_ns, n, srv) / 1000;
	d->s_wait_us = per_fault(r->server.wait_ns, n, srv) / 1000;
	d->s_polls = per_fault(r->polls, n, bare);
	d->s_ioctls = per_fault(r->copies, n, bare);
	if (!ok || !n)
		d->f_cpu_us = -1;
	if (!srv || !n)
		d->s_cpu_us = d->s_wait_us = -1;
}

static void ratio_str(char *buf, size_t len, double v, int baseline)
{
	if (baseline < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2fx", v);
}

/* A per-fault figure, or "-" when the counter is not known. */
static void cell(double v, int prec)
{
	if (v < 0)
		printf(" %7s", "-");
	else
		printf(" %7.*f", prec, v);
}

static void print_tables(struct bench *b)
{
	struct target t[16];
	size_t nt = targets(b, t);
	char ratio[32];

	if (b->o.only & SEC_A) {
		printf("A. 4 KiB fault service latency, timed in the faulting "
		       "thread (%zu pages a run,\n   median of %u round(s); "
		       "timer overhead %.0f ns, not subtracted)\n",
		       b->o.a_pages, b->o.rounds, b->timer_ns);
		/* %9s: "µs" is two bytes in one column. */
		printf("  %-42s %9s %9s %10s %7s  %s\n", "mode", "p50 µs",
		       "p99 µs", "faults/s", "ratio", "vs");
		for (int m = 0; m < A_N; m++) {
			int base = a_rows[m].baseline;

			ratio_str(ratio, sizeof(ratio),
				  base < 0 ? 0 : a_p50(b, m) / a_p50(b, base),
				  base);
			printf("  %-42s %8.2f %8.2f %10.0f %7s%s%s\n",
			       a_rows[m].label, a_p50(b, m) / 1000,
			       median(b->a[m].p99, b->o.rounds) / 1000,
			       median(b->a[m].rate, b->o.rounds), ratio,
			       base < 0 ? "" : "  ",
			       base < 0 ? "" : a_rows[base].id);
		}
		printf("\nD. Where a 4 KiB fault's time goes, per fault "
		       "(A's runs; kernel per-thread counters)\n");
		printf("  %-12s %7s %7s %7s %7s %7s %7s %8s %8s %8s\n", "",
		       "faults", "csw", "csw", "read(2)", "poll(2)", "ioctl",
		       "CPU µs", "CPU µs", "wait µs");
		printf("  %-12s %7s %7s %7s %7s %7s %7s %7s %7s %7s\n", "mode",
		       "/run", "fault", "server", "server", "server", "server",
		       "fault", "server", "server");
		for (int m = 0; m < A_N; m++) {
			const struct a_result *r = &b->a[m];
			struct d_row d;

			d_row(r, m == A_BARE, &d);
			printf("  %-12s %7.0f", a_rows[m].id,
			       (double)r->faults / b->o.rounds);
			cell(d.f_csw, 2);
			cell(d.s_csw, 2);
			cell(d.s_reads, 2);
			cell(d.s_polls, 2);
			cell(d.s_ioctls, 2);
			cell(d.f_cpu_us, 2);
			cell(d.s_cpu_us, 2);
			cell(d.s_wait_us, 2);
			putchar('\n');
		}
		printf("  (read(2): the io counter syscr; poll(2) and ioctl: "
		       "counted in the bare loop's code,\n   not observable "
		       "for the engine from its API; wait: runnable, waiting "
		       "for a CPU)\n\n");
	}
	if (b->o.only & SEC_B) {
		printf("B. Sequential demand paging, one reader touching one "
		       "word per 4 KiB page\n   (%" PRIu64
		       " MiB, median of %u round(s))\n",
		       b->o.b_bytes / MIB, b->o.rounds);
		printf("  %-42s %8s %11s %7s  %s\n", "mode", "GiB/s",
		       "faults/run", "ratio", "vs");
		for (int m = 0; m < B_N; m++) {
			int base = b_rows[m].baseline;
			double v = median(b->b_rate[m], b->o.rounds);

			ratio_str(ratio, sizeof(ratio),
				  base < 0 ? 0
					   : v / median(b->b_rate[base],
							b->o.rounds),
				  base);
			printf("  %-42s %8.2f %11.0f %7s%s%s\n",
			       b_rows[m].label, v,
			       (double)b->b_faults[m] / b->o.rounds, ratio,
			       base < 0 ? "" : "  ",
			       base < 0 ? "" : b_rows[base].id);
		}
		putchar('\n');
	}
	if (b->o.only & SEC_C) {
		printf("C. File reads, region vs mmap of the same file (%" PRIu64
		       " MiB in %s; %zu random reads warm,\n   %zu cold; "
		       "median of %u round(s); ratio vs mmap MAP_PRIVATE; "
		       "cold: at most %.1f%%\n   of the file left cached)\n",
		       b->o.size / MIB, b->o.dir, b->o.c_reads,
		       b->o.c_cold_reads, b->o.rounds,
		       b->cold_resident_max * 100);
		for (int rnd = 0; rnd < 2; rnd++) {
			const struct c_case *cs = rnd ? c_rand : c_seq;
			size_t nc = rnd ? C_RAND_N : C_SEQ_N;

			printf("  %-36s %10s %7s %10s %7s\n",
			       rnd ? "random 4 KiB pages, reads/s"
				      : "sequential, every byte, GiB/s",
			       "warm", "ratio", "cold", "ratio");
			for (size_t i = 0; i < nc; i++) {
				printf("  %-36s", cs[i].label);
				for (int cold = 0; cold < 2; cold++) {
					double v = c_med(b, rnd, cold, i);

					ratio_str(ratio, sizeof(ratio),
						  v / c_med(b, rnd, cold,
							    C_MMAP_PRIVATE),
						  i == C_MMAP_PRIVATE ? -1 : 0);
					if (!v) /* left out */
						printf(" %10s %7s", "-", "-");
					else
						printf(rnd ? " %10.0f %7s"
							      : " %10.2f %7s",
						       v, ratio);
				}
				putchar('\n');
			}
		}
		putchar('\n');
	}
	if (!nt)
		return;
	printf("Targets (ratios measured side by side in this run)\n");
	for (size_t i = 0; i < nt; i++)
		printf("  %-62s %6.2fx  %s %.2fx  %s\n", t[i].label,
		       t[i].ratio, t[i].at_most ? "<=" : ">=", t[i].goal,
		       target_met(&t[i]) ? "met" : "MISSED");
}

static void json_opt(struct json *j, const char *key, double v)
{
	if (v >= 0)
		json_f64(j, key, v);
}

static void json_row_open(struct json *j, const struct row_def *row)
{
	json_obj_open(j, NULL);
	json_str(j, "id", row->id);
	json_str(j, "label", row->label);
}

/* End a row of @rows: its baseline's id and @ratio to it, if it has one. */
static void json_row_close(struct json *j, const struct row_def *rows,
			   const struct row_def *row, double ratio)
{
	if (row->baseline >= 0) {
		json_str(j, "baseline", rows[row->baseline].id);
		json_f64(j, "ratio", ratio);
	}
	json_obj_close(j);
}

static void print_json(struct bench *b, const struct utsname *u)
{
	struct target t[16];
	size_t nt = targets(b, t);
	struct json j;

	json_begin(&j, stdout);
	json_str(&j, "bench", "upager-bench");
	json_u64(&j, "version", 1);
	json_bool(&j, "quick", b->o.quick);
	json_u64(&j, "rounds", b->o.rounds);
	json_obj_open(&j, "machine");
	json_i64(&j, "nproc", sysconf(_SC_NPROCESSORS_ONLN));
	json_str(&j, "kernel", u->release);
	json_obj_close(&j);
	if (b->o.only & SEC_A) {
		json_obj_open(&j, "A");
		json_u64(&j, "pages", b->o.a_pages);
		json_f64(&j, "timer_overhead_ns", b->timer_ns);
		json_arr_open(&j, "rows");
		for (int m = 0; m < A_N; m++) {
			int base = a_rows[m].baseline;

			json_row_open(&j, &a_rows[m]);
			json_f64(&j, "p50_us", a_p50(b, m) / 1000);
			json_f64(&j, "p99_us",
				 median(b->a[m].p99, b->o.rounds) / 1000);
			json_f64(&j, "faults_per_s",
				 median(b->a[m].rate, b->o.rounds));
			json_row_close(&j, a_rows, &a_rows[m],
				       base < 0 ? 0 : a_p50(b, m) / a_p50(b, base));
		}
		json_arr_close(&j);
		json_obj_close(&j);
		json_obj_open(&j, "D");
		json_arr_open(&j, "rows");
		for (int m = 0; m < A_N; m++) {
			const struct a_result *r = &b->a[m];
			struct d_row d;

			d_row(r, m == A_BARE, &d);
			json_obj_open(&j, NULL);
			json_str(&j, "id", a_rows[m].id);
			json_f64(&j, "faults_per_run",
				 (double)r->faults / b->o.rounds);
			json_opt(&j, "faulting_csw_per_fault", d.f_csw);
			json_opt(&j, "server_csw_per_fault", d.s_csw);
			json_opt(&j, "server_reads_per_fault", d.s_reads);
			json_opt(&j, "server_polls_per_fault", d.s_polls);
			json_opt(&j, "server_ioctls_per_fault", d.s_ioctls);
			json_opt(&j, "faulting_cpu_us_per_fault", d.f_cpu_us);
			json_opt(&j, "server_cpu_us_per_fault", d.s_cpu_us);
			json_opt(&j, "server_wait_us_per_fault", d.s_wait_us);
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_obj_close(&j);
	}
	if (b->o.only & SEC_B) {
		json_obj_open(&j, "B");
		json_u64(&j, "bytes", b->o.b_bytes);
		json_arr_open(&j, "rows");
		for (int m = 0; m < B_N; m++) {
			int base = b_rows[m].baseline;
			double v = median(b->b_rate[m], b->o.rounds);

			json_row_open(&j, &b_rows[m]);
			json_f64(&j, "gib_per_s", v);
			json_f64(&j, "faults_per_run",
				 (double)b->b_faults[m] / b->o.rounds);
			json_row_close(&j, b_rows, &b_rows[m],
				       base < 0 ? 0
						: v / median(b->b_rate[base],
							     b->o.rounds));
		}
		json_arr_close(&j);
		json_obj_close(&j);
	}
	if (b->o.only & SEC_C) {
		json_obj_open(&j, "C");
		json_u64(&j, "bytes", b->o.size);
		json_u64(&j, "random_reads_warm", b->o.c_reads);
		json_u64(&j, "random_reads_cold", b->o.c_cold_reads);
		json_f64(&j, "cold_resident_max_pct",
			 b->cold_resident_max * 100);
		json_bool(&j, "cold_dropped", b->cold_dropped);
		for (int rnd = 0; rnd < 2; rnd++) {
			const struct c_case *cs = rnd ? c_rand : c_seq;
			size_t nc = rnd ? C_RAND_N : C_SEQ_N;

			json_arr_open(&j, rnd ? "random" : "seq");
			for (int cold = 0; cold < 2; cold++) {
				for (size_t i = 0; i < nc; i++) {
					double v = c_med(b, rnd, cold, i);

					json_obj_open(&j, NULL);
					json_str(&j, "cache",
						 cold ? "cold" : "warm");
					json_str(&j, "id", cs[i].id);
					json_str(&j, "label", cs[i].label);
					if (!v) {
						json_bool(&j, "skipped", true);
						json_obj_close(&j);
						continue;
					}
					json_f64(&j,
						 rnd ? "reads_per_s"
							: "gib_per_s",
						 v);
					if (i != C_MMAP_PRIVATE) {
						json_str(&j, "baseline",
							 "mmap_private");
						json_f64(&j, "ratio",
							 v / c_med(b, rnd,
								   cold,
								   C_MMAP_PRIVATE));
					}
					json_obj_close(&j);
				}
			}
			json_arr_close(&j);
		}
		json_obj_close(&j);
	}
	json_arr_open(&j, "targets");
	for (size_t i = 0; i < nt; i++) {
		json_obj_open(&j, NULL);
		json_str(&j, "id", t[i].id);
		json_str(&j, "label", t[i].label);
		json_f64(&j, "ratio", t[i].ratio);
		json_str(&j, "cmp", t[i].at_most ? "<=" : ">=");
		json_f64(&j, "goal", t[i].goal);
		json_bool(&j, "met", target_met(&t[i]));
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_end(&j);
}

/* ---- arguments ----------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: upager bench [--quick] [--json] [--dir DIR] [--size SIZE]\n"
		"                    [--only A|B|C] [--rounds N]\n"
		"\n"
		"Measure upager's fault path side by side with the kernel's own:\n"
		"  A  4 KiB fault latency (kernel first touch, bare uffd loop,\n"
		"     handler with 1 and 2 workers, bare SIGBUS handler,\n"
		"     in-thread) and D, the context switches, reads and CPU\n"
		"     time per fault\n"
		"  B  sequential demand paging from the mem store, read-ahead on\n"
		"  C  file reads through a file: region vs mmap, warm and cold\n"
		"     (every byte of each page read and checked)\n"
		"\n"
		"  --quick      small sizes (tests, CI): a few seconds\n"
		"  --json       print one JSON object instead of the tables\n"
		"  --dir DIR    where C writes its file (default /var/tmp)\n"
		"  --size SIZE  C's file size, a multiple of 2M (K/M/G suffix;\n"
		"               default 2G, 256M with --quick)\n"
		"  --only S     run only section A, B or C (several: A,C)\n"
		"  --rounds N   rounds of each row, 1 to %d (default 3, 1 with\n"
		"               --quick)\n"
		"\n"
		"Every access checks its page's content; exit 1 on a mismatch or\n"
		"an error, 2 on a bad argument.\n",
		MAX_ROUNDS);
}

static int __attribute__((format(printf, 1, 2))) bad_arg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap, "\nTry 'upager bench --help'.\n");
	va_end(ap);
	return 2;
}

/* MemAvailable from /proc/meminfo, in bytes (0 when unknown). */
static uint64_t mem_available(void)
{
	char buf[4096];
	int64_t kb;

	if (slurp("/proc/meminfo", buf, sizeof(buf)) <= 0)
		return 0;
	kb = field(buf, "MemAvailable:");
	return kb < 0 ? 0 : (uint64_t)kb << 10;
}

/* Checks that need the whole command line; 0 or 2 (after a message). */
static int check_opts(struct opts *o, bool size_set)
{
	struct statvfs vfs;
	struct stat st;
	uint64_t avail, need;

	if (stat(o->dir, &st))
		return bad_arg("--dir '%s': %s", o->dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return bad_arg("--dir '%s': not a directory", o->dir);
	if (access(o->dir, W_OK | X_OK))
		return bad_arg("--dir '%s': not writable: %s", o->dir,
			       strerror(errno));
	if (!size_set)
		o->size = o->quick ? 256 * MIB : 2 * GIB;
	if (!(o->only & SEC_C))
		return 0;
	if (statvfs(o->dir, &vfs) == 0 &&
	    (uint64_t)vfs.f_bavail * vfs.f_frsize < o->size + 64 * MIB)
		return bad_arg("--size %" PRIu64 "M: only %" PRIu64
			       "M free in --dir '%s'",
			       o->size / MIB,
			       (uint64_t)vfs.f_bavail * vfs.f_frsize / MIB,
			       o->dir);
	/* The page cache, a region and a mapping of the file at once. */
	avail = mem_available();
	need = 3 * o->size;
	if (avail && need > avail)
		return bad_arg("--size %" PRIu64 "M: C needs about 3x the file "
			       "size in memory, and only %" PRIu64
			       "M is available",
			       o->size / MIB, avail / MIB);
	return 0;
}

/* Which sections --only names: "A", "b", "A,C"...; 0 when malformed. */
static unsigned int parse_only(const char *val)
{
	unsigned int only = 0;

	for (const char *c = val; *c; c++) {
		if (*c == ',' && c != val && c[1] && c[1] != ',')
			continue;
		if (*c >= 'a' && *c <= 'c')
			only |= 1u << (*c - 'a');
		else if (*c >= 'A' && *c <= 'C')
			only |= 1u << (*c - 'A');
		else
			return 0;
	}
	return only;
}

/* 0, or 2 after a message naming the bad argument; -1: --help. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ .name = "quick", .val = 'q' },
		{ .name = "json", .val = 'j' },
		{ .name = "help", .val = 'h' },
		{ .name = "dir", .has_arg = required_argument, .val = 'd' },
		{ .name = "size", .has_arg = required_argument, .val = 's' },
		{ .name = "only", .has_arg = required_argument, .val = 'o' },
		{ .name = "rounds", .has_arg = required_argument, .val = 'r' },
		{ 0 },
	};
	bool size_set = false, rounds_set = false;
	uint64_t v;
	int c;

	*o = (struct opts){ .dir = "/var/tmp",
			    .rounds = 3,
			    .only = SEC_A | SEC_B | SEC_C };
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			return -1;
		case 'q':
			o->quick = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'd':
			if (!*optarg)
				return bad_arg("--dir: empty path");
			o->dir = optarg;
			break;
		case 's':
			if (parse_size(optarg, &v))
				return bad_arg("--size '%s' is not a size (a "
					       "number with an optional K, M "
					       "or G suffix)",
					       optarg);
			if (v < 4 * MIB || v % (2 * MIB))
				return bad_arg("--size '%s': want a multiple "
					       "of 2M, at least 4M",
					       optarg);
			if (v / PAGE > UINT32_MAX)
				return bad_arg("--size '%s': too large",
					       optarg);
			o->size = v;
			size_set = true;
			break;
		case 'r':
			if (parse_size(optarg, &v) || v < 1 || v > MAX_ROUNDS)
				return bad_arg("--rounds '%s': want a number "
					       "from 1 to %d",
					       optarg, MAX_ROUNDS);
			o->rounds = (unsigned int)v;
			rounds_set = true;
			break;
		case 'o':
			o->only = parse_only(optarg);
			if (!o->only)
				return bad_arg("--only '%s': want A, B or C "
					       "(or several, as in A,C)",
					       optarg);
			break;
		case ':':
			return bad_arg("%s needs a value", argv[optind - 1]);
		default:
			return bad_arg("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad_arg("unexpected argument '%s'", argv[optind]);
	/* --quick is a smoke run (CI, tests): one round unless asked. */
	if (o->quick && !rounds_set)
		o->rounds = 1;
	o->a_pages = o->quick ? 2000 : 20000;
	o->b_bytes = o->quick ? 256 * MIB : GIB;
	o->c_reads = o->quick ? 20000 : 100000;
	o->c_cold_reads = o->quick ? 2000 : o->c_reads;
	return check_opts(o, size_set);
}

int cmd_bench(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct utsname u;
	int ret;

	if (!b)
		die("out of memory");
	ret = parse_args(argc, argv, &b->o);
	if (ret) {
		if (ret < 0)
			usage(stdout);
		free(b);
		return ret < 0 ? 0 : ret;
	}
	uname(&u);
	/* Line-buffered: the tables and the progress on stderr stay in order. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!b->o.json)
		printf("upager bench: %ld CPUs, kernel %s, %s%u round(s)\n\n",
		       sysconf(_SC_NPROCESSORS_ONLN), u.release,
		       b->o.quick ? "--quick, " : "", b->o.rounds);
	if (b->o.only & SEC_A)
		section_a(b);
	if (b->o.only & SEC_B)
		section_b(b);
	if (b->o.only & SEC_C)
		section_c(b);
	if (b->o.json)
		print_json(b, &u);
	else
		print_tables(b);
	free(b);
	return 0;
}

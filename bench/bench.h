/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the parts of upager-bench share (upager-bench.c says what it
 * measures): the options, each section's rows and results, and the
 * helpers every section uses.  The benchmark is a client of the library
 * like any other program: public headers only, and common/.
 */
#ifndef UPAGER_BENCH_H
#define UPAGER_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <time.h>

#include <upager/upager.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE ((size_t)UPAGER_STORE_PAGE)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)
#define MAX_ROUNDS 25
#define MAX_WORKERS 8

enum { SEC_A = 1, SEC_B = 2, SEC_C = 4 };

struct opts {
	bool quick, json;
	bool umap;	   /* C: only the UMap-comparable rows, warm */
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

/* ---- the bare handlers (bench_bare.c) ----------------------------------- */

/*
 * A bare handler thread over @len bytes of fresh anon memory (b->base):
 * poll(2), read(2) the message, one UFFDIO_COPY (with its wake) a fault,
 * from @src + the page's offset or, with @fill, from a page that
 * fill(page number, page) wrote.  Counts its calls.  One at a time.
 */
struct bare {
	int uffd, stopfd;
	char *base;
	size_t len;
	const char *src;
	void (*fill)(size_t pg, char *page);
	pthread_t thread;
	atomic_int tid;
	uint64_t polls, reads, copies;
};

void bare_up(struct bare *b, const char *src,
	     void (*fill)(size_t pg, char *page), size_t len);
void bare_down(struct bare *b);
/*
 * A bare SIGBUS handler over @len bytes of fresh anon memory (returned)
 * whose missing pages it copies in as bare_up()'s thread does, in the
 * faulting thread; SIGBUS elsewhere goes to the handler installed
 * before.  One at a time; bare_sig_down() puts that handler back and
 * unmaps.
 */
char *bare_sig_up(const char *src, void (*fill)(size_t pg, char *page),
		  size_t len);
void bare_sig_down(void);

/* ---- section A and D rows ----------------------------------------------- */

enum {
	A_KERNEL,
	A_KERNEL_READ,
	A_BARE,
	A_H1,
	A_H2,
	A_H2_ONE,
	A_H2_PIN,
	A_H1_POLL,
	A_BARE_SIG,
	A_INTHREAD,
	A_N
};

struct row_def {
	const char *id, *label;
	int baseline; /* row the ratio is against, or -1 */
};
extern const struct row_def a_rows[A_N];
/* The handler_1_poll row's upager_handler_params.poll_us. */
#define A_POLL_US 50

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

extern const struct row_def b_rows[B_N];

/* ---- section C cases ----------------------------------------------------- */

enum { C_MMAP_PRIVATE, C_MMAP_SHARED, C_REGION, C_FLOOR };

struct c_case {
	const char *id, *label;
	int kind;
	size_t fill, ra;      /* region: map parameters (0: defaults) */
	unsigned int threads; /* region: workers (0: in-thread) */
	enum upager_memtype memtype;
	bool thp;     /* floor: MADV_HUGEPAGE before the populate */
	bool bytesum; /* the byte-summing reader, not the word checker */
	bool shm;     /* over the copy of the file in /dev/shm (warm only) */
	bool umap;    /* one of the UMap-comparable rows (--umap) */
	int base;     /* the row its ratios are against */
	size_t fa;    /* region: fault_around (0: the default) */
};

#define C_SEQ_N ((size_t)18)
#define C_SEQ_DEFAULT 3 /* region_4k_2: the defaults on 2 CPUs */
#define C_SEQ_FLOOR 12	/* floor_populate; floor_populate_thp follows */
#define C_SEQ_SHM 14	/* shm_mmap; shm_region (the defaults) follows */
#define C_RAND_N ((size_t)9)
#define C_RAND_4K 2 /* region_4k: the random-read target's case */
#define C_RAND_INTHREAD 4
#define C_RAND_SHM 5 /* shm_mmap; shm_region follows */
extern const struct c_case c_seq[];
extern const struct c_case c_rand[];

struct c_result {
	double rate[MAX_ROUNDS]; /* GiB/s (sequential) or reads/s (random) */
	double rss[MAX_ROUNDS];	 /* the row's peak RSS, bytes */
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

/* ---- helpers (bench_util.c) ---------------------------------------------- */

/*
 * Messages are "upager bench: ..."; a program of its own calls this once
 * for "NAME: ..." (and cli_usage_error(NAME, ...) for its usage errors).
 */
void bench_set_name(const char *name);
void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...);
void __attribute__((format(printf, 1, 2))) progress(const char *fmt, ...);
void *xmalloc(size_t len);
/*
 * The options dirty-track, outofcore and snapshot end their getopt_long()
 * table with, for bench_getopt().
 */
#define BENCH_OPTIONS                                                     \
	{ "quick", no_argument, NULL, 'q' },                              \
	{ "json", no_argument, NULL, 'j' },                               \
	{ "help", no_argument, NULL, 'h' },                               \
	{ 0 }
struct option;
/*
 * getopt_long() over @lopts for such a program's main(): --quick and
 * --json set *@quick and *@json; --help calls @usage and exits 0; an
 * unknown option, a missing value or an argument left over after the
 * options is a usage error naming it (exit 2).  Returns the next option
 * of the program's own, or -1 after the last.
 */
int bench_getopt(const char *name, int argc, char **argv,
		 const struct option *lopts, bool *quick, bool *json,
		 void (*usage)(void));
/* true when @dir is a directory, else a usage error for --dir: false. */
bool bench_check_dir(const char *name, const char *dir);
struct json;
/* Begin the JSON object of benchmark @name on stdout: "bench", "kernel". */
void bench_json_begin(struct json *j, const char *name);
/* Seconds in (0, @max] from @s, or a usage error naming @what: false. */
bool bench_parse_secs(const char *name, const char *what, const char *s,
		      double max, double *out);

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

enum touch { TOUCH_WRITE, TOUCH_READ, TOUCH_PAGE, TOUCH_WORDS };

/*
 * One access to the first word of a page, or a read of all of it.  The
 * write is a locked add of 0: a write fault (so the kernel's first touch
 * allocates and zeroes a page, as UFFDIO_COPY allocates and fills one)
 * that still returns the word to check.  TOUCH_PAGE returns the sum of
 * the page's words (a reader that does some work per byte); TOUCH_WORDS
 * (touch_words()) checks every word and does nothing else, so what it
 * measures is the paging, not the reader.
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

/* xorshift64*: a fast generator for access streams; @s never 0. */
static inline uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* A uniform double in [0, 1). */
static inline double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/*
 * The bits in which the words of the C file's page at @p differ from
 * what they should be (word k is @first + k): 0 when all are right.  A
 * branch-free OR, so the compiler reads the page with vector loads.
 */
static inline uint64_t touch_words(const char *p, uint64_t first)
{
	const uint64_t *words = (const uint64_t *)p;
	uint64_t bad = 0;

	for (size_t i = 0; i < PAGE / 8; i++)
		bad |= words[i] ^ (first + i);
	return bad;
}

uint64_t page_sum(uint64_t pg);
uint64_t sweep(const char *what, char *base, const uint32_t *idx, size_t n,
	       enum touch how, bool zero, uint64_t *lat);
double median(const double *v, unsigned int n);
char *anon_map(const char *what, size_t len);
/*
 * A peak RSS in bytes (the kernel's VmHWM, plus hugetlb pages mapped
 * now): rss_peak_reset() starts a window and returns the RSS then;
 * rss_peak_since() is how far the peak went above @start since.
 * rss_peak_since(0) with no reset is the process's peak since it began
 * (a row in a child of its own: run_child()).
 */
uint64_t rss_peak_reset(void);
uint64_t rss_peak_since(uint64_t start);
struct upager_store *pattern_store(uint64_t len);
ssize_t slurp(const char *path, char *buf, size_t len);
int64_t field(const char *buf, const char *key);
uint64_t minflt_self(void);
/* @len bytes of MAP_SHARED anonymous memory: what a child shares back. */
void *shared_map(const char *what, size_t len);
/*
 * Run @fn(@arg) in a child process (a fresh address space per row, and
 * its own peak RSS) and wait for it; dies naming @what unless the child
 * exits 0.
 */
void run_child(const char *what, void (*fn)(void *arg), void *arg);

/* An upager handler with one region; workers poll for @poll_us (0: no). */
struct engine {
	struct upager_handler *h;
	struct upager_region *r;
	char *addr;
	pid_t workers[MAX_WORKERS];
	int nworkers;
};
/* @hp: handler parameters but the workers (@threads); NULL: defaults. */
void engine_up(struct engine *e, const char *what, struct upager_store *s,
	       size_t len, unsigned int threads,
	       const struct upager_handler_params *hp, size_t fill, size_t ra,
	       size_t fa, unsigned int flags, enum upager_memtype memtype);
void engine_down(struct engine *e, struct upager_stats *st);

/* ---- the sections and the report ----------------------------------------- */

void section_a(struct bench *b); /* bench_a.c */
void section_b(struct bench *b); /* bench_b.c */
void section_c(struct bench *b); /* bench_c.c */
void print_tables(struct bench *b);			  /* bench_report.c */
void print_json(struct bench *b, const struct utsname *u); /* bench_report.c */

#endif

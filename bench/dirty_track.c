// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * dirty-track: what knowing which pages were written costs (issue 10,
 * item 1 and benchmark (b)), every way side by side in one run.
 *
 * First writes: a region of --size (256 MiB) is populated, then each of
 * its 4 KiB pages is written once, in order, and each write is timed:
 *   untracked      no tracking: a store to a present, writable page
 *   kernel_fault   the kernel's first touch of fresh anonymous memory
 *                  (a fault, a page allocated and zeroed): the reference
 *                  for "a fault the kernel takes anyway"
 *   wp_sync        registered UFFDIO_REGISTER_MODE_WP and write-protected;
 *                  each first write is a WP fault that a handler thread
 *                  (poll, read, a bit in a bitmap, UFFDIO_WRITEPROTECT to
 *                  unprotect and wake) resolves: one round trip per page
 *   wp_sync_spin   the same with a handler that never sleeps (it reads
 *                  the non-blocking uffd in a loop): the round trip
 *                  without the wake-up of a sleeping thread
 *   wp_async       the same on a uffd with UFFD_FEATURE_WP_ASYNC: the
 *                  kernel unprotects the page itself, no message
 *   upager         an upager region (mem: store, pages installed by
 *                  upager_region_prefault()), without write tracking
 *   upager_track   the same with UPAGER_MAP_TRACK_WRITES
 * Then PAGEMAP_SCAN over a WP_ASYNC region of --scan-size (1 GiB):
 * nothing written, 1 page in 64 written, every page written; each scanned
 * without and with PM_SCAN_WP_MATCHING (report and re-protect).
 *
 * Every row checks itself: the data written is read back, wp_sync's
 * bitmap holds every page, a scan reports exactly the pages written,
 * upager_track's pages_dirtied counts every page.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <upager/ll.h>
#include <upager/upager.h>

#include "bench.h"
#include "cli.h"

#define NAME "dirty-track"

enum {
	R_UNTRACKED,
	R_KERNEL,
	R_WP_SYNC,
	R_WP_SPIN,
	R_WP_ASYNC,
	R_UPAGER,
	R_UPAGER_TRACK,
	R_N
};

static const char *const row_id[R_N] = {
    "untracked", "kernel_fault", "wp_sync",	 "wp_sync_spin",
    "wp_async",	 "upager",	 "upager_track",
};

enum { S_CLEAN, S_SPARSE, S_ALL, S_N };
static const char *const scan_id[S_N] = {"clean", "sparse", "all"};
#define SPARSE_EVERY 64

struct row {
	double ns[MAX_ROUNDS], p50[MAX_ROUNDS], p99[MAX_ROUNDS];
	double protect_ms_gib[MAX_ROUNDS]; /* wp rows: the protect pass */
	const char *skipped;		   /* why, or NULL */
};

struct scan {
	double ms[2][MAX_ROUNDS]; /* [reset] */
	uint64_t pages, regions;
};

struct dt {
	uint64_t size, scan_size;
	unsigned int rounds;
	bool quick, json;
	double timer_ns;
	uint32_t *lat;
	struct row row[R_N];
	struct scan scan[S_N];
	char skip_buf[R_N][160];
};

/* ---- the timed sweep ----------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/*
 * Write word 0 of every page of @base once, in order; lat[i] is the time
 * from the end of write i-1 to the end of write i (one clock read each,
 * the timer's cost included in every row alike).  Fills round @k of @r:
 * ns per page, p50 and p99; then reads every page back.
 */
static void sweep_writes(struct dt *d, char *base, size_t n, struct row *r,
			 unsigned int k)
{
	uint64_t t0 = clock_ns(), prev = t0, t;

	for (size_t i = 0; i < n; i++) {
		*(volatile uint64_t *)(base + i * PAGE) = pattern(i);
		t = clock_ns();
		d->lat[i] =
		    t - prev > UINT32_MAX ? UINT32_MAX : (uint32_t)(t - prev);
		prev = t;
	}
	r->ns[k] = (double)(prev - t0) / (double)n;
	for (size_t i = 0; i < n; i++)
		if (*(uint64_t *)(base + i * PAGE) != pattern(i))
			die("%s: page %zu does not hold what was written",
			    row_id[r - d->row], i);
	qsort(d->lat, n, sizeof(*d->lat), cmp_u32);
	r->p50[k] = d->lat[n / 2];
	r->p99[k] = d->lat[n - 1 - n / 100];
}

static void populate(char *base, size_t len)
{
	for (size_t off = 0; off < len; off += PAGE)
		*(volatile uint64_t *)(base + off) = 1;
}

/* ---- the kernel's write-protect, synchronous and asynchronous ------------ */

static int uffd_open(uint64_t features)
{
	struct upager_ll_api_info info;
	int fd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL), err;

	if (fd < 0)
		die("cannot open a userfaultfd: %s", strerror(-fd));
	err = upager_ll_api(fd, features, &info);
	if (err == -EOPNOTSUPP) {
		char names[256];

		upager_ll_feature_list(info.missing, names, sizeof(names));
		die("the kernel lacks UFFD_FEATURE_%s", names);
	}
	if (err)
		die("UFFDIO_API: %s", strerror(-err));
	return fd;
}

/* Register @base WP and protect it; the protect pass in ms per GiB. */
static double protect(int fd, char *base, size_t len)
{
	uint64_t t0;
	int err;

	err = upager_ll_register(fd, base, len, UFFDIO_REGISTER_MODE_WP, NULL);
	if (err)
		die("UFFDIO_REGISTER (WP): %s", strerror(-err));
	t0 = clock_ns();
	err =
	    upager_ll_writeprotect(fd, base, len, UFFDIO_WRITEPROTECT_MODE_WP);
	if (err)
		die("UFFDIO_WRITEPROTECT: %s", strerror(-err));
	return (double)(clock_ns() - t0) / 1e6 * (double)GIB / (double)len;
}

/* The synchronous mode's handler: what the engine's worker does, bare. */
struct wp_handler {
	int fd, stop[2];
	char *base;
	uint64_t *dirty; /* a bit per page */
	uint64_t faults;
	bool spin;
	pthread_t thread;
};

static void *wp_serve(void *arg)
{
	struct wp_handler *h = arg;
	struct upager_ll_event ev[64];
	struct pollfd pfd[2] = {{.fd = h->fd, .events = POLLIN},
				{.fd = h->stop[0], .events = POLLIN}};

	for (;;) {
		int n;

		if (poll(pfd, 2, h->spin ? 0 : -1) < 0 && errno != EINTR)
			die("wp_sync: poll: %s", strerror(errno));
		if (pfd[1].revents)
			return NULL;
		n = upager_ll_read_events(h->fd, ev, ARRAY_SIZE(ev));
		if (n == -EAGAIN)
			continue;
		if (n < 0)
			die("wp_sync: reading the uffd: %s", strerror(-n));
		for (int i = 0; i < n; i++) {
			uint64_t a = ev[i].pagefault.address & ~(PAGE - 1);
			size_t pg = (size_t)(a - (uintptr_t)h->base) / PAGE;
			int err;

			if (ev[i].kind != UPAGER_LL_EVENT_PAGEFAULT ||
			    !ev[i].pagefault.wp)
				die("wp_sync: an unexpected %s event",
				    upager_ll_event_name(ev[i].kind));
			/* The bookkeeping first, then let the write go on. */
			h->dirty[pg / 64] |= 1ull << (pg % 64);
			h->faults++;
			err = upager_ll_writeprotect(h->fd, (void *)a, PAGE, 0);
			if (err)
				die("wp_sync: unprotecting: %s",
				    strerror(-err));
		}
	}
}

static void row_wp_sync(struct dt *d, char *base, size_t n, unsigned int k,
			bool spin)
{
	struct row *r = &d->row[spin ? R_WP_SPIN : R_WP_SYNC];
	struct wp_handler h = {.base = base, .spin = spin};
	uint64_t set = 0;

	h.fd = uffd_open(UFFD_FEATURE_PAGEFAULT_FLAG_WP);
	h.dirty = calloc((n + 63) / 64, sizeof(uint64_t));
	if (!h.dirty || pipe(h.stop))
		die("wp_sync: %s", strerror(errno));
	populate(base, n * PAGE);
	r->protect_ms_gib[k] = protect(h.fd, base, n * PAGE);
	if (pthread_create(&h.thread, NULL, wp_serve, &h))
		die("wp_sync: pthread_create failed");
	sweep_writes(d, base, n, r, k);
	if (write(h.stop[1], "", 1) != 1)
		die("wp_sync: %s", strerror(errno));
	pthread_join(h.thread, NULL);
	for (size_t i = 0; i < (n + 63) / 64; i++)
		set += (uint64_t)__builtin_popcountll(h.dirty[i]);
	if (set != n || h.faults != n)
		die("wp_sync: %" PRIu64 " pages marked in %" PRIu64
		    " faults, want %zu",
		    set, h.faults, n);
	close(h.stop[0]);
	close(h.stop[1]);
	close(h.fd);
	free(h.dirty);
}

/*
 * Written pages of [base, base+len) by PAGEMAP_SCAN (@reset: and
 * re-protect them), into @vec of @nvec; the ms it took, the pages and the
 * regions reported.
 */
static double scan(int pm, char *base, size_t len, struct page_region *vec,
		   size_t nvec, bool reset, uint64_t *pages, uint64_t *regions)
{
	uint64_t end = (uintptr_t)base + len, at = (uintptr_t)base, t0;

	*pages = *regions = 0;
	t0 = clock_ns();
	while (at < end) {
		int n = upager_ll_scan_written(pm, (void *)at, end - at, vec,
					       nvec, reset, &at);

		if (n < 0)
			die("PAGEMAP_SCAN: %s", strerror(-n));
		for (int i = 0; i < n; i++)
			*pages += (vec[i].end - vec[i].start) / PAGE;
		*regions += (uint64_t)n;
	}
	return (double)(clock_ns() - t0) / 1e6;
}

static uint64_t written_pages(int pm, char *base, size_t len,
			      struct page_region *vec, size_t nvec)
{
	uint64_t pages, regions;

	scan(pm, base, len, vec, nvec, false, &pages, &regions);
	return pages;
}

static void row_wp_async(struct dt *d, char *base, size_t n, unsigned int k)
{
	struct row *r = &d->row[R_WP_ASYNC];
	struct page_region vec[64];
	int fd = uffd_open(UFFD_FEATURE_WP_ASYNC), pm;
	uint64_t got;

	pm = upager_ll_pagemap_open();
	if (pm < 0)
		die("/proc/self/pagemap: %s", strerror(-pm));
	populate(base, n * PAGE);
	r->protect_ms_gib[k] = protect(fd, base, n * PAGE);
	if ((got = written_pages(pm, base, n * PAGE, vec, ARRAY_SIZE(vec))))
		die("wp_async: %" PRIu64 " pages written before any write",
		    got);
	sweep_writes(d, base, n, r, k);
	got = written_pages(pm, base, n * PAGE, vec, ARRAY_SIZE(vec));
	if (got != n)
		die("wp_async: the scan found %" PRIu64 " written pages, want "
		    "%zu",
		    got, n);
	close(pm);
	close(fd);
}

/* ---- through upager --------------------------------------------------------
 */

static void row_upager(struct dt *d, size_t n, unsigned int k, bool track)
{
	int id = track ? R_UPAGER_TRACK : R_UPAGER;
	struct upager_handler_params hp = {.size = sizeof(hp), .threads = 1};
	struct upager_map_params mp = {
	    .size = sizeof(mp),
	    .flags = track ? UPAGER_MAP_TRACK_WRITES : 0,
	    .readahead_max = (size_t)-1,
	    .fault_around = (size_t)-1,
	};
	struct upager_store *s = pattern_store(n * PAGE);
	struct upager_stats st;
	struct row *r = &d->row[id];
	uint64_t faults;
	struct upager_handler *h;
	struct upager_region *reg;
	char *base;
	int err;

	h = upager_handler_new(&hp, &err);
	if (!h)
		die("cannot open a userfaultfd: upager_handler_new: %s",
		    strerror(-err));
	base = upager_map(h, s, n * PAGE, &mp, &reg, &err);
	if (!base) {
		/* Said in the table, not hidden: the engine refused. */
		snprintf(d->skip_buf[id], sizeof(d->skip_buf[id]),
			 "upager_map: %s", strerror(-err));
		r->skipped = d->skip_buf[id];
		upager_handler_free(h);
		upager_store_close(s);
		return;
	}
	if ((err = upager_handler_start(h)) ||
	    (err = upager_region_prefault(reg, 0, n * PAGE)))
		die("%s: %s", row_id[id], strerror(-err));
	for (size_t i = 0; i < n; i++)
		if (*(volatile uint64_t *)(base + i * PAGE) != pattern(i))
			die("%s: page %zu read wrong before the writes",
			    row_id[id], i);
	upager_handler_stats(h, &st);
	faults = st.faults;
	sweep_writes(d, base, n, r, k);
	if ((err = upager_handler_stop(h)))
		die("upager_handler_stop: %s", strerror(-err));
	upager_handler_stats(h, &st);
	/* Tracked: one WP fault per page; untracked: none at all. */
	if (st.faults - faults != (track ? n : 0) ||
	    st.pages_dirtied != (track ? n : 0))
		die("%s: %" PRIu64 " faults and %" PRIu64
		    " pages dirtied by %zu first writes",
		    row_id[id], st.faults - faults, st.pages_dirtied, n);
	if ((err = upager_unmap(reg)))
		die("upager_unmap: %s", strerror(-err));
	upager_handler_free(h);
	upager_store_close(s);
}

/* ---- the rows and the scans ------------------------------------------------
 */

static void first_writes(struct dt *d, unsigned int k)
{
	size_t n = d->size / PAGE;

	for (int j = 0; j < R_N; j++) {
		/* A different row first each round. */
		int id = (j + (int)k) % R_N;
		struct row *r = &d->row[id];
		char *base;

		if (r->skipped)
			continue;
		if (id == R_UPAGER || id == R_UPAGER_TRACK) {
			row_upager(d, n, k, id == R_UPAGER_TRACK);
			continue;
		}
		base = anon_map(row_id[id], d->size);
		switch (id) {
		case R_UNTRACKED:
			populate(base, d->size);
			sweep_writes(d, base, n, r, k);
			break;
		case R_KERNEL:
			sweep_writes(d, base, n, r, k);
			break;
		case R_WP_SYNC:
			row_wp_sync(d, base, n, k, false);
			break;
		case R_WP_SPIN:
			row_wp_sync(d, base, n, k, true);
			break;
		case R_WP_ASYNC:
			row_wp_async(d, base, n, k);
			break;
		}
		munmap(base, d->size);
	}
}

static void check_scan(struct scan *s, uint64_t pages, uint64_t regions,
		       uint64_t want_pages, uint64_t want_regions,
		       const char *what)
{
	if (pages != want_pages || regions != want_regions)
		die("scan %s: %" PRIu64 " pages in %" PRIu64
		    " regions, want %" PRIu64 " in %" PRIu64,
		    what, pages, regions, want_pages, want_regions);
	s->pages = pages;
	s->regions = regions;
}

static void scans(struct dt *d, unsigned int k)
{
	size_t n = d->scan_size / PAGE, nvec = n / SPARSE_EVERY + 64;
	struct page_region *vec = xmalloc(nvec * sizeof(*vec));
	char *base = anon_map("scan", d->scan_size);
	int fd = uffd_open(UFFD_FEATURE_WP_ASYNC), pm;
	uint64_t pages, regions;

	pm = upager_ll_pagemap_open();
	if (pm < 0)
		die("/proc/self/pagemap: %s", strerror(-pm));
	populate(base, d->scan_size);
	protect(fd, base, d->scan_size);
	for (int c = 0; c < S_N; c++) {
		struct scan *s = &d->scan[c];
		size_t step = c == S_SPARSE ? SPARSE_EVERY : 1;
		uint64_t want = c == S_CLEAN ? 0 : n / step;

		if (c != S_CLEAN)
			for (size_t i = 0; i < n; i += step)
				*(volatile uint64_t *)(base + i * PAGE) = 2;
		for (int reset = 0; reset < 2; reset++) {
			s->ms[reset][k] = scan(pm, base, d->scan_size, vec,
					       nvec, reset, &pages, &regions);
			check_scan(s, pages, regions, want,
				   c == S_ALL ? 1 : want, scan_id[c]);
		}
		/* The reset scan left the range clean. */
		if ((pages = written_pages(pm, base, d->scan_size, vec, nvec)))
			die("scan %s: %" PRIu64 " pages still written after "
			    "the reset",
			    scan_id[c], pages);
	}
	close(pm);
	close(fd);
	munmap(base, d->scan_size);
	free(vec);
}

/* ---- the report
 * -------------------------------------------------------------- */

static double med(const double *v, const struct dt *d)
{
	return median(v, d->rounds);
}

static void report_json(const struct dt *d)
{
	double base = med(d->row[R_UNTRACKED].ns, d),
	       kern = med(d->row[R_KERNEL].ns, d);
	struct json j;

	bench_json_begin(&j, NAME);
	json_u64(&j, "size", d->size);
	json_u64(&j, "scan_size", d->scan_size);
	json_u64(&j, "rounds", d->rounds);
	json_f64(&j, "timer_ns", d->timer_ns);
	json_arr_open(&j, "rows");
	for (int id = 0; id < R_N; id++) {
		const struct row *r = &d->row[id];
		double ns = med(r->ns, d);

		json_obj_open(&j, NULL);
		json_str(&j, "id", row_id[id]);
		if (r->skipped) {
			json_str(&j, "skipped", r->skipped);
			json_obj_close(&j);
			continue;
		}
		json_f64(&j, "ns_per_page", ns);
		json_f64(&j, "p50_ns", med(r->p50, d));
		json_f64(&j, "p99_ns", med(r->p99, d));
		json_f64(&j, "vs_untracked", ns / base);
		json_f64(&j, "vs_kernel_fault", ns / kern);
		if (id == R_WP_SYNC || id == R_WP_SPIN || id == R_WP_ASYNC)
			json_f64(&j, "protect_ms_per_gib",
				 med(r->protect_ms_gib, d));
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_arr_open(&j, "scans");
	for (int c = 0; c < S_N; c++)
		for (int reset = 0; reset < 2; reset++) {
			const struct scan *s = &d->scan[c];
			double ms = med(s->ms[reset], d);

			json_obj_open(&j, NULL);
			json_str(&j, "id", scan_id[c]);
			json_bool(&j, "reset", reset);
			json_u64(&j, "pages", s->pages);
			json_u64(&j, "regions", s->regions);
			json_f64(&j, "ms", ms);
			json_f64(&j, "ms_per_gib",
				 ms * (double)GIB / (double)d->scan_size);
			json_obj_close(&j);
		}
	json_arr_close(&j);
	json_end(&j);
}

static void report_tables(const struct dt *d)
{
	double base = med(d->row[R_UNTRACKED].ns, d),
	       kern = med(d->row[R_KERNEL].ns, d);

	printf("first write to each 4 KiB page of %" PRIu64 " MiB (%" PRIu64
	       " pages), %u round(s), median shown;\n"
	       "every access timed (one clock read, %.0f ns, in every row)\n\n",
	       d->size >> 20, d->size / PAGE, d->rounds, d->timer_ns);
	printf("%-14s %9s %8s %8s %11s %11s %15s\n", "row", "ns/page", "p50 ns",
	       "p99 ns", "x untracked", "x kern fault", "protect ms/GiB");
	for (int id = 0; id < R_N; id++) {
		const struct row *r = &d->row[id];
		double ns = med(r->ns, d);

		if (r->skipped) {
			printf("%-14s skipped: %s\n", row_id[id], r->skipped);
			continue;
		}
		printf("%-14s %9.0f %8.0f %8.0f %11.1f %11.2f", row_id[id], ns,
		       med(r->p50, d), med(r->p99, d), ns / base, ns / kern);
		if (id == R_WP_SYNC || id == R_WP_SPIN || id == R_WP_ASYNC)
			printf(" %15.1f", med(r->protect_ms_gib, d));
		printf("\n");
	}
	printf("\nPAGEMAP_SCAN of %" PRIu64 " MiB registered WP_ASYNC, every "
	       "page present (reset: PM_SCAN_WP_MATCHING re-protects)\n\n",
	       d->scan_size >> 20);
	printf("%-8s %-6s %8s %8s %9s %9s\n", "written", "reset", "pages",
	       "regions", "ms", "ms/GiB");
	for (int c = 0; c < S_N; c++)
		for (int reset = 0; reset < 2; reset++) {
			const struct scan *s = &d->scan[c];
			double ms = med(s->ms[reset], d);

			printf("%-8s %-6s %8" PRIu64 " %8" PRIu64
			       " %9.2f %9.2f\n",
			       scan_id[c], reset ? "yes" : "no", s->pages,
			       s->regions, ms,
			       ms * (double)GIB / (double)d->scan_size);
		}
}

static void usage(void)
{
	printf("usage: " NAME " [--size SIZE] [--scan-size SIZE] [--rounds N] "
	       "[--quick] [--json]\n\n"
	       "What tracking written pages costs: the first write to a "
	       "present page without\ntracking, through a synchronous "
	       "write-protect fault, with WP_ASYNC, and through\nan upager "
	       "region with and without UPAGER_MAP_TRACK_WRITES; and "
	       "PAGEMAP_SCAN per GiB.\n\n"
	       "  --size SIZE       the first-write region (default 256M; "
	       "--quick 16M)\n"
	       "  --scan-size SIZE  the scanned region (default 1G; --quick "
	       "256M)\n"
	       "  --rounds N        rounds, the median shown (default 3; "
	       "--quick 1)\n"
	       "  --quick           a smoke run (CI)\n"
	       "  --json            one JSON object\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
	    {"size", required_argument, NULL, 's'},
	    {"scan-size", required_argument, NULL, 'S'},
	    {"rounds", required_argument, NULL, 'n'},
	    BENCH_OPTIONS};
	static struct dt d;
	uint64_t size = 0, scan_size = 0, rounds = 0, t0;
	int c;

	bench_set_name(NAME);
	while ((c = bench_getopt(NAME, argc, argv, lopts, &d.quick,
				 &d.json, usage)) != -1) {
		switch (c) {
		case 's':
			if (!cli_parse_u64(NAME, "--size", optarg, 1 << 20,
					   64 * GIB, true, &size))
				return 2;
			break;
		case 'S':
			if (!cli_parse_u64(NAME, "--scan-size", optarg, 1 << 20,
					   64 * GIB, true, &scan_size))
				return 2;
			break;
		case 'n':
			if (!cli_parse_u64(NAME, "--rounds", optarg, 1,
					   MAX_ROUNDS, false, &rounds))
				return 2;
			break;
		}
	}
	d.size = size ? size : d.quick ? 16 * MIB : 256 * MIB;
	d.scan_size = scan_size ? scan_size : d.quick ? 256 * MIB : GIB;
	d.rounds = rounds ? (unsigned int)rounds : d.quick ? 1 : 3;
	if (d.size % (SPARSE_EVERY * PAGE) ||
	    d.scan_size % (SPARSE_EVERY * PAGE))
		return cli_usage_error(NAME,
				       "sizes must be multiples of %zu KiB",
				       SPARSE_EVERY * PAGE >> 10);
	d.lat = xmalloc(d.size / PAGE * sizeof(*d.lat));
	t0 = clock_ns();
	for (int i = 0; i < 100000; i++)
		clock_ns();
	d.timer_ns = (double)(clock_ns() - t0) / 100000;
	for (unsigned int k = 0; k < d.rounds; k++) {
		if (!d.json)
			progress("round %u of %u", k + 1, d.rounds);
		first_writes(&d, k);
		scans(&d, k);
	}
	if (d.json)
		report_json(&d);
	else
		report_tables(&d);
	free(d.lat);
	return 0;
}

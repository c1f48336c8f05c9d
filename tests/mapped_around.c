// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Fault-around in mapped mode (a region over a file in memory, faults
 * resolved with UFFDIO_CONTINUE), over a memfd with holes: pages the
 * file never had, which CONTINUE cannot map (-EFAULT).
 *
 * The file, 64 pages in blocks of 16 (a 64 KiB fault-around block):
 * block 0 data but pages 5 and 6, block 1 all hole, block 2 data in
 * 32-39 and hole in 40-47, block 3 data.  A plain MAP_PRIVATE mmap of it
 * is the reference: the region must read what it reads, at every step.
 * - one fault maps its block (before the thread runs on, where the
 *   block has no hole): the data pages (one fault, pages_filled and
 *   ra_pages count them), never a hole; a
 *   page written into a hole of the file later reads the file's data,
 *   not zeros; MADV_DONTNEED of a page the fault-around mapped and the
 *   program then wrote reads the file again;
 * - the default block of a mapped region is 2 MiB (all of this file);
 *   over a 4 MiB file with a hole in it: a fault maps its aligned 64 KiB
 *   before the thread runs on, a worker the rest of its 2 MiB block
 *   but the hole, nothing of the other block, and the pages read the
 *   file's data;
 * - fill 64K, a unit half hole: its data, no SIGBUS, no error;
 * - upager_region_prefault() over the holes: 0, the data, zeros where
 *   the file has a hole;
 * - fault-around off (and read-ahead off): every first touch of a data
 *   page is a fault, told to on_touch once, and maps that page alone;
 *   fault-around off with read-ahead on, random order: the same;
 * - write tracking (UPAGER_MAP_TRACK_WRITES) does not map the file (it
 *   copies), and a write to a page its fault-around brought in is seen
 *   dirty.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG     4096
#define NPAGES 64
#define SEED   7000
#define SEED2  9000 /* what is written into a hole later */

#define PM_PRESENT (1ull << 63)

static bool hole(size_t i)
{
	return i == 5 || i == 6 || (i >= 16 && i < 32) || (i >= 40 && i < 48);
}

/* A memfd holding the layout above, and a store over it. */
static int make_file(struct upager_store **s, bool writable)
{
	char spec[64];
	int fd = memfd_create("upager-mapped-around", MFD_CLOEXEC), err;

	CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	for (size_t i = 0; i < NPAGES; i++) {
		char pg[PG];

		if (hole(i))
			continue;
		t_fill(pg, PG, SEED + i);
		CHECK(pwrite(fd, pg, PG, (off_t)(i * PG)) == PG, "pwrite");
	}
	CHECK(ftruncate(fd, NPAGES * PG) == 0, "ftruncate");
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d%s", fd,
		 writable ? ",writable" : "");
	*s = upager_store_open(spec, &err);
	CHECK(*s, "%s: %s", spec, strerror(-err));
	return fd;
}

static char *ref_map(int fd)
{
	char *m = mmap(NULL, NPAGES * PG, PROT_READ, MAP_PRIVATE, fd, 0);

	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	return m;
}

/* Page @i of the region reads what the file's own mapping reads. */
static void check_page(const char *p, const char *ref, size_t i,
		       const char *when)
{
	CHECK(!t_read_sigbus(p + i * PG), "%s: page %zu: SIGBUS", when, i);
	CHECK(!memcmp(p + i * PG, ref + i * PG, PG),
	      "%s: page %zu reads other than the file's mmap", when, i);
}

static bool mapped(const char *p, size_t i)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e;

	CHECK(pm >= 0, "pagemap: %s", strerror(errno));
	e = t_pagemap_entry(pm, p + i * PG);
	close(pm);
	return e & PM_PRESENT;
}

/*
 * After a fault in [lo, hi): its data pages are mapped, its holes not.
 * Past a hole the thread may run on before the rest is in (the CONTINUE
 * that stopped at the hole woke it), so those may take a moment.
 */
static void check_block(const char *p, size_t lo, size_t hi, size_t u)
{
	uint64_t end = t_now_ns() + 2000000000ull;

	for (size_t i = lo; i < hi; i++) {
		while (!hole(i) && !mapped(p, i) && t_now_ns() < end)
			t_sleep_ms(1);
		CHECK(mapped(p, i) == !hole(i),
		      "after the fault on page %zu, page %zu is %smapped", u, i,
		      hole(i) ? "" : "not ");
	}
}

static atomic_uint touches[NPAGES];

static void on_touch(void *arg, struct upager_region *r, size_t off)
{
	(void)arg;
	(void)r;
	atomic_fetch_add(&touches[off / PG], 1);
}

struct setup {
	struct t_errors errors;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	int fd;
	char *p, *ref;
};

static void up(struct setup *t, struct upager_map_params *mp)
{
	int err;

	for (size_t i = 0; i < NPAGES; i++)
		atomic_store(&touches[i], 0);
	memset(&t->errors, 0, sizeof(t->errors));
	t->fd = make_file(&t->s, mp->flags & UPAGER_MAP_TRACK_WRITES);
	t->ref = ref_map(t->fd);
	t->h = t_upager_handler(2, t_on_error, &t->errors);
	mp->size = sizeof(*mp);
	mp->on_touch = on_touch;
	t->p = upager_map(t->h, t->s, NPAGES * PG, mp, &t->r, &err);
	CHECK(t->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(t->h), 0);
}

/* Stop the workers (exact totals), then the stats. */
static void stats(struct setup *t, struct upager_stats *st)
{
	CHECK_RET(upager_handler_stop(t->h), 0);
	upager_region_stats(t->r, st);
}

/* No error was reported: a hole is no failed fetch. */
static void down(struct setup *t)
{
	CHECK_RET(upager_unmap(t->r), 0);
	CHECK(!atomic_load(&t->errors.calls),
	      "%u errors reported, the last "
	      "%s at offset %#llx",
	      atomic_load(&t->errors.calls),
	      strerror(-atomic_load(&t->errors.err)),
	      (unsigned long long)(atomic_load(&t->errors.addr) -
				   (uintptr_t)t->p));
	upager_handler_free(t->h);
	upager_store_close(t->s);
	munmap(t->ref, NPAGES * PG);
	close(t->fd);
}

static void around_holes(void)
{
	struct upager_map_params mp = {.fault_around = 64 << 10};
	struct upager_stats st;
	struct setup t;
	char pg[PG];

	up(&t, &mp);
	check_page(t.p, t.ref, 2, "block 0");
	check_block(t.p, 0, 16, 2);
	/* A hole filled in the file later: the region reads the file. */
	t_fill(pg, PG, SEED2 + 5);
	CHECK(pwrite(t.fd, pg, PG, 5 * PG) == PG, "pwrite");
	check_page(t.p, t.ref, 5, "a hole written since");
	CHECK(t_verify(t.p + 5 * PG, PG, SEED2 + 5), "page 5: not the data "
						     "written into the hole");
	check_page(t.p, t.ref, 6, "a hole");
	check_page(t.p, t.ref, 20, "a block of hole");
	check_page(t.p, t.ref, 33, "block 2");
	check_block(t.p, 32, 48, 33);
	/* No hole: all of the block is in when the thread runs on. */
	check_page(t.p, t.ref, 50, "block 3");
	for (size_t i = 48; i < 64; i++)
		CHECK(mapped(t.p, i),
		      "page %zu not mapped when the fault on "
		      "page 50 returned",
		      i);
	/* An around page written: the region's; dropped: the file's. */
	memset(t.p + 9 * PG, 'W', PG);
	CHECK(pread(t.fd, pg, PG, 9 * PG) == PG && t_verify(pg, PG, SEED + 9),
	      "a write to the region reached the file");
	CHECK(madvise(t.p + 9 * PG, PG, MADV_DONTNEED) == 0, "madvise");
	check_page(t.p, t.ref, 9, "an around page written and dropped");
	for (size_t i = 0; i < NPAGES; i++)
		check_page(t.p, t.ref, i, "all");
	stats(&t, &st);
	/*
	 * Faults: 2, 33 and 50 (first touches), 5 (a page the file got
	 * since) and 9 (dropped); the rest of the data was mapped around
	 * 2, 33 and 50.
	 */
	CHECK(st.faults == 5 && st.faults_minor == 5 && !st.bytes_fetched,
	      "%llu faults, %llu minor, %llu bytes fetched",
	      (unsigned long long)st.faults,
	      (unsigned long long)st.faults_minor,
	      (unsigned long long)st.bytes_fetched);
	CHECK(st.pages_filled == 14 + 8 + 16 + 1 + 1 &&
		  st.ra_pages == 13 + 7 + 15,
	      "pages filled %llu (want 40), by fault-around %llu (want 35)",
	      (unsigned long long)st.pages_filled,
	      (unsigned long long)st.ra_pages);
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(atomic_load(&touches[i]) ==
			  (i == 2 || i == 33 || i == 50),
		      "on_touch told %u times for page %zu",
		      atomic_load(&touches[i]), i);
	down(&t);
}

/* The default block of a mapped region: all of this file. */
static void default_block(void)
{
	struct upager_map_params mp = {0};
	struct upager_stats st;
	struct setup t;

	up(&t, &mp);
	check_page(t.p, t.ref, 50, "defaults");
	check_block(t.p, 0, NPAGES, 50);
	stats(&t, &st);
	CHECK(st.faults == 1 && st.pages_filled == 38 && st.ra_pages == 37,
	      "defaults: %llu faults, %llu pages filled, %llu by fault-around",
	      (unsigned long long)st.faults,
	      (unsigned long long)st.pages_filled,
	      (unsigned long long)st.ra_pages);
	down(&t);
}

/*
 * The default block over a 4 MiB file (two 2 MiB blocks; pages 300 and
 * 301 a hole): the fault on page 500 maps its aligned 64 KiB (496-511),
 * or its unit when that is larger (@fill), with it, the worker the rest
 * of block 0 (from its start: without the mapping with the fault,
 * 496-511 would come last), block 1 stays unmapped.
 */
static void block_2m(size_t fill)
{
	enum { N = 1024, BLOCK = 512 };
	int fd = memfd_create("upager-mapped-2m", MFD_CLOEXEC), err;
	struct upager_map_params mp = {.size = sizeof(mp), .fill = fill};
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	struct upager_stats st;
	struct t_errors errors = {0};
	uint64_t end;
	char pg[PG], spec[64], *p;
	size_t i;

	CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	for (i = 0; i < N; i++) {
		if (i == 300 || i == 301)
			continue;
		t_fill(pg, PG, SEED + i);
		CHECK(pwrite(fd, pg, PG, (off_t)(i * PG)) == PG, "pwrite");
	}
	CHECK(ftruncate(fd, N * PG) == 0, "ftruncate");
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d", fd);
	s = upager_store_open(spec, &err);
	CHECK(s, "%s: %s", spec, strerror(-err));
	/* One worker: it maps the rest after waking the thread, not before. */
	h = t_upager_handler(1, t_on_error, &errors);
	p = upager_map(h, s, N * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	CHECK(!t_read_sigbus(p + 500 * PG) &&
		  t_verify(p + 500 * PG, PG, SEED + 500),
	      "2M block: page 500 reads other than the file's data");
	for (i = 512 - (fill > 16 * PG ? fill / PG : 16); i < 512; i++)
		CHECK(mapped(p, i),
		      "2M block, fill %zu: page %zu not mapped when the fault "
		      "on page 500 returned",
		      fill, i);
	end = t_now_ns() + 5000000000ull;
	for (i = 0; i < BLOCK; i++)
		while (i != 300 && i != 301 && !mapped(p, i) &&
		       t_now_ns() < end)
			t_sleep_ms(1);
	for (i = 0; i < N; i++)
		CHECK(mapped(p, i) == (i < BLOCK && i != 300 && i != 301),
		      "2M block: page %zu is %smapped after the fault on page "
		      "500",
		      i, mapped(p, i) ? "" : "not ");
	CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(r, &st);
	/* Of the faulting unit's pages, none was mapped around it. */
	CHECK(st.faults == 1 && st.pages_filled == BLOCK - 2 &&
		  st.ra_pages == BLOCK - 2 - fill / PG,
	      "2M block, fill %zu: %llu faults, %llu pages filled, %llu by "
	      "fault-around",
	      fill, (unsigned long long)st.faults,
	      (unsigned long long)st.pages_filled,
	      (unsigned long long)st.ra_pages);
	CHECK_RET(upager_handler_start(h), 0);
	memset(pg, 0, PG);
	for (i = 0; i < N; i++) {
		bool in_hole = i == 300 || i == 301;

		CHECK(!t_read_sigbus(p + i * PG), "2M block: page %zu: SIGBUS",
		      i);
		CHECK(in_hole ? !memcmp(p + i * PG, pg, PG)
			      : t_verify(p + i * PG, PG, SEED + i),
		      "2M block: page %zu reads other than the file", i);
	}
	CHECK_RET(upager_unmap(r), 0);
	CHECK(!atomic_load(&errors.calls), "2M block: %u errors reported",
	      atomic_load(&errors.calls));
	upager_handler_free(h);
	upager_store_close(s);
	close(fd);
}

static void unit_half_hole(void)
{
	struct upager_map_params mp = {.fill = 64 << 10};
	struct setup t;

	up(&t, &mp);
	check_page(t.p, t.ref, 33, "fill 64K, unit 2");
	for (size_t i = 0; i < NPAGES; i++)
		check_page(t.p, t.ref, i, "fill 64K");
	down(&t);
}

static void prefault_holes(void)
{
	struct upager_map_params mp = {0};
	struct setup t;

	up(&t, &mp);
	CHECK_RET(upager_region_prefault(t.r, 0, NPAGES * PG), 0);
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(mapped(t.p, i) == !hole(i),
		      "prefaulted: page %zu is %smapped", i,
		      hole(i) ? "" : "not ");
	for (size_t i = 0; i < NPAGES; i++)
		check_page(t.p, t.ref, i, "prefaulted");
	down(&t);
}

/* Data pages in an order where no touch continues a stream. */
static size_t order(size_t *o)
{
	size_t n = 0;

	for (size_t k = 0; k < NPAGES; k++) {
		size_t i = k * 7 % NPAGES;

		if (!hole(i))
			o[n++] = i;
	}
	return n;
}

static void around_off(size_t ra)
{
	struct upager_map_params mp = {.fault_around = (size_t)-1,
				       .readahead_max = ra};
	struct upager_stats st;
	struct setup t;
	size_t o[NPAGES], n = order(o);

	up(&t, &mp);
	for (size_t k = 0; k < n; k++) {
		check_page(t.p, t.ref, o[k], "fault-around off");
		for (size_t j = 0; j <= k; j++)
			CHECK(
			    atomic_load(&touches[o[j]]) == 1,
			    "ra %zu: page %zu told %u times after %zu touches",
			    ra, o[j], atomic_load(&touches[o[j]]), k + 1);
		for (size_t j = k + 1; j < n; j++)
			CHECK(!mapped(t.p, o[j]),
			      "ra %zu: page %zu mapped before its touch", ra,
			      o[j]);
	}
	stats(&t, &st);
	CHECK(st.faults == n && st.pages_filled == n && !st.ra_pages,
	      "ra %zu: %llu faults, %llu pages filled, %llu by fault-around "
	      "for %zu touches",
	      ra, (unsigned long long)st.faults,
	      (unsigned long long)st.pages_filled,
	      (unsigned long long)st.ra_pages, n);
	down(&t);
}

static void tracked(void)
{
	struct upager_map_params mp = {.flags = UPAGER_MAP_TRACK_WRITES};
	struct upager_stats st;
	struct setup t;
	uint64_t end = t_now_ns() + 5000000000ull;

	up(&t, &mp);
	check_page(t.p, t.ref, 2, "tracked");
	while (!upager_region_present(t.r, 9 * PG) && t_now_ns() < end)
		t_sleep_ms(1);
	CHECK(upager_region_present(t.r, 9 * PG),
	      "tracked: fault-around did not bring page 9 in");
	CHECK(!upager_region_dirty(t.r, 9 * PG), "page 9 dirty unwritten");
	t.p[9 * PG + 10] = 'W';
	CHECK(upager_region_dirty(t.r, 9 * PG),
	      "a write to a page fault-around brought in is not seen");
	CHECK(!upager_region_dirty(t.r, 10 * PG), "page 10 dirty unwritten");
	stats(&t, &st);
	CHECK(st.bytes_fetched > 0, "a tracked region mapped the file");
	CHECK(st.faults_wp == 1, "%llu write-protect faults",
	      (unsigned long long)st.faults_wp);
	down(&t);
}

int main(void)
{
	around_holes();
	default_block();
	block_2m(PG);
	block_2m(128 << 10);
	unit_half_hole();
	prefault_holes();
	around_off((size_t)-1);
	around_off(0);
	tracked();
	return 0;
}

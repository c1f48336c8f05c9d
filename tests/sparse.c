// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Regions larger than the machine's memory (issue 8, defect 5): a region
 * reserves address space, not memory, and costs memory in proportion to
 * what is touched.  Before the fix the region's mapping was made without
 * MAP_NORESERVE, so on this 24 GiB machine (heuristic overcommit) a
 * 64 GiB map over `zero` failed with -ENOMEM.
 *
 * zero64    64 GiB over `zero` (unbounded), 4 KiB units: maps, and pages
 *           read at eight places spread over it are zeros.
 * file1t    1 TiB over a sparse 1 TiB file (a temporary file cut to
 *           1 TiB, eight patterned 4 KiB pages written spread across it,
 *           the rest holes): maps with the default parameters; the eight
 *           pages read back their pattern and eight holes between them
 *           read as zeros.
 * zero1t    1 TiB over `zero` with 64 KiB units: pages spread over it
 *           are zeros.
 *
 * In each, the process's resident memory (VmRSS) may grow by RSS_MAX
 * at most from before the map to after the reads.  What the reads
 * need: sixteen fill units and their fault-around blocks (at most
 * 16 x 64 KiB, most of it holes installed as the zero page), the page
 * cache mapped for the eight data pages, the workers' staging buffers
 * (at most 1 MiB each, touched only for copies), a few pages of unit
 * state: well under 8 MiB.  Per-unit state built for the whole region
 * at map time would blow it: 1 TiB of 4 KiB units is 256 Mi units, so
 * even one bit each is 32 MiB.  Each part prints what it measured.
 *
 * argv[1] may name one part to run alone.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define GIB (1ull << 30)
#define TIB (1ull << 40)
#define NSPOTS 8
#define RSS_MAX_KIB (8 * 1024)

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	CHECK(f, "/proc/self/status: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	CHECK(kib >= 0, "no VmRSS in /proc/self/status");
	return kib;
}

static struct upager_handler *handler(void)
{
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);

	CHECK_RET(upager_handler_start(h), 0);
	return h;
}

static bool zeros(const char *p)
{
	for (size_t i = 0; i < PG; i++)
		if (p[i])
			return false;
	return true;
}

/* Page @k of NSPOTS spread over @npages, off the block boundaries. */
static uint64_t spot(uint64_t npages, unsigned int k)
{
	return k * (npages / NSPOTS) + 3 + 17 * k;
}

static void check_rss(const char *what, long before, unsigned int pages)
{
	long grown = rss_kib() - before;

	fprintf(stderr, "%s: %u pages read, VmRSS grew by %ld KiB\n", what,
		pages, grown);
	CHECK(grown <= RSS_MAX_KIB,
	      "%s: VmRSS grew by %ld KiB for %u pages read (at most %d)", what,
	      grown, pages, RSS_MAX_KIB);
}

/* @len bytes over `zero` with @fill units: map, read zeros spread over. */
static void over_zero(const char *what, uint64_t len, size_t fill)
{
	struct upager_map_params mp = { .size = sizeof(mp), .fill = fill };
	struct upager_handler *h = handler();
	struct upager_region *r;
	struct upager_store *s;
	long before;
	char *p;
	int err;

	s = upager_store_open("zero", &err);
	CHECK(s, "open zero: %s", strerror(-err));
	before = rss_kib();
	p = upager_map(h, s, len, &mp, &r, &err);
	CHECK(p, "%s: map of %llu GiB over zero: %s", what,
	      (unsigned long long)(len / GIB), strerror(-err));
	for (unsigned int k = 0; k < NSPOTS; k++) {
		uint64_t i = spot(len / PG, k);

		CHECK(zeros(p + i * PG), "%s: page %llu is not zeros", what,
		      (unsigned long long)i);
	}
	check_rss(what, before, NSPOTS);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

static void file1t(void)
{
	const uint64_t npages = TIB / PG;
	struct upager_handler *h = handler();
	struct upager_region *r;
	struct upager_store *s;
	char path[256], spec[300], page[PG];
	struct stat st;
	long before;
	int fd, err;
	char *p;

	fd = t_tmp_file(path, sizeof(path), 0, 0);
	if (ftruncate(fd, (off_t)TIB) < 0) {
		unlink(path);
		SKIP("%s cannot hold a 1 TiB file: %s", path, strerror(errno));
	}
	for (unsigned int k = 0; k < NSPOTS; k++) {
		uint64_t i = spot(npages, k);

		t_fill(page, PG, i);
		CHECK(pwrite(fd, page, PG, (off_t)(i * PG)) == PG,
		      "pwrite: %s", strerror(errno));
	}
	CHECK(fstat(fd, &st) == 0, "fstat: %s", strerror(errno));
	if (st.st_blocks * 512 > 64 * 1024 * 1024) {
		unlink(path);
		SKIP("%s does not keep files sparse", path);
	}
	snprintf(spec, sizeof(spec), "file:%s", path);
	s = upager_store_open(spec, &err);
	unlink(path);
	CHECK(s, "open %s: %s", spec, strerror(-err));
	before = rss_kib();
	p = upager_map(h, s, TIB, NULL, &r, &err);
	CHECK(p, "file1t: map of 1 TiB over a sparse 1 TiB file: %s",
	      strerror(-err));
	for (unsigned int k = 0; k < NSPOTS; k++) {
		uint64_t i = spot(npages, k), hole = i + npages / NSPOTS / 2;

		CHECK(t_verify(p + i * PG, PG, i), "file1t: page %llu (%s)",
		      (unsigned long long)i,
		      zeros(p + i * PG) ? "zeros" : "wrong data");
		CHECK(zeros(p + hole * PG), "file1t: hole at page %llu",
		      (unsigned long long)hole);
	}
	check_rss("file1t", before, 2 * NSPOTS);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	close(fd);
}

int main(int argc, char **argv)
{
	const char *part = argc > 1 ? argv[1] : NULL;

	t_deadline(60, "sparse did not finish in 60 s");
	if (!part || !strcmp(part, "zero64"))
		over_zero("zero64", 64 * GIB, 0);
	if (!part || !strcmp(part, "file1t"))
		file1t();
	if (!part || !strcmp(part, "zero1t"))
		over_zero("zero1t", TIB, 64 << 10);
	t_deadline(0, NULL);
	return 0;
}

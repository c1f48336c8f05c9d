// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Units of a write-tracked region (16 KiB units) the program unmaps in
 * part (munmap of one of their pages): what is left of them is still the
 * region's, and its writes must reach the store.
 *
 * clean  a clean unit (read, synced: write-protected) loses its last
 *        page; a write to its first page must go through (it hung: the
 *        write fault lifted the protection of the whole unit, which the
 *        kernel refused for the hole, and the write faulted again for
 *        ever), and a sync write it.
 * dirty  a dirty unit (every page written) loses a middle page; a sync
 *        must write the three pages left (it failed -ENOENT at every
 *        sync, and upager_unmap() refused to let the region go).
 * In both, the store's page under the hole keeps its data: a write-back
 * writes only what is still mapped.
 * snapshot  both units written again, and a whole one: a snapshot holds
 *        every page still mapped as the region has it, and leaves the
 *        destination's pages under the holes alone (it left the two
 *        units out whole: their pages stayed the destination's).
 * first  (before the others) a unit never read loses a middle page;
 *        the first access, a
 *        write, must go through (it faulted for ever: the fill met the
 *        hole, gave the unit back absent with its other pages in, write-
 *        protected, and the write fault took the unit for absent and
 *        filled it again), and a sync write it.
 * halves  a unit unmapped in two munmap()s, half at a time: it is gone
 *        as a unit unmapped at once is; a prefault of it and the units
 *        beside it installs those, and it does not count installed.
 * Then upager_unmap() succeeds.
 *
 * evict  a second region, a budget of 4 units over 16, FIFO: unit 0 read
 *        and its last page unmapped, unit 1 written whole and a middle
 *        page unmapped; the other units read in turn push both out.
 *        Their pages still mapped must leave memory (anon: they stayed,
 *        while the unit counted evicted), unit 1's written ones reach the
 *        store (not the page under its hole), and both units read the
 *        store again and take writes.  Under REMOVE_ZERO.
 * evict_readonly  the same, unit 0 only, the region made read-only
 *        (mprotect): the kernel moves no page out of a read-only mapping,
 *        and the evictors drop the unit with MADV_DONTNEED instead.  Over
 *        the hole it failed, after zapping the rest; the REMOVE events,
 *        not the range announced, were taken for the program's drops,
 *        and the unit read zeros.  Page 1 of the unit is a mapping of
 *        its own (PROT_EXEC): one drop of the unit's pages posts a
 *        REMOVE for each mapping.
 *
 * Runs on anon and shmem (argv[1]).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG     4096
#define FILL   (4 * PG)
#define NUNITS 16
#define CLEAN  5
#define DIRTY  9
#define FIRST  14
#define HALVES 11

/* Page @pg of the store still holds its data as pushed. */
static void check_kept(const char *img, size_t pg, const char *what)
{
	char want[PG];

	t_fill(want, PG, pg);
	CHECK(!memcmp(img + pg * PG, want, PG),
	      "%s: the store's page %zu under the hole was overwritten", what,
	      pg);
}

/* A mem store of the region's size, page i holding t_fill(i). */
static struct upager_store *store_new(char **img)
{
	struct upager_store *s;
	int err;

	s = upager_store_mem_new(NUNITS * FILL, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	*img = upager_store_mem_data(s);
	for (size_t i = 0; i < NUNITS * FILL / PG; i++)
		t_fill(*img + i * PG, PG, i);
	return s;
}

/* Pages [@pg, @pg + @n) of @p in memory: how many. */
static size_t in_core(char *p, size_t pg, size_t n)
{
	unsigned char vec[4];
	size_t k = 0;

	CHECK(n <= 4 && mincore(p + pg * PG, n * PG, vec) == 0,
	      "mincore: %s", strerror(errno));
	for (size_t i = 0; i < n; i++)
		k += vec[i] & 1;
	return k;
}

/* Units 0 and 1 evicted: their pages still mapped out of memory, unit 1
 * (unless @readonly) written back.  Until then, the program reads the
 * other units again, which keeps the region over its budget. */
static bool evicted(struct upager_region *r, char *p, const char *img,
		    bool readonly)
{
	bool out = in_core(p, 0, 3) == 0;

	if (!readonly)
		out = out && in_core(p, 4, 1) == 0 && in_core(p, 6, 2) == 0 &&
		      !upager_region_dirty(r, FILL) && img[4 * PG] == 'b' &&
		      img[7 * PG] == 'b';
	return out;
}

/*
 * Part evict (@readonly: evict_readonly).  Under REMOVE_ZERO, where a
 * page the program dropped reads zeros: an eviction's own drops must
 * not count as the program's.
 */
static void evict(enum upager_memtype type, bool readonly)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .fill = FILL,
				       .flags = UPAGER_MAP_TRACK_WRITES,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1,
				       .remove = UPAGER_REMOVE_ZERO,
				       .budget = 4 * FILL,
				       .high_water = 100,
				       .low_water = 50,
				       .evict = UPAGER_EVICT_FIFO};
	const char *part = readonly ? "evict_readonly" : "evict";
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s;
	struct upager_region *r;
	volatile char sum = 0;
	int err, ms;
	char *p, *img;

	s = store_new(&img);
	p = upager_map(h, s, NUNITS * FILL, &mp, &r, &err);
	CHECK(p, "%s: map: %s", part, strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	sum += p[0];
	CHECK_RET(munmap(p + 3 * PG, PG), 0);
	if (!readonly) {
		memset(p + FILL, 'b', FILL);
		CHECK_RET(munmap(p + FILL + PG, PG), 0);
	} else {
		CHECK_RET(mprotect(p, 3 * PG, PROT_READ), 0);
		/* Page 1 a mapping of its own: one drop, three REMOVEs. */
		CHECK_RET(mprotect(p + PG, PG, PROT_READ | PROT_EXEC), 0);
		CHECK_RET(mprotect(p + 4 * PG, (NUNITS * 4 - 4) * PG,
				   PROT_READ),
			  0);
	}
	for (ms = 0; ms < 5000 && !evicted(r, p, img, readonly); ms++) {
		sum += p[(2 + ms % (NUNITS - 2)) * FILL];
		t_sleep_ms(1);
	}
	CHECK(evicted(r, p, img, readonly),
	      "%s: after 5 s, units 0-1 still hold %zu pages in memory%s",
	      part, in_core(p, 0, 3) + (readonly ? 0 : in_core(p, 4, 1) +
						 in_core(p, 6, 2)),
	      readonly ? "" : ", or unit 1 is not written back");
	check_kept(img, 5, part);
	CHECK(t_verify(p, PG, 0) && t_verify(p + 2 * PG, PG, 2),
	      "%s: unit 0 reads %s, not the store's data", part,
	      p[0] || p[2 * PG] ? "other data" : "zeros");
	if (!readonly) {
		CHECK(p[FILL] == 'b' && p[FILL + 3 * PG] == 'b',
		      "evict: unit 1 does not read its written data again");
		CHECK(t_write_in_thread(p, &ms),
		      "evict: a write to unit 0 is still stuck after %d ms",
		      ms);
		CHECK(t_write_in_thread(p + FILL + 2 * PG, &ms),
		      "evict: a write to unit 1 is still stuck after %d ms",
		      ms);
		CHECK_RET(upager_region_sync(r, 0, NUNITS * FILL), 0);
		CHECK(img[0] == 'w' && img[6 * PG] == 'w',
		      "evict: the writes are not in the store");
	}
	check_kept(img, 3, part);
	printf("%s: ok\n", part);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .fill = FILL,
				       .flags = UPAGER_MAP_TRACK_WRITES,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s, *dst;
	struct upager_region *r;
	volatile char sum = 0;
	char *p, *img;
	int err, ms;

	t_deadline(60, "writes_unmapped_part");
	s = store_new(&img);
	p = upager_map(h, s, NUNITS * FILL, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("write tracking needs UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	/* first */
	CHECK_RET(munmap(p + FIRST * FILL + 2 * PG, PG), 0);
	CHECK(t_write_in_thread(p + FIRST * FILL, &ms),
	      "first: a first write to a unit unmapped in part is still "
	      "stuck after %d ms",
	      ms);
	CHECK(upager_region_dirty(r, FIRST * FILL), "first: not dirty");
	CHECK(p[FIRST * FILL + PG] == img[(FIRST * 4 + 1) * PG],
	      "first: page 1 does not read the store's data");
	CHECK_RET(upager_region_sync(r, 0, NUNITS * FILL), 0);
	CHECK(img[FIRST * FILL] == 'w', "first: the write is not in the store");
	check_kept(img, FIRST * 4 + 2, "first");
	printf("first: ok\n");

	/* halves */
	CHECK_RET(munmap(p + HALVES * FILL, 2 * PG), 0);
	CHECK_RET(munmap(p + HALVES * FILL + 2 * PG, 2 * PG), 0);
	err = upager_region_prefault(r, (HALVES - 1) * FILL, 3 * FILL);
	CHECK(err == 0, "halves: prefault of units %d-%d: %s", HALVES - 1,
	      HALVES + 1, strerror(-err));
	CHECK(upager_region_present(r, (HALVES - 1) * FILL) &&
		  upager_region_present(r, (HALVES + 1) * FILL),
	      "halves: the units beside it are not installed");
	CHECK(!upager_region_present(r, HALVES * FILL),
	      "halves: a unit unmapped in two halves counts installed");
	printf("halves: ok\n");

	/* clean */
	sum += p[CLEAN * FILL];
	CHECK_RET(upager_region_sync(r, 0, NUNITS * FILL), 0);
	CHECK_RET(munmap(p + CLEAN * FILL + 3 * PG, PG), 0);
	CHECK(t_write_in_thread(p + CLEAN * FILL, &ms),
	      "clean: a write to a unit unmapped in part is still stuck "
	      "after %d ms",
	      ms);
	CHECK(upager_region_dirty(r, CLEAN * FILL), "clean: not dirty");
	CHECK_RET(upager_region_sync(r, 0, NUNITS * FILL), 0);
	CHECK(img[CLEAN * FILL] == 'w', "clean: the write is not in the store");
	check_kept(img, CLEAN * 4 + 3, "clean");
	printf("clean: ok\n");

	/* dirty */
	for (size_t i = 0; i < 4; i++)
		memset(p + DIRTY * FILL + i * PG, 'a' + (int)i, PG);
	CHECK_RET(munmap(p + DIRTY * FILL + PG, PG), 0);
	CHECK_RET(upager_region_sync(r, 0, NUNITS * FILL), 0);
	for (size_t i = 0; i < 4; i++) {
		const char *at = img + (DIRTY * 4 + i) * PG;

		if (i == 1)
			continue;
		CHECK(at[0] == 'a' + (int)i && at[PG - 1] == 'a' + (int)i,
		      "dirty: page %zu of the unit not written back", i);
	}
	check_kept(img, DIRTY * 4 + 1, "dirty");
	CHECK(!upager_region_dirty(r, DIRTY * FILL), "dirty: still dirty");
	printf("dirty: ok\n");

	/* snapshot */
	memset(p + CLEAN * FILL, 'x', 3 * PG);
	memset(p + DIRTY * FILL, 'y', PG);
	memset(p + DIRTY * FILL + 2 * PG, 'z', 2 * PG);
	memset(p + 12 * FILL, 'q', FILL);
	dst = upager_store_mem_new(NUNITS * FILL, &err);
	CHECK(dst, "mem store: %s", strerror(-err));
	memset(upager_store_mem_data(dst), 0xee, NUNITS * FILL);
	CHECK_RET(upager_region_snapshot(r, dst, 0, NULL), 0);
	for (size_t pg = 0; pg < NUNITS * FILL / PG; pg++) {
		const char *got = (char *)upager_store_mem_data(dst) + pg * PG;
		bool hole = pg == CLEAN * 4 + 3 || pg == DIRTY * 4 + 1 ||
			    pg == FIRST * 4 + 2 || pg / 4 == HALVES;

		if (hole)
			CHECK((unsigned char)got[0] == 0xee &&
				  (unsigned char)got[PG - 1] == 0xee,
			      "snapshot: page %zu under a hole written", pg);
		else
			CHECK(!memcmp(got, p + pg * PG, PG),
			      "snapshot: page %zu is not the region's", pg);
	}
	upager_store_close(dst);
	printf("snapshot: ok\n");


	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	evict(type, false);
	evict(type, true);
	return 0;
}

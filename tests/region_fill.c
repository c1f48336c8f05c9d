// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Regions on each memory type, filled from a mem store by a handler with
 * two workers: every byte of every page matches the store, for 4 KiB fill
 * units and larger ones, with read-ahead on and off, and with UFFDIO_MOVE
 * installs on anon; and from the zero store, whose pages anon maps with
 * ZEROPAGE (zero_pages counts every one).  Statistics add up, and an
 * upager_region_install() over present units installs nothing and counts
 * each unit as eexist.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <upager/upager.h>

#include "harness.h"

/* Page @i of a region over the mem store (its pattern) or zero store. */
static bool page_ok(const char *p, size_t i, bool zero)
{
	static const char zeros[4096];

	return zero ? !memcmp(p + i * 4096, zeros, 4096)
		    : t_verify(p + i * 4096, 4096, i);
}

static void run(enum upager_memtype type, size_t fill, size_t ra,
		unsigned int flags, size_t len, bool zero)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 2 };
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type,
					.fill = fill, .readahead_max = ra,
					.flags = flags };
	size_t units = len / (fill ? fill : 4096), pages = len / 4096;
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	struct upager_stats st;
	uint64_t eexist;
	char *img, *p;
	int err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	if (zero) {
		s = upager_store_open("zero", &err);
		CHECK(s, "zero store: %s", strerror(-err));
		img = NULL;
	} else {
		s = upager_store_mem_new(len, &err);
		CHECK(s, "mem store: %s", strerror(-err));
		img = upager_store_mem_data(s);
		for (size_t i = 0; i < pages; i++)
			t_fill(img + i * 4096, 4096, i);
	}
	p = upager_map(h, s, len, &mp, &r, &err);
	if (!p && err == -ENOMEM && type == UPAGER_MEM_HUGETLB)
		SKIP("no hugetlb pages");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK_RET(upager_handler_start(h), -EALREADY);
	/* Touch in two passes: odd pages first, then all, so both random
	 * and sequential patterns meet the read-ahead. */
	for (size_t i = 1; i < pages; i += 7)
		CHECK(page_ok(p, i, zero), "page %zu", i);
	for (size_t i = 0; i < pages; i++)
		CHECK(page_ok(p, i, zero), "page %zu", i);
	/* Workers count a fill after it wakes the reader: join them first. */
	CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(r, &st);
	CHECK(st.pages_filled == pages, "filled %llu of %zu",
	      (unsigned long long)st.pages_filled, pages);
	CHECK(st.faults >= 1 && st.faults <= units,
	      "faults %llu", (unsigned long long)st.faults);
	if (ra == (size_t)-1)
		CHECK(st.ra_pages == 0, "read-ahead while off");
	else if (fill == 4096 && type == UPAGER_MEM_ANON)
		CHECK(st.ra_pages > 0, "no read-ahead on a sequential pass");
	CHECK(st.store_errors == 0, "store errors");
	CHECK(upager_stats_percentile(&st, 50) > 0, "latency histogram");
	/* anon maps the zero store's pages with ZEROPAGE: no copy. */
	if (zero && type == UPAGER_MEM_ANON)
		CHECK(st.zero_pages == pages, "%llu of %zu pages ZEROPAGEd",
		      (unsigned long long)st.zero_pages, pages);
	else if (!zero)
		CHECK(st.zero_pages == 0, "%llu pages of data ZEROPAGEd",
		      (unsigned long long)st.zero_pages);

	/* Installing over present units leaves them, and counts each. */
	eexist = st.eexist;
	CHECK_RET(upager_region_install(r, 0, zero ? NULL : img, len), 0);
	upager_region_stats(r, &st);
	CHECK(st.eexist == eexist + units && st.pages_filled == pages,
	      "install over %zu present units: eexist %llu -> %llu, "
	      "%llu pages filled", units, (unsigned long long)eexist,
	      (unsigned long long)st.eexist,
	      (unsigned long long)st.pages_filled);
	for (size_t i = 0; i < pages; i += 61)
		CHECK(page_ok(p, i, zero), "page %zu after the install", i);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype t = t_memtype(argc, argv);

	switch (t) {
	case UPAGER_LL_MEM_ANON:
		run(UPAGER_MEM_ANON, 4096, 0, 0, 8 << 20, false);
		run(UPAGER_MEM_ANON, 4096, (size_t)-1, 0, 1 << 20, false);
		run(UPAGER_MEM_ANON, 64 << 10, 0, 0, 8 << 20, false);
		run(UPAGER_MEM_ANON, 4096, 0, UPAGER_MAP_MOVE, 4 << 20, false);
		run(UPAGER_MEM_ANON, 4096, 0, 0, 4 << 20, true);
		break;
	case UPAGER_LL_MEM_SHMEM:
		run(UPAGER_MEM_SHMEM, 4096, 0, 0, 4 << 20, false);
		run(UPAGER_MEM_SHMEM, 16 << 10, (size_t)-1, 0, 4 << 20, false);
		run(UPAGER_MEM_SHMEM, 4096, 0, 0, 1 << 20, true);
		break;
	default: {
		struct t_mem m; /* reserves the pages, restored at exit */

		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, 4);
		t_mem_unmap(&m);
		run(UPAGER_MEM_HUGETLB, 2 << 20, 0, 0, 8 << 20, false);
		run(UPAGER_MEM_HUGETLB, 2 << 20, 0, 0, 4 << 20, true);
	}
	}
	return 0;
}

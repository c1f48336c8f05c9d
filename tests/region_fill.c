// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Regions on each memory type, filled from a mem store by a handler with
 * two workers: every byte of every page matches the store, for 4 KiB fill
 * units and larger ones, with read-ahead on and off, and with UFFDIO_MOVE
 * installs on anon.  Statistics add up.
 */
#include <sys/mman.h>
#include <unistd.h>

#include <upager/upager.h>

#include "harness.h"

static void run(enum upager_memtype type, size_t fill, size_t ra,
		unsigned int flags, size_t len)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 2 };
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type,
					.fill = fill, .readahead_max = ra,
					.flags = flags };
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	struct upager_stats st;
	char *img, *p;
	int err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	s = upager_store_mem_new(len, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(s);
	for (size_t i = 0; i < len / 4096; i++)
		t_fill(img + i * 4096, 4096, i);
	p = upager_map(h, s, len, &mp, &r, &err);
	if (!p && err == -ENOMEM && type == UPAGER_MEM_HUGETLB)
		SKIP("no hugetlb pages");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK_RET(upager_handler_start(h), -EALREADY);
	/* Touch in two passes: odd pages first, then all, so both random
	 * and sequential patterns meet the read-ahead. */
	for (size_t i = 1; i < len / 4096; i += 7)
		CHECK(t_verify(p + i * 4096, 4096, i), "page %zu", i);
	for (size_t i = 0; i < len / 4096; i++)
		CHECK(t_verify(p + i * 4096, 4096, i), "page %zu", i);
	/* Workers count a fill after it wakes the reader: join them first. */
	CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(r, &st);
	CHECK(st.pages_filled == len / 4096, "filled %llu of %zu",
	      (unsigned long long)st.pages_filled, len / 4096);
	CHECK(st.faults >= 1 && st.faults <= len / (fill ? fill : 4096),
	      "faults %llu", (unsigned long long)st.faults);
	if (ra == (size_t)-1)
		CHECK(st.ra_pages == 0, "read-ahead while off");
	else if (fill == 4096 && type == UPAGER_MEM_ANON)
		CHECK(st.ra_pages > 0, "no read-ahead on a sequential pass");
	CHECK(st.store_errors == 0, "store errors");
	CHECK(upager_stats_percentile(&st, 50) > 0, "latency histogram");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype t = t_memtype(argc, argv);

	switch (t) {
	case UPAGER_LL_MEM_ANON:
		run(UPAGER_MEM_ANON, 4096, 0, 0, 8 << 20);
		run(UPAGER_MEM_ANON, 4096, (size_t)-1, 0, 1 << 20);
		run(UPAGER_MEM_ANON, 64 << 10, 0, 0, 8 << 20);
		run(UPAGER_MEM_ANON, 4096, 0, UPAGER_MAP_MOVE, 4 << 20);
		break;
	case UPAGER_LL_MEM_SHMEM:
		run(UPAGER_MEM_SHMEM, 4096, 0, 0, 4 << 20);
		run(UPAGER_MEM_SHMEM, 16 << 10, (size_t)-1, 0, 4 << 20);
		break;
	default: {
		struct t_mem m; /* reserves the pages, restored at exit */

		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, 4);
		t_mem_unmap(&m);
		run(UPAGER_MEM_HUGETLB, 2 << 20, 0, 0, 8 << 20);
	}
	}
	return 0;
}

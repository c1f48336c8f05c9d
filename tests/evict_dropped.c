// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * REMOVE_ZERO and eviction: the program drops a unit (MADV_DONTNEED),
 * which then reads zeros by the region's policy; that clean unit of
 * zeros is evicted later; read again, it must still read zeros, never
 * the store's old data the program threw away.
 *
 * anon (shmem keeps its data through MADV_DONTNEED), with 4 KiB and
 * 16 KiB units (argv[2]: 4k or 16k, one of them).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG  4096
#define LEN (4u << 20)

static void one(enum upager_memtype type, size_t fill)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .fill = fill,
				       .budget = 64 * fill,
				       .remove = UPAGER_REMOVE_ZERO,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_stats st;
	struct upager_store *s;
	struct upager_region *r;
	volatile char sum = 0;
	char *p, *img;
	int err;

	s = upager_store_mem_new(LEN, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(s);
	for (size_t i = 0; i < LEN / PG; i++)
		t_fill(img + i * PG, PG, i + 1);
	p = upager_map(h, s, LEN, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("budgets need UFFD_FEATURE_MOVE and write protection");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(t_verify(p, PG, 1), "the store's data first");
	CHECK_RET(madvise(p, fill, MADV_DONTNEED), 0);
	CHECK(p[0] == 0 && p[fill - 1] == 0, "zeros after the drop");
	/* Everything else, twice the budget: unit 0 is evicted. */
	for (size_t off = fill; off < 128 * fill + fill; off += PG)
		sum += p[off];
	for (int i = 0; i < 2000 && upager_region_present(r, 0); i++)
		t_sleep_ms(1);
	CHECK(!upager_region_present(r, 0), "unit 0 was never evicted");
	upager_region_stats(r, &st);
	CHECK(p[0] == 0 && p[fill - 1] == 0,
	      "fill %zu KiB: the dropped unit, evicted, reads the store's "
	      "old data again (%#x) instead of zeros (%llu pages evicted)",
	      fill >> 10, (unsigned char)p[0],
	      (unsigned long long)st.pages_evicted);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);

	if (type != UPAGER_MEM_ANON)
		SKIP("anon only: shmem keeps its data through MADV_DONTNEED");
	if (argc < 3 || !strcmp(argv[2], "4k")) {
		one(type, PG);
		printf("4 KiB units: ok\n");
	}
	if (argc < 3 || !strcmp(argv[2], "16k")) {
		one(type, 4 * PG);
		printf("16 KiB units: ok\n");
	}
	return 0;
}

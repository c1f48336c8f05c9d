// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager.h: "UPAGER_SNAP_INCREMENTAL: only the units written since the
 * previous snapshot of the region began (the first one is whole)".  A
 * region's first snapshot, asked incremental, must copy every unit: the
 * destination then holds the whole region, written units and untouched
 * ones alike.
 *
 * Runs on anon and shmem (argv[1]).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG     4096
#define NUNITS 64

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .flags = UPAGER_MAP_TRACK_WRITES};
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_snapshot_info info = {.size = sizeof(info)};
	struct upager_store *s, *dst;
	struct upager_region *r;
	char *p, *img, *out;
	int err;

	s = upager_store_mem_new(NUNITS * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	dst = upager_store_mem_new(NUNITS * PG, &err);
	CHECK(dst, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(s);
	for (size_t i = 0; i < NUNITS; i++)
		t_fill(img + i * PG, PG, i);
	out = upager_store_mem_data(dst);
	memset(out, 0xee, NUNITS * PG);
	p = upager_map(h, s, NUNITS * PG, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("write tracking needs UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	memset(p + 5 * PG, 'w', PG);
	CHECK_RET(
	    upager_region_snapshot(r, dst, UPAGER_SNAP_INCREMENTAL, &info), 0);
	printf("first snapshot, incremental: %llu units of %d\n",
	       (unsigned long long)info.units, NUNITS);
	CHECK(out[5 * PG] == 'w', "the written unit is in it");
	CHECK(info.units == NUNITS && t_verify(out, PG, 0),
	      "the first snapshot is whole (upager.h), but it copied %llu "
	      "units of %d, and unit 0 (never written) is %s",
	      (unsigned long long)info.units, NUNITS,
	      t_verify(out, PG, 0) ? "there" : "missing");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_store_close(dst);
	return 0;
}

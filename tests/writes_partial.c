// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A clean unit (read, never written) of a write-tracked region with
 * 16 KiB units: the program drops one of its pages with MADV_DONTNEED,
 * then writes another page of it, one the drop did not touch (still
 * installed, still write-protected).  The write must go through, the
 * unit be dirty, and a sync write it to the store.
 *
 * Runs on anon and shmem (argv[1]).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG     4096
#define FILL   (4 * PG)
#define NUNITS 16
#define U      5

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
	struct upager_store *s;
	struct upager_region *r;
	volatile char sum = 0;
	char *p, *img;
	struct upager_stats st;
	int err, ms;
	bool done;

	s = upager_store_mem_new(NUNITS * FILL, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(s);
	for (size_t i = 0; i < NUNITS * FILL / PG; i++)
		t_fill(img + i * PG, PG, i);
	p = upager_map(h, s, NUNITS * FILL, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("write tracking needs UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	sum += p[U * FILL];
	CHECK_RET(madvise(p + U * FILL + 2 * PG, PG, MADV_DONTNEED), 0);
	done = t_write_in_thread(p + U * FILL, &ms);
	upager_region_stats(r, &st);
	CHECK(done,
	      "a write to a clean unit after a drop of another of its pages "
	      "is still stuck after %d ms (its write-protect fault finds the "
	      "unit REMOVED, is woken and faults again: %llu write faults)",
	      ms, (unsigned long long)st.faults_wp);
	CHECK(upager_region_dirty(r, U * FILL), "dirty after the write");
	CHECK_RET(upager_region_sync(r, 0, NUNITS * FILL), 0);
	CHECK(img[U * FILL] == 'w', "the write is in the store");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}

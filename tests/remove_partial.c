// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Under UPAGER_REMOVE_ZERO, only what was dropped reads zeros: the pages
 * of a unit that the application never dropped read the store's data,
 * also when the unit was never filled.
 *
 * A region over a mem store, 16 KiB fill units (four pages), read-ahead
 * and fault-around off, REMOVE policy ZERO.  One page of unit 1, never
 * read, is dropped (anon: MADV_DONTNEED; shmem: MADV_REMOVE); then every
 * page of units 0-3 is read: the dropped page zeros, as an untouched
 * page of anonymous memory reads after MADV_DONTNEED, the three others
 * of unit 1 the store's data.  The engine marks the whole unit REMOVED
 * and fills all of it by the policy: the three pages read zeros, data
 * the store has and the application never gave back.
 */
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define UNIT (4 * PG)
#define NPAGES 16
#define DROPPED 6 /* page 2 of unit 1 */

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.fill = UNIT,
					.remove = UPAGER_REMOVE_ZERO,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	static const char zeros[PG];
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_region *r;
	struct upager_store *s;
	unsigned int wrong = 0;
	int err;
	char *p;

	s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	p = upager_map(h, s, NPAGES * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(madvise(p + DROPPED * PG, PG,
		      type == UPAGER_MEM_SHMEM ? MADV_REMOVE : MADV_DONTNEED) ==
		      0,
	      "madvise: %s", strerror(errno));
	for (size_t i = 0; i < 4 * 4; i++) {
		const char *pg = p + i * PG;
		bool ok = i == DROPPED ? !memcmp(pg, zeros, PG)
				       : t_verify(pg, PG, i);

		if (ok)
			continue;
		fprintf(stderr, "FAIL page %zu (unit %zu) reads %s, want %s\n",
			i, i / 4,
			!memcmp(pg, zeros, PG) ? "zeros" : "other data",
			i == DROPPED ? "zeros (dropped)"
				     : "the store's data (never dropped)");
		wrong++;
	}
	CHECK(!wrong, "%u pages read wrong", wrong);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region with a budget that the program made read-only (mprotect
 * PROT_READ, as UMap's umap() does for a PROT_READ mapping) is still
 * evicted down to its budget: reading 64 units through a budget of 8
 * leaves at most 8 resident (mincore: upager_region_resident() does not
 * count units the evictors hold) once the evictors are done (10 s at
 * most), and every unit reads the store's data again afterwards.  anon
 * and shmem (argv[1]).  Fails on the engine of "engine: write tracking,
 * sync, budgets": UFFDIO_MOVE out of a read-only VMA into the evictors'
 * writable sink is EINVAL (the kernel moves only between VMAs of the
 * same access flags), the unit is requeued with no report, and the
 * evictors retry without end (some 10000 ioctls a second).
 */
#include <sys/mman.h>
#include <unistd.h>
#include <upager/upager.h>

#include "harness.h"

#define PG     4096
#define NUNITS 64
#define BUDGET 8

static size_t resident(const char *p)
{
	unsigned char vec[NUNITS];
	size_t n = 0;

	CHECK(!mincore((void *)p, NUNITS * PG, vec), "mincore");
	for (size_t i = 0; i < NUNITS; i++)
		n += vec[i] & 1;
	return n;
}

int main(int argc, char **argv)
{
	enum upager_memtype type = argc > 1 && !strcmp(argv[1], "shmem")
				       ? UPAGER_MEM_SHMEM
				       : UPAGER_MEM_ANON;
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .budget = BUDGET * PG,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	struct upager_stats st;
	char *p;
	int err = 0;

	h = upager_handler_new(NULL, &err);
	CHECK(h, "handler: %s", strerror(-err));
	s = upager_store_mem_new(NUNITS * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NUNITS; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	p = upager_map(h, s, NUNITS * PG, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("a budget on %s: %s", argv[1] ? argv[1] : "anon",
		     strerror(-err));
	CHECK(p, "upager_map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(!mprotect(p, NUNITS * PG, PROT_READ), "mprotect");
	for (size_t i = 0; i < NUNITS; i++)
		CHECK(t_verify(p + i * PG, PG, i), "unit %zu", i);
	for (int i = 0; i < 1000 && resident(p) > BUDGET; i++)
		usleep(10000);
	upager_region_stats(r, &st);
	CHECK(resident(p) <= BUDGET,
	      "%zu pages resident after 10 s, budget %u (%llu pages evicted)",
	      resident(p), BUDGET, (unsigned long long)st.pages_evicted);
	for (size_t i = 0; i < NUNITS; i++)
		CHECK(t_verify(p + i * PG, PG, i), "unit %zu again", i);
	CHECK_RET(upager_unmap(r), 0);
	upager_store_close(s);
	upager_handler_free(h);
	return t_end();
}

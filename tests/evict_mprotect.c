// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A budgeted region the program made read-only (mprotect(PROT_READ), as
 * a program that only reads its data set does) or locked (mlock()):
 * reading it all must keep it within its budget, as it does when it is
 * left read-write.  Eviction moves pages out with UFFDIO_MOVE, which
 * refuses (EINVAL) when the region's protection or VM_LOCKED differ from
 * the sink's; the engine must still bound the region's memory.
 *
 * Runs on anon and shmem (argv[1]; shmem units go with a punched hole).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG     4096
#define LEN    (8u << 20)
#define BUDGET (1u << 20)

/* Resident bytes after reading the whole region, made @how first. */
static size_t read_all(enum upager_memtype type, const char *how)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .budget = BUDGET,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s;
	struct upager_region *r;
	volatile char sum = 0;
	size_t res;
	char *p;
	int err;

	s = upager_store_mem_new(LEN, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	p = upager_map(h, s, LEN, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("budgets need UFFD_FEATURE_MOVE and write protection");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	if (!strcmp(how, "read-only"))
		CHECK_RET(mprotect(p, LEN, PROT_READ), 0);
	for (size_t off = 0; off < LEN; off += PG)
		sum += p[off];
	/* The evictors' low water mark is under the budget: a little time. */
	for (int i = 0; i < 2000 && upager_region_resident(r) > BUDGET; i++)
		t_sleep_ms(1);
	res = upager_region_resident(r);
	printf("%s: %zu KiB resident after reading %u KiB, budget %u KiB\n",
	       how, res >> 10, LEN >> 10, BUDGET >> 10);
	if (!strcmp(how, "read-only"))
		CHECK_RET(mprotect(p, LEN, PROT_READ | PROT_WRITE), 0);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	return res;
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	size_t rw = read_all(type, "read-write");
	size_t ro = read_all(type, "read-only");

	CHECK(rw <= BUDGET, "read-write: %zu KiB over the budget", rw >> 10);
	CHECK(ro <= BUDGET,
	      "read-only: %zu KiB resident, over the budget of %u KiB (the "
	      "read-write region, same run: %zu KiB)",
	      ro >> 10, BUDGET >> 10, rw >> 10);
	return 0;
}

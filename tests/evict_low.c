// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager.h: "above @high_water percent of it, the handler's evictor
 * threads evict units down to @low_water percent".  A region of 32
 * units of budget (high 90%: 28, low 70%: 22) read to 30 units is
 * brought down to about its low water mark, not emptied: what stays is
 * the hot set the policy keeps.
 *
 * Runs on anon and shmem (argv[1]).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG	     4096
#define BUDGET_UNITS 32

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .budget = BUDGET_UNITS * PG,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	size_t low = BUDGET_UNITS * 7 / 10, high = BUDGET_UNITS * 9 / 10;
	struct upager_store *s;
	struct upager_region *r;
	volatile char sum = 0;
	size_t res;
	char *p;
	int err;

	s = upager_store_mem_new(1 << 20, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	p = upager_map(h, s, 1 << 20, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("budgets need UFFD_FEATURE_MOVE and write protection");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	for (size_t u = 0; u < high + 2; u++)
		sum += p[u * PG];
	for (int ms = 0; ms < 5000 && upager_region_resident(r) > high * PG;
	     ms++)
		t_sleep_ms(1);
	t_sleep_ms(100); /* a batch under way ends */
	res = upager_region_resident(r) / PG;
	printf("read %zu units (high %zu, low %zu): %zu stay resident\n",
	       high + 2, high, low, res);
	CHECK(res <= high, "not evicted: %zu units", res);
	CHECK(res + 2 >= low,
	      "evicted down to %zu units, far under the low water mark (%zu):"
	      " pick() counts its victims as resident until they go, so a "
	      "batch takes every queued unit",
	      res, low);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}

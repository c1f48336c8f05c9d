// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A budgeted region that cannot go under its high water mark (all of its
 * budget pinned with upager_region_pin(), which the header allows) must
 * not take the evictors away from the handler's other regions, nor keep
 * a CPU busy.
 *
 * starve  region B, over its high water mark but within its budget (so
 *         no fill evicts on its own), is brought under its high water
 *         mark by the evictor while region A sits pinned over its high
 *         mark on the same handler.
 * spin    with only A there, the process idles: its CPU time over one
 *         second of wall time stays a small fraction (a ratio, both
 *         measured in the same run).
 *
 * Runs on anon and shmem (argv[1]); argv[2] may name one part.
 */
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096

static struct upager_region *map_budget(struct upager_handler *h,
					enum upager_memtype type,
					struct upager_store **s, size_t len,
					size_t budget)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .budget = budget,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct upager_region *r;
	int err;

	*s = upager_store_mem_new(len, &err);
	CHECK(*s, "mem store: %s", strerror(-err));
	if (!upager_map(h, *s, len, &mp, &r, &err)) {
		if (err == -EOPNOTSUPP)
			SKIP("budgets need UFFD_FEATURE_MOVE and write "
			     "protection");
		FAIL("map: %s", strerror(-err));
	}
	return r;
}

/* A: 8 units of budget, all pinned: 8 resident > high water (7). */
static struct upager_region *pinned_full(struct upager_handler *h,
					 enum upager_memtype type,
					 struct upager_store **s)
{
	struct upager_region *a = map_budget(h, type, s, 1 << 20, 8 * PG);

	CHECK_RET(upager_handler_start(h), 0);
	CHECK_RET(upager_region_pin(a, 0, 8 * PG), 0);
	CHECK(upager_region_resident(a) == 8 * PG, "pinned resident");
	return a;
}

static void starve(enum upager_memtype type)
{
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *sa, *sb;
	size_t blen = 4 << 20, budget = 1 << 20;
	/* B first: A, mapped after it, is the first the evictors look at. */
	struct upager_region *b = map_budget(h, type, &sb, blen, budget);
	struct upager_region *a = pinned_full(h, type, &sa);
	char *p = upager_region_addr(b);
	volatile char sum = 0;
	size_t high = budget / 10 * 9, low = budget / 10 * 7;

	/* 94% of the budget: over the high mark, under the budget. */
	for (size_t off = 0; off < budget / 100 * 94; off += PG)
		sum += p[off];
	int ms = 0;

	/*
	 * Eviction starts over the high mark and goes down to the low one
	 * then: reads after that bring B back up, below the high mark, so
	 * B ends anywhere under it (not necessarily at the low mark).
	 */
	for (; ms < 10000 && upager_region_resident(b) > high; ms++)
		t_sleep_ms(1);
	CHECK(upager_region_resident(b) <= high,
	      "region B still holds %zu KiB after %d ms, over its high water "
	      "mark (%zu KiB; low %zu KiB): the evictor serves only region A, "
	      "which it cannot bring down",
	      upager_region_resident(b) >> 10, ms, high >> 10, low >> 10);
	CHECK_RET(upager_unmap(a), 0);
	CHECK_RET(upager_unmap(b), 0);
	upager_handler_free(h);
	upager_store_close(sa);
	upager_store_close(sb);
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void spin(enum upager_memtype type)
{
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *sa;
	struct upager_region *a = pinned_full(h, type, &sa);
	uint64_t c0, t0, c1, t1;
	double ratio;

	t_sleep_ms(200); /* the evictor has seen A over its mark */
	c0 = cpu_ns();
	t0 = t_now_ns();
	t_sleep_ms(1000);
	c1 = cpu_ns();
	t1 = t_now_ns();
	ratio = (double)(c1 - c0) / (double)(t1 - t0);
	printf("spin: the idle process used %.2f CPU per wall second\n", ratio);
	CHECK(ratio < 0.3,
	      "an idle process with a pinned region used %.2f of a CPU: the "
	      "evictor loops on a region it cannot evict",
	      ratio);
	CHECK_RET(upager_unmap(a), 0);
	upager_handler_free(h);
	upager_store_close(sa);
}

int main(int argc, char **argv)
{
	static const struct t_part parts[] = {
		{ "starve", starve },
		{ "spin", spin },
		{ 0 },
	};

	return t_parts(argc, argv, parts);
}

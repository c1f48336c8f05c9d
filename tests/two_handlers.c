// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Two independent handlers in one process, each with its own uffd,
 * workers, regions and store (different patterns): four threads read
 * pages of both at random, and every page holds its own store's pattern.
 * Each handler's statistics count only its own regions' faults.  Freeing
 * one handler while the other serves faults from another thread leaves
 * the other alone: its faults go on being served, its counts go on, and
 * only the freed handler's memory is gone.
 */
#include <pthread.h>
#include <sys/mman.h>

#include <upager/upager.h>

#include "harness.h"

#define PG 4096
#define NAPP 4

struct side {
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r[2];
	char *p[2];
	size_t npages[2];
	uint64_t seed;
};

struct app {
	struct side *sides;
	size_t half; /* pages of side 1 region 0 the threads may touch */
	uint64_t rng;
	pthread_t t;
};

static void side_new(struct side *sd, uint64_t seed, size_t pages0,
		     size_t pages1, enum upager_memtype type1)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 2 };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	size_t n = pages0 > pages1 ? pages0 : pages1;
	char *img;
	int err;

	sd->seed = seed;
	sd->npages[0] = pages0;
	sd->npages[1] = pages1;
	sd->h = upager_handler_new(&hp, &err);
	CHECK(sd->h, "handler: %s", strerror(-err));
	sd->s = upager_store_mem_new(n * PG, &err);
	CHECK(sd->s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(sd->s);
	for (size_t i = 0; i < n; i++)
		t_fill(img + i * PG, PG, seed + i);
	for (int k = 0; k < 2; k++) {
		mp.memtype = k ? type1 : UPAGER_MEM_ANON;
		sd->p[k] = upager_map(sd->h, sd->s, sd->npages[k] * PG, &mp,
				      &sd->r[k], &err);
		CHECK(sd->p[k], "map: %s", strerror(-err));
	}
}

static void check_page(const struct side *sd, int k, size_t i)
{
	CHECK(t_verify(sd->p[k] + i * PG, PG, sd->seed + i),
	      "handler with seed %llu, region %d, page %zu",
	      (unsigned long long)sd->seed, k, i);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *app_main(void *arg)
{
	struct app *a = arg;

	for (int n = 0; n < 4000; n++) {
		uint64_t x = rnd(&a->rng);
		const struct side *sd = &a->sides[x & 1];
		int k = (x >> 1) & 1;
		size_t lim = (x & 1) && !k ? a->half : sd->npages[k];

		check_page(sd, k, (size_t)(x >> 8) % lim);
	}
	return NULL;
}

static uint64_t pages_filled(struct upager_handler *h)
{
	struct upager_stats st;

	upager_handler_stats(h, &st);
	CHECK(st.faults >= st.pages_filled && st.store_errors == 0,
	      "%llu faults for %llu pages", (unsigned long long)st.faults,
	      (unsigned long long)st.pages_filled);
	return st.pages_filled;
}

static void *second_half(void *arg)
{
	struct side *sd = arg;

	for (size_t i = sd->npages[0] / 2; i < sd->npages[0]; i++)
		check_page(sd, 0, i);
	return NULL;
}

int main(void)
{
	struct side sides[2];
	struct app apps[NAPP];
	pthread_t t;
	unsigned char v;
	uint64_t f0;

	side_new(&sides[0], 1000, 256, 128, UPAGER_MEM_SHMEM);
	side_new(&sides[1], 900000, 512, 64, UPAGER_MEM_ANON);
	CHECK(upager_handler_fd(sides[0].h) != upager_handler_fd(sides[1].h),
	      "one uffd for two handlers");
	CHECK_RET(upager_handler_start(sides[0].h), 0);
	CHECK_RET(upager_handler_start(sides[1].h), 0);

	for (int k = 0; k < NAPP; k++) {
		apps[k] = (struct app){ .sides = sides,
					.half = sides[1].npages[0] / 2,
					.rng = 77 + (uint64_t)k };
		CHECK(pthread_create(&apps[k].t, NULL, app_main, &apps[k]) == 0,
		      "pthread_create");
	}
	for (int k = 0; k < NAPP; k++)
		pthread_join(apps[k].t, NULL);
	/* Everything but the second half of handler 1's first region. */
	for (size_t i = 0; i < 256; i++)
		check_page(&sides[0], 0, i);
	for (size_t i = 0; i < 128; i++)
		check_page(&sides[0], 1, i);
	for (size_t i = 0; i < 256; i++)
		check_page(&sides[1], 0, i);
	for (size_t i = 0; i < 64; i++)
		check_page(&sides[1], 1, i);

	CHECK_RET(upager_handler_stop(sides[0].h), 0);
	CHECK_RET(upager_handler_stop(sides[1].h), 0);
	f0 = pages_filled(sides[0].h);
	CHECK(f0 == 256 + 128, "handler 0 filled %llu pages",
	      (unsigned long long)f0);
	CHECK(pages_filled(sides[1].h) == 256 + 64,
	      "handler 1 filled %llu pages",
	      (unsigned long long)pages_filled(sides[1].h));

	/* Free handler 0 while handler 1 serves the other half. */
	CHECK_RET(upager_handler_start(sides[0].h), 0);
	CHECK_RET(upager_handler_start(sides[1].h), 0);
	CHECK(pthread_create(&t, NULL, second_half, &sides[1]) == 0,
	      "pthread_create");
	upager_handler_free(sides[0].h);
	pthread_join(t, NULL);
	CHECK(mincore(sides[0].p[0], PG, &v) < 0 &&
		      mincore(sides[0].p[1], PG, &v) < 0,
	      "the freed handler's regions are still mapped");
	for (size_t i = 0; i < 512; i++)
		check_page(&sides[1], 0, i);
	CHECK_RET(upager_handler_stop(sides[1].h), 0);
	CHECK(pages_filled(sides[1].h) == 512 + 64,
	      "handler 1 filled %llu pages",
	      (unsigned long long)pages_filled(sides[1].h));
	CHECK_RET(upager_unmap(sides[1].r[0]), 0);
	CHECK_RET(upager_unmap(sides[1].r[1]), 0);
	upager_handler_free(sides[1].h);
	upager_store_close(sides[0].s);
	upager_store_close(sides[1].s);
	return 0;
}

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
 *
 * Nothing is reported through on_error: a worker that helps evict (the
 * faults outrun the evictors) cannot drop a read-only unit (only an
 * evictor thread may wait for its REMOVE), and leaves it to them; it
 * told "the drop of the unit's resident pages failed" (EINVAL) for
 * every such unit, 30 to 260 times a run.  So that the workers meet the
 * read-only units first, the handler's evictor waits meanwhile in the
 * write-back of a second region's dirty unit (over a wbstore held at
 * its gate) until the first has been read whole.
 *
 * Then the same with only the first 4 units read-only: the workers still
 * keep the region near its budget meanwhile (a batch of read-only units
 * refused lets one more unit in), moving out the units that can move.
 * A flag that stopped them helping a region once a unit of it would not
 * move, until an evictor moved one, left all 64 units resident; one
 * that stopped them for 10 ms, too (the 64 reads take less).
 */
#include <sys/mman.h>
#include <unistd.h>
#include <upager/upager.h>

#include "tstore.h"

#define PG     4096
#define NUNITS 64
#define BUDGET 8

static atomic_uint errors;

static void on_error(void *arg, struct upager_region *r, uint64_t addr,
		     int err, const char *what)
{
	(void)arg, (void)r;
	fprintf(stderr, "on_error at %#llx: %s: %s\n",
		(unsigned long long)addr, what, strerror(-err));
	atomic_fetch_add(&errors, 1);
}

static size_t resident(const char *p)
{
	unsigned char vec[NUNITS];
	size_t n = 0;

	CHECK(!mincore((void *)p, NUNITS * PG, vec), "mincore");
	for (size_t i = 0; i < NUNITS; i++)
		n += vec[i] & 1;
	return n;
}

/* @ro of the region's units (from the first) made read-only. */
static void one(enum upager_memtype type, size_t ro)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .budget = BUDGET * PG,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct upager_map_params wmp = {.size = sizeof(wmp),
					.memtype = UPAGER_MEM_ANON,
					.budget = 4 * PG,
					.high_water = 100,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1};
	struct upager_handler *h;
	struct upager_region *r, *wr;
	struct wbstore w;
	char *wp;
	struct upager_store *s;
	struct upager_stats st;
	char *p;
	int err = 0;

	h = t_upager_handler(0, on_error, NULL);
	s = upager_store_mem_new(NUNITS * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NUNITS; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	p = upager_map(h, s, NUNITS * PG, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("a budget on %s: %s",
		     type == UPAGER_MEM_SHMEM ? "shmem" : "anon",
		     strerror(-err));
	CHECK(p, "upager_map: %s", strerror(-err));
	wbstore_init(&w, 8);
	atomic_store(&w.hold, true);
	wp = upager_map(h, &w.s, 8 * PG, &wmp, &wr, &err);
	CHECK(wp, "upager_map (the evictor's holder): %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	/* 5 dirty units over a budget of 4: one goes back, at the gate. */
	for (size_t i = 0; i < 5; i++)
		wp[i * PG] = 1;
	t_wait_set(&w.held, "the evictor's write-back");
	CHECK(!mprotect(p, ro * PG, PROT_READ), "mprotect");
	for (size_t i = 0; i < NUNITS; i++)
		CHECK(t_verify(p + i * PG, PG, i), "unit %zu", i);
	if (ro < NUNITS)
		CHECK(resident(p) <= BUDGET + 4,
		      "%zu pages resident (%zu read-only), budget %u, the "
		      "evictor held", resident(p), ro, BUDGET);
	atomic_store(&w.release, true);
	for (int i = 0; i < 1000 && resident(p) > BUDGET; i++)
		usleep(10000);
	upager_region_stats(r, &st);
	CHECK(resident(p) <= BUDGET,
	      "%zu pages resident after 10 s, budget %u (%llu pages evicted)",
	      resident(p), BUDGET, (unsigned long long)st.pages_evicted);
	for (size_t i = 0; i < NUNITS; i++)
		CHECK(t_verify(p + i * PG, PG, i), "unit %zu again", i);
	CHECK_RET(upager_unmap(r), 0);
	CHECK_RET(upager_unmap(wr), 0);
	wbstore_free(&w);
	CHECK(!atomic_load(&errors), "%u errors reported",
	      atomic_load(&errors));
	upager_store_close(s);
	upager_handler_free(h);
	atomic_store(&errors, 0);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = argc > 1 && !strcmp(argv[1], "shmem")
				       ? UPAGER_MEM_SHMEM
				       : UPAGER_MEM_ANON;

	one(type, NUNITS);
	one(type, 4);
	return t_end();
}

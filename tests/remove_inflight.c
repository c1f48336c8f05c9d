// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The program drops a page (MADV_DONTNEED) while a fill of its unit is
 * in flight, under the ZERO policy: once madvise() returns, the page
 * reads zeros, never the store's data.
 *
 * The kernel zaps the page only after a worker has read the REMOVE
 * event, and a fill that fetches meanwhile installs after the zap: the
 * page would keep the store's data although the program dropped it.
 * Here every fetch sleeps 2 ms, so the order is always that one: a
 * reader thread faults on the unit, the fetch begins, the main thread
 * drops a page of the unit (the other worker reads the REMOVE) and
 * then reads it, waiting behind the fill.
 *
 * Parts, each over 64 units (8 on hugetlb), the dropped pages and their
 * neighbours checked:
 *   whole    4 KiB units: the drop covers the unit (RM_PENDING); on
 *            hugetlb 2 MiB units, dropped whole (the dropped bits);
 *   part     16 KiB units: page 1 of 4 dropped (the dropped bits), the
 *            other three read the store's data;
 *   tracked  the same with write tracking, where a unit dropped in part
 *            keeps its state;
 *   push     part, and after the drop the main thread pushes the unit
 *            with upager_region_install() (the caller's data, which
 *            goes into a unit another fill holds: the kernel lets one
 *            in): the dropped page still reads zeros.
 * anon runs them all, hugetlb whole and push (a huge page is dropped
 * whole), shmem none: its fills go through the page cache (not fixed).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define HUGE (2u << 20)
#define PUSH_SEED (1ull << 30)

struct part {
	const char *name;
	size_t fill;
	uint64_t flags;
	bool push;
	size_t nunits;
	size_t drop, ndrop; /* the pages of each unit dropped */
};

struct rig {
	struct upager_handler *h;
	struct tstore *t;
	struct upager_region *r;
	char *p;
	const struct part *pt;
	size_t unit; /* the unit the reader or pusher works on */
	char *pushed; /* push: the unit's data as the caller has it */
};

/* The reader: touch the unit, the fill begins. */
static void *toucher(void *arg)
{
	struct rig *g = arg;

	(void)*(volatile char *)(g->p + g->unit * g->pt->fill);
	return NULL;
}

static const char *what_is(const char *pg, uint64_t seed)
{
	if (t_verify(pg, PG, seed))
		return "the store's data";
	if (t_verify(pg, PG, PUSH_SEED + seed))
		return "the pushed data";
	for (size_t k = 0; k < PG; k++)
		if (pg[k])
			return "other data";
	return "zeros";
}

/* Do pages [i, i+n) of @at read zeros? */
static bool zeros_at(const char *at, size_t i, size_t n)
{
	static const char zeros[PG];

	for (size_t k = i; k < i + n; k++)
		if (memcmp(at + k * PG, zeros, PG))
			return false;
	return true;
}

static void run(enum upager_memtype type, const struct part *pt)
{
	size_t npages = pt->nunits * pt->fill / PG, per = pt->fill / PG;
	size_t drop = pt->drop, ndrop = pt->ndrop;
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.fill = pt->fill,
					.flags = pt->flags,
					.remove = UPAGER_REMOVE_ZERO,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	unsigned int racy = 0;
	struct rig g = { .pt = pt };
	int err;

	g.h = t_upager_handler(2, NULL, NULL);
	g.t = tstore_open(npages);
	g.t->delay_ms = 2;
	g.p = upager_map(g.h, &g.t->s, npages * PG, &mp, &g.r, &err);
	CHECK(g.p, "%s: map: %s", pt->name, strerror(-err));
	CHECK_RET(upager_handler_start(g.h), 0);
	if (pt->push) {
		g.pushed = malloc(pt->fill);
		CHECK(g.pushed, "malloc");
	}
	for (g.unit = 0; g.unit < pt->nunits; g.unit++) {
		size_t first = g.unit * per;
		char *at = g.p + g.unit * pt->fill;
		unsigned int busy0 = atomic_load(&g.t->fetches);
		pthread_t th;

		for (size_t i = 0; pt->push && i < per; i++)
			t_fill(g.pushed + i * PG, PG, PUSH_SEED + first + i);
		CHECK(pthread_create(&th, NULL, toucher, &g) == 0,
		      "pthread_create");
		/* Until the fill is under way. */
		while (atomic_load(&g.t->fetches) == busy0)
			sched_yield();
		racy += atomic_load(&g.t->busy) > 0;
		CHECK(madvise(at + drop * PG, ndrop * PG, MADV_DONTNEED) == 0,
		      "madvise: %s", strerror(errno));
		if (pt->push)
			CHECK(upager_region_install(g.r, g.unit * pt->fill,
						    g.pushed, pt->fill) >= 0,
			      "%s: unit %zu: install failed", pt->name, g.unit);
		/* The zeros went in, not into the caller's data. */
		for (size_t i = 0; pt->push && i < per; i++)
			CHECK(t_verify(g.pushed + i * PG, PG, PUSH_SEED + first + i),
			      "%s: unit %zu: install changed the caller's page %zu",
			      pt->name, g.unit, i);
		CHECK(zeros_at(at, drop, ndrop),
		      "%s: unit %zu: page %zu reads %s after the drop, want zeros",
		      pt->name, g.unit, drop, what_is(at + drop * PG, first + drop));
		CHECK(pthread_join(th, NULL) == 0, "pthread_join");
		for (size_t i = 0; i < per; i++) {
			const char *pg = at + i * PG;
			bool ok = i >= drop && i < drop + ndrop
					  ? zeros_at(at, i, 1)
					  : t_verify(pg, PG, first + i) ||
						    (pt->push &&
						     t_verify(pg, PG,
							      PUSH_SEED + first + i));

			CHECK(ok, "%s: unit %zu: page %zu reads %s at the end",
			      pt->name, g.unit, i, what_is(pg, first + i));
		}
	}
	/* The race is the subject: most drops must meet a fetch. */
	CHECK(racy >= pt->nunits / 2,
	      "%s: only %u of %zu drops met a fetch in flight", pt->name, racy,
	      pt->nunits);
	fprintf(stderr, "%s: %u of %zu drops met a fetch in flight\n", pt->name,
		racy, pt->nunits);
	CHECK_RET(upager_unmap(g.r), 0);
	upager_handler_free(g.h);
	upager_store_close(&g.t->s);
	free(g.pushed);
}

int main(int argc, char **argv)
{
	static const struct part anon[] = {
		{ "whole", PG, 0, false, 64, 0, 1 },
		{ "part", 4 * PG, 0, false, 64, 1, 1 },
		{ "tracked", 4 * PG, UPAGER_MAP_TRACK_WRITES, false, 64, 1, 1 },
		{ "push", 4 * PG, 0, true, 64, 1, 1 },
		{ NULL },
	};
	static const struct part huge[] = {
		{ "whole", HUGE, 0, false, 8, 0, HUGE / PG },
		{ "push", HUGE, 0, true, 8, 0, HUGE / PG },
		{ NULL },
	};
	enum upager_memtype type = t_upager_memtype(argc, argv, true);
	const struct part *pt = anon;

	if (type == UPAGER_MEM_SHMEM)
		SKIP("shmem: fills go through the page cache");
	if (type == UPAGER_MEM_HUGETLB) {
		struct t_mem m; /* reserves the pages, restored at exit */

		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, 8);
		t_mem_unmap(&m);
		pt = huge;
	}
	t_deadline(60, "remove_inflight did not finish in 60 s");
	for (; pt->name; pt++)
		run(type, pt);
	t_deadline(0, NULL);
	return t_end();
}

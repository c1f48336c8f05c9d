// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Prefetch lists: a region's units to fill in the background, in a given
 * order (a working set recorded on an earlier run).  Workers take a batch
 * at a time when no fault waits (handler.c serve_prefetch()); the list
 * only claims units that were never filled, so it never races a fault
 * for a unit (claims are CAS) and never brings back a page the program
 * dropped.
 *
 * A program that reads faster than the workers install catches up with
 * the list, and every page after that would be a fault.  So a fault on a
 * listed unit the list has not reached moves the list on to just past
 * it: the workers go on ahead of the program, not behind it.  What that
 * skipped is taken in a second pass, from the start of the list.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/engine.h"

/* Entries a worker takes at a time, and the most one install takes. */
#define BATCH	  8
#define RUN_BYTES (64u << 10)

/* Install claimed units [u, u+n) and count them. */
static void run_fill(struct upager_region *r, struct filler *f, size_t u,
		     size_t n)
{
	if (n)
		STAT_ADD(r->st, prefetch_pages, region_job(r, f, u, n));
}

bool prefetch_step(struct upager_region *r, struct filler *f)
{
	size_t n = r->pf_n, q = atomic_fetch_add(&r->pf_next, BATCH);
	size_t run_max = RUN_BYTES > r->fill ? RUN_BYTES / r->fill : 1;
	size_t start = 0, len = 0;

	if (q >= 2 * n)
		return false;
	if (f->cap < run_max * r->fill && filler_reserve(f, run_max * r->fill))
		return false; /* no memory for a staging buffer: faults only */
	for (size_t k = q; k < q + BATCH && k < 2 * n; k++) {
		size_t u = r->pf_units[k % n];

		if (!unit_claim(&r->state[u], UNIT_ABSENT))
			continue;
		if (len && u == start + len && len < run_max) {
			len++;
			continue;
		}
		run_fill(r, f, start, len);
		start = u;
		len = 1;
	}
	run_fill(r, f, start, len);
	return q + BATCH < 2 * n;
}

void prefetch_jump(struct upager_region *r, size_t u)
{
	uint32_t *pos = __atomic_load_n(&r->pf_pos, __ATOMIC_ACQUIRE);
	size_t p, cur;

	if (!pos || !pos[u])
		return;
	/* Only within the first pass: the second one goes over it all. */
	p = pos[u];
	cur = atomic_load(&r->pf_next);
	while (cur < p && !atomic_compare_exchange_weak(&r->pf_next, &cur, p))
		;
}

int upager_region_prefetch(struct upager_region *r, const uint64_t *offs,
			   size_t n)
{
	uint64_t *units;
	uint32_t *pos;
	size_t pos_len;

	if (r->flags & UPAGER_MAP_IN_THREAD)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (offs[i] % r->fill)
			return -EINVAL;
		if (offs[i] >= r->len)
			return -ERANGE;
	}
	if (n > UINT32_MAX - 1)
		return -E2BIG;
	if (__atomic_load_n(&r->pf_pos, __ATOMIC_ACQUIRE) || r->pf_units)
		return -EBUSY;
	if (!n)
		return 0;
	units = malloc(n * sizeof(*units));
	/* A position per unit, mapped as it is touched (a sparse list of a
	 * large region costs what it lists). */
	pos_len = (r->nunits * sizeof(*pos) + 4095) & ~(size_t)4095;
	pos = mmap(NULL, pos_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (!units || pos == MAP_FAILED) {
		free(units);
		if (pos != MAP_FAILED)
			munmap(pos, pos_len);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		size_t u = offs[i] / r->fill;

		units[i] = u;
		if (!pos[u])
			pos[u] = (uint32_t)(i + 1);
	}
	r->pf_units = units;
	r->pf_n = n;
	r->pf_pos_len = pos_len;
	__atomic_store_n(&r->pf_pos, pos, __ATOMIC_RELEASE);
	handler_prefetch(r->h, r);
	return 0;
}

void prefetch_free(struct upager_region *r)
{
	free(r->pf_units);
	if (r->pf_pos_len)
		munmap(r->pf_pos, r->pf_pos_len);
}

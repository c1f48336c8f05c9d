// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Working sets, the engine's side (anon regions of 4 KiB units over the
 * mem store, read-ahead and fault-around off, one worker):
 *
 * - on_touch: a reader touching a scattered quarter of the pages in a
 *   random order is told each page once, in that order; a page it drops
 *   and touches again is not told twice; in-thread regions refuse it;
 * - upager_region_prefetch() with that order: the workers install every
 *   listed page with nobody faulting, and nothing else; the reader then
 *   reads them all with no fault, right data;
 * - a page the program dropped (MADV_DONTNEED, REMOVE_ZERO: zeros) is
 *   not brought back by a list that names it: it still reads zeros;
 * - a fault on a listed page ahead of the list moves the list past it,
 *   and what that skipped is still installed (the second pass): every
 *   listed page ends present, each filled once;
 * - faults come first: with one worker busy on a long list over a store
 *   that takes 2 ms a fetch (flagged cheap, so no spare worker steps
 *   in), a fault on a page off the list is served while most of the
 *   list is still to come, not after it;
 * - the calls' errors: misaligned, out of range, a second list.
 */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include <upager/upager.h>

#include "tstore.h"

#define PG     4096
#define NPAGES 4096
#define NSET   (NPAGES / 4)

struct rec {
	atomic_size_t n;
	uint64_t off[NPAGES];
};

static void on_touch(void *arg, struct upager_region *r, size_t off)
{
	struct rec *rec = arg;
	size_t i = atomic_fetch_add(&rec->n, 1);

	(void)r;
	if (i < NPAGES)
		rec->off[i] = off;
}

struct env {
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	char *p;
};

static void env_open(struct env *e, struct rec *rec,
		     enum upager_remove_policy remove, bool start)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1,
				       .remove = remove,
				       .on_touch = rec ? on_touch : NULL,
				       .touch_arg = rec};
	struct upager_handler_params hp = {.size = sizeof(hp), .threads = 1};
	int err;

	e->h = upager_handler_new(&hp, &err);
	CHECK(e->h, "handler: %s", strerror(-err));
	e->s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(e->s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(e->s) + i * PG, PG, i);
	e->p = upager_map(e->h, e->s, NPAGES * PG, &mp, &e->r, &err);
	CHECK(e->p, "map: %s", strerror(-err));
	if (start)
		CHECK_RET(upager_handler_start(e->h), 0);
}

static void env_close(struct env *e)
{
	CHECK_RET(upager_unmap(e->r), 0);
	upager_handler_free(e->h);
	upager_store_close(e->s);
}

static struct upager_stats stats(struct env *e)
{
	struct upager_stats st;

	upager_region_stats(e->r, &st);
	return st;
}

/* Wait (up to 10 s) until @n pages were prefetched. */
static void wait_prefetched(struct env *e, uint64_t n)
{
	for (int ms = 0; stats(e).prefetch_pages < n; ms++) {
		CHECK(ms < 10000, "%llu of %llu pages prefetched in 10 s",
		      (unsigned long long)stats(e).prefetch_pages,
		      (unsigned long long)n);
		usleep(1000);
	}
}

/* A scattered quarter of the pages, in a random order. */
static void working_set(uint64_t *offs)
{
	static size_t perm[NPAGES];

	t_shuffle(perm, NPAGES, 1);
	for (size_t i = 0; i < NSET; i++)
		offs[i] = (uint64_t)perm[i] * PG;
}

static void record(struct rec *rec, const uint64_t *set)
{
	struct env e;

	env_open(&e, rec, UPAGER_REMOVE_REFETCH, true);
	for (size_t i = 0; i < NSET; i++)
		CHECK(t_verify(e.p + set[i], PG, set[i] / PG), "page %zu",
		      (size_t)(set[i] / PG));
	/* Dropped and touched again: filled again, but not a first touch. */
	CHECK(madvise(e.p + set[0], PG, MADV_DONTNEED) == 0, "madvise");
	CHECK(t_verify(e.p + set[0], PG, set[0] / PG), "page after drop");
	CHECK_RET(upager_handler_stop(e.h), 0);
	CHECK(atomic_load(&rec->n) == NSET, "%zu touches told, %d made",
	      atomic_load(&rec->n), NSET);
	for (size_t i = 0; i < NSET; i++)
		CHECK(rec->off[i] == set[i],
		      "touch %zu told at offset %#llx, made at %#llx", i,
		      (unsigned long long)rec->off[i],
		      (unsigned long long)set[i]);
	env_close(&e);
}

static void replay(const struct rec *rec)
{
	struct upager_stats st;
	struct env e;

	env_open(&e, NULL, UPAGER_REMOVE_REFETCH, true);
	CHECK_RET(upager_region_prefetch(e.r, rec->off, NSET), 0);
	wait_prefetched(&e, NSET);
	for (size_t i = 0; i < NPAGES; i++) {
		bool listed = false;

		for (size_t k = 0; k < NSET && !listed; k++)
			listed = rec->off[k] == i * PG;
		CHECK(upager_region_present(e.r, i * PG) == listed,
		      "page %zu: %s", i,
		      listed ? "listed, not installed"
			     : "installed, not listed");
	}
	for (size_t i = 0; i < NSET; i++)
		CHECK(t_verify(e.p + rec->off[i], PG, rec->off[i] / PG),
		      "prefetched page %zu", (size_t)(rec->off[i] / PG));
	CHECK_RET(upager_handler_stop(e.h), 0);
	st = stats(&e);
	CHECK(st.faults == 0 && st.prefetch_pages == NSET &&
		  st.pages_filled == NSET,
	      "replay: %llu faults, %llu prefetched, %llu filled",
	      (unsigned long long)st.faults,
	      (unsigned long long)st.prefetch_pages,
	      (unsigned long long)st.pages_filled);
	env_close(&e);
}

/* A page given back is not brought back (REMOVE_ZERO: it reads zeros). */
static void dropped(const struct rec *rec)
{
	char *page;
	struct env e;

	env_open(&e, NULL, UPAGER_REMOVE_ZERO, true);
	page = e.p + rec->off[3];
	CHECK(t_verify(page, PG, rec->off[3] / PG), "before the drop");
	CHECK(madvise(page, PG, MADV_DONTNEED) == 0, "madvise");
	CHECK_RET(upager_region_prefetch(e.r, rec->off, NSET), 0);
	wait_prefetched(&e, NSET - 1);
	usleep(20000);
	for (size_t i = 0; i < PG; i++)
		CHECK(!page[i], "a dropped page came back from the store");
	CHECK(stats(&e).prefetch_pages == NSET - 1, "%llu prefetched",
	      (unsigned long long)stats(&e).prefetch_pages);
	env_close(&e);
}

static size_t reader_page;

static void *reader(void *arg)
{
	return (void *)(uintptr_t)t_verify(arg, PG, reader_page);
}

/*
 * The worker's first read finds a fault at list position NSET / 2: the
 * list goes on from there, then takes the first half in its second pass.
 */
static void jump(const struct rec *rec)
{
	size_t mid = NSET / 2;
	struct pollfd pfd;
	struct upager_stats st;
	pthread_t t;
	void *ok;
	struct env e;

	env_open(&e, NULL, UPAGER_REMOVE_REFETCH, false);
	pfd = (struct pollfd){ .fd = upager_handler_fd(e.h), .events = POLLIN };
	reader_page = rec->off[mid] / PG;
	CHECK(pthread_create(&t, NULL, reader, e.p + rec->off[mid]) == 0,
	      "pthread_create");
	/* The reader's fault is queued before any worker runs. */
	CHECK(poll(&pfd, 1, 10000) == 1, "the reader never faulted");
	CHECK_RET(upager_region_prefetch(e.r, rec->off, NSET), 0);
	CHECK_RET(upager_handler_start(e.h), 0);
	pthread_join(t, &ok);
	CHECK(ok, "the reader's page");
	wait_prefetched(&e, NSET - 1);
	for (size_t i = 0; i < NSET; i++)
		CHECK(upager_region_present(e.r, rec->off[i]),
		      "listed page %zu (position %zu) never installed",
		      (size_t)(rec->off[i] / PG), i);
	CHECK_RET(upager_handler_stop(e.h), 0);
	st = stats(&e);
	CHECK(st.pages_filled == NSET && st.prefetch_pages == NSET - 1,
	      "%llu filled, %llu prefetched",
	      (unsigned long long)st.pages_filled,
	      (unsigned long long)st.prefetch_pages);
	env_close(&e);
}

static void faults_first(void)
{
	struct upager_handler_params hp = {.size = sizeof(hp), .threads = 1};
	struct upager_map_params mp = {.size = sizeof(mp),
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};
	struct tstore *t = tstore_open(NPAGES);
	uint64_t offs[512], before, after;
	struct env e = {0};
	int err;

	t->delay_ms = 2;
	t->s.flags |= UPAGER_STORE_CHEAP;
	e.h = upager_handler_new(&hp, &err);
	CHECK(e.h, "handler: %s", strerror(-err));
	e.p = upager_map(e.h, &t->s, NPAGES * PG, &mp, &e.r, &err);
	CHECK(e.p, "map: %s", strerror(-err));
	for (size_t i = 0; i < 512; i++)
		offs[i] = (i * 2 + 2) * PG; /* one fetch each */
	CHECK_RET(upager_handler_start(e.h), 0);
	CHECK_RET(upager_region_prefetch(e.r, offs, 512), 0);
	wait_prefetched(&e, 1);
	before = stats(&e).prefetch_pages;
	CHECK(t_verify(e.p + PG, PG, t->seed + 1), "the page off the list");
	after = stats(&e).prefetch_pages;
	CHECK(after < 256,
	      "a fault waited for the prefetch list: %llu of 512 pages "
	      "prefetched when it began, %llu when it was served",
	      (unsigned long long)before, (unsigned long long)after);
	/* Unmapped in the middle of its list: the list goes with it. */
	CHECK_RET(upager_unmap(e.r), 0);
	upager_handler_free(e.h);
	upager_store_close(&t->s);
}

static void errors(void)
{
	uint64_t bad = 1, past = NPAGES * PG, ok = 0;
	struct upager_map_params mp = {.size = sizeof(mp),
				       .flags = UPAGER_MAP_IN_THREAD,
				       .on_touch = on_touch};
	struct upager_region *r;
	struct env e;
	int err;

	env_open(&e, NULL, UPAGER_REMOVE_REFETCH, false);
	CHECK_RET(upager_region_prefetch(e.r, &bad, 1), -EINVAL);
	CHECK_RET(upager_region_prefetch(e.r, &past, 1), -ERANGE);
	CHECK_RET(upager_region_prefetch(e.r, &ok, 1), 0);
	CHECK_RET(upager_region_prefetch(e.r, &ok, 1), -EBUSY);
	CHECK(!upager_map(e.h, e.s, PG, &mp, &r, &err) && err == -EINVAL,
	      "an in-thread region with on_touch was not refused");
	mp.on_touch = NULL;
	CHECK(upager_map(e.h, e.s, PG, &mp, &r, &err), "in-thread: %s",
	      strerror(-err));
	CHECK_RET(upager_unmap(r), 0);
	env_close(&e);
}

int main(void)
{
	static struct rec rec;
	static uint64_t set[NSET];

	t_deadline(60, "prefetch did not finish in 60 s");
	working_set(set);
	record(&rec, set);
	replay(&rec);
	dropped(&rec);
	jump(&rec);
	faults_first();
	errors();
	t_deadline(0, NULL);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Every unit is fetched from the store once (issue 8, defect 3).
 *
 * A 4 MiB region over a file store (a patterned temporary file), 4 KiB
 * units, default read-ahead and fault-around, two workers; four reader
 * threads touch every page, either interleaved (thread k reads pages
 * k, k+4, ...: together a sequential stream that read-ahead follows,
 * each thread faulting on units that jobs are filling) or each all of
 * them in its own random order.  Faults thus race read-ahead and
 * fault-around jobs, and fault messages are read while the unit they
 * name is being installed.  After the readers are done and the handler
 * stopped (workers count after they wake), bytes_fetched must be exactly
 * 4 MiB and pages_filled 1024: a message for a unit that is present by
 * the time a worker reads it is spurious and must not fetch again (a
 * wasted round trip for a remote store).  Before the fix about 1 cycle
 * in 100 fetched one unit twice; the cycle runs up to 300 times (within
 * 5 s) so that shows.
 */
#include <pthread.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define LEN (4u << 20)
#define NPAGES (LEN / PG)
#define NAPP 4
#define CYCLES 300
#define BUDGET_NS 5000000000ull

struct app {
	const char *p;
	unsigned int k;
	bool random;
	uint64_t rng;
	pthread_barrier_t *go;
	pthread_t t;
};

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
	static __thread size_t order[NPAGES];
	size_t n = a->random ? NPAGES : NPAGES / NAPP;

	for (size_t i = 0; i < n; i++)
		order[i] = a->random ? i : i * NAPP + a->k;
	for (size_t i = n - 1; a->random && i > 0; i--) {
		size_t j = (size_t)(rnd(&a->rng) % (i + 1)), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	pthread_barrier_wait(a->go);
	for (size_t i = 0; i < n; i++)
		CHECK(t_verify(a->p + order[i] * PG, PG, order[i]),
		      "thread %u: page %zu", a->k, order[i]);
	return NULL;
}

static void cycle(struct upager_handler *h, struct upager_store *s,
		  enum upager_memtype type, unsigned int c)
{
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type };
	struct app apps[NAPP];
	struct upager_region *r;
	struct upager_stats st;
	pthread_barrier_t go;
	int err;
	char *p = upager_map(h, s, LEN, &mp, &r, &err);

	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	pthread_barrier_init(&go, NULL, NAPP);
	for (unsigned int k = 0; k < NAPP; k++) {
		apps[k] = (struct app){ .p = p, .k = k, .random = c & 1,
					.rng = (uint64_t)c * NAPP + k + 1,
					.go = &go };
		CHECK(pthread_create(&apps[k].t, NULL, app_main, &apps[k]) == 0,
		      "pthread_create");
	}
	for (unsigned int k = 0; k < NAPP; k++)
		pthread_join(apps[k].t, NULL);
	pthread_barrier_destroy(&go);
	CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(r, &st);
	CHECK(st.store_errors == 0, "cycle %u: %llu store errors", c,
	      (unsigned long long)st.store_errors);
	CHECK(st.bytes_fetched == LEN && st.pages_filled == NPAGES,
	      "cycle %u (%s order): %llu bytes fetched (%+lld pages), %llu "
	      "pages filled, for a region of %u pages; %llu faults, %llu "
	      "dup, %llu eexist",
	      c, c & 1 ? "random" : "interleaved",
	      (unsigned long long)st.bytes_fetched,
	      (long long)(st.bytes_fetched / PG) - (long long)NPAGES,
	      (unsigned long long)st.pages_filled, NPAGES,
	      (unsigned long long)st.faults,
	      (unsigned long long)st.faults_dup,
	      (unsigned long long)st.eexist);
	CHECK_RET(upager_unmap(r), 0);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_handler *h;
	struct upager_store *s;
	char path[256], spec[300];
	unsigned int c = 0;
	uint64_t t0;
	int fd, err;

	t_deadline(60, "fetch_once did not finish in 60 s");
	fd = t_tmp_file(path, sizeof(path), LEN, 0);
	snprintf(spec, sizeof(spec), "file:%s", path);
	s = upager_store_open(spec, &err);
	unlink(path);
	close(fd);
	CHECK(s, "open %s: %s", spec, strerror(-err));
	h = t_upager_handler(2, NULL, NULL);
	t0 = t_now_ns();
	do
		cycle(h, s, type, c++);
	while (c < CYCLES && t_now_ns() - t0 < BUDGET_NS);
	fprintf(stderr, "%u cycles of %u pages, each fetched once\n", c,
		NPAGES);
	upager_handler_free(h);
	upager_store_close(s);
	t_deadline(0, NULL);
	return 0;
}

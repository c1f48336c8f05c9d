// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Budgets and eviction: regions over a file four times their budget.
 *
 * stress  threads read and write random units (Zipf and uniform, half
 *         each) while the evictors keep the region under its budget;
 *         every read is checked against a model of what the unit holds
 *         (each thread owns the units u % NT == id, so the model needs
 *         no lock); after sync and unmap the file equals the model byte
 *         for byte, for 20 s (T_SECONDS sets it; a quarter of that with
 *         16 KiB units).  Also checks
 *         that eviction ran and that residency came back under the
 *         budget.
 * policy  a read-only Zipf (s = 0.99) stream over the same sized region,
 *         the same accesses for each policy, one after the other: the
 *         hit rate of UPAGER_EVICT_AUTO (2Q) beats FIFO's.
 * pin     upager_region_pin() keeps its range resident through eviction.
 * nowb    over a store without writeback (zero:): clean units are
 *         evicted, dirty ones stay resident past the budget with every
 *         write, and on_error says so once.
 *
 * Runs on anon and shmem (argv[1]); argv[2] may name one part.
 */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define NT 4

struct rig {
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	char *p;
	char path[64];
	size_t len, fill;
};

static void rig_map(struct rig *g, enum upager_memtype type, size_t len,
		    size_t fill, size_t budget, enum upager_evict_policy pol,
		    unsigned int high, const char *init)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.fill = fill,
					.budget = budget,
					.evict = pol,
					.high_water = high,
					.low_water = high ? high - 2 : 0,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	char spec[96];
	int fd, err;

	g->len = len;
	g->fill = fill;
	snprintf(g->path, sizeof(g->path), "/var/tmp/upager-evict-XXXXXX");
	fd = mkstemp(g->path);
	CHECK(fd >= 0, "mkstemp: %s", strerror(errno));
	CHECK(write(fd, init, len) == (ssize_t)len, "write the file");
	close(fd);
	snprintf(spec, sizeof(spec), "file:%s,writable", g->path);
	g->s = upager_store_open(spec, &err);
	CHECK(g->s, "%s: %s", spec, strerror(-err));
	g->h = t_upager_handler(2, NULL, NULL);
	g->p = upager_map(g->h, g->s, len, &mp, &g->r, &err);
	if (!g->p && err == -EOPNOTSUPP)
		SKIP("budgets need UFFD_FEATURE_MOVE and write protection");
	CHECK(g->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(g->h), 0);
}

static void rig_close(struct rig *g)
{
	upager_handler_free(g->h);
	upager_store_close(g->s);
	unlink(g->path);
}

/* Zipf ranks over @n units, spread over the region by a shuffle. */
struct zipf {
	double *cdf;
	size_t *unit;
	size_t n;
};

static void zipf_init(struct zipf *z, size_t n, double s, uint64_t seed)
{
	double sum = 0;

	z->n = n;
	z->cdf = malloc(n * sizeof(*z->cdf));
	z->unit = malloc(n * sizeof(*z->unit));
	CHECK(z->cdf && z->unit, "memory");
	for (size_t i = 0; i < n; i++)
		z->cdf[i] = (sum += 1.0 / pow((double)(i + 1), s));
	for (size_t i = 0; i < n; i++)
		z->cdf[i] /= sum;
	t_shuffle(z->unit, n, seed);
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static size_t zipf_next(const struct zipf *z, uint64_t *x)
{
	double v = (double)(rnd(x) >> 11) / (double)(1ull << 53);
	size_t lo = 0, hi = z->n - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (z->cdf[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return z->unit[lo];
}

struct worker {
	struct rig *g;
	char *model;
	const struct zipf *z;
	unsigned int id;
	atomic_bool *stop;
	unsigned long reads, writes;
};

static void *stress_loop(void *arg)
{
	struct worker *w = arg;
	struct rig *g = w->g;
	size_t nunits = g->len / g->fill;
	uint64_t x = 88172645463325252ull + w->id;
	char buf[PG];

	while (!atomic_load(w->stop)) {
		size_t u = (rnd(&x) & 1) ? zipf_next(w->z, &x)
					 : (size_t)(rnd(&x) % nunits);
		size_t off;

		u = u / NT * NT + w->id;
		if (u >= nunits)
			continue;
		off = u * g->fill + (size_t)(rnd(&x) % (g->fill / PG)) * PG;
		if (rnd(&x) % 3 == 0) {
			memset(buf, (int)(rnd(&x) & 0xff), PG);
			memcpy(buf, &x, sizeof(x));
			memcpy(g->p + off, buf, PG);
			memcpy(w->model + off, buf, PG);
			w->writes++;
		} else {
			memcpy(buf, g->p + off, PG);
			CHECK(!memcmp(buf, w->model + off, PG),
			      "thread %u: unit %zu (offset %zu) does not read "
			      "what was written there",
			      w->id, u, off);
			w->reads++;
		}
	}
	return NULL;
}

static void stress(enum upager_memtype type, size_t fill, unsigned int div)
{
	size_t len = 16 << 20, budget = 4 << 20;
	char *model = malloc(len), *back = malloc(len);
	const char *secs = getenv("T_SECONDS");
	uint64_t ns = (secs ? strtoull(secs, NULL, 10) : 20) * 1000000000ull /
		      div;
	struct zipf z;
	struct rig g;
	struct worker w[NT];
	pthread_t t[NT];
	atomic_bool stop = false;
	struct upager_stats st;
	unsigned long reads = 0, writes = 0;
	size_t peak = 0;
	int fd;

	CHECK(model && back, "memory");
	for (size_t i = 0; i < len / PG; i++)
		t_fill(model + i * PG, PG, i);
	rig_map(&g, type, len, fill, budget, UPAGER_EVICT_AUTO, 0, model);
	zipf_init(&z, len / fill, 0.99, 7);
	for (unsigned int i = 0; i < NT; i++) {
		w[i] = (struct worker){ &g, model, &z, i, &stop, 0, 0 };
		CHECK(!pthread_create(&t[i], NULL, stress_loop, &w[i]),
		      "thread");
	}
	for (uint64_t t0 = t_now_ns(); t_now_ns() - t0 < ns;) {
		size_t res = upager_region_resident(g.r);

		peak = res > peak ? res : peak;
		t_sleep_ms(50);
	}
	atomic_store(&stop, true);
	for (unsigned int i = 0; i < NT; i++) {
		pthread_join(t[i], NULL);
		reads += w[i].reads;
		writes += w[i].writes;
	}
	upager_region_stats(g.r, &st);
	CHECK(st.pages_evicted > 0, "nothing was evicted");
	CHECK(st.pages_written > 0, "nothing was written back");
	for (int i = 0; i < 2000 && upager_region_resident(g.r) > budget; i++)
		t_sleep_ms(1);
	CHECK(upager_region_resident(g.r) <= budget,
	      "resident %zu over the budget %zu once the load stopped",
	      upager_region_resident(g.r), budget);
	printf("stress %s fill %zu: %lu reads, %lu writes, %llu faults, "
	       "%llu pages evicted, %llu written back, peak resident %zu "
	       "KiB (budget %zu KiB)\n",
	       type == UPAGER_MEM_ANON ? "anon" : "shmem", fill, reads,
	       writes, (unsigned long long)st.faults_missing,
	       (unsigned long long)st.pages_evicted,
	       (unsigned long long)st.pages_written, peak >> 10,
	       budget >> 10);
	CHECK_RET(upager_unmap(g.r), 0);
	fd = open(g.path, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, back, len, 0) == (ssize_t)len, "read back");
	close(fd);
	for (size_t off = 0; off < len; off += PG)
		CHECK(!memcmp(back + off, model + off, PG),
		      "the file at %zu differs from the model after unmap",
		      off);
	rig_close(&g);
	free(model);
	free(back);
	free(z.cdf);
	free(z.unit);
}

/* One policy over a Zipf stream: its hit rate. */
static double hit_rate(enum upager_memtype type, enum upager_evict_policy pol,
		       const struct zipf *z, char *init, size_t n)
{
	size_t len = 16 << 20;
	struct rig g;
	struct upager_stats st;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	volatile char sink = 0;

	/*
	 * Water marks at 100 and 98 percent: the worker that fills a unit
	 * over the budget evicts first, so the region holds 98-100% of its
	 * budget at every access, whatever the evictor thread's timing, and
	 * the two policies meet the same stream with the same room.
	 */
	rig_map(&g, type, len, PG, 4 << 20, pol, 100, init);
	for (size_t i = 0; i < n; i++)
		sink ^= g.p[zipf_next(z, &x) * PG];
	upager_region_stats(g.r, &st);
	CHECK_RET(upager_unmap(g.r), 0);
	rig_close(&g);
	return 1.0 - (double)st.faults_missing / (double)n;
}

static void stress_4k(enum upager_memtype type)
{
	stress(type, PG, 1);
}

static void stress_16k(enum upager_memtype type)
{
	stress(type, 16384, 4);
}

static void policy(enum upager_memtype type)
{
	size_t len = 16 << 20, n = 400000;
	char *init = malloc(len);
	struct zipf z;
	double two_q, fifo;

	CHECK(init, "memory");
	memset(init, 7, len);
	zipf_init(&z, len / PG, 0.99, 11);
	fifo = hit_rate(type, UPAGER_EVICT_FIFO, &z, init, n);
	two_q = hit_rate(type, UPAGER_EVICT_AUTO, &z, init, n);
	printf("policy %s: Zipf 0.99 over 4x the budget, %zu reads: hit rate "
	       "2Q %.3f, FIFO %.3f\n",
	       type == UPAGER_MEM_ANON ? "anon" : "shmem", n, two_q, fifo);
	CHECK(two_q > fifo + 0.02, "2Q (%.3f) does not beat FIFO (%.3f)",
	      two_q, fifo);
	free(init);
	free(z.cdf);
	free(z.unit);
}

static void pin(enum upager_memtype type)
{
	size_t len = 16 << 20;
	char *init = malloc(len);
	struct rig g;
	volatile char sink = 0;

	CHECK(init, "memory");
	memset(init, 3, len);
	rig_map(&g, type, len, PG, 4 << 20, UPAGER_EVICT_AUTO, 0, init);
	CHECK_RET(upager_region_pin(g.r, 0, 1 << 20), 0);
	for (size_t off = 1 << 20; off < len; off += PG)
		sink ^= g.p[off];
	for (int i = 0; i < 2000 && upager_region_resident(g.r) > (4 << 20);
	     i++)
		t_sleep_ms(1);
	for (size_t off = 0; off < (1 << 20); off += PG)
		CHECK(upager_region_present(g.r, off),
		      "pinned unit at %zu was evicted", off);
	CHECK_RET(upager_unmap(g.r), 0);
	rig_close(&g);
	free(init);
}

static void nowb(enum upager_memtype type)
{
	struct t_errors errs = { 0 };
	struct upager_handler *h = t_upager_handler(2, t_on_error, &errs);
	struct upager_store *s = upager_store_open("zero:16M", NULL);
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.budget = 4 << 20,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct upager_stats st;
	struct upager_region *r;
	volatile char sink = 0;
	char *p;
	int err;

	CHECK(s, "zero store");
	p = upager_map(h, s, 16 << 20, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	for (size_t off = 0; off < (8 << 20); off += PG)
		sink ^= p[off]; /* clean: these may go */
	for (size_t off = 8 << 20; off < (16 << 20); off += PG)
		p[off] = (char)(off / PG | 1); /* dirty: these must stay */
	for (size_t off = 8 << 20; off < (16 << 20); off += PG)
		CHECK(p[off] == (char)(off / PG | 1), "a write at %zu lost", off);
	upager_region_stats(r, &st);
	CHECK(st.pages_evicted > 0, "clean units were evicted");
	CHECK(upager_region_resident(r) >= (8 << 20),
	      "the dirty units stayed: %zu resident",
	      upager_region_resident(r));
	CHECK(atomic_load(&errs.calls) >= 1 &&
		      atomic_load(&errs.err) == -EOPNOTSUPP,
	      "told once that the store has no writeback (%u calls)",
	      atomic_load(&errs.calls));
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	static const struct t_part parts[] = {
		{ "stress", stress_4k },
		{ "stress16k", stress_16k },
		{ "policy", policy },
		{ "pin", pin },
		{ "nowb", nowb },
		{ 0 },
	};

	return t_parts(argc, argv, parts);
}

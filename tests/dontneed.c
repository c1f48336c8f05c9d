// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * MADV_DONTNEED on a region, and the read that follows it (issue 8,
 * defect 2).  A region over a mem store (page i holds the pattern
 * t_fill(i)), 4 KiB units, no read-ahead or fault-around, so that every
 * fault is one unit and one fetch; two workers, so that the fault after
 * a DONTNEED can be read by the worker that did not fill the page.
 *
 * repro   read a page, DONTNEED it, read it again at once, thousands of
 *         times over the pages (for up to 2 s).  The read after the DONTNEED faults
 *         while the worker that filled the page may not yet have marked
 *         it present; a fault dropped then as a duplicate is never woken
 *         and the read blocks forever (about 1 in 100 before the fix).
 *         No read may take more than 5 s.
 * stress  ~8 s: four threads, each owning a disjoint slice of the pages,
 *         read a random page of theirs, maybe DONTNEED it, maybe read it
 *         again at once.  Every read holds the store's data (nobody
 *         writes: the refetch of anon and the page cache shmem keeps
 *         both give that), none blocks, and bytes_fetched is what the
 *         default REMOVE policy implies, counted by the threads: anon
 *         (private memory: DONTNEED drops the data, the next access reads
 *         the store again, as with a MAP_PRIVATE file mapping) one page
 *         for every read of a page never read or dropped since its last
 *         read; shmem (MAP_SHARED: DONTNEED drops the mapping, the page
 *         cache keeps the data) one page for each distinct page read.
 * shared  ~2 s: the same with every thread on every page, so a DONTNEED
 *         races other threads' reads and faults: every read holds the
 *         store's data and none blocks (no exact count: a read that
 *         races a DONTNEED may or may not fault again).
 *
 * argv[2] may name one part to run alone.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 1024
#define NAPP 4
#define BLOCK_MS 5000
#define REPRO_ROUNDS 8
#define REPRO_NS 2000000000ull

struct rig {
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	char *p;
	const char *type;
	bool anon;
};

static void rig_map(struct rig *g, enum upager_memtype type)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	int err;

	g->anon = type == UPAGER_MEM_ANON;
	g->type = g->anon ? "anon" : "shmem";
	g->h = t_upager_handler(2, NULL, NULL);
	g->s = upager_store_mem_new((uint64_t)NPAGES * PG, &err);
	CHECK(g->s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(g->s) + i * PG, PG, i);
	g->p = upager_map(g->h, g->s, (size_t)NPAGES * PG, &mp, &g->r, &err);
	CHECK(g->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(g->h), 0);
}

static void rig_unmap(struct rig *g)
{
	CHECK_RET(upager_unmap(g->r), 0);
	upager_handler_free(g->h);
	upager_store_close(g->s);
}

/* The region's counters, printed when a read is found blocked. */
static void diag(void *arg)
{
	struct rig *g = arg;
	struct upager_stats st;

	upager_region_stats(g->r, &st);
	fprintf(stderr,
		"  %s: faults %llu (dup %llu), pages filled %llu, bytes "
		"fetched %llu, eexist %llu\n",
		g->type, (unsigned long long)st.faults,
		(unsigned long long)st.faults_dup,
		(unsigned long long)st.pages_filled,
		(unsigned long long)st.bytes_fetched,
		(unsigned long long)st.eexist);
}

/* Read page @i under watch slot @slot: it must hold the store's data. */
static void read_page(struct rig *g, struct t_watch *w, unsigned int slot,
		      size_t i)
{
	bool ok;

	t_watch_begin(w, slot);
	ok = t_verify(g->p + i * PG, PG, i);
	t_watch_end(w, slot);
	if (!ok)
		FAIL("%s: page %zu does not hold the store's data%s", g->type,
		     i, *(const uint64_t *)(g->p + i * PG) ? "" : " (zeros)");
}

static void dontneed(struct rig *g, size_t i)
{
	CHECK(madvise(g->p + i * PG, PG, MADV_DONTNEED) == 0,
	      "madvise(DONTNEED): %s", strerror(errno));
}

/* ---- repro: read, DONTNEED, read at once ------------------------------ */

static void repro(enum upager_memtype type)
{
	uint64_t end = t_now_ns() + REPRO_NS;
	unsigned int k = 0;
	struct rig g;
	struct t_watch *w;

	rig_map(&g, type);
	w = t_watch_new(1, BLOCK_MS, "read after DONTNEED blocked", diag, &g);
	/*
	 * Each read faults right after the fill before it.  At least one
	 * round over the pages (2048 reads after a DONTNEED: the old engine
	 * blocked in about 1 of 100), more while time allows.
	 */
	do {
		for (size_t i = 0; i < NPAGES; i++) {
			read_page(&g, w, 0, i);
			dontneed(&g, i);
			read_page(&g, w, 0, i);
			dontneed(&g, i);
		}
	} while (++k < REPRO_ROUNDS && t_now_ns() < end);
	t_watch_free(w);
	fprintf(stderr, "repro %s: %u reads after DONTNEED\n", g.type,
		k * NPAGES * 2);
	rig_unmap(&g);
}

/* ---- stress and shared: threads read, DONTNEED and re-read ------------- */

struct app {
	struct rig *g;
	struct t_watch *w;
	unsigned int k;
	size_t first, n; /* the pages this thread picks from */
	uint64_t end_ns;
	uint64_t rng;
	/* Pages read, and dropped since their last read (own slice only). */
	bool *read, *dropped;
	uint64_t fetches; /* the fetches its reads imply */
	uint64_t reads, drops;
	pthread_t t;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void app_read(struct app *a, size_t i)
{
	size_t j = i - a->first;

	if (a->read && (!a->read[j] || (a->g->anon && a->dropped[j])))
		a->fetches++;
	read_page(a->g, a->w, a->k, i);
	if (a->read) {
		a->read[j] = true;
		a->dropped[j] = false;
	}
	a->reads++;
}

static void *app_main(void *arg)
{
	struct app *a = arg;

	while (t_now_ns() < a->end_ns) {
		for (int n = 0; n < 64; n++) {
			uint64_t x = rnd(&a->rng);
			size_t i = a->first + (size_t)(x >> 16) % a->n;

			app_read(a, i);
			if (x & 1)
				continue;
			dontneed(a->g, i);
			a->drops++;
			if (a->dropped)
				a->dropped[i - a->first] = true;
			if (x & 2)
				app_read(a, i);
		}
	}
	return NULL;
}

/*
 * Run the threads for @ms; with @own each has its slice and counts the
 * fetches its reads imply, which the region's bytes_fetched must match.
 */
static void threads(enum upager_memtype type, unsigned int ms, bool own)
{
	struct app apps[NAPP];
	struct upager_stats st;
	uint64_t want = 0, reads = 0, drops = 0, end;
	struct rig g;
	struct t_watch *w;

	rig_map(&g, type);
	w = t_watch_new(NAPP, BLOCK_MS,
			own ? "a read blocked (stress, own pages)"
			    : "a read blocked (stress, shared pages)",
			diag, &g);
	end = t_now_ns() + (uint64_t)ms * 1000000;
	for (unsigned int k = 0; k < NAPP; k++) {
		apps[k] = (struct app){ .g = &g, .w = w, .k = k,
					.end_ns = end,
					.rng = 0x9e3779b97f4a7c15ull * (k + 1),
					.first = own ? k * (NPAGES / NAPP) : 0,
					.n = own ? NPAGES / NAPP : NPAGES };
		if (own) {
			apps[k].read = calloc(apps[k].n, 1);
			apps[k].dropped = calloc(apps[k].n, 1);
			CHECK(apps[k].read && apps[k].dropped, "calloc");
		}
		CHECK(pthread_create(&apps[k].t, NULL, app_main, &apps[k]) == 0,
		      "pthread_create");
	}
	for (unsigned int k = 0; k < NAPP; k++) {
		pthread_join(apps[k].t, NULL);
		want += apps[k].fetches;
		reads += apps[k].reads;
		drops += apps[k].drops;
		free(apps[k].read);
		free(apps[k].dropped);
	}
	t_watch_free(w);
	/* Workers count after they wake the reader: let them finish. */
	CHECK_RET(upager_handler_stop(g.h), 0);
	upager_region_stats(g.r, &st);
	fprintf(stderr,
		"%s %s: %llu reads, %llu DONTNEEDs, %llu bytes fetched, "
		"%llu faults, %llu dup\n",
		own ? "stress" : "shared", g.type, (unsigned long long)reads,
		(unsigned long long)drops,
		(unsigned long long)st.bytes_fetched,
		(unsigned long long)st.faults,
		(unsigned long long)st.faults_dup);
	CHECK(st.store_errors == 0, "%llu store errors",
	      (unsigned long long)st.store_errors);
	if (own)
		CHECK(st.bytes_fetched == want * PG,
		      "%s: %llu bytes fetched, the REMOVE policy implies %llu "
		      "(%llu pages %s)",
		      g.type, (unsigned long long)st.bytes_fetched,
		      (unsigned long long)(want * PG),
		      (unsigned long long)(st.bytes_fetched > want * PG
						   ? st.bytes_fetched / PG - want
						   : want - st.bytes_fetched / PG),
		      st.bytes_fetched > want * PG ? "too many" : "missing");
	rig_unmap(&g);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	const char *part = argc > 2 ? argv[2] : NULL;

	t_deadline(60, "dontneed did not finish in 60 s");
	if (!part || !strcmp(part, "repro"))
		repro(type);
	if (!part || !strcmp(part, "stress"))
		threads(type, 8000, true);
	if (!part || !strcmp(part, "shared"))
		threads(type, 2000, false);
	t_deadline(0, NULL);
	return 0;
}

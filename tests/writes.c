// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Write tracking (UPAGER_MAP_TRACK_WRITES) over a mem store, whose image
 * the test reads to see what was written back.
 *
 * basic     a read leaves a unit clean, the first write makes it dirty
 *           (one write fault; a second write faults no more), sync
 *           writes it to the store and makes it clean; a write after
 *           the sync makes it dirty again.  Zero units of a sparse store
 *           too (installed write-protected by a copy, not ZEROPAGE).
 * dropped   MADV_DONTNEED of part of a dirty unit: the dropped pages
 *           read the store again, the others keep their writes, and
 *           the sync writes both (the unit's content as the program
 *           sees it), never zeros.
 * race      four threads write random units (a stamp per write) while
 *           another syncs over and over; at the end a last sync, and
 *           the store equals what the threads wrote, unit by unit.
 * nowb      over a store without writeback: sync is -EOPNOTSUPP while
 *           a unit is dirty, nothing is dropped; unmap succeeds (the
 *           writes are the region's own, as anonymous memory's).
 * failing   a store whose writeback fails (tstore.h's wbstore): sync
 *           returns the error, the unit stays dirty, unmap refuses and
 *           keeps the region intact.
 * unmap     upager_unmap() writes dirty units back.
 * params    what tracking refuses (in-thread, MOVE, FORK_FOLLOW,
 *           hugetlb, water marks without a budget, a tiny budget).
 *
 * Runs on anon and shmem (argv[1]); argv[2] may name one part.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define NUNITS 256

struct rig {
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	char *p, *img;
	size_t fill;
	enum upager_memtype type;
};

/* Map g->s, whose pages are g->img, tracking writes, and start. */
static void rig_start(struct rig *g, enum upager_memtype type, size_t fill)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.fill = fill,
					.flags = UPAGER_MAP_TRACK_WRITES,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	int err;

	g->type = type;
	g->fill = fill;
	g->h = t_upager_handler(2, NULL, NULL);
	g->p = upager_map(g->h, g->s, NUNITS * fill, &mp, &g->r, &err);
	if (!g->p && err == -EOPNOTSUPP)
		SKIP("write tracking needs UFFD_FEATURE_PAGEFAULT_FLAG_WP");
	CHECK(g->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(g->h), 0);
}

/* Over a mem store; @zeros: its first 8 pages are zeros (sparse). */
static void rig_map(struct rig *g, enum upager_memtype type, size_t fill,
		    bool zeros)
{
	int err;

	g->s = upager_store_mem_new((uint64_t)NUNITS * fill, &err);
	CHECK(g->s, "mem store: %s", strerror(-err));
	g->img = upager_store_mem_data(g->s);
	for (size_t i = 0; i < NUNITS * fill / PG; i++)
		t_fill(g->img + i * PG, PG, i);
	if (zeros)
		memset(g->img, 0, 8 * PG);
	rig_start(g, type, fill);
}

static void rig_unmap(struct rig *g)
{
	CHECK_RET(upager_unmap(g->r), 0);
	upager_handler_free(g->h);
	upager_store_close(g->s);
}

/*
 * Is the unit at @off dirty?  A fill or a write fault wakes its thread
 * before it settles the unit: a look right after an access waits a
 * little for that.
 */
static bool dirty(struct rig *g, size_t off)
{
	for (int i = 0; i < 1000; i++) {
		if (upager_region_dirty(g->r, off))
			return true;
		t_sleep_ms(1);
	}
	return false;
}

static struct upager_stats stats(struct rig *g)
{
	struct upager_stats st;

	upager_region_stats(g->r, &st);
	return st;
}

static void basic(enum upager_memtype type)
{
	struct rig g;
	volatile char *p;
	struct upager_stats st;

	rig_map(&g, type, 16 * 1024, false);
	p = g.p;
	CHECK(t_verify(g.p, PG, 0) && t_verify(g.p + PG, PG, 1),
	      "unit 0 reads the store");
	CHECK(!upager_region_dirty(g.r, 0), "a read leaves it clean");
	/* The fill wakes the reader before it marks the unit present. */
	for (int i = 0; i < 1000 && upager_region_resident(g.r) != g.fill; i++)
		t_sleep_ms(1);
	CHECK(upager_region_resident(g.r) == g.fill, "one unit resident: %zu",
	      upager_region_resident(g.r));
	p[100] = 'x';
	st = stats(&g);
	CHECK(st.faults_wp == 1, "one write fault, got %llu",
	      (unsigned long long)st.faults_wp);
	CHECK(dirty(&g, 0) && dirty(&g, 8192),
	      "the whole unit is dirty");
	p[5000] = 'y';
	CHECK(stats(&g).faults_wp == 1, "a second write does not fault");
	CHECK(g.img[100] != 'x', "not written back before the sync");
	CHECK_RET(upager_region_sync(g.r, 0, NUNITS * g.fill), 0);
	CHECK(g.img[100] == 'x' && g.img[5000] == 'y', "sync wrote it");
	CHECK(!upager_region_dirty(g.r, 0), "clean after the sync");
	st = stats(&g);
	CHECK(st.pages_written == g.fill / PG, "pages_written %llu",
	      (unsigned long long)st.pages_written);
	CHECK(st.pages_dirtied == g.fill / PG, "pages_dirtied %llu",
	      (unsigned long long)st.pages_dirtied);
	p[200] = 'z';
	CHECK(stats(&g).faults_wp == 2, "written again after the sync");
	CHECK(dirty(&g, 0), "dirty again");
	/* The other units: a write as the first touch. */
	p[3 * g.fill + 7] = 'w';
	CHECK(dirty(&g, 3 * g.fill), "written at first touch");
	CHECK_RET(upager_region_sync(g.r, 0, NUNITS * g.fill), 0);
	CHECK(g.img[200] == 'z' && g.img[3 * g.fill + 7] == 'w',
	      "both written back");
	CHECK(t_verify(g.img + 3 * g.fill + PG, PG, 3 * g.fill / PG + 1),
	      "the rest of the unit is the store's");
	rig_unmap(&g);
}

/* A sparse store: zero pages go in write-protected too. */
static void zeros(enum upager_memtype type)
{
	struct rig g;
	volatile char *p;

	rig_map(&g, type, PG, true);
	p = g.p;
	CHECK(p[0] == 0, "a zero page");
	p[0] = 1;
	CHECK(dirty(&g, 0), "a write to a zero page is seen");
	CHECK_RET(upager_region_sync(g.r, 0, PG), 0);
	CHECK(g.img[0] == 1, "written back");
	rig_unmap(&g);
}

static void dropped(enum upager_memtype type)
{
	struct rig g;
	char *u;

	rig_map(&g, type, 16 * 1024, false);
	u = g.p + 5 * g.fill;
	memset(u, 'a', g.fill);
	CHECK(dirty(&g, 5 * g.fill), "dirty");
	CHECK_RET(madvise(u + PG, PG, MADV_DONTNEED), 0);
	if (type == UPAGER_MEM_ANON)
		CHECK(t_verify(u + PG, PG, 5 * g.fill / PG + 1),
		      "the dropped page reads the store again");
	else
		CHECK(u[PG] == 'a' && u[2 * PG - 1] == 'a',
		      "shmem keeps its data through DONTNEED");
	CHECK(u[0] == 'a' && u[2 * PG] == 'a', "the others keep the writes");
	CHECK(dirty(&g, 5 * g.fill), "still dirty");
	CHECK_RET(upager_region_sync(g.r, 0, NUNITS * g.fill), 0);
	CHECK(memcmp(g.img + 5 * g.fill, u, g.fill) == 0,
	      "the store holds the unit as the program sees it");
	/* Dropped again, and synced without a fault in between. */
	u[0] = 'b';
	CHECK_RET(madvise(u + 2 * PG, PG, MADV_DONTNEED), 0);
	CHECK_RET(upager_region_sync(g.r, 0, NUNITS * g.fill), 0);
	CHECK(g.img[5 * g.fill] == 'b', "the write went back");
	/* anon: the store's page (written by the first sync); shmem: kept. */
	CHECK(g.img[5 * g.fill + 2 * PG] == 'a',
	      "a page dropped and not read again: never zeros");
	rig_unmap(&g);
}

struct writer {
	struct rig *g;
	unsigned int id;
	atomic_bool *stop;
	uint64_t *last; /* per unit: the last stamp this thread wrote */
};

/* Unit u is owned by thread u % 4: its writes are ordered. */
static void *write_loop(void *arg)
{
	struct writer *w = arg;
	uint64_t seed = w->id * 7919 + 1, stamp = 0;

	while (!atomic_load(w->stop)) {
		size_t u;

		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		u = (size_t)(seed >> 33) % (NUNITS / 4) * 4 + w->id;
		stamp++;
		for (size_t o = 0; o < w->g->fill; o += 512)
			memcpy(w->g->p + u * w->g->fill + o, &stamp,
			       sizeof(stamp));
		w->last[u] = stamp;
	}
	return NULL;
}

static void race(enum upager_memtype type)
{
	struct rig g;
	pthread_t t[4];
	struct writer w[4];
	atomic_bool stop = false;
	uint64_t *last = calloc(NUNITS, sizeof(*last));
	uint64_t t0 = t_now_ns();
	unsigned int syncs = 0;

	rig_map(&g, type, 8192, false);
	for (unsigned int i = 0; i < 4; i++) {
		w[i] = (struct writer){ &g, i, &stop, last };
		CHECK(!pthread_create(&t[i], NULL, write_loop, &w[i]), "thread");
	}
	while (t_now_ns() - t0 < 1500000000ull) {
		CHECK_RET(upager_region_sync(g.r, 0, NUNITS * g.fill), 0);
		syncs++;
	}
	atomic_store(&stop, true);
	for (unsigned int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_RET(upager_region_sync(g.r, 0, NUNITS * g.fill), 0);
	for (size_t u = 0; u < NUNITS; u++) {
		const char *img = g.img + u * g.fill;

		if (!last[u]) {
			for (size_t pg = 0; pg < g.fill / PG; pg++)
				CHECK(t_verify(img + pg * PG, PG,
					       u * g.fill / PG + pg),
				      "unit %zu never written: the store's",
				      u);
			continue;
		}
		for (size_t o = 0; o < g.fill; o += 512)
			CHECK(!memcmp(img + o, &last[u], sizeof(last[u])),
			      "unit %zu offset %zu: the last write (%llu)", u,
			      o, (unsigned long long)last[u]);
		CHECK(!upager_region_dirty(g.r, u * g.fill), "clean");
	}
	printf("race %s: %u syncs, %llu write faults\n",
	       type == UPAGER_MEM_ANON ? "anon" : "shmem", syncs,
	       (unsigned long long)stats(&g).faults_wp);
	rig_unmap(&g);
	free(last);
}

static void nowb(enum upager_memtype type)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.flags = UPAGER_MAP_TRACK_WRITES };
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct upager_store *s = upager_store_open("zero:1M", NULL);
	struct upager_region *r;
	char *p;
	int err;

	CHECK(s, "zero store");
	p = upager_map(h, s, 1 << 20, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK_RET(upager_region_sync(r, 0, 1 << 20), 0);
	p[0] = 1;
	CHECK_RET(upager_region_sync(r, 0, 1 << 20), -EOPNOTSUPP);
	CHECK(p[0] == 1 && upager_region_dirty(r, 0), "kept, still dirty");
	CHECK_RET(upager_unmap(r), 0); /* its writes go with it */
	upager_handler_free(h);
	upager_store_close(s);
}

static void failing(enum upager_memtype type)
{
	struct wbstore w;
	struct rig g;

	wbstore_init(&w, NUNITS);
	atomic_store(&w.fail, true);
	g.s = &w.s;
	g.img = w.img;
	rig_start(&g, type, PG);
	g.p[0] = 's';
	CHECK_RET(upager_region_sync(g.r, 0, PG), -EIO);
	CHECK(dirty(&g, 0) && g.p[0] == 's', "still dirty, still there");
	CHECK_RET(upager_unmap(g.r), -EIO);
	CHECK(g.p[0] == 's', "a failed unmap keeps the region");
	CHECK(stats(&g).writeback_errors >= 2, "counted");
	upager_handler_free(g.h); /* forced: the loss is reported */
	wbstore_free(&w);
}

static void unmap(enum upager_memtype type)
{
	struct rig g;
	char *img;

	rig_map(&g, type, PG, false);
	img = g.img;
	g.p[0] = 'q';
	g.p[NUNITS * PG - 1] = 'r';
	CHECK_RET(upager_unmap(g.r), 0);
	CHECK(img[0] == 'q' && img[NUNITS * PG - 1] == 'r',
	      "unmap wrote the dirty units back");
	upager_handler_free(g.h);
	upager_store_close(g.s);
}

static void params(enum upager_memtype type)
{
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct upager_store *s = upager_store_open("zero:8M", NULL);
	struct upager_map_params base = { .size = sizeof(base),
					  .flags = UPAGER_MAP_TRACK_WRITES };
	struct upager_map_params mp;
	int err;

	(void)type; /* the refusals are the same on every memory type */

#define REFUSE(field, value, want)                                        \
	do {                                                              \
		mp = base;                                                \
		mp.field = value;                                         \
		CHECK(!upager_map(h, s, 8 << 20, &mp, NULL, &err) &&      \
			      err == (want),                              \
		      #field " = " #value ": got %d", err);               \
	} while (0)
	REFUSE(flags, UPAGER_MAP_TRACK_WRITES | UPAGER_MAP_MOVE, -EINVAL);
	REFUSE(fork, UPAGER_FORK_FOLLOW, -EINVAL);
	REFUSE(memtype, UPAGER_MEM_HUGETLB, -EINVAL);
	REFUSE(budget, 8192, -EINVAL);		/* under 4 units */
	REFUSE(high_water, 101, -EINVAL);	/* no budget, or too high */
	base.budget = 1 << 20;
	REFUSE(high_water, 101, -EINVAL);
	REFUSE(low_water, 95, -EINVAL);		/* not under high */
	REFUSE(evict, (enum upager_evict_policy)7, -EINVAL);
	base.flags = 0;
	base.budget = 0;
	REFUSE(high_water, 80, -EINVAL); /* water marks without a budget */
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	static const struct t_part parts[] = {
		{ "basic", basic },
		{ "zeros", zeros },
		{ "dropped", dropped },
		{ "race", race },
		{ "nowb", nowb },
		{ "failing", failing },
		{ "unmap", unmap },
		{ "params", params },
		{ 0 },
	};

	return t_parts(argc, argv, parts);
}

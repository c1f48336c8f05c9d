// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The program unmaps a region while a fill of one of its units is in
 * flight, and maps a second region of the same handler, which the
 * kernel places at the same address: the first region's fill must not
 * land in the second.  Its data there would read as the second
 * region's, and no fault would ever come for that page.
 *
 * Every fetch of the first region's store sleeps 2 ms: a thread faults
 * on page 0 (write(2)ing it to a file, so that its access meets EFAULT,
 * not a signal, once the region is gone or the page poisoned), the
 * fetch begins, the main thread munmap()s the region (a worker reads the
 * UNMAP) and maps the second over a store of other data, then reads its
 * page 0 once the first fetch is over.
 * The same with the first region's fetch failing: the page is poisoned
 * in its place, never in the second region (part poison).
 * 32 rounds each; a round where the kernel chose another address is
 * counted and does not check anything (most must reuse it), and so is a
 * round whose fetch was over before the unmap (a quarter must not be).
 * Parts writeback and snapshot: a write-back's or a snapshot's read of
 * a unit is held while the program unmaps the region and puts the
 * second there; what they read then must not reach the store or the
 * image (see each part).  Part snapshot_remap: the program moves the
 * region itself (mremap) while a snapshot's read is held, and puts the
 * second where it was: the image must be the region's, moved with it.
 * Parts writeback_unread and save_unread: the same for a write-back's
 * and a save's read, the move's event still unread when the read goes
 * on (the workers held).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 16
#define ROUNDS 32
#define SEED2 (1ull << 24)
#define WSEED (1ull << 28)
#define WSEED2 (1ull << 32)

/*
 * Built with a sanitizer, whose runtime maps memory of its own: the
 * kernel then places the second region where the first was less often.
 */
static bool sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return true;
#else
	return false;
#endif
}

static const char *what_is(const char *pg)
{
	static char buf[128];

	for (uint64_t k = 0; k < NPAGES; k++) {
		if (t_verify(pg, PG, k))
			return "the first region's data";
		if (t_verify(pg, PG, WSEED + k) || t_verify(pg, PG, WSEED2 + k))
			return "the first region's written data";
		if (t_verify(pg, PG, SEED2 + k)) {
			snprintf(buf, sizeof(buf),
				 "the data of page %llu of the second region "
				 "(parts *_unread: of the test's memory)",
				 (unsigned long long)k);
			return buf;
		}
	}
	for (size_t k = 0; k < PG; k++)
		if (pg[k])
			return "other data";
	return "zeros";
}

/* The failed fetches of part poison are the test's own: counted. */
static atomic_uint errors;

static void count_error(void *arg, struct upager_region *r, uint64_t addr,
			int err, const char *what)
{
	(void)arg, (void)r, (void)addr, (void)err, (void)what;
	atomic_fetch_add(&errors, 1);
}

/*
 * @bad: the first region's fetch fails, and the poison that takes the
 * place of its page must not land in the second region either.
 */
static void run(struct upager_handler *h, enum upager_memtype type, bool bad)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct tstore *t1 = tstore_open(NPAGES), *t2 = tstore_open(NPAGES);
	const char *name = bad ? "poison" : "data";
	unsigned int same = 0, racy = 0;
	int err, sink = t_tmp_unlinked(PG);

	if (bad)
		t1->bad = 0;
	t2->seed = SEED2;
	for (int round = 0; round < ROUNDS; round++) {
		struct upager_region *r1, *r2;
		unsigned int f0 = atomic_load(&t1->fetches);
		struct toucher to;
		char *p1, *p2;

		/*
		 * The fetch waits at the store's gate until the second
		 * region is mapped.  Slowed by 2 ms instead, it had often
		 * returned before the munmap() on a loaded machine (6 of 25
		 * runs beside a CI run met the race in under 8 rounds).
		 */
		atomic_store(&t1->held, false);
		atomic_store(&t1->released, false);
		atomic_store(&t1->hold_at, f0 + 1);
		p1 = upager_map(h, &t1->s, NPAGES * PG, &mp, &r1, &err);
		CHECK(p1, "map 1: %s", strerror(-err));
		toucher_start(&to, p1, sink);
		tstore_wait_held(t1, "the first region's fetch");
		racy += atomic_load(&t1->busy) > 0;
		CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s",
		      strerror(errno));
		p2 = upager_map(h, &t2->s, NPAGES * PG, &mp, &r2, &err);
		CHECK(p2, "map 2: %s", strerror(-err));
		tstore_release(t1);
		for (int ms = 0; ms < 5000 && atomic_load(&t1->busy); ms++)
			t_sleep_ms(1);
		if (p2 == p1) {
			same++;
			for (size_t i = 0; i < NPAGES; i++) {
				CHECK(!t_read_sigbus(p2 + i * PG),
				      "%s: round %d: page %zu of the second "
				      "region is poisoned (SIGBUS)",
				      name, round, i);
				CHECK(t_verify(p2 + i * PG, PG, SEED2 + i),
				      "%s: round %d: page %zu of the second "
				      "region reads %s",
				      name, round, i, what_is(p2 + i * PG));
			}
		}
		CHECK(pthread_join(to.t, NULL) == 0, "pthread_join");
		CHECK_RET(upager_unmap(r2), 0);
		CHECK_RET(upager_unmap(r1), 0);
	}
	fprintf(stderr, "%s: %u of %d rounds mapped the second region where "
		"the first was, %u unmapped it while its fetch was in flight\n",
		name, same, ROUNDS, racy);
	if (same < ROUNDS / 2 && sanitized())
		t_not_checked("%s: only %u of %d rounds reused the address "
			      "(a sanitizer's own mappings take it)",
			      name, same, ROUNDS);
	else
		CHECK(same >= ROUNDS / 2,
		      "%s: only %u of %d rounds reused the address", name,
		      same, ROUNDS);
	CHECK(racy >= ROUNDS / 4, "%s: only %u of %d unmaps met a fetch in "
	      "flight", name, racy, ROUNDS);
	close(sink);
	upager_store_close(&t1->s);
	upager_store_close(&t2->s);
}

/*
 * No read-ahead, no fault-around; @tracked: write-tracked, in units of 4
 * pages (the first region of parts writeback and snapshot).
 */
static struct upager_map_params map_params(enum upager_memtype type,
					   bool tracked)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };

	if (tracked) {
		mp.fill = 4 * PG;
		mp.flags = UPAGER_MAP_TRACK_WRITES;
	}
	return mp;
}

struct syncer {
	struct upager_region *r;
	int ret;
	atomic_bool done;
};

static void *syncer(void *arg)
{
	struct syncer *sy = arg;

	sy->ret = upager_region_sync(sy->r, 0, NPAGES * PG);
	atomic_store(&sy->done, true);
	return NULL;
}

/*
 * The setting of parts writeback and writeback_unread: unit 0 of @r1 (at
 * @p1, over @w) written, its page 1 dropped, and a sync started in
 * @th whose read of the unit waits at @w's gate, fetching that page.
 */
static void wb_held(struct wbstore *w, struct upager_region *r1, char *p1,
		    struct syncer *sy, pthread_t *th)
{
	for (size_t i = 0; i < 4; i++)
		t_fill(p1 + i * PG, PG, WSEED + i);
	CHECK(madvise(p1 + PG, PG, MADV_DONTNEED) == 0, "madvise: %s",
	      strerror(errno));
	atomic_store(&w->fetch_hold, true);
	sy->r = r1;
	CHECK(pthread_create(th, NULL, syncer, sy) == 0, "pthread_create");
	t_wait_set(&w->fetch_held, "the write-back's fetch of the dropped page");
}

/*
 * Move the second region from @p2 to @p1, which the first left: onto a
 * placeholder that claims the range first, so that the move replaces
 * nothing that took it meanwhile.  False, and nothing moved, if
 * something did.
 */
static bool second_to(char *p2, char *p1)
{
	char *at = mmap(p1, NPAGES * PG, PROT_NONE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
			0);

	if (at != p1) {
		if (at != MAP_FAILED)
			munmap(at, NPAGES * PG);
		return false;
	}
	CHECK(mremap(p2, NPAGES * PG, NPAGES * PG,
		     MREMAP_MAYMOVE | MREMAP_FIXED, p1) == p1,
	      "mremap of the second region: %s", strerror(errno));
	return true;
}

/*
 * Part writeback: the first region is write-tracked over a store that
 * takes write-backs; unit 0 (4 pages) is written, its page 1 dropped,
 * and a sync writes it back.  Its read of the unit fetches the dropped
 * page from the store (REFETCH), which holds that fetch at a gate:
 * meanwhile the program unmaps the region, moves the second there (onto
 * a placeholder, as in part snapshot: mapped anew, the second region
 * went elsewhere in 8 tries in a row about once in 25 runs on a loaded
 * machine) and touches all of it.  The pages the write-back reads after
 * the gate are the second region's: the first region's store must not
 * get them.  False if the placeholder found the range taken.
 */
static bool writeback_once(struct upager_handler *h, enum upager_memtype type)
{
	struct upager_map_params mp1 = map_params(type, true);
	struct upager_map_params mp2 = map_params(type, false);
	struct tstore *t2 = tstore_open(NPAGES);
	struct upager_region *r1, *r2;
	struct syncer sy;
	struct wbstore w;
	pthread_t th;
	char *p1, *p2;
	int err;

	bool moved;

	wbstore_init(&w, NPAGES);
	t2->seed = SEED2;
	p1 = upager_map(h, &w.s, NPAGES * PG, &mp1, &r1, &err);
	CHECK(p1, "writeback: map 1: %s", strerror(-err));
	p2 = upager_map(h, &t2->s, NPAGES * PG, &mp2, &r2, &err);
	CHECK(p2, "writeback: map 2: %s", strerror(-err));
	wb_held(&w, r1, p1, &sy, &th);
	CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s", strerror(errno));
	moved = second_to(p2, p1);
	if (moved)
		p2 = p1;
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p2 + i * PG, PG, SEED2 + i),
		      "writeback: page %zu of the second region reads %s", i,
		      what_is(p2 + i * PG));
	atomic_store(&w.fetch_release, true);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	for (size_t i = 0; i < 4; i++) {
		const char *pg = w.img + i * PG;

		CHECK(t_verify(pg, PG, i) || t_verify(pg, PG, WSEED + i),
		      "writeback: the first region's store page %zu holds %s%s",
		      i, what_is(pg), moved ? " (the second region there)"
					    : "");
	}
	fprintf(stderr, "writeback: sync %s; the second region %s\n",
		sy.ret ? strerror(-sy.ret) : "ok",
		moved ? "where the first was" : "stayed where it was");
	CHECK_RET(upager_unmap(r2), 0);
	upager_unmap(r1);
	wbstore_free(&w);
	upager_store_close(&t2->s);
	return moved;
}

/* Until the kernel places the second region where the first was. */
static void writeback(struct upager_handler *h, enum upager_memtype type)
{
	int tries = 0;

	while (!writeback_once(h, type)) {
		if (++tries < 8)
			continue;
		if (sanitized()) {
			t_not_checked("writeback: the first region's range "
				      "was taken %d times", tries);
			return;
		}
		FAIL("writeback: the first region's range was taken %d times",
		     tries);
	}
}

struct snapper {
	struct upager_region *r;
	struct upager_store *dst;
	int ret;
};

static void *snapper(void *arg)
{
	struct snapper *sn = arg;

	sn->ret = upager_region_snapshot(sn->r, sn->dst, 0, NULL);
	return NULL;
}

/*
 * A write to @p by read(2) from @fd, which meets EFAULT, not a signal,
 * once the program has unmapped @p.
 */
struct writer {
	char *p;
	int fd;
	pthread_t t;
	atomic_bool done;
	ssize_t ret;
	int err;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;

	wr->ret = pread(wr->fd, wr->p, 64, 0);
	wr->err = errno;
	atomic_store(&wr->done, true);
	return NULL;
}

/* @wr's write, woken by the UNMAP of its range, meets the hole. */
static void writer_met_hole(struct writer *wr, const char *part,
			    const char *name)
{
	for (int ms = 0; ms < 5000 && !atomic_load(&wr->done); ms++)
		t_sleep_ms(1);
	CHECK(atomic_load(&wr->done), "%s, %s: the write never ended", part,
	      name);
	CHECK(pthread_join(wr->t, NULL) == 0, "pthread_join");
	CHECK(wr->ret < 0 && wr->err == EFAULT,
	      "%s, %s: the write returned %zd (%s)", part, name, wr->ret,
	      strerror(wr->err));
	close(wr->fd);
}

/* Where part snapshot holds the snapshot while the program unmaps. */
enum snap_hold {
	HOLD_COPIER, /* the copier's read of unit 0 */
	HOLD_WRITE,  /* a write's save of unit 2, before its write */
	HOLD_AFTER,  /* the copier's write of unit 0: the read is over */
};

static const char *const snap_holds[] = {
	[HOLD_COPIER] = "the copier's read",
	[HOLD_WRITE] = "a write's save",
	[HOLD_AFTER] = "between two units",
};

/*
 * What parts snapshot and snapshot_remap set up: the first region
 * (write-tracked, units of 4 pages) over @w, a snapshot of it into @d,
 * whose pages are zeros at first, and the second region, touched.
 */
struct snapcase {
	const char *part, *name;
	size_t u; /* the unit whose read is held */
	struct tstore *t2;
	struct upager_region *r1, *r2;
	struct wbstore w, d;
	struct snapper sn;
	struct writer wr;
	char *p1, *p2;
	pthread_t th;
};

/*
 * Pages [@from, @to) of the first region are written (WSEED), and page
 * 1 of unit 0 and of unit u dropped, so that the snapshot's read of
 * either fetches from the region's store (REFETCH; unit 0 unwritten is
 * read from there whole), which holds the fetch at a gate.  The copier
 * is held there, in its read of unit 0 (@how HOLD_COPIER); or, while
 * it is, unit 1 is written, whose save takes it from the copier, so
 * that the copier's run of units read ends with unit 0 and its write to
 * the destination, where it is held then (HOLD_AFTER), has unit 0 only;
 * and while it is held there, a write to unit 2 (HOLD_WRITE, u) has its
 * save held at the gate.  Returns with the snapshot held so.
 */
static void snap_begin(struct snapcase *c, struct upager_handler *h,
		       enum upager_memtype type, enum snap_hold how,
		       size_t from, size_t to)
{
	struct upager_map_params mp1 = map_params(type, true);
	struct upager_map_params mp2 = map_params(type, false);
	int err;

	c->name = snap_holds[how];
	c->u = how == HOLD_WRITE ? 2 : 0;
	c->wr.fd = -1;
	c->t2 = tstore_open(NPAGES);
	c->t2->seed = SEED2;
	wbstore_init(&c->w, NPAGES);
	wbstore_init(&c->d, NPAGES);
	memset(c->d.img, 0, NPAGES * PG);
	c->p1 = upager_map(h, &c->w.s, NPAGES * PG, &mp1, &c->r1, &err);
	CHECK(c->p1, "%s, %s: map 1: %s", c->part, c->name, strerror(-err));
	c->p2 = upager_map(h, &c->t2->s, NPAGES * PG, &mp2, &c->r2, &err);
	CHECK(c->p2, "%s, %s: map 2: %s", c->part, c->name, strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(c->p2 + i * PG, PG, SEED2 + i),
		      "%s, %s: page %zu of the second region reads %s",
		      c->part, c->name, i, what_is(c->p2 + i * PG));
	for (size_t i = from; i < to; i++)
		t_fill(c->p1 + i * PG, PG, WSEED + i);
	CHECK(madvise(c->p1 + PG, PG, MADV_DONTNEED) == 0, "madvise: %s",
	      strerror(errno));
	CHECK(madvise(c->p1 + (4 * c->u + 1) * PG, PG, MADV_DONTNEED) == 0,
	      "madvise: %s", strerror(errno));
	c->sn.r = c->r1;
	c->sn.dst = &c->d.s;
	atomic_store(&c->w.fetch_hold, true);
	atomic_store(&c->d.hold, how != HOLD_COPIER);
	CHECK(pthread_create(&c->th, NULL, snapper, &c->sn) == 0,
	      "pthread_create");
	t_wait_set(&c->w.fetch_held, "the snapshot's fetch in unit 0");
	if (how == HOLD_COPIER)
		return;
	/* The same bytes: the write is the point, not what it writes. */
	*(volatile char *)(c->p1 + 4 * PG) = *(volatile char *)(c->p1 + 4 * PG);
	atomic_store(&c->w.fetch_held, false);
	atomic_store(&c->w.fetch_release, true);
	t_wait_set(&c->d.held, "the snapshot's write of unit 0");
	/* The copier's fetch is over: the gate can hold the next. */
	atomic_store(&c->w.fetch_release, false);
	if (how != HOLD_WRITE)
		return;
	atomic_store(&c->w.fetch_hold, true);
	c->wr.p = c->p1 + 4 * c->u * PG;
	c->wr.fd = t_tmp_unlinked(PG);
	CHECK(pthread_create(&c->wr.t, NULL, writer_main, &c->wr) == 0,
	      "pthread_create");
	t_wait_set(&c->w.fetch_held, "the save's fetch of the dropped page");
}

/*
 * The snapshot goes on, and ends.  First, as the worse: failed or not,
 * the image holds none of the second region's data.
 */
static void snap_end(struct snapcase *c)
{
	atomic_store(&c->w.fetch_release, true);
	atomic_store(&c->d.release, true);
	CHECK(pthread_join(c->th, NULL) == 0, "pthread_join");
	for (size_t i = 0; i < NPAGES; i++)
		for (uint64_t k = 0; k < NPAGES; k++)
			CHECK(!t_verify(c->d.img + i * PG, PG, SEED2 + k),
			      "%s, %s: the image's page %zu holds %s (the "
			      "snapshot: %s)",
			      c->part, c->name, i,
			      what_is(c->d.img + i * PG),
			      c->sn.ret ? strerror(-c->sn.ret) : "ok");
}

/* @r1_mapped: the first region is still the program's to unmap. */
static void snap_free(struct snapcase *c, bool r1_mapped)
{
	CHECK_RET(upager_unmap(c->r2), 0);
	if (r1_mapped)
		CHECK_RET(upager_unmap(c->r1), 0);
	else
		upager_unmap(c->r1);
	wbstore_free(&c->w);
	wbstore_free(&c->d);
	upager_store_close(&c->t2->s);
}

/*
 * Part snapshot: unit u of the first region is written (4 pages), and
 * the snapshot held (snap_begin()).  Meanwhile the program unmaps the
 * region and moves the second region to the same address: a new
 * mapping's placement is the kernel's, which may put upager's own
 * bookkeeping of it there (eight rounds in a row, in one run of
 * twenty), while a mremap() onto a placeholder is certain.  The snapshot
 * must hold every page of the first region as it was at the instant, or
 * fail -ENOENT (a unit it had to copy was unmapped); never the second
 * region's data.  False if the placeholder found the range taken.
 */
static bool snapshot_once(struct upager_handler *h, enum upager_memtype type,
			  enum snap_hold how)
{
	struct snapcase c = { .part = "snapshot" };
	size_t u = how == HOLD_WRITE ? 2 : 0;
	bool moved;

	snap_begin(&c, h, type, how, 4 * u, 4 * u + 4);
	CHECK(munmap(c.p1, NPAGES * PG) == 0, "munmap: %s", strerror(errno));
	if (how == HOLD_WRITE)
		writer_met_hole(&c.wr, c.part, c.name);
	moved = second_to(c.p2, c.p1);
	for (size_t i = 0; moved && i < NPAGES; i++)
		CHECK(t_verify(c.p1 + i * PG, PG, SEED2 + i),
		      "snapshot, %s: page %zu of the second region, moved, "
		      "reads %s",
		      c.name, i, what_is(c.p1 + i * PG));
	snap_end(&c);
	for (size_t i = 0; i < NPAGES; i++) {
		const char *pg = c.d.img + i * PG;
		/* At the instant: unit @u as written, its dropped page the
		 * store's, as is every other page. */
		uint64_t want = i / 4 == u && i % 4 != 1 ? WSEED + i : i;

		CHECK(c.sn.ret || t_verify(pg, PG, want),
		      "snapshot, %s: the image's page %zu holds %s, and the "
		      "snapshot succeeded",
		      c.name, i, what_is(pg));
	}
	CHECK(c.sn.ret == 0 || c.sn.ret == -ENOENT,
	      "snapshot, %s: failed with %s, not ENOENT", c.name,
	      strerror(-c.sn.ret));
	fprintf(stderr, "snapshot, %s: %s%s\n", c.name,
		c.sn.ret ? strerror(-c.sn.ret) : "ok",
		moved ? "" : "; the range was taken, the second region "
			     "stayed where it was");
	snap_free(&c, false);
	return moved;
}

typedef bool snap_once_fn(struct upager_handler *h, enum upager_memtype type,
			  enum snap_hold how);

/*
 * @once (of part @part) with hold @how, until the second region finds
 * the first region's range free once the first left it.
 */
static void until_free(snap_once_fn *once, const char *part,
		       struct upager_handler *h, enum upager_memtype type,
		       enum snap_hold how)
{
	int tries = 0;

	while (!once(h, type, how)) {
		if (++tries < 8)
			continue;
		if (sanitized()) {
			t_not_checked("%s, %s: the first region's range was "
				      "taken %d times",
				      part, snap_holds[how], tries);
			return;
		}
		FAIL("%s, %s: the first region's range was taken %d times",
		     part, snap_holds[how], tries);
	}
}

static void snapshot(struct upager_handler *h, enum upager_memtype type)
{
	for (enum snap_hold how = HOLD_COPIER; how <= HOLD_AFTER; how++)
		until_free(snapshot_once, "snapshot", h, type, how);
}

/*
 * Part snapshot_remap: the program moves the first region itself
 * (mremap(MREMAP_MAYMOVE | MREMAP_FIXED), onto a placeholder of its
 * own) while a snapshot of it is held, and then moves the second region
 * to where the first was: a copier that read at the old address would
 * find the second region's data there.  Every page of the first region
 * is written (WSEED), so that the copier reads each unit from memory,
 * and the snapshot is held (snap_begin(): HOLD_COPIER or HOLD_WRITE; the
 * write, at the old address, is woken by the UNMAP of it that follows
 * the move, and meets the hole).  The snapshot must succeed with every
 * page as it was at the instant: a move is not an unmap, and nothing of
 * the region was lost.  Then the region at its new address holds the
 * same, takes writes to two units, and an incremental snapshot over the
 * image makes it what the region holds.  A peek that read a unit at the
 * base it saw first, with no check of the moves since (peek_held()),
 * failed here on every run, each hold.  False if the placeholder at the
 * old address found the range taken.
 */
static bool snapshot_remap_once(struct upager_handler *h,
				enum upager_memtype type, enum snap_hold how)
{
	struct snapcase c = { .part = "snapshot_remap" };
	struct upager_snapshot_info info = { .size = sizeof(info) };
	bool moved;
	char *q;
	int ret;

	/* Where the first region goes: the kernel's choice, ours to take. */
	q = mmap(NULL, NPAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	CHECK(q != MAP_FAILED, "mmap: %s", strerror(errno));
	snap_begin(&c, h, type, how, 0, NPAGES);
	CHECK(mremap(c.p1, NPAGES * PG, NPAGES * PG,
		     MREMAP_MAYMOVE | MREMAP_FIXED, q) == q,
	      "mremap of the first region: %s", strerror(errno));
	if (how == HOLD_WRITE)
		writer_met_hole(&c.wr, c.part, c.name);
	moved = second_to(c.p2, c.p1);
	if (moved)
		c.p2 = c.p1;
	snap_end(&c);
	CHECK(c.sn.ret == 0, "snapshot_remap, %s: the snapshot failed: %s",
	      c.name, strerror(-c.sn.ret));
	for (size_t i = 0; i < NPAGES; i++) {
		/* At the instant: as written, the dropped pages the store's. */
		uint64_t want = i == 1 || i == 4 * c.u + 1 ? i : WSEED + i;

		CHECK(t_verify(c.d.img + i * PG, PG, want),
		      "snapshot_remap, %s: the image's page %zu holds %s",
		      c.name, i, what_is(c.d.img + i * PG));
		CHECK(t_verify(q + i * PG, PG, want),
		      "snapshot_remap, %s: page %zu of the moved region "
		      "reads %s",
		      c.name, i, what_is(q + i * PG));
		CHECK(t_verify(c.p2 + i * PG, PG, SEED2 + i),
		      "snapshot_remap, %s: page %zu of the second region "
		      "reads %s",
		      c.name, i, what_is(c.p2 + i * PG));
	}
	/* Writes at the new address: unit 1 whole, unit 3 one page. */
	for (size_t i = 4; i < 8; i++)
		t_fill(q + i * PG, PG, WSEED2 + i);
	t_fill(q + 13 * PG, PG, WSEED2 + 13);
	ret = upager_region_snapshot(c.r1, &c.d.s, UPAGER_SNAP_INCREMENTAL,
				     &info);
	CHECK(ret == 0, "snapshot_remap, %s: the incremental snapshot: %s",
	      c.name, strerror(-ret));
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(!memcmp(c.d.img + i * PG, q + i * PG, PG),
		      "snapshot_remap, %s: after the incremental snapshot, "
		      "the image's page %zu holds %s, the region %s",
		      c.name, i, what_is(c.d.img + i * PG),
		      what_is(q + i * PG));
	fprintf(stderr, "snapshot_remap, %s: ok; incremental: %llu units%s\n",
		c.name, (unsigned long long)info.units,
		moved ? "" : "; the old range was taken, the second "
			     "region stayed where it was");
	snap_free(&c, true);
	return moved;
}

static void snapshot_remap(struct upager_handler *h, enum upager_memtype type)
{
	until_free(snapshot_remap_once, "snapshot_remap", h, type,
		   HOLD_COPIER);
	until_free(snapshot_remap_once, "snapshot_remap", h, type, HOLD_WRITE);
}

/*
 * Parts writeback_unread and save_unread: the first region moves while
 * the kernel's REMAP event of the move stays unread, and the test maps
 * memory of its own where the region was.  A read of the region at the
 * address the engine still has for it finds that memory, and nothing
 * but peek_held()'s probe tells (an event pending: -EAGAIN): the region
 * owns the range still, and no hole was made.  The event stays unread
 * because every worker that could read it waits in a fetch of a region
 * of its own (occupy(); the stores are cheap, so no spare worker is
 * started for them), but the one whose read is held, which reads
 * events itself when it meets one pending.
 */
/* mremap() of the first region to @to, in a thread of its own: the
 * call returns only once a worker has read its REMAP event. */
struct mover {
	char *from, *to;
	pthread_t t;
	int ret;
};

static void *mover_main(void *arg)
{
	struct mover *m = arg;

	m->ret = mremap(m->from, NPAGES * PG, NPAGES * PG,
			MREMAP_MAYMOVE | MREMAP_FIXED, m->to) == m->to
			 ? 0
			 : -errno;
	return NULL;
}

/*
 * Move the region at @from to @to and, once it has left, move memory of
 * the test's own there, reading SEED2 + page, read-only (a write there
 * by a thread woken from a fault at the old address meets EFAULT): the
 * mover is still waiting for its event to be read.
 */
static void move_and_replace(struct mover *m, char *from, char *to)
{
	char *p = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char vec;

	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill(p + i * PG, PG, SEED2 + i);
	CHECK(mprotect(p, NPAGES * PG, PROT_READ) == 0, "mprotect: %s",
	      strerror(errno));
	m->from = from;
	m->to = to;
	CHECK(pthread_create(&m->t, NULL, mover_main, m) == 0,
	      "pthread_create");
	for (int ms = 0; ms < 5000 && mincore(from, PG, &vec) == 0; ms++)
		t_sleep_ms(1);
	CHECK(mincore(from, PG, &vec) < 0 && errno == ENOMEM,
	      "the region never left %p", (void *)from);
	CHECK(second_to(p, from), "where the region was, %p, was taken",
	      (void *)from);
}

static void mover_join(struct mover *m, const char *part)
{
	CHECK(pthread_join(m->t, NULL) == 0, "pthread_join");
	CHECK(m->ret == 0, "%s: mremap of the first region: %s", part,
	      strerror(-m->ret));
}

/*
 * Part writeback_unread: as part writeback (unit 0 written, its page 1
 * dropped, a sync's read of the unit held at the fetch of that page),
 * the handler's two workers occupied.  Meanwhile the region moves and
 * the test's memory takes its place.  The sync reads pages 2-3 after the
 * gate: at the old address, they are the test's memory; the store must
 * get the region's.  The sync (not a worker) waits for the event to be
 * read: the workers are let go once it has met it pending.
 */
static void writeback_unread(enum upager_memtype type)
{
	struct upager_handler *h = t_upager_handler(2, count_error, NULL);
	struct upager_map_params mp1 = map_params(type, true);
	struct syncer sy = { 0 };
	struct upager_region *r1;
	struct upager_stats st;
	struct occupied o;
	struct mover mv;
	struct wbstore w;
	uint64_t eagain;
	pthread_t th;
	char *p1, *q;
	int err;

	CHECK_RET(upager_handler_start(h), 0);
	q = mmap(NULL, NPAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	CHECK(q != MAP_FAILED, "mmap: %s", strerror(errno));
	wbstore_init(&w, NPAGES);
	p1 = upager_map(h, &w.s, NPAGES * PG, &mp1, &r1, &err);
	CHECK(p1, "writeback_unread: map: %s", strerror(-err));
	wb_held(&w, r1, p1, &sy, &th);
	occupy(&o, h, type, 2);
	move_and_replace(&mv, p1, q);
	upager_region_stats(r1, &st);
	eagain = st.eagain;
	atomic_store(&w.fetch_release, true);
	for (int ms = 0; ms < 5000 && !atomic_load(&sy.done); ms++) {
		upager_region_stats(r1, &st);
		if (st.eagain > eagain)
			break;
		t_sleep_ms(1);
	}
	vacate(&o);
	mover_join(&mv, "writeback_unread");
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	CHECK(sy.ret == 0, "writeback_unread: the sync: %s",
	      strerror(-sy.ret));
	for (size_t i = 0; i < 4; i++) {
		/* As written; the dropped page the store's, fetched again. */
		uint64_t want = i == 1 ? i : WSEED + i;

		CHECK(t_verify(w.img + i * PG, PG, want),
		      "writeback_unread: the store's page %zu holds %s", i,
		      what_is(w.img + i * PG));
		CHECK(t_verify(q + i * PG, PG, want),
		      "writeback_unread: page %zu of the moved region reads %s",
		      i, what_is(q + i * PG));
	}
	fprintf(stderr, "writeback_unread: ok\n");
	CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s", strerror(errno));
	CHECK_RET(upager_unmap(r1), 0);
	wbstore_free(&w);
	upager_handler_free(h);
}

/*
 * Part save_unread: a snapshot of the first region held as in part
 * snapshot's "a write's save" (the copier at its write of unit 0, a
 * write to unit 2 whose save is held at the fetch of its dropped page
 * 9), the handler's two other workers occupied.  Meanwhile the region
 * moves and the test's memory takes its place.  The save reads pages
 * 10-11 after the gate; its worker reads the pending event itself.  The
 * snapshot must succeed with unit 2 as it was at the instant; the write,
 * woken at the old address, meets the test's read-only memory.
 */
static void save_unread(enum upager_memtype type)
{
	struct upager_handler *h = t_upager_handler(3, count_error, NULL);
	struct snapcase c = { .part = "save_unread" };
	struct occupied o;
	struct mover mv;
	char *q;

	CHECK_RET(upager_handler_start(h), 0);
	q = mmap(NULL, NPAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	CHECK(q != MAP_FAILED, "mmap: %s", strerror(errno));
	snap_begin(&c, h, type, HOLD_WRITE, 0, NPAGES);
	occupy(&o, h, type, 2);
	move_and_replace(&mv, c.p1, q);
	atomic_store(&c.w.fetch_release, true);
	/* The save's worker reads the event: the move is over then. */
	mover_join(&mv, c.part);
	vacate(&o);
	writer_met_hole(&c.wr, c.part, c.name);
	snap_end(&c);
	CHECK(c.sn.ret == 0, "save_unread: the snapshot failed: %s",
	      strerror(-c.sn.ret));
	for (size_t i = 0; i < NPAGES; i++) {
		/* At the instant: as written, the dropped pages the store's. */
		uint64_t want = i == 1 || i == 9 ? i : WSEED + i;

		CHECK(t_verify(c.d.img + i * PG, PG, want),
		      "save_unread: the image's page %zu holds %s", i,
		      what_is(c.d.img + i * PG));
	}
	fprintf(stderr, "save_unread: ok\n");
	CHECK(munmap(c.p1, NPAGES * PG) == 0, "munmap: %s", strerror(errno));
	snap_free(&c, true);
	upager_handler_free(h);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_handler *h = t_upager_handler(2, count_error, NULL);

	CHECK_RET(upager_handler_start(h), 0);
	t_deadline(60, "unmap_inflight did not finish in 60 s");
	run(h, type, false);
	run(h, type, true);
	writeback(h, type);
	snapshot(h, type);
	snapshot_remap(h, type);
	writeback_unread(type);
	save_unread(type);
	fprintf(stderr, "%u errors told\n", atomic_load(&errors));
	t_deadline(0, NULL);
	upager_handler_free(h);
	return t_end();
}

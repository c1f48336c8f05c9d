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
 * image (see each part).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 16
#define ROUNDS 32
#define SEED2 (1ull << 24)
#define WSEED (1ull << 28)

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
	static char buf[64];

	for (uint64_t k = 0; k < NPAGES; k++) {
		if (t_verify(pg, PG, k))
			return "the first region's data";
		if (t_verify(pg, PG, SEED2 + k)) {
			snprintf(buf, sizeof(buf),
				 "the second region's page %llu's data",
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

	t1->delay_ms = 2;
	if (bad)
		t1->bad = 0;
	t2->seed = SEED2;
	for (int round = 0; round < ROUNDS; round++) {
		struct upager_region *r1, *r2;
		unsigned int f0 = atomic_load(&t1->fetches);
		struct toucher to;
		char *p1, *p2;

		p1 = upager_map(h, &t1->s, NPAGES * PG, &mp, &r1, &err);
		CHECK(p1, "map 1: %s", strerror(-err));
		toucher_start(&to, p1, sink);
		while (atomic_load(&t1->fetches) == f0)
			sched_yield();
		racy += atomic_load(&t1->busy) > 0;
		CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s",
		      strerror(errno));
		p2 = upager_map(h, &t2->s, NPAGES * PG, &mp, &r2, &err);
		CHECK(p2, "map 2: %s", strerror(-err));
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
};

static void *syncer(void *arg)
{
	struct syncer *sy = arg;

	sy->ret = upager_region_sync(sy->r, 0, NPAGES * PG);
	return NULL;
}

/*
 * Part writeback: the first region is write-tracked over a store that
 * takes write-backs; unit 0 (4 pages) is written, its page 1 dropped,
 * and a sync writes it back.  Its read of the unit fetches the dropped
 * page from the store (REFETCH), which holds that fetch at a gate:
 * meanwhile the program unmaps the region and maps the second there,
 * and touches all of it.  The pages the write-back reads after the gate
 * are the second region's: the first region's store must not get them.
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

	wbstore_init(&w, NPAGES);
	t2->seed = SEED2;
	p1 = upager_map(h, &w.s, NPAGES * PG, &mp1, &r1, &err);
	CHECK(p1, "writeback: map 1: %s", strerror(-err));
	for (size_t i = 0; i < 4; i++)
		t_fill(p1 + i * PG, PG, WSEED + i);
	CHECK(madvise(p1 + PG, PG, MADV_DONTNEED) == 0, "madvise: %s",
	      strerror(errno));
	atomic_store(&w.fetch_hold, true);
	sy.r = r1;
	CHECK(pthread_create(&th, NULL, syncer, &sy) == 0, "pthread_create");
	t_wait_set(&w.fetch_held, "the write-back's fetch of the dropped page");
	CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s", strerror(errno));
	p2 = upager_map(h, &t2->s, NPAGES * PG, &mp2, &r2, &err);
	CHECK(p2, "writeback: map 2: %s", strerror(-err));
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
		      i, what_is(pg), p2 == p1 ? " (the second region there)"
					       : "");
	}
	fprintf(stderr, "writeback: sync %s; the second region %s\n",
		sy.ret ? strerror(-sy.ret) : "ok",
		p2 == p1 ? "where the first was" : "elsewhere");
	CHECK_RET(upager_unmap(r2), 0);
	upager_unmap(r1);
	wbstore_free(&w);
	upager_store_close(&t2->s);
	return p2 == p1;
}

/* Until the kernel places the second region where the first was. */
static void writeback(struct upager_handler *h, enum upager_memtype type)
{
	int tries = 0;

	while (!writeback_once(h, type)) {
		if (++tries < 8)
			continue;
		if (sanitized()) {
			t_not_checked("writeback: the second region went "
				      "elsewhere %d times", tries);
			return;
		}
		FAIL("writeback: the second region went elsewhere %d times",
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
 * Part snapshot: a snapshot of the first region (write-tracked, units of
 * 4 pages) into a store whose pages are zeros at first.  Unit @u is
 * written and its second page dropped, so that the snapshot's read of
 * it fetches that page from the region's store (REFETCH), which holds
 * the fetch at a gate (@how: the copier's read, or the save of the unit
 * before a write to it after the instant, while the copier waits in the
 * destination's write of unit 0); or no read is held, and the copier
 * waits there (HOLD_AFTER).  Meanwhile the program unmaps the region and
 * moves the second region, mapped and touched before, to the same
 * address: a new mapping's placement is the kernel's, which may put
 * upager's own bookkeeping of it there (eight rounds in a row, in one
 * run of twenty), while a mremap() onto a placeholder is certain.  The snapshot must hold
 * every page of the first region as it was at the instant, or fail
 * -ENOENT (a unit it had to copy was unmapped); never the second
 * region's data.  False if the placeholder found the range taken.
 */
static bool snapshot_once(struct upager_handler *h, enum upager_memtype type,
			  enum snap_hold how)
{
	struct upager_map_params mp1 = map_params(type, true);
	struct upager_map_params mp2 = map_params(type, false);
	const char *name = snap_holds[how];
	size_t u = how == HOLD_WRITE ? 2 : 0;
	struct tstore *t2 = tstore_open(NPAGES);
	struct writer wr = { .fd = -1 };
	struct upager_region *r1, *r2;
	struct wbstore w, d;
	struct snapper sn;
	char *p1, *p2, *at;
	pthread_t th;
	int err;

	wbstore_init(&w, NPAGES);
	wbstore_init(&d, NPAGES);
	memset(d.img, 0, NPAGES * PG);
	t2->seed = SEED2;
	p1 = upager_map(h, &w.s, NPAGES * PG, &mp1, &r1, &err);
	CHECK(p1, "snapshot, %s: map 1: %s", name, strerror(-err));
	p2 = upager_map(h, &t2->s, NPAGES * PG, &mp2, &r2, &err);
	CHECK(p2, "snapshot, %s: map 2: %s", name, strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p2 + i * PG, PG, SEED2 + i),
		      "snapshot, %s: page %zu of the second region reads %s",
		      name, i, what_is(p2 + i * PG));
	for (size_t i = 4 * u; i < 4 * u + 4; i++)
		t_fill(p1 + i * PG, PG, WSEED + i);
	CHECK(madvise(p1 + (4 * u + 1) * PG, PG, MADV_DONTNEED) == 0,
	      "madvise: %s", strerror(errno));
	sn.r = r1;
	sn.dst = &d.s;
	if (how == HOLD_COPIER)
		atomic_store(&w.fetch_hold, true);
	else
		atomic_store(&d.hold, true);
	CHECK(pthread_create(&th, NULL, snapper, &sn) == 0, "pthread_create");
	if (how != HOLD_COPIER)
		t_wait_set(&d.held, "the snapshot's write of unit 0");
	if (how == HOLD_WRITE) {
		atomic_store(&w.fetch_hold, true);
		wr.p = p1 + 4 * u * PG;
		wr.fd = t_tmp_unlinked(PG);
		CHECK(pthread_create(&wr.t, NULL, writer_main, &wr) == 0,
		      "pthread_create");
	}
	if (how != HOLD_AFTER)
		t_wait_set(&w.fetch_held,
			   "the snapshot's fetch of the dropped page");
	CHECK(munmap(p1, NPAGES * PG) == 0, "munmap: %s", strerror(errno));
	if (how == HOLD_WRITE) {
		/* Woken by the UNMAP, it meets the hole. */
		for (int ms = 0; ms < 5000 && !atomic_load(&wr.done); ms++)
			t_sleep_ms(1);
		CHECK(atomic_load(&wr.done),
		      "snapshot, %s: the write never ended", name);
		CHECK(pthread_join(wr.t, NULL) == 0, "pthread_join");
		CHECK(wr.ret < 0 && wr.err == EFAULT,
		      "snapshot, %s: the write returned %zd (%s)", name,
		      wr.ret, strerror(wr.err));
		close(wr.fd);
	}
	at = mmap(p1, NPAGES * PG, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (at == p1) {
		CHECK(mremap(p2, NPAGES * PG, NPAGES * PG,
			     MREMAP_MAYMOVE | MREMAP_FIXED, p1) == p1,
		      "mremap: %s", strerror(errno));
		for (size_t i = 0; i < NPAGES; i++)
			CHECK(t_verify(p1 + i * PG, PG, SEED2 + i),
			      "snapshot, %s: page %zu of the second region, "
			      "moved, reads %s",
			      name, i, what_is(p1 + i * PG));
	} else if (at != MAP_FAILED) {
		munmap(at, NPAGES * PG);
	}
	atomic_store(&w.fetch_release, true);
	atomic_store(&d.release, true);
	CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	/* First, as the worse: failed or not, never the second's data. */
	for (size_t i = 0; i < NPAGES; i++)
		for (uint64_t k = 0; k < NPAGES; k++)
			CHECK(!t_verify(d.img + i * PG, PG, SEED2 + k),
			      "snapshot, %s: the image's page %zu holds %s "
			      "(the snapshot: %s)",
			      name, i, what_is(d.img + i * PG),
			      sn.ret ? strerror(-sn.ret) : "ok");
	for (size_t i = 0; i < NPAGES; i++) {
		const char *pg = d.img + i * PG;
		/* At the instant: unit @u as written, its dropped page the
		 * store's, as is every other page. */
		uint64_t want = i / 4 == u && i % 4 != 1 ? WSEED + i : i;

		CHECK(sn.ret || t_verify(pg, PG, want),
		      "snapshot, %s: the image's page %zu holds %s, and the "
		      "snapshot succeeded",
		      name, i, what_is(pg));
	}
	CHECK(sn.ret == 0 || sn.ret == -ENOENT,
	      "snapshot, %s: failed with %s, not ENOENT", name,
	      strerror(-sn.ret));
	fprintf(stderr, "snapshot, %s: %s%s\n", name,
		sn.ret ? strerror(-sn.ret) : "ok",
		at == p1 ? "" : "; the range was taken, the second region "
				"stayed where it was");
	CHECK_RET(upager_unmap(r2), 0);
	upager_unmap(r1);
	wbstore_free(&w);
	wbstore_free(&d);
	upager_store_close(&t2->s);
	return at == p1;
}

/* Each hold, until the placeholder finds the range free. */
static void snapshot(struct upager_handler *h, enum upager_memtype type)
{
	for (enum snap_hold how = HOLD_COPIER; how <= HOLD_AFTER; how++) {
		int tries = 0;

		while (!snapshot_once(h, type, how)) {
			if (++tries < 8)
				continue;
			if (sanitized()) {
				t_not_checked("snapshot, %s: the first region's "
					      "range was taken %d times",
					      snap_holds[how], tries);
				break;
			}
			FAIL("snapshot, %s: the first region's range was "
			     "taken %d times", snap_holds[how], tries);
		}
	}
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
	fprintf(stderr, "%u errors told\n", atomic_load(&errors));
	t_deadline(0, NULL);
	upager_handler_free(h);
	return t_end();
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Eviction's drop into the sink (evict.c) when the kernel will not move
 * all of a unit: a page of it is pinned (an io_uring registered buffer
 * holds it, as a program's own I/O would), so UFFDIO_MOVE moves the pages
 * before it, answers -EAGAIN with their count, then -EBUSY for the pinned
 * page.
 *
 * partial  the unit of 16 pages whose page 8 is pinned is evicted among
 *          others, written all the while: every page then reads back
 *          what was written last (REMOVE_ZERO: a unit left resident
 *          without its first pages would read zeros), and no drop meets
 *          a sink slot left full (-EEXIST); clean, it is tried again,
 *          and a write to it after reaches the store.
 * tell     a store whose write-back fails every other call, and a unit
 *          whose only page is pinned (its drop always fails): each kind
 *          of failure is told at most once a second, naming its step,
 *          with the count of those not told; after the unmap the lines
 *          account for every failed write-back.
 * protect  the pages put back are write-protected at once: after a sync
 *          (clean) and further put-backs, one write to the unit reaches
 *          the store at the unmap (a page put back writable would take
 *          the write without a fault: clean, never written back).
 * again    a dirty unit whose only page is pinned is written back once:
 *          then it is clean, and the drops that keep failing do not
 *          write it back again each pass.
 * dropped  the program drops the pinned unit in a loop while evictions
 *          write it back and try it: every page reads zeros after each
 *          drop (REMOVE_ZERO), never what the drop took away.
 * absent   the put-back cannot start (no descriptor for pagemap): the
 *          unit goes with its pages from the pinned one on left in
 *          place, protected; a write to one of them goes through, makes
 *          the unit dirty and reaches the store.
 * zap      program threads drop units (whole, or two pages of four) and
 *          read them back, in a loop, while the evictors keep the
 *          region at its small budget: a dropped page reads what the
 *          REMOVE policy says (ZERO, then REFETCH), the others what was
 *          written, and no thread hangs (an evictor's UFFDIO_MOVE beside
 *          the program's zap spins in the kernel for ever:
 *          tests/move_zap).
 *
 * anon only (shmem units go with a punched hole, not through the sink).
 */
#include <linux/io_uring.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096

/* Pin the page at @p for as long as the returned fd is open. */
static int pin_page(void *p)
{
	struct io_uring_params prm = {0};
	struct iovec iov = {p, PG};
	int fd = (int)syscall(__NR_io_uring_setup, 4, &prm), err;

	if (fd < 0)
		SKIP("io_uring_setup: %s", strerror(errno));
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, &iov,
		    1) < 0) {
		err = errno;
		close(fd);
		SKIP("IORING_REGISTER_BUFFERS: %s", strerror(err));
	}
	return fd;
}

/* What on_error was told, line by line. */
struct told {
	atomic_uint lines, eexist;
	atomic_uint wb_lines, drop_lines, other_lines;
	atomic_ulong wb_count, drop_count; /* the failures the lines count */
	atomic_int drop_err;
};

static void on_told(void *arg, struct upager_region *r, uint64_t addr, int err,
		    const char *what)
{
	struct told *t = arg;
	/* "(and N more since)": N besides this one; "(N more ...)": N. */
	const char *more = strchr(what, '(');
	unsigned long n = 1;

	if (more && !strncmp(more, "(and ", 5))
		n += strtoul(more + 5, NULL, 10);
	else if (more)
		n = strtoul(more + 1, NULL, 10);

	(void)r;
	(void)addr;
	atomic_fetch_add(&t->lines, 1);
	if (err == -EEXIST)
		atomic_fetch_add(&t->eexist, 1);
	if (strstr(what, "write-back")) {
		atomic_fetch_add(&t->wb_lines, 1);
		atomic_fetch_add(&t->wb_count, n);
	} else if (strstr(what, "drop")) {
		atomic_fetch_add(&t->drop_lines, 1);
		atomic_fetch_add(&t->drop_count, n);
		atomic_store(&t->drop_err, err);
	} else {
		atomic_fetch_add(&t->other_lines, 1);
	}
	fprintf(stderr, "told: %s: %s\n", what, strerrorname_np(-err));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Write a stamp into every page of units [u, u+n), and into @model. */
static void stamp(char *p, char *model, size_t fill, size_t u, size_t n,
		  uint64_t gen)
{
	for (size_t off = u * fill; off < (u + n) * fill; off += PG) {
		uint64_t v = (gen << 32) | (off / PG);

		memcpy(p + off, &v, sizeof(v));
		memcpy(model + off, &v, sizeof(v));
	}
}

/* A region of units of @fill under a budget of @budget units. */
static struct upager_map_params params(enum upager_memtype type, size_t fill,
				       size_t budget,
				       enum upager_remove_policy remove)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .memtype = type,
				       .fill = fill,
				       .budget = budget * fill,
				       .remove = remove,
				       .readahead_max = (size_t)-1,
				       .fault_around = (size_t)-1};

	return mp;
}

/* @w over @len bytes, mapped with @mp and served; *@model its copy. */
static char *map_wb(struct upager_handler *h, struct wbstore *w, size_t len,
		    const struct upager_map_params *mp,
		    struct upager_region **r, char **model)
{
	char *p;
	int err;

	wbstore_init(w, len / PG);
	*model = malloc(len);
	CHECK(*model, "malloc");
	memcpy(*model, w->img, len);
	p = upager_map(h, &w->s, len, mp, r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("budgets need UFFD_FEATURE_MOVE and write protection");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	return p;
}

static void partial(enum upager_memtype type)
{
	const size_t fill = 16 * PG, units = 64, len = units * fill;
	struct upager_map_params mp =
	    params(type, fill, 16, UPAGER_REMOVE_ZERO);
	struct told told = {0};
	struct upager_handler *h = t_upager_handler(2, on_told, &told);
	struct upager_stats st;
	struct upager_store *s;
	struct upager_region *r;
	char *p, *img, *model;
	int err, pin;

	s = upager_store_mem_new(len, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(s);
	model = malloc(len);
	CHECK(model, "malloc");
	for (size_t i = 0; i < len / PG; i++)
		t_fill(img + i * PG, PG, i + 1);
	memcpy(model, img, len);
	p = upager_map(h, s, len, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("budgets need UFFD_FEATURE_MOVE and write protection");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	stamp(p, model, fill, 0, 1, 1);
	pin = pin_page(p + 8 * PG);
	/* Four times the budget, three times over: unit 0 goes, or tries. */
	for (uint64_t gen = 2; gen < 5; gen++)
		stamp(p, model, fill, 1, units - 1, gen);
	for (int i = 0; i < 2000 && upager_region_present(r, 0); i++)
		t_sleep_ms(1);
	upager_region_stats(r, &st);
	for (size_t i = 0; i < len / PG; i++)
		CHECK(!memcmp(p + i * PG, model + i * PG, PG),
		      "page %zu (unit %zu) reads %#llx, not what was written "
		      "(%llu pages evicted, %u lines told, %u with EEXIST)",
		      i, i * PG / fill,
		      (unsigned long long)*(uint64_t *)(p + i * PG),
		      (unsigned long long)st.pages_evicted,
		      atomic_load(&told.lines), atomic_load(&told.eexist));
	CHECK(!atomic_load(&told.eexist),
	      "%u drops met a sink slot left full (EEXIST)",
	      atomic_load(&told.eexist));
	/*
	 * Clean now, unit 0 is tried again: the pages put back must be
	 * protected again, or the write after goes unseen and never
	 * reaches the store.
	 */
	CHECK_RET(upager_region_sync(r, 0, len), 0);
	for (uint64_t gen = 5; gen < 8; gen++)
		stamp(p, model, fill, 1, units - 1, gen);
	stamp(p, model, PG, 0, 1, 8); /* its first page alone */
	close(pin);
	CHECK_RET(upager_unmap(r), 0);
	CHECK(!memcmp(img, model, len), "the store after the unmap");
	upager_handler_free(h);
	upager_store_close(s);
	free(model);
}

static void tell(enum upager_memtype type)
{
	const size_t units = 256, len = units * PG;
	struct upager_map_params mp =
	    params(type, PG, 64, UPAGER_REMOVE_REFETCH);
	struct told told = {0};
	struct upager_handler *h = t_upager_handler(2, on_told, &told);
	struct wbstore w;
	struct upager_region *r;
	unsigned int failed;
	double t0, secs;
	uint64_t gen = 1;
	char *p, *model;
	int pin;

	p = map_wb(h, &w, len, &mp, &r, &model);
	atomic_store(&w.fail_every, 2);
	stamp(p, model, PG, 3, 1, gen);
	pin = pin_page(p + 3 * PG);
	t0 = now_s();
	do
		stamp(p, model, PG, 0, units, ++gen);
	while (now_s() - t0 < 2.5);
	atomic_store(&w.fail_every, 0);
	for (size_t i = 0; i < units; i++)
		CHECK(!memcmp(p + i * PG, model + i * PG, PG),
		      "page %zu reads %#llx, not what was written", i,
		      (unsigned long long)*(uint64_t *)(p + i * PG));
	close(pin);
	CHECK_RET(upager_unmap(r), 0);
	/* Up to the last line: failures in flight are told after the loop. */
	secs = now_s() - t0;
	failed = atomic_load(&w.failed);
	printf("%.1f s: %u write-backs failed, told in %u lines (counting "
	       "%lu); %lu drops failed, told in %u lines\n",
	       secs, failed, atomic_load(&told.wb_lines),
	       atomic_load(&told.wb_count), atomic_load(&told.drop_count),
	       atomic_load(&told.drop_lines));
	CHECK(failed > 10, "only %u write-backs failed: no steady failure",
	      failed);
	/* One a second, and one at the unmap for those not told yet. */
	CHECK(atomic_load(&told.wb_lines) <= (unsigned int)secs + 2,
	      "%u lines for %u failed write-backs in %.1f s",
	      atomic_load(&told.wb_lines), failed, secs);
	CHECK(atomic_load(&told.wb_count) == failed,
	      "the lines count %lu failed write-backs, the store %u",
	      atomic_load(&told.wb_count), failed);
	CHECK(atomic_load(&told.drop_lines) >= 1 &&
		  atomic_load(&told.drop_lines) <= (unsigned int)secs + 2,
	      "%u lines for the failed drops in %.1f s",
	      atomic_load(&told.drop_lines), secs);
	CHECK(atomic_load(&told.drop_err) == -EBUSY,
	      "the drop's failure told as %s, not EBUSY",
	      strerrorname_np(-atomic_load(&told.drop_err)));
	CHECK(!atomic_load(&told.other_lines), "%u other lines",
	      atomic_load(&told.other_lines));
	upager_handler_free(h);
	upager_store_close(&w.s);
	wbstore_free(&w);
	free(model);
}

/* Read every page of [from, to) units of @fill until *@stop. */
struct churn {
	char *p;
	size_t fill, from, to;
	atomic_bool stop;
	atomic_ulong rounds;
};

static void *churn_loop(void *arg)
{
	struct churn *c = arg;
	volatile char sum = 0;

	while (!atomic_load(&c->stop)) {
		for (size_t off = c->from * c->fill; off < c->to * c->fill;
		     off += PG)
			sum = (char)(sum + c->p[off]);
		atomic_fetch_add(&c->rounds, 1);
	}
	return NULL;
}

/*
 * A unit whose page @pin of @fill is pinned, among @units of which the
 * others are read over and over (evictions then try it again and again).
 */
struct pinned {
	struct told told;
	struct upager_handler *h;
	struct upager_region *r;
	struct wbstore w;
	struct churn c;
	pthread_t t;
	size_t len;
	char *p, *model;
	int pin;
};

static void pinned_start(struct pinned *x, enum upager_memtype type,
			 size_t fill, size_t units, size_t budget,
			 enum upager_remove_policy remove, size_t pin)
{
	struct upager_map_params mp = params(type, fill, budget, remove);

	x->len = units * fill;
	x->h = t_upager_handler(2, on_told, &x->told);
	x->p = map_wb(x->h, &x->w, x->len, &mp, &x->r, &x->model);
	stamp(x->p, x->model, fill, pin * PG / fill, 1, 1);
	x->pin = pin_page(x->p + pin * PG);
	x->c = (struct churn){.p = x->p, .fill = fill, .to = units};
	x->c.from = pin * PG / fill + 1;
	CHECK(!pthread_create(&x->t, NULL, churn_loop, &x->c),
	      "pthread_create");
}

/* Until the drops that failed were told in @lines lines (one a second). */
static void pinned_wait(struct pinned *x, unsigned int lines)
{
	for (int i = 0; i < 10000 && atomic_load(&x->told.drop_lines) < lines;
	     i++)
		t_sleep_ms(1);
	CHECK(atomic_load(&x->told.drop_lines) >= lines,
	      "the pinned unit was tried in %u lines, not %u",
	      atomic_load(&x->told.drop_lines), lines);
}

static void pinned_end(struct pinned *x)
{
	atomic_store(&x->c.stop, true);
	pthread_join(x->t, NULL);
	close(x->pin);
	CHECK_RET(upager_unmap(x->r), 0);
	upager_handler_free(x->h);
	upager_store_close(&x->w.s);
}

static void protect(enum upager_memtype type)
{
	struct pinned x = {0};

	pinned_start(&x, type, 16 * PG, 64, 16, UPAGER_REMOVE_ZERO, 8);
	/* Tried and put back (told at once), clean, then put back again. */
	pinned_wait(&x, 1);
	CHECK_RET(upager_region_sync(x.r, 0, x.len), 0);
	pinned_wait(&x, 2);
	stamp(x.p, x.model, PG, 0, 1, 2); /* its first page, put back */
	pinned_end(&x);
	CHECK(!memcmp(x.w.img, x.model, x.len),
	      "page 0 in the store holds %#llx, not the write after the "
	      "put-back",
	      (unsigned long long)*(uint64_t *)x.w.img);
	wbstore_free(&x.w);
	free(x.model);
}

static void again(enum upager_memtype type)
{
	struct pinned x = {0};

	pinned_start(&x, type, PG, 256, 64, UPAGER_REMOVE_REFETCH, 3);
	pinned_wait(&x, 2);
	CHECK(atomic_load(&x.w.wrote) == 1,
	      "the unit written once was written back %u times",
	      atomic_load(&x.w.wrote));
	pinned_end(&x);
	CHECK(!memcmp(x.w.img, x.model, x.len), "the store after the unmap");
	wbstore_free(&x.w);
	free(x.model);
}

/*
 * dropped: the program drops (MADV_DONTNEED) the unit whose page 8 is
 * pinned, again and again while evictions try it: it must read zeros
 * after each drop (REMOVE_ZERO), never data the drop took away.
 */
static void dropped(enum upager_memtype type)
{
	const size_t fill = 16 * PG, len = 64 * fill;
	struct upager_map_params mp = params(type, fill, 4, UPAGER_REMOVE_ZERO);
	struct told told = {0};
	struct upager_handler *h = t_upager_handler(2, on_told, &told);
	struct churn c = {.fill = fill, .from = 1, .to = 8};
	static const char zero[PG];
	struct upager_region *r;
	unsigned long drops = 0;
	struct wbstore w;
	char *p, *model;
	pthread_t t;
	double t0;

	p = map_wb(h, &w, len, &mp, &r, &model);
	c.p = p;
	CHECK(!pthread_create(&t, NULL, churn_loop, &c), "pthread_create");
	t0 = now_s();
	do {
		int pin;

		stamp(p, model, fill, 0, 1, ++drops);
		pin = pin_page(p + 8 * PG);
		CHECK(!madvise(p, fill, MADV_DONTNEED), "madvise: %s",
		      strerror(errno));
		for (size_t i = 0; i < fill / PG; i++)
			CHECK(!memcmp(p + i * PG, zero, PG),
			      "drop %lu: page %zu reads %#llx after the "
			      "program dropped it, not zeros",
			      drops, i,
			      (unsigned long long)*(uint64_t *)(p + i * PG));
		close(pin);
	} while (now_s() - t0 < 2.0);
	atomic_store(&c.stop, true);
	pthread_join(t, NULL);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&w.s);
	wbstore_free(&w);
	free(model);
}

/* Write @v into the page at @p, then say so. */
struct writer {
	char *p;
	uint64_t v;
	atomic_bool done;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;

	memcpy(wr->p, &wr->v, sizeof(wr->v));
	atomic_store(&wr->done, true);
	return NULL;
}

/*
 * absent: the put-back fails (the evictor cannot open /proc/self/pagemap:
 * the process is out of descriptors), so the unit whose page 8 is pinned
 * goes, and its pages from 8 on stay, write-protected, in a unit that is
 * not resident.  A write to one of them must go through, reach the store
 * at the unmap, and not come back as a write-protect fault for ever.
 */
static void absent(enum upager_memtype type)
{
	struct pinned x = {0};
	struct rlimit rl, was;
	struct writer wr;
	pthread_t t;
	int fds[1024], nfds = 0, fd;
	bool gone = false;

	pinned_start(&x, type, 16 * PG, 64, 16, UPAGER_REMOVE_REFETCH, 8);
	pinned_wait(&x, 1);
	CHECK(!getrlimit(RLIMIT_NOFILE, &rl), "getrlimit");
	was = rl;
	if (rl.rlim_cur > 1024) {
		rl.rlim_cur = 1024;
		CHECK(!setrlimit(RLIMIT_NOFILE, &rl), "setrlimit");
	}
	while (nfds < 1024 && (fd = dup(x.pin)) >= 0)
		fds[nfds++] = fd;
	CHECK(errno == EMFILE, "dup: %s", strerror(errno));
	/*
	 * Out 50 ms in a row: gone, not held a while by an evictor.  A
	 * descriptor the engine closes meanwhile (its pagemap, open as the
	 * loop above ran) is taken too, or the next put-back could start.
	 */
	for (int i = 0, out = 0; i < 5000 && !(gone = out >= 50); i++) {
		while (nfds < 1024 && (fd = dup(x.pin)) >= 0)
			fds[nfds++] = fd;
		out = upager_region_present(x.r, 0) ? 0 : out + 1;
		t_sleep_ms(1);
	}
	while (nfds)
		close(fds[--nfds]);
	CHECK(!setrlimit(RLIMIT_NOFILE, &was), "setrlimit");
	CHECK(gone, "the unit whose put-back cannot start stayed resident");
	atomic_store(&x.c.stop, true);
	pthread_join(x.t, NULL);
	x.c.stop = false;
	wr = (struct writer){.p = x.p + 9 * PG, .v = 0xab5e47};
	memcpy(x.model + 9 * PG, &wr.v, sizeof(wr.v));
	CHECK(!pthread_create(&t, NULL, writer_main, &wr), "pthread_create");
	for (int i = 0; i < 3000 && !atomic_load(&wr.done); i++)
		t_sleep_ms(1);
	CHECK(atomic_load(&wr.done),
	      "a write to a protected page of a unit not resident never "
	      "went through");
	pthread_join(t, NULL);
	CHECK(upager_region_dirty(x.r, 0), "the unit written is not dirty");
	CHECK(!pthread_create(&x.t, NULL, churn_loop, &x.c), "pthread_create");
	pinned_end(&x);
	CHECK(!memcmp(x.w.img, x.model, x.len), "the store after the unmap");
	wbstore_free(&x.w);
	free(x.model);
}

/*
 * One program thread of zap: units [from, from+n) of @p, its own, each
 * page of them what @want says it holds, dropped whole or (@part) their
 * middle pages, which then read zeros (@zeros) or the store's data.
 */
struct zapper {
	char *p;
	size_t fill, from, n;
	bool part, zeros;
	double until;
	unsigned long drops;
	uint64_t want[8][4];
};

static void *zap_loop(void *arg)
{
	struct zapper *z = arg;
	const size_t np = z->fill / PG;
	const size_t lo = z->part ? 1 : 0, hi = z->part ? np - 1 : np;

	while (now_s() < z->until) {
		size_t k = z->drops % z->n, u = z->from + k;
		char *at = z->p + u * z->fill;

		CHECK(!madvise(at + lo * PG, (hi - lo) * PG, MADV_DONTNEED),
		      "madvise: %s", strerror(errno));
		for (size_t i = lo; i < hi && z->zeros; i++)
			z->want[k][i] = 0;
		z->drops++;
		for (size_t i = 0; i < np; i++) {
			uint64_t v;

			memcpy(&v, at + i * PG, sizeof(v));
			CHECK(v == z->want[k][i],
			      "unit %zu page %zu reads %#llx, not %#llx, after "
			      "its pages [%zu, %zu) were dropped",
			      u, i, (unsigned long long)v,
			      (unsigned long long)z->want[k][i], lo, hi);
		}
	}
	return NULL;
}

/*
 * zap: two program threads drop units in a loop, one whole, one their
 * middle pages (tracked: the unit stays), and read them back, while a
 * third reads the rest of the region, so that the evictors hold the
 * dropped units again and again; under @remove.  The units are clean
 * (written, then synced): what they read comes from the store or the
 * REMOVE policy, and no write-back meets a drop.
 */
static void zap_run(enum upager_memtype type, enum upager_remove_policy remove)
{
	const size_t fill = 4 * PG, units = 64, len = units * fill;
	struct upager_map_params mp = params(type, fill, 8, remove);
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct churn c = {.fill = fill, .from = 16, .to = units};
	struct zapper z[2];
	struct upager_region *r;
	struct upager_stats st;
	pthread_t t, tz[2];
	struct wbstore w;
	char *p, *model;

	p = map_wb(h, &w, len, &mp, &r, &model);
	c.p = p;
	for (int i = 0; i < 2; i++) {
		z[i] = (struct zapper){.p = p, .fill = fill, .from = 8 * i,
				       .n = 8, .part = i,
				       .zeros = remove == UPAGER_REMOVE_ZERO};
		stamp(p, model, fill, z[i].from, z[i].n, 1);
		for (size_t k = 0; k < z[i].n; k++)
			for (size_t j = 0; j < fill / PG; j++)
				memcpy(&z[i].want[k][j],
				       model + (z[i].from + k) * fill + j * PG,
				       sizeof(uint64_t));
	}
	CHECK_RET(upager_region_sync(r, 0, len), 0);
	CHECK(!pthread_create(&t, NULL, churn_loop, &c), "pthread_create");
	for (int i = 0; i < 2; i++) {
		z[i].until = now_s() + 2.0;
		CHECK(!pthread_create(&tz[i], NULL, zap_loop, &z[i]),
		      "pthread_create");
	}
	for (int i = 0; i < 2; i++)
		pthread_join(tz[i], NULL);
	atomic_store(&c.stop, true);
	pthread_join(t, NULL);
	upager_region_stats(r, &st);
	printf("zap %s: %lu drops whole, %lu in part, %llu pages evicted\n",
	       remove == UPAGER_REMOVE_ZERO ? "ZERO" : "REFETCH", z[0].drops,
	       z[1].drops, (unsigned long long)st.pages_evicted);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&w.s);
	wbstore_free(&w);
	free(model);
}

static void zap(enum upager_memtype type)
{
	t_deadline(30, "zap: a thread hangs (an evictor's move beside the "
		       "program's zap?)");
	zap_run(type, UPAGER_REMOVE_ZERO);
	zap_run(type, UPAGER_REMOVE_REFETCH);
	t_deadline(0, NULL);
}

int main(int argc, char **argv)
{
	static const struct t_part parts[] = {
	    {"partial", partial},
	    {"tell", tell},
	    {"protect", protect},
	    {"again", again},
	    {"dropped", dropped},
	    {"absent", absent},
	    {"zap", zap},
	    {NULL, NULL},
	};

	if (t_upager_memtype(argc, argv, false) != UPAGER_MEM_ANON)
		SKIP("anon only: shmem units do not go through the sink");
	return t_parts(argc, argv, parts);
}

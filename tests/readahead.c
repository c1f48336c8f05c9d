// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Read-ahead policy on an anon region of 4 KiB units, one reader thread
 * and one worker, so every count below is deterministic:
 *
 * - a sequential scan doubles the window up to readahead_max (1 MiB by
 *   default): a dozen faults fill all 1024 pages, none of the read-ahead
 *   is wasted and all of it but the last window is used;
 * - two sequential streams interleaved are both followed;
 * - a random access pattern (a random half of the pages, each touched
 *   once) gets no read-ahead worth the name, so it pays for none: one
 *   fault per page touched, nothing filled that was not asked for;
 * - a stream left in the middle of its read-ahead wastes what it left,
 *   and ra_wasted says so;
 * - readahead_max bounds the window: a scan takes at least
 *   pages / (readahead_max / 4 KiB) faults, and not many more;
 * - a confirmed stream is read beyond its window (the next window is
 *   filled while the current one is read), but no further;
 * - fault-around (on by default over the mem store): a random fault
 *   fills the aligned 64 KiB around it in the background, so random
 *   reads mostly find their page present; a sequential scan that starts
 *   with a fault-around block continues as a stream past it.
 */
#include <unistd.h>

#include <upager/upager.h>

#include "harness.h"

#define PG 4096
#define NPAGES 1024

struct scan {
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	char *p;
};

/* Fault-around off, unless @fa: these counts are read-ahead's alone. */
static void scan_open_fa(struct scan *sc, size_t ra, size_t fa)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 1 };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = ra,
					.fault_around = fa ? fa : (size_t)-1 };
	char *img;
	int err;

	sc->h = upager_handler_new(&hp, &err);
	CHECK(sc->h, "handler: %s", strerror(-err));
	sc->s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(sc->s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(sc->s);
	for (size_t i = 0; i < NPAGES; i++)
		t_fill(img + i * PG, PG, i);
	sc->p = upager_map(sc->h, sc->s, NPAGES * PG, &mp, &sc->r, &err);
	CHECK(sc->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(sc->h), 0);
}

static void scan_open(struct scan *sc, size_t ra)
{
	scan_open_fa(sc, ra, 0);
}

static void touch(struct scan *sc, size_t i)
{
	CHECK(t_verify(sc->p + i * PG, PG, i), "page %zu", i);
}

/*
 * Faults that filled their page.  Read-ahead runs in the background, so
 * a reader can fault on a page a job is filling (faults_dup), or fault
 * just before a job's install and have its message read after it (the
 * refill then finds the page present: eexist); neither fills anything.
 */
static uint64_t fills(const struct upager_stats *st)
{
	return st->faults - st->faults_dup - st->eexist;
}

/* Stop the worker (it counts after the wake), then read the counts. */
static void scan_close(struct scan *sc, struct upager_stats *st,
		       const char *what)
{
	CHECK_RET(upager_handler_stop(sc->h), 0);
	upager_region_stats(sc->r, st);
	fprintf(stderr,
		"%s: %llu faults, %llu filled, ra %llu (used %llu, wasted "
		"%llu)\n",
		what, (unsigned long long)st->faults,
		(unsigned long long)st->pages_filled,
		(unsigned long long)st->ra_pages,
		(unsigned long long)st->ra_used,
		(unsigned long long)st->ra_wasted);
	CHECK(st->store_errors == 0, "%s: %llu store errors", what,
	      (unsigned long long)st->store_errors);
	/* Every page is filled once: by a fault or by read-ahead. */
	CHECK(st->pages_filled == fills(st) + st->ra_pages,
	      "%s: %llu filled != %llu filling faults + %llu read ahead", what,
	      (unsigned long long)st->pages_filled,
	      (unsigned long long)fills(st),
	      (unsigned long long)st->ra_pages);
	CHECK_RET(upager_unmap(sc->r), 0);
	upager_handler_free(sc->h);
	upager_store_close(sc->s);
}

static void sequential(void)
{
	struct upager_stats st;
	struct scan sc;

	scan_open(&sc, 0);
	for (size_t i = 0; i < NPAGES; i++)
		touch(&sc, i);
	scan_close(&sc, &st, "sequential");
	/* Windows 1, 2, 4 .. 256: 9 faults for 511 pages, then 256 each. */
	CHECK(st.pages_filled == NPAGES && fills(&st) <= 16,
	      "%llu faults to fill %llu pages",
	      (unsigned long long)fills(&st),
	      (unsigned long long)st.pages_filled);
	CHECK(st.ra_wasted == 0, "ra_wasted %llu",
	      (unsigned long long)st.ra_wasted);
	CHECK(st.ra_used + 256 >= st.ra_pages && st.ra_used <= st.ra_pages,
	      "ra_used %llu of %llu", (unsigned long long)st.ra_used,
	      (unsigned long long)st.ra_pages);
}

static void interleaved(void)
{
	struct upager_stats st;
	struct scan sc;

	scan_open(&sc, 0);
	for (size_t i = 0; i < NPAGES / 2; i++) {
		touch(&sc, i);
		touch(&sc, NPAGES / 2 + i);
	}
	scan_close(&sc, &st, "interleaved");
	CHECK(st.pages_filled == NPAGES && fills(&st) <= 32,
	      "%llu faults for two streams", (unsigned long long)fills(&st));
}

static void random_half(void)
{
	size_t order[NPAGES], touched = NPAGES / 2;
	struct upager_stats st;
	struct scan sc;

	t_shuffle(order, NPAGES, 0);
	scan_open(&sc, 0);
	for (size_t i = 0; i < touched; i++)
		touch(&sc, order[i]);
	scan_close(&sc, &st, "random");
	/*
	 * A random index can meet a stream's next unit, rarely; a page read
	 * ahead that a later access hits out of order saves its fault but
	 * counts as wasted (the stream it belonged to was broken).
	 */
	CHECK(st.ra_pages <= 4, "%llu pages read ahead for random access",
	      (unsigned long long)st.ra_pages);
	CHECK(fills(&st) + st.ra_pages >= touched && fills(&st) <= touched,
	      "%llu faults for %zu pages touched",
	      (unsigned long long)fills(&st), touched);
}

/*
 * A stream left in the middle of its read-ahead: what it read ahead and
 * no access reached is wasted, and counted so once random faults
 * elsewhere have pushed the stream out (each one starts a stream of its
 * own).  ra_wasted must rise here, or a read-ahead that reads too far
 * would look free.
 */
static void abandoned(void)
{
	size_t order[64], stop = 200;
	struct upager_stats st;
	struct scan sc;

	scan_open(&sc, 0);
	for (size_t i = 0; i < stop; i++)
		touch(&sc, i);
	/* Far past any window of the stream: pages 768 .. 1023, one in 4. */
	t_shuffle(order, 64, 0);
	for (size_t i = 0; i < 64; i++)
		touch(&sc, 768 + 4 * order[i]);
	scan_close(&sc, &st, "abandoned");
	CHECK(st.ra_pages > 0 && st.ra_wasted > 0 &&
		      st.ra_used + st.ra_wasted <= st.ra_pages,
	      "read ahead %llu, used %llu, wasted %llu",
	      (unsigned long long)st.ra_pages, (unsigned long long)st.ra_used,
	      (unsigned long long)st.ra_wasted);
}

static void bounded(size_t max)
{
	size_t units = max / PG;
	struct upager_stats st;
	struct scan sc;

	scan_open(&sc, max);
	for (size_t i = 0; i < NPAGES; i++)
		touch(&sc, i);
	scan_close(&sc, &st, "bounded");
	CHECK(fills(&st) >= NPAGES / units && fills(&st) <= NPAGES / units + 8,
	      "readahead_max %zu KiB: %llu faults for %d pages", max >> 10,
	      (unsigned long long)fills(&st), NPAGES);
}

/* Pages present in [from, NPAGES) now; *@last: the highest of them. */
static size_t present_from(struct scan *sc, size_t from, size_t *last)
{
	size_t count = 0;

	for (size_t i = from; i < NPAGES; i++)
		if (upager_region_present(sc->r, i * PG)) {
			count++;
			*last = i;
		}
	return count;
}

/*
 * What background fills leave present in [from, NPAGES), once @done
 * (count, last) says the ones a check waits for are in.  The condition
 * itself is waited for, up to 10 s: a worker on a loaded machine can be
 * idle far longer than any "no change for a while".  Then the pages are
 * counted again a little later, so that a fill reaching too far is seen
 * as well (on a quick machine; it can never fail a right engine).
 */
static size_t settle(struct scan *sc, size_t from, size_t *last,
		     bool (*done)(size_t count, size_t last))
{
	size_t count = present_from(sc, from, last);

	for (int ms = 0; ms < 10000 && !done(count, *last); ms++) {
		usleep(1000);
		count = present_from(sc, from, last);
	}
	usleep(20000);
	return present_from(sc, from, last);
}

/* Where lookahead() stops reading for a while. */
#define REACHED 300

/* The window after the reader's own is in, all but its marker. */
static bool next_window_in(size_t count, size_t last)
{
	return last >= REACHED + 256 && count == last - REACHED;
}

static void lookahead(void)
{
	size_t reached = REACHED, last = 0, ahead;
	struct upager_stats st;
	struct scan sc;

	scan_open(&sc, 0);
	for (size_t i = 0; i < reached; i++)
		touch(&sc, i);
	ahead = settle(&sc, reached, &last, next_window_in);
	/*
	 * Without lookahead the window page 299 is in would end before page
	 * 300 + 256 (the scan faulted at least once in the last 256 pages).
	 * With it, the next window is filled too: the reader is more than
	 * one window ahead of itself, less than two, and only the marker,
	 * the page whose fault starts the next window, is left absent.
	 */
	CHECK(last >= reached + 256 && last < reached + 2 * 256 &&
		      ahead == last - reached,
	      "%zu pages present past page %zu, the last %zu", ahead, reached,
	      last);

	for (size_t i = reached; i < NPAGES; i++)
		touch(&sc, i);
	scan_close(&sc, &st, "lookahead");
	CHECK(st.ra_wasted == 0 && st.pages_filled == NPAGES,
	      "wasted %llu, filled %llu", (unsigned long long)st.ra_wasted,
	      (unsigned long long)st.pages_filled);
}

/* Every other 64 KiB block of NPAGES, all of it. */
static bool half_the_blocks(size_t count, size_t last)
{
	(void)last;
	return count >= NPAGES / 16 / 2 * 16;
}

/* The 64 KiB block around one fault. */
static bool one_block(size_t count, size_t last)
{
	(void)last;
	return count >= 16;
}

static void around(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 1 };
	struct upager_map_params mp = { .size = sizeof(mp) }; /* defaults */
	size_t last = 0, blocks = NPAGES / 16, n;
	struct upager_stats st;
	struct scan sc;
	int err;

	/* Page 5 of every other 64 KiB block: each fills its whole block. */
	scan_open_fa(&sc, 0, 64 << 10);
	for (size_t b = 0; b < blocks; b += 2)
		touch(&sc, b * 16 + 5);
	n = settle(&sc, 0, &last, half_the_blocks);
	CHECK(n == blocks / 2 * 16,
	      "%zu pages present after %zu faults in %zu blocks", n,
	      blocks / 2, blocks / 2);
	for (size_t b = 1; b < blocks; b += 2)
		CHECK(!upager_region_present(sc.r, b * 16 * PG),
		      "block %zu filled without a fault in it", b);
	/* Now every page of those blocks: no more faults. */
	for (size_t b = 0; b < blocks; b += 2)
		for (size_t i = 0; i < 16; i++)
			touch(&sc, b * 16 + i);
	scan_close(&sc, &st, "fault-around");
	CHECK(fills(&st) == blocks / 2 &&
		      st.ra_pages == blocks / 2 * 15,
	      "%llu faults (%llu dup), %llu pages filled around",
	      (unsigned long long)st.faults, (unsigned long long)st.faults_dup,
	      (unsigned long long)st.ra_pages);

	/* A sequential scan from page 3 continues as a stream past the
	 * first block: as few faults as without fault-around. */
	scan_open_fa(&sc, 0, 64 << 10);
	for (size_t i = 3; i < NPAGES; i++)
		touch(&sc, i);
	scan_close(&sc, &st, "fault-around, then a stream");
	CHECK(fills(&st) <= 16 && st.ra_wasted == 0,
	      "%llu faults (%llu dup), %llu wasted",
	      (unsigned long long)st.faults, (unsigned long long)st.faults_dup,
	      (unsigned long long)st.ra_wasted);

	/* The default over a mem store (UPAGER_STORE_CHEAP) is 64 KiB; a
	 * fault_around that is not a power of two is refused. */
	sc.h = upager_handler_new(&hp, &err);
	sc.s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(sc.h && sc.s, "handler, store");
	CHECK(sc.s->flags & UPAGER_STORE_CHEAP,
	      "the mem store is not flagged cheap");
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(sc.s) + i * PG, PG, i);
	mp.fault_around = 48 << 10;
	CHECK(!upager_map(sc.h, sc.s, NPAGES * PG, &mp, NULL, &err) &&
		      err == -EINVAL,
	      "fault_around 48 KiB: %d", err);
	mp.fault_around = 0;
	sc.p = upager_map(sc.h, sc.s, NPAGES * PG, &mp, &sc.r, &err);
	CHECK(sc.p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(sc.h), 0);
	touch(&sc, 100);
	n = settle(&sc, 0, &last, one_block);
	CHECK(n == 16 && last == 111,
	      "default: %zu pages present, the last %zu", n, last);
	CHECK_RET(upager_unmap(sc.r), 0);
	upager_handler_free(sc.h);
	upager_store_close(sc.s);
}

int main(void)
{
	sequential();
	interleaved();
	random_half();
	abandoned();
	bounded(64 << 10);
	bounded(16 << 10);
	lookahead();
	around();
	return 0;
}

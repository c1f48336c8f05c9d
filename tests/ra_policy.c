// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The read-ahead policy (src/engine/readahead.c) alone, without a kernel
 * or a store.  A simulator keeps the units' claims in a plain array and
 * drives the policy as fault.c read_ahead() does for a worker (a job ring
 * to queue on, a staging buffer as large as any window), with fills that
 * are done at once; a reader touches units, and a touch of an unclaimed
 * unit is a fault.  tests/readahead.c checks the policy through the
 * kernel, where timing blurs the counts; here each one is exact:
 *
 * sequential   a scan's windows are 1, 2, 4, ... up to the limit and stay
 *              there; every fault but the first is at the marker its
 *              stream left, and continues it; faults come a limit apart
 *              once the windows are full; every unit is read once.
 * confirmed    from a stream's third fault on, the window after the
 *              reader's own is claimed too (the lookahead), all but its
 *              first unit, the marker, where the next fault comes; it
 *              starts where the reader's window or the last lookahead
 *              ends, whichever is further.
 * ahead        a stream whose marker someone else filled is continued by
 *              the fault after its lookahead.
 * random       faults that continue nothing start streams of one unit,
 *              claim nothing else, and take the least recently used of
 *              the RA_STREAMS slots.
 * accounting   a continued stream reports as used the units its reader
 *              went through without a fault; a replaced one reports what
 *              it claimed and no one read as wasted; used + wasted is
 *              all it claimed.
 * interleaved  two sequential readers are two streams, each faulting
 *              where it would alone.
 * around       a fault-around block that starts a stream is its first
 *              window: the scan continues past it, wasting nothing.
 * bounded      (in sequential and around) no window exceeds the limit,
 *              also at 1 (read-ahead off: the engine asks no plan then,
 *              and the policy agrees: every unit faults, none is claimed
 *              ahead).
 *
 * argv[1] may name one part to run alone.
 */
#include "harness.h"
#include "engine/readahead.h"

#define NUNITS 4096
#define MAX_FAULTS NUNITS

enum { ABSENT, AHEAD, READ }; /* AHEAD: claimed, not read yet */

struct sim {
	uint8_t unit[NUNITS];
	uint8_t before[NUNITS]; /* the units before the last fault */
	size_t nunits;
	size_t max, fa; /* the region's ra_max and fa */
	struct ra_table t;
	/* The last fault: its unit, its plan, what the caller made of it. */
	struct ra_plan plan;
	size_t u, n, marker, k;
	/* Reported by the policy; claimed by read_ahead() beyond faults. */
	uint64_t used, wasted, claimed;
};

static void sim_init(struct sim *s, size_t nunits, size_t max, size_t fa)
{
	memset(s, 0, sizeof(*s));
	s->nunits = nunits;
	s->max = max;
	s->fa = fa;
}

/* fault.c claim_run(): the unclaimed units from @u on, at most @max. */
static size_t claim_run(struct sim *s, size_t u, size_t max)
{
	size_t n = 0;

	while (n < max && u + n < s->nunits && s->unit[u + n] == ABSENT)
		s->unit[u + n++] = AHEAD;
	return n;
}

/* fault.c fault_around(), its claims filled at once. */
static void around(struct sim *s, size_t u, unsigned int stream)
{
	size_t b = u / s->fa * s->fa, end = b + s->fa;

	if (end > s->nunits)
		end = s->nunits;
	for (size_t k = b; k < end; k++)
		if (k != u && s->unit[k] == ABSENT)
			s->unit[k] = AHEAD;
	ra_around(&s->t, stream, end, s->fa);
}

/* fault.c read_ahead() for a fault on unit @u, which the fault claimed. */
static void fault(struct sim *s, size_t u)
{
	struct ra_plan *p = &s->plan;

	s->unit[u] = READ;
	ra_propose(&s->t, u, s->max, p);
	s->used += p->used;
	s->wasted += p->wasted;
	s->u = u;
	s->n = 1 + claim_run(s, u + 1, p->window - 1);
	s->marker = p->confirmed ? ra_marker(&s->t, p, u, s->n) : u + s->n;
	s->k = 0;
	if (p->confirmed && s->marker + 1 < s->nunits)
		s->k = claim_run(s, s->marker + 1, p->window - 1);
	ra_commit(&s->t, p, s->n, s->marker, s->k);
	s->claimed += s->n - 1 + s->k;
	if (p->window == 1 && s->fa > 1)
		around(s, u, p->stream);
}

/* The reader reads unit @u: true if that was a fault. */
static bool touch(struct sim *s, size_t u)
{
	if (s->unit[u] != ABSENT) {
		s->unit[u] = READ;
		return false;
	}
	memcpy(s->before, s->unit, s->nunits);
	fault(s, u);
	return true;
}

static size_t count(const struct sim *s, int state)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nunits; i++)
		n += s->unit[i] == state;
	return n;
}

static size_t doubled(size_t w, size_t max)
{
	return 2 * w < max ? 2 * w : max;
}

/* A stream's last fault, as the test saw it. */
struct seen {
	size_t u, window, marker, ahead;
	unsigned int stream;
	size_t faults;
};

static void seen_set(struct seen *v, const struct sim *s)
{
	v->u = s->u;
	v->window = s->plan.window;
	v->marker = s->marker;
	v->ahead = s->k ? s->marker + 1 + s->k : s->marker;
	v->stream = s->plan.stream;
	v->faults++;
}

/*
 * The checks every fault of a sequential reader passes: the fault just
 * taken, of the stream whose last fault was @v (none yet: @v->faults 0).
 * The reader went through every unit between the two.
 */
static void check_fault(const struct sim *s, const struct seen *v,
			const char *what)
{
	const struct ra_plan *p = &s->plan;
	size_t base = s->u + s->n;

	CHECK(p->window <= s->max && s->n <= p->window && s->k < s->max,
	      "%s: fault at %zu: window %zu, %zu units, lookahead %zu, "
	      "limit %zu",
	      what, s->u, p->window, s->n, s->k, s->max);
	if (!v->faults) {
		CHECK(p->window == 1 && !p->confirmed && s->n == 1 && !s->k,
		      "%s: first fault at %zu: window %zu, %zu units, "
		      "lookahead %zu",
		      what, s->u, p->window, s->n, s->k);
		return;
	}
	CHECK(s->u == v->marker, "%s: fault at %zu, the stream's marker %zu",
	      what, s->u, v->marker);
	CHECK(p->stream == v->stream && !p->wasted &&
		      p->window == doubled(v->window, s->max),
	      "%s: fault at the marker %zu: slot %u (was %u), window %zu "
	      "after %zu, %zu wasted: not continued",
	      what, s->u, p->stream, v->stream, p->window, v->window,
	      p->wasted);
	CHECK(p->used == s->u - v->u - 1,
	      "%s: fault at %zu, the last at %zu: %zu used, want %zu", what,
	      s->u, v->u, p->used, s->u - v->u - 1);
	/* The third fault is the first to follow a window of two. */
	CHECK(p->confirmed == (v->faults >= 2 && s->max > 1),
	      "%s: fault %zu of the stream, at %zu, %s confirmed", what,
	      v->faults, s->u, p->confirmed ? "is" : "is not");
	if (!p->confirmed) {
		CHECK(!s->k && s->marker == base,
		      "%s: fault at %zu unconfirmed: lookahead %zu at %zu",
		      what, s->u, s->k, s->marker);
		return;
	}
	if (v->ahead > base)
		base = v->ahead;
	CHECK(s->marker == base,
	      "%s: fault at %zu got %zu units, the stream had claimed up to "
	      "%zu: marker %zu, want %zu",
	      what, s->u, s->n, v->ahead, s->marker, base);
	if (s->marker >= s->nunits)
		return;
	CHECK(s->unit[s->marker] == s->before[s->marker],
	      "%s: the marker %zu was claimed", what, s->marker);
	/* All of the window but its marker, up to what is claimed. */
	CHECK(s->k == p->window - 1 || s->marker + 1 + s->k >= s->nunits ||
		      s->unit[s->marker + 1 + s->k] != ABSENT,
	      "%s: fault at %zu: lookahead of %zu for a window of %zu", what,
	      s->u, s->k, p->window);
	for (size_t i = 1; i <= s->k; i++)
		CHECK(s->unit[s->marker + i] == AHEAD &&
			      s->before[s->marker + i] == ABSENT,
		      "%s: unit %zu of the lookahead is not claimed", what,
		      s->marker + i);
}

/*
 * Read units [from, to) in order as one stream's reader (@v: its last
 * fault), checking every fault.  @at: where they were, if not NULL.
 */
static void scan(struct sim *s, size_t from, size_t to, struct seen *v,
		 size_t *at, const char *what)
{
	for (size_t i = from; i < to; i++) {
		if (!touch(s, i))
			continue;
		check_fault(s, v, what);
		if (at)
			at[v->faults] = i;
		seen_set(v, s);
	}
}

/*
 * Where a scan with a limit of 64 faults: windows 1, 2 and 4 from 0;
 * then at each marker, the end of the lookahead the fault before claimed
 * (windows 8, 16, 32, 64; lookaheads 3, 7, 15, 31, 63 after a marker).
 */
static const size_t first_faults[] = { 0, 1, 3, 7, 11, 19, 35, 67, 131, 195 };

static void sequential(size_t max)
{
	static size_t at[MAX_FAULTS];
	struct seen v = { 0 };
	struct sim s;
	char what[32];

	snprintf(what, sizeof(what), "sequential, limit %zu", max);
	sim_init(&s, NUNITS, max, 1);
	scan(&s, 0, NUNITS, &v, at, what);
	CHECK(count(&s, READ) == NUNITS, "%s: %zu units read of %d", what,
	      count(&s, READ), NUNITS);
	/* The windows stay at the limit: so do the steps between faults. */
	for (size_t i = 12; i < v.faults; i++)
		CHECK(at[i] - at[i - 1] == max || at[i] + max >= NUNITS,
		      "%s: faults %zu and %zu at %zu and %zu", what, i - 1, i,
		      at[i - 1], at[i]);
	if (max == 64)
		for (size_t i = 0; i < sizeof(first_faults) / sizeof(size_t);
		     i++)
			CHECK(at[i] == first_faults[i],
			      "%s: fault %zu at %zu, want %zu", what, i, at[i],
			      first_faults[i]);
	if (max == 1)
		CHECK(v.faults == NUNITS && !s.claimed,
		      "%s: %zu faults for %d units, %llu claimed ahead", what,
		      v.faults, NUNITS, (unsigned long long)s.claimed);
}

/* The marker filled by another (an install, another thread's fault). */
static void ahead(void)
{
	struct seen v = { 0 };
	struct sim s;
	size_t was;

	sim_init(&s, NUNITS, 64, 1);
	/* Faults at 0, 1, 3, 7, 11: the last has a marker and lookahead. */
	scan(&s, 0, 12, &v, NULL, "ahead");
	CHECK(v.faults == 5 && v.u == 11 && v.marker == 19 && v.ahead == 35,
	      "ahead: %zu faults, the last at %zu, marker %zu, lookahead up "
	      "to %zu; want 5, 11, 19, 35",
	      v.faults, v.u, v.marker, v.ahead);
	s.unit[v.marker] = READ;
	for (size_t i = 12; i < v.ahead; i++)
		CHECK(!touch(&s, i), "ahead: unit %zu faulted", i);
	was = v.window;
	CHECK(touch(&s, v.ahead), "ahead: no fault at %zu", v.ahead);
	CHECK(s.plan.stream == v.stream && !s.plan.wasted &&
		      s.plan.confirmed && s.plan.window == 2 * was,
	      "ahead: the fault at %zu after the lookahead: slot %u (was %u), "
	      "window %zu after %zu: not continued",
	      v.ahead, s.plan.stream, v.stream, s.plan.window, was);
	/*
	 * Used now: what the stream claimed before its marker (12-18, the
	 * lookahead of fault 7); its own lookahead (20-34) is reported at
	 * its next fault, which needs its marker read.
	 */
	CHECK(s.plan.used == 7, "ahead: %zu used, want 7", s.plan.used);
	CHECK(s.marker == v.ahead + s.n && s.k == s.plan.window - 1,
	      "ahead: marker %zu, lookahead %zu, after %zu units from %zu",
	      s.marker, s.k, s.n, v.ahead);
}

/* The slots by last use, least recent first, as the test counts them. */
struct lru {
	unsigned int slot[RA_STREAMS];
};

static void lru_use(struct lru *l, unsigned int slot)
{
	unsigned int i = 0;

	while (l->slot[i] != slot)
		i++;
	for (; i + 1 < RA_STREAMS; i++)
		l->slot[i] = l->slot[i + 1];
	l->slot[RA_STREAMS - 1] = slot;
}

/* A fault at @u that must start a stream, in the least recently used slot. */
static void new_stream(struct sim *s, struct lru *l, size_t u)
{
	size_t before = count(s, AHEAD);

	CHECK(touch(s, u), "random: unit %zu was claimed", u);
	CHECK(s->plan.window == 1 && !s->plan.confirmed && s->n == 1 &&
		      !s->k && count(s, AHEAD) == before,
	      "random: fault at %zu: window %zu, %zu units, lookahead %zu, "
	      "%zu claimed",
	      u, s->plan.window, s->n, s->k, count(s, AHEAD) - before);
	CHECK(s->plan.stream == l->slot[0],
	      "random: fault at %zu took slot %u; the least recently used is "
	      "%u",
	      u, s->plan.stream, l->slot[0]);
	lru_use(l, s->plan.stream);
}

/* A fault at @u that must continue the stream in @slot. */
static void continued(struct sim *s, struct lru *l, size_t u,
		      unsigned int slot)
{
	CHECK(touch(s, u) && s->plan.stream == slot && s->plan.window == 2,
	      "random: %zu did not continue the stream in slot %u", u, slot);
	lru_use(l, slot);
}

static void random_faults(void)
{
	const size_t start[RA_STREAMS] = { 100, 300, 500, 700 };
	unsigned int slot[RA_STREAMS];
	struct lru l;
	struct sim s;

	sim_init(&s, NUNITS, 64, 1);
	for (unsigned int i = 0; i < RA_STREAMS; i++) {
		CHECK(touch(&s, start[i]) && s.plan.window == 1,
		      "random: %zu", start[i]);
		slot[i] = l.slot[i] = s.plan.stream;
		for (unsigned int j = 0; j < i; j++)
			CHECK(slot[j] != slot[i],
			      "random: streams at %zu and %zu share slot %u",
			      start[j], start[i], slot[i]);
	}
	continued(&s, &l, 101, slot[0]);
	new_stream(&s, &l, 2000); /* replaces 300 */
	continued(&s, &l, 501, slot[2]);
	new_stream(&s, &l, 301);  /* 300 is gone; replaces 700 */
	new_stream(&s, &l, 701);  /* 700 is gone; replaces 100 */
	new_stream(&s, &l, 3000);
	/* Scattered faults, never at a stream's next unit: a unit each. */
	for (size_t i = 0; i < 64; i++)
		new_stream(&s, &l, 1024 + (i * 37 % 64) * 40);
	/* 102 and 502 were claimed; their streams were pushed out. */
	CHECK(s.claimed == 2 && s.wasted == 2 && !s.used,
	      "random: %llu claimed, %llu wasted, %llu used",
	      (unsigned long long)s.claimed, (unsigned long long)s.wasted,
	      (unsigned long long)s.used);
}

/*
 * A stream stopped right after its fault number @stop (from 0), then
 * pushed out by faults elsewhere: it wastes exactly what it claimed that
 * no one read, and what it reported used and wasted is all it claimed.
 */
static void accounting(size_t stop)
{
	struct seen v = { 0 };
	struct sim s;
	size_t unread;

	sim_init(&s, NUNITS, 64, 1);
	for (size_t i = 0; v.faults <= stop; i++)
		if (touch(&s, i))
			seen_set(&v, &s);
	unread = count(&s, AHEAD);
	CHECK(s.used + unread == s.claimed,
	      "accounting: after %zu faults, %llu used + %zu unread != %llu "
	      "claimed",
	      v.faults, (unsigned long long)s.used, unread,
	      (unsigned long long)s.claimed);
	/* The empty slots go first: the last fault replaces the stream. */
	for (unsigned int j = 0; j < RA_STREAMS; j++) {
		size_t u = 2048 + 100 * j;

		CHECK(touch(&s, u), "accounting: %zu", u);
		CHECK(s.plan.wasted == (j == RA_STREAMS - 1 ? unread : 0),
		      "accounting: stopped after fault %zu with %zu unread; "
		      "fault %u elsewhere: %zu wasted",
		      stop, unread, j, s.plan.wasted);
	}
	CHECK(s.used + s.wasted == s.claimed,
	      "accounting: %llu used + %llu wasted != %llu claimed",
	      (unsigned long long)s.used, (unsigned long long)s.wasted,
	      (unsigned long long)s.claimed);
}

/* Two readers, one from unit 0 and one from the middle, in turns. */
static void interleaved(void)
{
	static size_t at[MAX_FAULTS], at2[2][MAX_FAULTS];
	struct seen alone = { 0 }, v[2] = { { 0 }, { 0 } };
	size_t half = NUNITS / 2;
	struct sim s;

	sim_init(&s, half, 64, 1);
	scan(&s, 0, half, &alone, at, "alone");
	sim_init(&s, NUNITS, 64, 1);
	for (size_t i = 0; i < half; i++) {
		for (unsigned int r = 0; r < 2; r++) {
			if (!touch(&s, r * half + i))
				continue;
			check_fault(&s, &v[r], "interleaved");
			at2[r][v[r].faults] = i;
			seen_set(&v[r], &s);
		}
	}
	CHECK(v[0].stream != v[1].stream && !s.wasted,
	      "interleaved: both readers in slot %u, %llu wasted",
	      v[0].stream, (unsigned long long)s.wasted);
	for (unsigned int r = 0; r < 2; r++) {
		CHECK(v[r].faults == alone.faults,
		      "interleaved: reader %u faulted %zu times, alone %zu", r,
		      v[r].faults, alone.faults);
		for (size_t i = 0; i < alone.faults; i++)
			CHECK(at2[r][i] == at[i],
			      "interleaved: reader %u's fault %zu %zu units "
			      "in, alone %zu",
			      r, i, at2[r][i], at[i]);
	}
}

/* A scan from @from, whose first fault fills its @fa-unit block. */
static void around_block(size_t fa, size_t max, size_t from)
{
	size_t b = from / fa * fa, end = b + fa;
	struct sim s;
	struct seen v;
	char what[48];

	snprintf(what, sizeof(what), "around %zu from %zu, limit %zu", fa, from,
		 max);
	sim_init(&s, NUNITS, max, fa);
	CHECK(touch(&s, from) && s.plan.window == 1, "%s: first fault", what);
	for (size_t i = b; i < end; i++)
		CHECK(s.unit[i] != ABSENT,
		      "%s: unit %zu of the block unclaimed", what, i);
	CHECK(s.unit[end] == ABSENT, "%s: unit %zu past the block claimed",
	      what, end);
	for (size_t i = from + 1; i < end; i++)
		CHECK(!touch(&s, i), "%s: unit %zu faulted", what, i);
	/* The block was the stream's window, one not yet confirmed. */
	v = (struct seen){ .u = from, .window = fa, .marker = end,
			   .ahead = end, .stream = s.plan.stream, .faults = 2 };
	CHECK(touch(&s, end), "%s: no fault at %zu", what, end);
	/* The block's units came from fault-around, not as read-ahead. */
	v.u = end - 1;
	check_fault(&s, &v, what);
	seen_set(&v, &s);
	scan(&s, end + 1, NUNITS, &v, NULL, what);
	CHECK(!s.wasted && count(&s, READ) == NUNITS - from &&
		      count(&s, AHEAD) == from - b,
	      "%s: %llu wasted, %zu read, %zu unread", what,
	      (unsigned long long)s.wasted, count(&s, READ), count(&s, AHEAD));
}

static void sequential_all(void)
{
	const size_t limits[] = { 1, 2, 3, 5, 16, 64, 256 };

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		sequential(limits[i]);
}

static void accounting_all(void)
{
	for (size_t stop = 0; stop < 8; stop++)
		accounting(stop);
}

static void around_all(void)
{
	around_block(16, 64, 3);
	around_block(16, 8, 35);
	around_block(16, 256, 16);
}

int main(int argc, char **argv)
{
	static const struct t_plain_part parts[] = {
		{ "sequential", sequential_all },
		{ "ahead", ahead },
		{ "random", random_faults },
		{ "accounting", accounting_all },
		{ "interleaved", interleaved },
		{ "around", around_all },
	};

	return t_plain_parts(argc, argv, parts,
			     sizeof(parts) / sizeof(parts[0]));
}

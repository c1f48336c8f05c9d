/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read-ahead policy: which units a fault should fill beyond its own.
 * Pure functions over a table of streams: no kernel, no unit state, no
 * lock (the caller holds its region's ra_lock), so tests/ra_policy.c
 * checks the policy alone.  The caller claims the units a plan names
 * (some may be taken already) and reports what it got.
 *
 * A stream is a run of faults each at the unit where the last window
 * ended.  Its window doubles at each continued fault, up to a limit;
 * any other fault starts a stream with a window of one unit, so random
 * access pays for nothing.  Once a stream is confirmed (continued twice),
 * the window after the one being read is claimed too and filled in the
 * background; its first unit, the marker, is left absent, so the
 * stream's fault there says the reader moved on (the kernel's
 * PG_readahead, with a fault as the only signal userfaultfd gives).
 */
#ifndef UPAGER_ENGINE_READAHEAD_H
#define UPAGER_ENGINE_READAHEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RA_STREAMS 4

struct ra_stream {
	size_t next;	/* the marker: the unit whose fault continues it */
	size_t ahead;	/* first unit after what the stream has claimed */
	size_t window;	/* units in the last window; 0: slot unused */
	size_t near;	/* read-ahead units before the marker */
	size_t far;	/* read-ahead units after it */
	uint64_t stamp; /* last use, for replacement */
};

struct ra_table {
	struct ra_stream s[RA_STREAMS];
	uint64_t clock;
};

struct ra_plan {
	unsigned int stream; /* the slot the fault continues or starts */
	size_t window;	     /* units to fill from the fault on */
	bool confirmed;	     /* continued at least twice: read beyond */
	size_t used;	     /* read-ahead units the stream reached */
	size_t wasted;	     /* read-ahead units a replaced stream left */
};

/*
 * A fault at unit @u: the stream it continues (at its marker, or past
 * what it claimed when someone else filled the marker) and its next
 * window, twice the last one up to @max units; else a new stream of one
 * unit in the least recently used slot.
 */
void ra_propose(struct ra_table *t, size_t u, size_t max, struct ra_plan *p);
/*
 * Where the plan's lookahead window starts (its marker), when the fault
 * at @u got @n units and a lookahead is wanted: right after them, or
 * after what the stream claimed before if that is further.
 */
size_t ra_marker(const struct ra_table *t, const struct ra_plan *p, size_t u,
		 size_t n);
/*
 * Record what the caller got: @n units from the fault on, @marker the
 * unit its next fault continues at, and @k lookahead units claimed after
 * the marker (0: none; the marker is then right after the window).
 */
void ra_commit(struct ra_table *t, const struct ra_plan *p, size_t n,
	       size_t marker, size_t k);
/*
 * A stream that started with a fault-around block ending at unit @end
 * (@block units): a sequential reader continues there, with the block as
 * its first window.
 */
void ra_around(struct ra_table *t, unsigned int stream, size_t end,
	       size_t block);

#endif

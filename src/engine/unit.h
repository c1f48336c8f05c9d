/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state of one fill unit, one byte, changed only by compare-and-swap
 * so that fault handlers, read-ahead jobs, event handlers and in-thread
 * signal handlers can all race on it without a lock.
 *
 *   ABSENT, REMOVED --claim--> INFLIGHT --settle--> PRESENT | POISONED
 *        ^                       (a fill that gives up: what it was)
 *        +---REMOVE--- ABSENT, PRESENT, DIRTY, POISONED
 *   GONE <--UNMAP-- any
 *
 * With write tracking (writes.c), PRESENT is clean and write-protected;
 * a write fault makes it DIRTY (PRESENT --claim--> INFLIGHT --> DIRTY),
 * and write-back, eviction and snapshots hold a PRESENT or DIRTY unit
 * INFLIGHT while they read it, so that a write to it waits.
 *
 * Two flags ride on INFLIGHT, set by others while a filler holds the
 * unit, and read by its settle():
 *   WAITERS     a fault on the unit was left to the filler (a duplicate):
 *               the filler owes it a wake after it settles, whether or
 *               not its install woke the range (the page may have been
 *               dropped again between the install and the settle);
 *   RM_PENDING  a REMOVE (MADV_DONTNEED...) covered the unit meanwhile:
 *               it settles REMOVED, not PRESENT, and is woken, so the
 *               next fault fills it again by the region's policy;
 *   GONE_PENDING the application unmapped it meanwhile: it settles GONE.
 * and one its filler sets:
 *   REDIRTY     the fill put zeros where the program dropped pages
 *               (REMOVE_ZERO, write tracking), which the store does not
 *               hold: it settles DIRTY, not PRESENT, so a write-back
 *               takes them there (fill.c, fill_undrop()).
 */
#ifndef UPAGER_ENGINE_UNIT_H
#define UPAGER_ENGINE_UNIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum {
	UNIT_ABSENT = 0, /* never filled, or given back */
	UNIT_INFLIGHT,	 /* claimed by one filler; others leave it alone */
	UNIT_PRESENT,	 /* installed */
	UNIT_REMOVED,	 /* was installed, then dropped (EVENT_REMOVE) */
	UNIT_POISONED,	 /* its fetch failed: a poison marker is installed */
	UNIT_GONE,	 /* unmapped by the application (EVENT_UNMAP) */
	UNIT_DIRTY,	 /* installed and written since it was last clean */
};

#define UNIT_STATE 0x07
#define UNIT_WAITERS 0x08
#define UNIT_RM_PENDING 0x10
#define UNIT_GONE_PENDING 0x20
#define UNIT_REDIRTY 0x40

typedef _Atomic uint8_t unit_t;

static inline unsigned int unit_state(uint8_t v)
{
	return v & UNIT_STATE;
}

/* Installed: PRESENT or DIRTY. */
static inline bool unit_resident(unsigned int state)
{
	return state == UNIT_PRESENT || state == UNIT_DIRTY;
}

static inline uint8_t unit_load(unit_t *u)
{
	return atomic_load_explicit(u, memory_order_acquire);
}

/* INFLIGHT if the unit was in state @from (flags clear): true if won. */
static inline bool unit_claim(unit_t *u, unsigned int from)
{
	uint8_t expect = (uint8_t)from;

	return atomic_compare_exchange_strong_explicit(
		u, &expect, UNIT_INFLIGHT, memory_order_acq_rel,
		memory_order_acquire);
}

/*
 * The filler is done with a unit it claimed: it becomes @to, unless a
 * REMOVE or UNMAP came meanwhile.  Returns true when the unit must be
 * woken (someone waits on it, or it was removed under the fill).
 */
static inline bool unit_settle(unit_t *u, unsigned int to)
{
	uint8_t old = unit_load(u), now;

	do {
		now = (uint8_t)to;
		if (old & UNIT_GONE_PENDING)
			now = UNIT_GONE;
		else if (old & UNIT_RM_PENDING)
			now = UNIT_REMOVED;
		else if ((old & UNIT_REDIRTY) && to == UNIT_PRESENT)
			now = UNIT_DIRTY;
	} while (!atomic_compare_exchange_weak_explicit(
		u, &old, now, memory_order_acq_rel, memory_order_acquire));
	return old & (UNIT_WAITERS | UNIT_RM_PENDING | UNIT_GONE_PENDING);
}

/*
 * A fault found the unit INFLIGHT: ask its filler for a wake.  False
 * when the unit left INFLIGHT first; the caller looks at it again.
 */
static inline bool unit_add_waiter(unit_t *u, uint8_t seen)
{
	if (unit_state(seen) != UNIT_INFLIGHT)
		return false;
	if (seen & UNIT_WAITERS)
		return true;
	return atomic_compare_exchange_strong_explicit(
		u, &seen, seen | UNIT_WAITERS, memory_order_acq_rel,
		memory_order_acquire);
}

/*
 * EVENT_REMOVE covered the unit (@whole) or a part of it: it is REMOVED,
 * one being filled settles so.  A unit never filled becomes REMOVED only
 * when dropped whole: then all of it reads by the region's REMOVE policy
 * (as MADV_DONTNEED of untouched anonymous memory reads zeros); dropped
 * in part, its other pages must still read the store, so it stays
 * ABSENT.
 *
 * With write tracking (@tracked) an installed unit keeps its state when
 * dropped in part: its other pages are there, write-protected or holding
 * writes not yet written back, and a fault refills the dropped ones (the
 * REMOVE policy's pages: the region's dropped bits say which); so does a
 * unit held by a write-back, an eviction or a snapshot, whose holder
 * knows what it settles to.  @keeps (tracked shmem): MADV_DONTNEED keeps
 * a shared mapping's data, so a unit dropped whole keeps its state too.
 * Returns true if the unit changed.
 */
static inline bool unit_remove(unit_t *u, bool whole, bool tracked,
			       bool keeps)
{
	uint8_t old = unit_load(u), now;
	bool stays = tracked && (!whole || keeps);

	do {
		switch (unit_state(old)) {
		case UNIT_ABSENT:
			if (!whole)
				return false;
			now = UNIT_REMOVED;
			break;
		case UNIT_PRESENT:
		case UNIT_DIRTY:
			if (stays)
				return false;
			now = UNIT_REMOVED;
			break;
		case UNIT_POISONED:
			now = UNIT_REMOVED;
			break;
		case UNIT_INFLIGHT:
			if (stays)
				return false;
			now = old | UNIT_RM_PENDING;
			break;
		default:
			return false;
		}
	} while (!atomic_compare_exchange_weak_explicit(
		u, &old, now, memory_order_acq_rel, memory_order_acquire));
	return true;
}

/*
 * EVENT_UNMAP covered the unit: it is GONE, or settles so.  True the
 * first time, so that a region can count its units gone.
 */
static inline bool unit_gone(unit_t *u)
{
	uint8_t old = unit_load(u), now;

	do {
		if (unit_state(old) == UNIT_GONE || (old & UNIT_GONE_PENDING))
			return false;
		now = unit_state(old) == UNIT_INFLIGHT
			      ? (uint8_t)(old | UNIT_GONE_PENDING)
			      : (uint8_t)UNIT_GONE;
	} while (!atomic_compare_exchange_weak_explicit(
		u, &old, now, memory_order_acq_rel, memory_order_acquire));
	return true;
}

#endif

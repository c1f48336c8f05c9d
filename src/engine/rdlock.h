/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A space's rd_lock: the order of its uffd's events against the installs
 * that must not overtake them (docs/ARCHITECTURE.md, "Locks").
 *
 * Exclusive: the handling of events read from the uffd (and the read
 * itself where the space's reads are guarded: struct upager_space), and
 * the few that must see no event handled meanwhile (a region's
 * registration and unmap, an eviction's put-back).  Shared: an
 * install, a poison, a protection, an evictor's move (fill.c
 * install_guarded()).
 *
 * Phase-fair (Brandenburg and Anderson's ticket variant): an exclusive
 * taker waits for the shared takers already in and keeps new ones out,
 * and shared takers that waited for it go in before the next exclusive
 * one.  Workers reading the uffd back to back can then not starve an
 * evictor's shared moves, which a lock giving the exclusive side first
 * did (tests/rdlock).
 *
 * Waits spin briefly, then sleep on a futex: a shared section is one
 * ioctl of at most 64 KiB, an exclusive one a non-blocking read(2) and
 * its events, both far shorter than a wake-up.  A pthread rwlock put
 * the reading worker to sleep behind each install and cost sequential
 * demand paging a fifth of its speed (docs/BENCHMARKS.md).
 */
#ifndef UPAGER_ENGINE_RDLOCK_H
#define UPAGER_ENGINE_RDLOCK_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* rin: shared takers in, RDLOCK_IN each, and an exclusive taker's bits. */
#define RDLOCK_IN 0x100u
#define RDLOCK_PHASE 0x1u   /* the exclusive ticket's low bit */
#define RDLOCK_PRESENT 0x2u /* an exclusive taker holds it or waits in */
#define RDLOCK_BITS (RDLOCK_PHASE | RDLOCK_PRESENT)
/* Checks of the awaited word before sleeping on it (a few µs). */
#define RDLOCK_SPINS 256

struct rdlock {
	_Atomic uint32_t rin;	     /* shared takers in, exclusive bits */
	_Atomic uint32_t rout;	     /* shared takers out */
	_Atomic uint32_t ticket;     /* exclusive tickets handed out */
	_Atomic uint32_t served;     /* exclusive tickets done */
	_Atomic uint32_t sleep_rin;  /* threads asleep on rin */
	_Atomic uint32_t sleep_rout; /* on rout */
	_Atomic uint32_t sleep_served; /* on served */
};

static inline void rdlock_init(struct rdlock *l)
{
	atomic_init(&l->rin, 0);
	atomic_init(&l->rout, 0);
	atomic_init(&l->ticket, 0);
	atomic_init(&l->served, 0);
	atomic_init(&l->sleep_rin, 0);
	atomic_init(&l->sleep_rout, 0);
	atomic_init(&l->sleep_served, 0);
}

static inline void rdlock_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/*
 * Wait while *@w, masked with @mask, is @want (@equal) or is not.  The
 * sleeper counts itself before its last look and the waker changes the
 * word before it looks at the count (both sequentially consistent), so
 * one of them sees the other: no wake-up is lost.
 */
static inline void rdlock_wait(_Atomic uint32_t *w, _Atomic uint32_t *sleepers,
			       uint32_t mask, uint32_t want, int equal)
{
	uint32_t v;

	for (int i = 0; i < RDLOCK_SPINS; i++) {
		if (((atomic_load(w) & mask) == want) != equal)
			return;
		rdlock_relax();
	}
	for (;;) {
		atomic_fetch_add(sleepers, 1);
		v = atomic_load(w);
		if (((v & mask) == want) == equal)
			syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL,
				NULL, 0);
		atomic_fetch_sub(sleepers, 1);
		if (((atomic_load(w) & mask) == want) != equal)
			return;
	}
}

static inline void rdlock_wake(_Atomic uint32_t *w, _Atomic uint32_t *sleepers)
{
	if (atomic_load(sleepers))
		syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL,
			0);
}

static inline void rdlock_shared(struct rdlock *l)
{
	uint32_t bits = atomic_fetch_add(&l->rin, RDLOCK_IN) & RDLOCK_BITS;

	/*
	 * In the count already, so the exclusive taker after this one
	 * waits for it: only the holder's (or waiter's) phase keeps it out.
	 */
	if (bits)
		rdlock_wait(&l->rin, &l->sleep_rin, RDLOCK_BITS, bits, 1);
}

static inline void rdlock_shared_end(struct rdlock *l)
{
	atomic_fetch_add(&l->rout, RDLOCK_IN);
	rdlock_wake(&l->rout, &l->sleep_rout);
}

static inline void rdlock_excl(struct rdlock *l)
{
	uint32_t t = atomic_fetch_add(&l->ticket, 1);
	uint32_t in;

	rdlock_wait(&l->served, &l->sleep_served, UINT32_MAX, t, 0);
	in = atomic_fetch_add(&l->rin, RDLOCK_PRESENT | (t & RDLOCK_PHASE)) &
	     ~RDLOCK_BITS;
	rdlock_wait(&l->rout, &l->sleep_rout, UINT32_MAX, in, 0);
}

static inline void rdlock_excl_end(struct rdlock *l)
{
	atomic_fetch_and(&l->rin, ~RDLOCK_BITS);
	rdlock_wake(&l->rin, &l->sleep_rin);
	atomic_fetch_add(&l->served, 1);
	rdlock_wake(&l->served, &l->sleep_served);
}

#endif

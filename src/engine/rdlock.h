/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A space's rd_lock: the order of its uffd's events against the installs
 * that must not overtake them (docs/ARCHITECTURE.md, "Locks").
 *
 * Exclusive: a read of the uffd and the handling of the events it
 * returned, and the few that must see no event handled meanwhile (a
 * region's registration and unmap, an eviction's put-back).  Shared: an
 * install, a poison, a protection (fill.c install_guarded()).  An
 * exclusive taker goes first: new shared takers wait while one waits.
 *
 * Both sides spin, yielding, then sleeping: a shared section is one
 * ioctl of at most 64 KiB, an exclusive one a non-blocking read(2) and
 * its events.  A pthread rwlock put the reading worker to sleep on a
 * futex behind each install and woke it after, and cost sequential
 * demand paging a quarter of its speed (docs/BENCHMARKS.md).
 */
#ifndef UPAGER_ENGINE_RDLOCK_H
#define UPAGER_ENGINE_RDLOCK_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

struct rdlock {
	pthread_mutex_t excl; /* exclusive takers among themselves */
	atomic_bool held;     /* an exclusive taker holds it or waits */
	atomic_uint shared;   /* shared takers inside */
};

static inline void rdlock_init(struct rdlock *l)
{
	pthread_mutex_init(&l->excl, NULL);
	atomic_init(&l->held, false);
	atomic_init(&l->shared, 0);
}

static inline void rdlock_destroy(struct rdlock *l)
{
	pthread_mutex_destroy(&l->excl);
}

/* The @i-th wait for the other side: a pause, a yield, then a sleep. */
static inline void rdlock_relax(unsigned int i)
{
	struct timespec pause = { 0, 20 * 1000 };

	if (i < 64) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} else if (i < 1024) {
		sched_yield();
	} else {
		nanosleep(&pause, NULL);
	}
}

static inline void rdlock_excl(struct rdlock *l)
{
	pthread_mutex_lock(&l->excl);
	/* Sequentially consistent, as in rdlock_shared(): a Dekker pair. */
	atomic_store(&l->held, true);
	for (unsigned int i = 0; atomic_load(&l->shared); i++)
		rdlock_relax(i);
}

static inline void rdlock_excl_end(struct rdlock *l)
{
	atomic_store(&l->held, false);
	pthread_mutex_unlock(&l->excl);
}

static inline void rdlock_shared(struct rdlock *l)
{
	for (unsigned int i = 0;; i++) {
		if (!atomic_load(&l->held)) {
			atomic_fetch_add(&l->shared, 1);
			if (!atomic_load(&l->held))
				return;
			atomic_fetch_sub(&l->shared, 1);
		}
		rdlock_relax(i);
	}
}

static inline void rdlock_shared_end(struct rdlock *l)
{
	atomic_fetch_sub(&l->shared, 1);
}

#endif

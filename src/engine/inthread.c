// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * In-thread mode: regions whose uffd has UFFD_FEATURE_SIGBUS.  A missing
 * page raises SIGBUS (BUS_ADRERR) in the faulting thread, whose handler
 * fills the unit with UFFDIO_COPY and returns; the access then restarts.
 * No event, no worker, no context switch.  A page whose fetch failed is
 * poisoned: its next SIGBUS is the application's, passed on once per
 * access, never filled again in a loop.
 *
 * The handler is process-wide, so it finds regions in a fixed table it can
 * read without locks: each entry carries its range, so a lookup never
 * touches a region before pinning the entry (users[i]), and unmap clears
 * the entry and waits until no handler holds it.  Signals that are not an
 * upager region's missing page go to the handler installed before ours.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "base/util.h"

#define INTHREAD_MAX 256

static struct {
	struct upager_region *_Atomic region[INTHREAD_MAX];
	_Atomic uintptr_t start[INTHREAD_MAX];
	_Atomic uintptr_t end[INTHREAD_MAX];
	atomic_int users[INTHREAD_MAX];
	pthread_mutex_t lock; /* adders and removers */
	struct sigaction previous;
	bool installed;
} tab = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void chain(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *p = &tab.previous;

	if (p->sa_flags & SA_SIGINFO) {
		p->sa_sigaction(sig, si, uc);
	} else if (p->sa_handler == SIG_IGN) {
		return;
	} else if (p->sa_handler != SIG_DFL) {
		p->sa_handler(sig);
	} else {
		/* Re-raised by the faulting access on return: default dies. */
		signal(sig, SIG_DFL);
	}
}

/* Claim one of the region's staging slots; spins while all are busy. */
static unsigned int slot_get(struct upager_region *r)
{
	for (;;) {
		unsigned int busy = atomic_load(&r->slot_busy);

		for (unsigned int i = 0; i < INTHREAD_SLOTS; i++)
			if (!(busy & (1u << i)) &&
			    atomic_compare_exchange_weak(&r->slot_busy, &busy,
							 busy | (1u << i)))
				return i;
		sched_yield();
	}
}

/*
 * Resolve the SIGBUS at @addr in the region of entry @i.  False when it
 * is not a missing page of ours to fill: a poisoned unit (its fetch
 * failed: the application gets this SIGBUS), a unit unmapped, or an
 * address the entry no longer covers.
 */
static bool resolve(unsigned int i, uintptr_t addr)
{
	struct upager_region *r = atomic_load(&tab.region[i]);
	struct filler f = { 0 };
	struct fault ft = { .addr = addr };
	unsigned int s, st;

	/* Pinned: unmap waits for users[i]; recheck the entry is still r. */
	if (!r || addr < (uintptr_t)r->addr || addr >= (uintptr_t)r->addr + r->len)
		return false;
	st = unit_state(unit_load(&r->state[(addr - (uintptr_t)r->addr) /
					    r->fill]));
	if (st == UNIT_POISONED || st == UNIT_GONE)
		return false;
	ft.t0 = now_ns();
	s = slot_get(r);
	f.buf = r->slots + (size_t)s * r->fill;
	f.cap = r->fill;
	STAT_ADD(r->st, faults_inthread, 1);
	region_fault(r, &f, &ft);
	atomic_fetch_and(&r->slot_busy, ~(1u << s));
	return true;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t addr = (uintptr_t)si->si_addr;
	int saved = errno;

	/*
	 * A missing page of a SIGBUS-mode uffd is BUS_ADRERR; so, on this
	 * kernel, is a page poisoned with UFFDIO_POISON (resolve() tells
	 * them apart by the unit's state).  Memory errors are BUS_MCEERR_*.
	 */
	if (si->si_code == BUS_ADRERR) {
		for (unsigned int i = 0; i < INTHREAD_MAX; i++) {
			bool done;

			if (addr < atomic_load(&tab.start[i]) ||
			    addr >= atomic_load(&tab.end[i]))
				continue;
			atomic_fetch_add(&tab.users[i], 1);
			done = resolve(i, addr);
			atomic_fetch_sub(&tab.users[i], 1);
			if (done) {
				errno = saved;
				return;
			}
		}
	}
	errno = saved;
	chain(sig, si, uc);
}

int inthread_add(struct upager_region *r)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&tab.lock);
	if (!tab.installed) {
		struct sigaction sa = { .sa_sigaction = on_sigbus,
					.sa_flags = SA_SIGINFO | SA_RESTART };

		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &tab.previous) < 0) {
			ret = -errno;
			goto out;
		}
		tab.installed = true;
	}
	for (unsigned int i = 0; i < INTHREAD_MAX; i++) {
		if (atomic_load(&tab.region[i]))
			continue;
		atomic_store(&tab.region[i], r);
		atomic_store(&tab.start[i], (uintptr_t)r->addr);
		atomic_store(&tab.end[i], (uintptr_t)r->addr + r->len);
		ret = 0;
		break;
	}
out:
	pthread_mutex_unlock(&tab.lock);
	return ret;
}

void inthread_remove(struct upager_region *r)
{
	pthread_mutex_lock(&tab.lock);
	for (unsigned int i = 0; i < INTHREAD_MAX; i++) {
		if (atomic_load(&tab.region[i]) != r)
			continue;
		atomic_store(&tab.end[i], 0);
		atomic_store(&tab.start[i], UINTPTR_MAX);
		atomic_store(&tab.region[i], NULL);
		while (atomic_load(&tab.users[i]))
			sched_yield();
	}
	pthread_mutex_unlock(&tab.lock);
}

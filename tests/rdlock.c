// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A space's rd_lock (src/engine/rdlock.h) alone, without a kernel or a
 * store: threads take it as the engine's workers do (exclusive: a read
 * of the uffd; shared: installs, an evictor's moves).
 *
 * exclusion   shared and exclusive takers never overlap, nor two
 *             exclusive ones; a count only exclusive takers change
 *             (no atomics) ends at the number of exclusive sections.
 * fair        every thread on one CPU, as tests/writes_inflight runs
 *             its rig: two exclusive takers hand the lock to each other
 *             back to back while a shared taker comes again and again.
 *             It must get in after at most the exclusive section in
 *             progress, so it gets about as many sections as they do;
 *             a lock that lets the exclusive side go first starves it
 *             (an evictor whose moves never ran, session 20).
 * sleep       takers that wait longer than their spin sleep on a futex
 *             and are woken, every one: holds of 0.2 ms to 20 ms, each
 *             side waiting for the other.  A lost wake-up hangs; the
 *             watchdog fails the test instead.
 *
 * argv[1] may name one part to run alone.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include <stdatomic.h>
#include "engine/rdlock.h"

static struct rdlock lk;
static atomic_bool stop;
static atomic_int in_shared, in_excl;
static unsigned long excl_count; /* changed by exclusive takers only */
static atomic_ulong shared_sections, excl_sections;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void spin_a_little(unsigned int n)
{
	for (volatile unsigned int i = 0; i < n; i++)
		;
}

static void *shared_taker(void *arg)
{
	unsigned int work = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		rdlock_shared(&lk);
		atomic_fetch_add(&in_shared, 1);
		CHECK(atomic_load(&in_excl) == 0,
		      "a shared taker in beside an exclusive one");
		spin_a_little(work);
		atomic_fetch_sub(&in_shared, 1);
		rdlock_shared_end(&lk);
		atomic_fetch_add(&shared_sections, 1);
	}
	return NULL;
}

static void *excl_taker(void *arg)
{
	unsigned int work = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		rdlock_excl(&lk);
		CHECK(atomic_fetch_add(&in_excl, 1) == 0,
		      "two exclusive takers in at once");
		CHECK(atomic_load(&in_shared) == 0,
		      "an exclusive taker in beside a shared one");
		excl_count++;
		spin_a_little(work);
		atomic_fetch_sub(&in_excl, 1);
		rdlock_excl_end(&lk);
		atomic_fetch_add(&excl_sections, 1);
	}
	return NULL;
}

static void run(unsigned int nshared, unsigned int nexcl, unsigned int work,
		unsigned int ms)
{
	pthread_t t[8];
	unsigned int n = 0;

	rdlock_init(&lk);
	atomic_store(&stop, false);
	excl_count = 0;
	atomic_store(&shared_sections, 0);
	atomic_store(&excl_sections, 0);
	for (unsigned int i = 0; i < nexcl; i++)
		CHECK(!pthread_create(&t[n++], NULL, excl_taker,
				      (void *)(uintptr_t)work),
		      "pthread_create");
	for (unsigned int i = 0; i < nshared; i++)
		CHECK(!pthread_create(&t[n++], NULL, shared_taker,
				      (void *)(uintptr_t)work),
		      "pthread_create");
	usleep(ms * 1000);
	atomic_store(&stop, true);
	for (unsigned int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

static void exclusion(void)
{
	run(3, 2, 200, 1000);
	CHECK(excl_count == atomic_load(&excl_sections),
	      "exclusive count %lu after %lu exclusive sections", excl_count,
	      atomic_load(&excl_sections));
	CHECK(atomic_load(&shared_sections) && excl_count,
	      "%lu shared and %lu exclusive sections in 1 s",
	      atomic_load(&shared_sections), excl_count);
	printf("exclusion: %lu shared and %lu exclusive sections in 1 s\n",
	       atomic_load(&shared_sections), excl_count);
}

/* Sections of the two sides for @ms on the CPUs the process has now. */
static void fair_run(const char *where)
{
	unsigned long sh, ex;

	run(1, 2, 2000, 1000);
	sh = atomic_load(&shared_sections);
	ex = atomic_load(&excl_sections);
	printf("fair: %lu shared and %lu exclusive sections in 1 s, %s\n", sh,
	       ex, where);
	/*
	 * Phase-fair: the shared taker waits for one exclusive section at a
	 * time, and each exclusive taker waits for it, so the two sides get
	 * the same order of sections; a starved side gets next to none.
	 */
	CHECK(sh >= 100 && sh * 8 >= ex,
	      "%s: the shared taker got %lu sections against the exclusive "
	      "side's %lu: starved",
	      where, sh, ex);
}

static void fair(void)
{
	cpu_set_t one;

	fair_run("every CPU");
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	CHECK(!sched_setaffinity(0, sizeof(one), &one), "sched_setaffinity");
	fair_run("one CPU");
}

struct holder {
	int excl;	   /* take it exclusive */
	unsigned int us;   /* and hold it this long */
	atomic_bool in;	   /* it holds it now (the first one) */
	atomic_bool ended; /* and let it go */
};

static void *hold(void *arg)
{
	struct holder *h = arg;

	if (h->excl)
		rdlock_excl(&lk);
	else
		rdlock_shared(&lk);
	atomic_store(&h->in, true);
	usleep(h->us);
	if (h->excl)
		rdlock_excl_end(&lk);
	else
		rdlock_shared_end(&lk);
	atomic_store(&h->ended, true);
	return NULL;
}

static void on_watchdog(int sig)
{
	(void)sig;
	static const char msg[] =
		"FAIL: sleep: a waiter was never woken (watchdog, 60 s)\n";
	ssize_t r = write(2, msg, sizeof(msg) - 1);

	(void)r;
	_exit(1);
}

/*
 * One holder first, then three waiters of the kinds given (1:
 * exclusive), each holding @us in its turn: every waiter must get in;
 * the watchdog fails a hang.
 */
static void round_of(int first_excl, const int kinds[3], unsigned int us)
{
	struct holder first = { .excl = first_excl, .us = us };
	struct holder w[3];
	pthread_t t[4];

	CHECK(!pthread_create(&t[0], NULL, hold, &first), "pthread_create");
	while (!atomic_load(&first.in))
		sched_yield();
	for (int i = 0; i < 3; i++) {
		w[i] = (struct holder){ .excl = kinds[i], .us = us };
		CHECK(!pthread_create(&t[i + 1], NULL, hold, &w[i]),
		      "pthread_create");
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++)
		CHECK(atomic_load(&w[i].ended), "waiter %d never got in", i);
}

static void sleep_part(void)
{
	static const int kinds[][3] = {
		{ 0, 0, 0 }, { 1, 1, 1 }, { 0, 1, 0 }, { 1, 0, 1 }, { 1, 0, 0 },
	};
	static const unsigned int holds[] = { 200, 2000, 20000 };
	uint64_t t0 = now_ms();
	unsigned int rounds = 0;

	signal(SIGALRM, on_watchdog);
	alarm(60);
	rdlock_init(&lk);
	for (size_t h = 0; h < sizeof(holds) / sizeof(holds[0]); h++)
		for (int first = 0; first < 2; first++)
			for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]);
			     k++) {
				round_of(first, kinds[k], holds[h]);
				rounds++;
			}
	alarm(0);
	printf("sleep: %u rounds in %llu ms, every waiter woken\n", rounds,
	       (unsigned long long)(now_ms() - t0));
}

int main(int argc, char **argv)
{
	static const struct t_plain_part parts[] = {
		{ "exclusion", exclusion },
		{ "sleep", sleep_part },
		{ "fair", fair }, /* last: it pins the process to one CPU */
	};

	return t_plain_parts(argc, argv, parts,
			     sizeof(parts) / sizeof(parts[0]));
}

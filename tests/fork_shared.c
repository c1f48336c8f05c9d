// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A shmem region and its copy in a forked child share one page cache and
 * one unit state: a fault in either process on a unit the other one's
 * fill holds waits for that fill, and the fill must wake it, though its
 * install woke only its own process's uffd (the engine's settle wakes
 * the waiters it was asked for, in every space that shares the unit).
 *
 * A region over a store whose fetches can wait at a gate; two workers,
 * so that one reads the waiting fault while the other sits in the fetch.
 *
 * child waits   a thread of the parent reads page 3, whose fetch waits at
 *               the gate; the child, forked meanwhile, reads page 3: its
 *               fault finds the unit being filled (faults_dup rises) and
 *               waits.  The gate opens: both read the store's page.
 * parent waits  the child reads page 7, whose fetch waits at the gate; a
 *               thread of the parent reads page 7 and waits.  The gate
 *               opens: both read the store's page.
 *
 * Root only: following a fork needs EVENT_FORK (CAP_SYS_PTRACE).
 */
#include <sys/wait.h>

#include "tstore.h"

#define PG 4096
#define CHILD_S 10

static void child(const char *p, int go)
{
	char c;

	t_child_alarm(CHILD_S);
	if (!t_verify(p + 3 * PG, PG, 3))
		t_child_fail("page 3 is not the store's");
	if (read(go, &c, 1) != 1)
		t_child_fail("the parent went away");
	if (!t_verify(p + 7 * PG, PG, 7))
		t_child_fail("page 7 is not the store's");
	_exit(0);
}

static uint64_t dups(struct upager_region *r)
{
	struct upager_stats st;

	upager_region_stats(r, &st);
	return st.faults_dup;
}

/* Wait until a fault was found waiting on a unit being filled. */
static void wait_dup(struct upager_region *r, uint64_t before,
		     const char *who)
{
	for (int ms = 0; dups(r) == before; ms++) {
		CHECK(ms < 5000, "%s's fault never came to wait on the fill",
		      who);
		t_sleep_ms(1);
	}
}

/* The gate again, for the next fetch. */
static void rearm(struct tstore *t)
{
	atomic_store(&t->released, false);
	atomic_store(&t->held, false);
	atomic_store(&t->hold_at, atomic_load(&t->fetches) + 1);
}

int main(void)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = UPAGER_MEM_SHMEM,
					.fork = UPAGER_FORK_FOLLOW,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct upager_handler *h;
	struct upager_region *r;
	struct tstore *t;
	struct toucher to;
	int go[2], status, err;
	uint64_t d;
	pid_t pid;
	char *p;

	if (geteuid() != 0)
		SKIP("following a fork needs CAP_SYS_PTRACE");
	t_deadline(30, "fork_shared did not finish in 30 s");
	h = t_upager_handler(2, NULL, NULL);
	t = tstore_open(16);
	p = upager_map(h, &t->s, 16 * PG, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("no shmem regions or EVENT_FORK here");
	CHECK(p, "map: %s", strerror(-err));
	CHECK(pipe(go) == 0, "pipe: %s", strerror(errno));
	CHECK_RET(upager_handler_start(h), 0);

	/* The child waits on the parent's fill. */
	t->hold_at = 1;
	toucher_start(&to, p + 3 * PG, -1);
	tstore_wait_held(t, "page 3's fetch");
	d = dups(r);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		child(p, go[0]);
	wait_dup(r, d, "the child");
	tstore_release(t);
	pthread_join(to.t, NULL);
	CHECK(t_verify(p + 3 * PG, PG, 3), "page 3 in the parent");

	/* The parent waits on the child's. */
	rearm(t);
	CHECK(write(go[1], "g", 1) == 1, "write: %s", strerror(errno));
	tstore_wait_held(t, "the child's fetch of page 7");
	d = dups(r);
	toucher_start(&to, p + 7 * PG, -1);
	wait_dup(r, d, "the parent");
	tstore_release(t);
	CHECK(toucher_wait_done(&to, 5000),
	      "the parent's fault on page 7 was not woken by the child's "
	      "fill");
	pthread_join(to.t, NULL);
	CHECK(t_verify(p + 7 * PG, PG, 7), "page 7 in the parent");

	CHECK(t_wait_child(pid, (CHILD_S + 1) * 1000, &status) == 0,
	      "the child did not finish");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child %s %d",
	      WIFSIGNALED(status) ? "was killed by signal" : "exited",
	      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	close(go[0]);
	close(go[1]);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
	t_deadline(0, NULL);
	return 0;
}

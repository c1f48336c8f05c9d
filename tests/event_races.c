// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The races the kernel documents between faults and the memory-map
 * events, each set up on purpose with a store whose fetch waits at a
 * gate (argv[1]: anon or shmem):
 *
 * eagain       one worker, no spares: while it fetches a page, the program
 *              drops another page (MADV_DONTNEED): the REMOVE is queued,
 *              and the kernel answers the worker's install -EAGAIN until
 *              someone reads it.  Only the worker can: it reads the
 *              event itself and installs.  The page arrives fetched once
 *              (a worker that gave up instead would give the unit back
 *              and fetch it a second time, or poison it), and the
 *              program's madvise() returns.
 * remove       a page is dropped while its fault's fetch is held: the
 *              fill settles the unit REMOVED and wakes; the faulting
 *              thread gets the store's data, and so does every read
 *              after (the default policy refetches), never a hang.
 * fork         the process forks while a thread waits in a held fetch:
 *              the child reads that page and others (its own faults, its
 *              own uffd), the parent's thread gets its page once the
 *              fetch goes on; every byte checked in both.
 * exit         a child dies (SIGKILL) while its fault's fetch is held;
 *              the fetch then meets a process that is gone (-ESRCH), and
 *              the child's uffd is closed, as is that of a child that
 *              exits without faulting (found by the liveness sweep):
 *              the userfaultfds open go back to the handler's own.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 64

struct rig {
	struct upager_handler *h;
	struct tstore *t;
	struct upager_region *r;
	char *p;
};

static void rig_open(struct rig *g, enum upager_memtype type,
		     unsigned int threads, int spares)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .threads = threads,
					    .spare_workers = spares };
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	int err;

	g->h = upager_handler_new(&hp, &err);
	CHECK(g->h, "handler: %s", strerror(-err));
	g->t = tstore_open(NPAGES);
	g->p = upager_map(g->h, &g->t->s, NPAGES * PG, &mp, &g->r, &err);
	CHECK(g->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(g->h), 0);
}

static void rig_close(struct rig *g)
{
	CHECK_RET(upager_unmap(g->r), 0);
	upager_handler_free(g->h);
	upager_store_close(&g->t->s);
}

/* Hold the next fetch at the gate, and start a thread that faults @page. */
static void held_fault(struct rig *g, struct toucher *to, size_t page)
{
	g->t->hold_at = atomic_load(&g->t->fetches) + 1;
	toucher_start(to, g->p + page * PG, -1);
	tstore_wait_held(g->t, "the held fetch");
}

/* Let the held fetch go on, a little later than the caller's madvise(). */
static void *release_later(void *arg)
{
	t_sleep_ms(50);
	tstore_release(arg);
	return NULL;
}

static void eagain(enum upager_memtype type)
{
	struct rig g;
	struct toucher to;
	struct upager_stats st;
	unsigned int before;

	rig_open(&g, type, 1, -1);
	CHECK(t_verify(g.p + 10 * PG, PG, 10), "page 10");
	before = atomic_load(&g.t->fetches);
	held_fault(&g, &to, 3);
	/* Queued: the worker is at the gate.  Released from another
	 * thread, since madvise() waits until the REMOVE is read. */
	{
		pthread_t rel;

		CHECK(pthread_create(&rel, NULL, release_later, g.t) == 0,
		      "pthread_create");
		CHECK(madvise(g.p + 10 * PG, PG, MADV_DONTNEED) == 0,
		      "madvise: %s", strerror(errno));
		pthread_join(rel, NULL);
	}
	pthread_join(to.t, NULL);
	CHECK(t_verify(g.p + 3 * PG, PG, 3), "page 3");
	CHECK(atomic_load(&g.t->fetches) == before + 1,
	      "page 3 fetched %u times", atomic_load(&g.t->fetches) - before);
	upager_region_stats(g.r, &st);
	CHECK(st.store_errors == 0, "store_errors %llu",
	      (unsigned long long)st.store_errors);
	CHECK(t_verify(g.p + 10 * PG, PG, 10), "page 10 after the drop");
	rig_close(&g);
}

static void remove_held(enum upager_memtype type)
{
	struct rig g;
	struct toucher to;

	rig_open(&g, type, 2, 0);
	held_fault(&g, &to, 3);
	CHECK(madvise(g.p + 3 * PG, PG, MADV_DONTNEED) == 0, "madvise: %s",
	      strerror(errno));
	tstore_release(g.t);
	pthread_join(to.t, NULL);
	CHECK(t_verify((const void *)to.p, PG, 3) && to.byte == to.p[0],
	      "page 3 after a drop under its fill");
	CHECK(madvise(g.p + 3 * PG, PG, MADV_DONTNEED) == 0, "madvise: %s",
	      strerror(errno));
	CHECK(t_verify(g.p + 3 * PG, PG, 3), "page 3 read again");
	rig_close(&g);
}

static int child_reads(struct rig *g)
{
	for (size_t i = 0; i < NPAGES; i += 7)
		if (!t_verify(g->p + i * PG, PG, i))
			return 1;
	return t_verify(g->p + 3 * PG, PG, 3) ? 0 : 1;
}

static void fork_held(enum upager_memtype type)
{
	struct rig g;
	struct toucher to;
	int status;
	pid_t pid;

	rig_open(&g, type, 2, 0);
	held_fault(&g, &to, 3);
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(child_reads(&g));
	/* The child may wait on page 3 too (shmem: one unit state). */
	t_sleep_ms(20);
	tstore_release(g.t);
	pthread_join(to.t, NULL);
	CHECK(t_verify(g.p + 3 * PG, PG, 3), "the parent's page 3");
	CHECK(t_wait_child(pid, 5000, &status) == 0 && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "the child's reads failed (status %#x)", status);
	rig_close(&g);
}

/* The userfaultfds open here: the handler's, and one per child served. */
static unsigned int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned int n = 0;

	CHECK(d, "opendir: %s", strerror(errno));
	while ((e = readdir(d))) {
		char path[300], link[64];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len > 0) {
			link[len] = 0;
			n += !strcmp(link, "anon_inode:[userfaultfd]");
		}
	}
	closedir(d);
	return n;
}

static void wait_fds(unsigned int want, const char *what)
{
	for (int ms = 0; open_fds() != want; ms += 10) {
		CHECK(ms < 5000, "%s: %u userfaultfds open, want %u", what,
		      open_fds(), want);
		t_sleep_ms(10);
	}
}

static void exits(enum upager_memtype type)
{
	struct rig g;
	struct upager_stats st;
	unsigned int fds;
	int status;
	pid_t pid;

	rig_open(&g, type, 2, 0);
	fds = open_fds();

	/* A child killed while its fault's fetch is held. */
	g.t->hold_at = atomic_load(&g.t->fetches) + 1;
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(g.p[5 * PG]);
	tstore_wait_held(g.t, "the child's fetch");
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, &status, 0) == pid && WIFSIGNALED(status),
	      "the child was not killed");
	tstore_release(g.t);
	wait_fds(fds, "after the killed child");

	/* A child that exits without a fault: the sweep finds it. */
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(0);
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	wait_fds(fds, "after the child that exited");

	upager_region_stats(g.r, &st);
	CHECK(st.forks == 2, "forks %llu", (unsigned long long)st.forks);
	CHECK(st.store_errors == 0, "store_errors %llu",
	      (unsigned long long)st.store_errors);
	CHECK(t_verify(g.p + 5 * PG, PG, 5), "the parent's page 5");
	rig_close(&g);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	int err;

	t_deadline(60, "event_races did not finish in 60 s");
	{
		/* EVENT_FORK needs CAP_SYS_PTRACE: probe it as the engine does. */
		struct upager_handler *h = upager_handler_new(NULL, &err);
		struct upager_map_params mp = { .size = sizeof(mp),
						.fork = UPAGER_FORK_FOLLOW };
		struct upager_store *z = upager_store_open("zero", &err);
		struct upager_region *r;
		bool follow;

		CHECK(h && z, "handler or store: %s", strerror(-err));
		follow = upager_map(h, z, PG, &mp, &r, &err) != NULL;
		if (follow)
			upager_unmap(r);
		upager_handler_free(h);
		upager_store_close(z);
		eagain(type);
		remove_held(type);
		if (!follow) {
			t_not_checked("fork races: no EVENT_FORK here (%s)",
				      strerror(-err));
			return t_end();
		}
	}
	fork_held(type);
	exits(type);
	t_deadline(0, NULL);
	return t_end();
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A fork() right after an madvise(MADV_DONTNEED) of a region returns.
 *
 * madvise() returns once a worker has read its REMOVE event; the worker
 * then handles it (event_remove(): space_range() allocates), holding its
 * space's rd_lock.  glibc's fork() holds every malloc arena lock across
 * the clone, and with EVENT_FORK the clone waits until a worker reads the
 * FORK event.  A worker that allocates in the handling meanwhile blocks
 * on an arena lock, the other workers wait for rd_lock to read, and no
 * one reads the FORK event: fork() never returns.  On a 2-CPU machine
 * within a second of the rounds below, and in about 1 of 4 runs of a
 * fork right after a few drops (tests/remove_policy.c, before it
 * stopped its workers first).
 *
 * Rounds of: read a page of a region over a mem store, DONTNEED it,
 * fork a child that exits at once, wait for it; for 3 s.  Each fork
 * must return: a deadline ends the test otherwise.
 *
 * Root only: without EVENT_FORK (CAP_SYS_PTRACE) the clone waits for no
 * worker.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 64
#define RUN_NS 3000000000ull

int main(int argc, char **argv)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = t_upager_memtype(argc, argv,
								    false),
					.fork = UPAGER_FORK_FOLLOW };
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	unsigned int rounds = 0;
	uint64_t end;
	int err;
	char *p;

	if (geteuid() != 0)
		SKIP("following a fork needs CAP_SYS_PTRACE");
	h = t_upager_handler(2, NULL, NULL);
	s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	p = upager_map(h, s, NPAGES * PG, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("no EVENT_FORK here");
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	t_deadline(10, "a fork() right after a MADV_DONTNEED never returned "
		       "(the engine deadlocked)");
	end = t_now_ns() + RUN_NS;
	do {
		size_t i = rounds % NPAGES;
		int status;
		pid_t pid;

		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
		CHECK(madvise(p + i * PG, PG, MADV_DONTNEED) == 0,
		      "madvise: %s", strerror(errno));
		pid = fork();
		CHECK(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0)
			_exit(0);
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s",
		      strerror(errno));
		rounds++;
	} while (t_now_ns() < end);
	t_deadline(0, NULL);
	fprintf(stderr, "%u forks, each right after a DONTNEED\n", rounds);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	return 0;
}

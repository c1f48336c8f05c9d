// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * uffd-wp across fork() (kselftest "wp-fork" / "wp-fork-with-event"): a
 * page is written, then write-protected; a child checks its own
 * /proc/self/pagemap entry for PM_UFFD_WP (bit 57) instead of faulting.
 * With UFFD_FEATURE_EVENT_FORK the child's VMA stays registered (with the
 * new uffd the FORK event hands to the reader, who must close it) and the
 * bit persists; without it the child's VMA is unregistered and the bit is
 * dropped.  Repeated after zapping the pte, so the protection lives in a
 * pte marker (shmem: MADV_DONTNEED) or a swap entry (anon: MADV_PAGEOUT,
 * which does nothing without swap: the pte stays present), and after
 * unprotecting, when the bit must be clear in the parent.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

struct ctx {
	int forks;
	int child_uffd;
};

static void on_event(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);

	CHECK(ev->kind == UPAGER_LL_EVENT_FORK, "event %s",
	      upager_ll_event_name(ev->kind));
	CHECK(c->forks == 0, "second FORK event");
	c->child_uffd = ev->fork.uffd;
	c->forks++;
}

/* Fork a child that checks its pagemap wp bit at @p is @want. */
static void fork_check(int fd, const char *p, bool with_event, bool want)
{
	struct ctx c = { .child_uffd = -1 };
	struct t_handler *h = NULL;
	int status;
	pid_t pid;

	/* With EVENT_FORK, fork() waits until the event is read. */
	if (with_event)
		h = t_handler_start(fd, on_event, &c);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int pm = open("/proc/self/pagemap", O_RDONLY);
		uint64_t v;

		if (pm < 0)
			_exit(2);
		v = t_pagemap_entry(pm, p);
		_exit(!!(v & PM_UFFD_WP) == want ? 0 : 3);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child: status %#x (exit 3: uffd-wp bit %s in the child)",
	      status, want ? "dropped" : "kept");
	if (!with_event)
		return;
	t_handler_stop(h);
	CHECK(c.forks == 1, "%d FORK events", c.forks);
	CHECK(c.child_uffd >= 0, "fork.uffd %d", c.child_uffd);
	CHECK(fcntl(c.child_uffd, F_GETFD) >= 0, "fork.uffd not open");
	CHECK(c.child_uffd != fd, "fork.uffd is the parent's");
	close(c.child_uffd);
}

static void run(enum upager_ll_memtype type, bool with_event)
{
	uint64_t features = t_features_wp(type);
	struct t_mem m;
	int pm, fd;

	if (with_event)
		features |= UFFD_FEATURE_EVENT_FORK;
	fd = t_uffd(features, 0);
	t_mem_map(&m, type, 4);
	pm = upager_ll_pagemap_open();
	CHECK(pm >= 0, "pagemap: %s", strerror(-pm));
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_WP, NULL), 0);

	/* A present, write-protected pte. */
	*m.addr = 1;
	CHECK(!(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP), "wp before WP");
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.page,
					 UFFDIO_WRITEPROTECT_MODE_WP), 0);
	CHECK(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP, "no wp bit");
	fork_check(fd, m.addr, with_event, with_event);

	/* Zap the pte: the protection must survive in what replaces it. */
	if (type == UPAGER_LL_MEM_SHMEM)
		CHECK(madvise(m.addr, m.page, MADV_DONTNEED) == 0,
		      "MADV_DONTNEED: %s", strerror(errno));
	else
		madvise(m.addr, m.page, MADV_PAGEOUT); /* may do nothing */
	CHECK(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP, "wp bit lost by zap");
	fork_check(fd, m.addr, with_event, with_event);

	/* Unprotect, then fault the page back in: no bit anywhere. */
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.page, 0), 0);
	CHECK(!(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP), "wp after unprotect");
	*m.addr = 2;
	CHECK(!(t_pagemap_entry(pm, m.addr) & PM_UFFD_WP), "wp after write");
	CHECK(*m.addr == 2, "data");
	fork_check(fd, m.addr, with_event, false);

	CHECK_RET(upager_ll_unregister(fd, m.addr, m.len), 0);
	close(pm);
	t_mem_unmap(&m);
	close(fd);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	if (type == UPAGER_LL_MEM_HUGETLB)
		SKIP("wp_fork runs on anon and shmem");
	run(type, false);
	run(type, true);
	return 0;
}

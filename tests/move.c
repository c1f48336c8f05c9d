// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFDIO_MOVE on anonymous memory (kselftest "move"): a handler resolves
 * MISSING faults by moving pages from a staging area (populated by
 * writing, not registered); the data arrives and the source becomes
 * unmapped (it reads zeros).  Then, without a handler:
 *   - a populated dst is -EEXIST;
 *   - a src hole is -ENOENT, or skipped and counted with
 *     UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES; a hole after moved pages makes
 *     the call partial (-EAGAIN, *done = the pages before it);
 *   - a multi-page move moves every page;
 *   - a src page COW-shared with a forked child is -EBUSY (it is not
 *     PageAnonExclusive), and stays so after the child exits until a
 *     write fault makes it exclusive again;
 *   - a dst not registered with this uffd is -EINVAL (validate_move_areas()
 *     requires it; the src need not be registered).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PM_PRESENT (1ull << 63)
#define NPAGES 32
#define PG 4096ul

struct ctx {
	char *dst, *src;
};

static bool present(int pm, const void *addr)
{
	uint64_t v;
	off_t off = (off_t)((uintptr_t)addr / PG * sizeof(v));

	CHECK(pread(pm, &v, sizeof(v), off) == sizeof(v), "pagemap: %s",
	      strerror(errno));
	return v & PM_PRESENT;
}

static bool zero(const char *p)
{
	for (size_t i = 0; i < PG; i++)
		if (p[i])
			return false;
	return true;
}

static void on_fault(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);
	uint64_t off;
	size_t done;

	CHECK(ev->kind == UPAGER_LL_EVENT_PAGEFAULT && !ev->pagefault.wp &&
		      !ev->pagefault.minor,
	      "event %s flags %#llx", upager_ll_event_name(ev->kind),
	      (unsigned long long)ev->pagefault.flags);
	off = (ev->pagefault.address - (uintptr_t)c->dst) & ~(PG - 1);
	CHECK(off < 4 * PG, "fault outside pages 0-3");
	CHECK_RET(upager_ll_move(t_handler_uffd(h), c->dst + off, c->src + off,
				 PG, 0, &done), 0);
	CHECK(done == PG, "done %zu", done);
}

int main(int argc, char **argv)
{
	struct t_mem dst, src, unreg;
	struct ctx c;
	struct t_handler *h;
	uint64_t ioctls;
	size_t done;
	int pm, fd, status, pipefd[2];
	pid_t pid;

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	if (t_memtype(argc, argv) != UPAGER_LL_MEM_ANON)
		SKIP("UFFDIO_MOVE works on private anonymous memory only");
	fd = t_uffd(UFFD_FEATURE_MOVE, 0);
	t_mem_map(&dst, UPAGER_LL_MEM_ANON, NPAGES);
	t_mem_map(&src, UPAGER_LL_MEM_ANON, NPAGES);
	/* Small pages only: a THP src would be moved or split differently. */
	madvise(src.addr, src.len, MADV_NOHUGEPAGE);
	madvise(dst.addr, dst.len, MADV_NOHUGEPAGE);
	pm = upager_ll_pagemap_open();
	CHECK(pm >= 0, "pagemap: %s", strerror(-pm));
	CHECK_RET(upager_ll_register(fd, dst.addr, dst.len,
				     UFFDIO_REGISTER_MODE_MISSING, &ioctls), 0);
	t_need_ioctls(ioctls, 1ull << _UFFDIO_MOVE, "MOVE");

	/* Staging: every page written but 9 and 13 (holes). */
	for (size_t i = 0; i < NPAGES; i++)
		if (i != 9 && i != 13)
			t_fill(src.addr + i * PG, PG, i);

	/* Faults on pages 0-3 resolved by moving. */
	c.dst = dst.addr;
	c.src = src.addr;
	h = t_handler_start(fd, on_fault, &c);
	for (size_t i = 0; i < 4; i++) {
		CHECK(t_verify(dst.addr + i * PG, PG, i), "dst page %zu", i);
		CHECK(!present(pm, src.addr + i * PG), "src %zu still mapped", i);
		CHECK(zero(src.addr + i * PG), "src page %zu not zero", i);
	}
	CHECK(t_handler_stop(h) == 4, "one fault per page");

	/* dst populated: -EEXIST (src page 5 is still there). */
	CHECK_RET(upager_ll_move(fd, dst.addr, src.addr + 5 * PG, PG, 0,
				 &done), -EEXIST);
	CHECK(done == 0, "done %zu", done);
	CHECK(t_verify(src.addr + 5 * PG, PG, 5), "src page 5 changed");

	/* Multi-page: pages 4-8 in one call. */
	CHECK_RET(upager_ll_move(fd, dst.addr + 4 * PG, src.addr + 4 * PG,
				 5 * PG, 0, &done), 0);
	CHECK(done == 5 * PG, "done %zu", done);
	for (size_t i = 4; i < 9; i++) {
		CHECK(t_verify(dst.addr + i * PG, PG, i), "dst page %zu", i);
		CHECK(!present(pm, src.addr + i * PG), "src %zu mapped", i);
	}

	/* A src hole: -ENOENT, or skipped (and counted) when allowed. */
	CHECK_RET(upager_ll_move(fd, dst.addr + 9 * PG, src.addr + 9 * PG, PG,
				 0, &done), -ENOENT);
	CHECK(done == 0, "done %zu", done);
	CHECK_RET(upager_ll_move(fd, dst.addr + 9 * PG, src.addr + 9 * PG,
				 3 * PG, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done),
		  0);
	CHECK(done == 3 * PG, "done %zu", done);
	CHECK(!present(pm, dst.addr + 9 * PG), "dst 9 filled from a hole");
	CHECK(t_verify(dst.addr + 10 * PG, PG, 10), "dst page 10");
	CHECK(t_verify(dst.addr + 11 * PG, PG, 11), "dst page 11");

	/* A hole after a moved page: partial, resume at the hole. */
	CHECK_RET(upager_ll_move(fd, dst.addr + 12 * PG, src.addr + 12 * PG,
				 3 * PG, 0, &done), -EAGAIN);
	CHECK(done == PG, "done %zu", done);
	CHECK(t_verify(dst.addr + 12 * PG, PG, 12), "dst page 12");
	CHECK_RET(upager_ll_move(fd, dst.addr + 13 * PG, src.addr + 13 * PG,
				 2 * PG, 0, &done), -ENOENT);
	CHECK(done == 0, "done %zu", done);
	CHECK_RET(upager_ll_move(fd, dst.addr + 13 * PG, src.addr + 13 * PG,
				 2 * PG, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &done),
		  0);
	CHECK(done == 2 * PG, "done %zu", done);
	CHECK(t_verify(dst.addr + 14 * PG, PG, 14), "dst page 14");

	/* A src page shared with a forked child (COW): -EBUSY. */
	CHECK(pipe(pipefd) == 0, "pipe");
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		char b;

		close(pipefd[1]);
		_exit(read(pipefd[0], &b, 1) == 0 ? 0 : 1);
	}
	close(pipefd[0]);
	CHECK_RET(upager_ll_move(fd, dst.addr + 15 * PG, src.addr + 15 * PG,
				 PG, 0, &done), -EBUSY);
	CHECK(done == 0, "done %zu", done);
	close(pipefd[1]);
	CHECK(waitpid(pid, &status, 0) == pid && status == 0, "child");
	/*
	 * The child is gone but the page is still not marked exclusive: only
	 * a write fault that reuses it (or a new page) sets that again.
	 */
	CHECK_RET(upager_ll_move(fd, dst.addr + 15 * PG, src.addr + 15 * PG,
				 PG, 0, &done), -EBUSY);
	*(volatile char *)(src.addr + 15 * PG) = src.addr[15 * PG];
	CHECK_RET(upager_ll_move(fd, dst.addr + 15 * PG, src.addr + 15 * PG,
				 PG, 0, &done), 0);
	CHECK(t_verify(dst.addr + 15 * PG, PG, 15), "dst page 15");

	/* The dst must be registered with this uffd; the src need not be. */
	t_mem_map(&unreg, UPAGER_LL_MEM_ANON, 1);
	CHECK_RET(upager_ll_move(fd, unreg.addr, src.addr + 16 * PG, PG, 0,
				 &done), -EINVAL);
	CHECK(t_verify(src.addr + 16 * PG, PG, 16), "src page 16 changed");
	t_mem_unmap(&unreg);

	close(pm);
	t_mem_unmap(&src);
	t_mem_unmap(&dst);
	close(fd);
	return 0;
}

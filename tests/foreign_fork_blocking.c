// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A process whose uffd was opened without O_NONBLOCK, with EVENT_FORK, is
 * adopted (upager_space_adopt() makes that descriptor non-blocking) and
 * forks.  The kernel opens the child's uffd with the flags the parent's
 * was *created* with, so the descriptor EVENT_FORK hands the handler is
 * blocking; adopted as it is, the first read(2) that found its queue
 * empty would stop that worker for good with rd_lock held, and every
 * other worker behind it: nothing served any more, for any process.
 * event_fork() makes it non-blocking.
 *
 * The process: opens its uffd blocking with EVENT_FORK, registers a
 * range, hands it over, reads it all, forks a child that reads it all
 * too, and does it again, three times over.  Passes when every read
 * completes within the deadline.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 256

static int client(int sock)
{
	char *m = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	uint64_t addr = (uintptr_t)m;
	struct iovec iov = { &addr, sizeof(addr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int uffd = upager_ll_open(0, NULL), status; /* blocking */
	char go;

	if (m == MAP_FAILED || uffd < 0 ||
	    upager_ll_api(uffd, UFFD_FEATURE_EVENT_FORK, NULL) ||
	    upager_ll_register(uffd, m, NPAGES * PG,
			       UFFDIO_REGISTER_MODE_MISSING, NULL))
		return 3;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &uffd, sizeof(int));
	if (sendmsg(sock, &mh, 0) != sizeof(addr) || read(sock, &go, 1) != 1)
		return 4;
	for (int round = 0; round < 3; round++) {
		pid_t pid;

		for (size_t i = 0; i < NPAGES; i++)
			if (!t_verify(m + i * PG, PG, i))
				return 5;
		pid = fork();
		if (pid == 0) {
			for (size_t i = 0; i < NPAGES; i++)
				if (!t_verify(m + i * PG, PG, i))
					_exit(6);
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, &status, 0) != pid || status)
			return 7;
		madvise(m, NPAGES * PG, MADV_DONTNEED);
	}
	return 0;
}

int main(void)
{
	struct upager_space_params sp = { .size = sizeof(sp),
					  .features = UFFD_FEATURE_EVENT_FORK };
	struct upager_handler *h;
	struct upager_store *st;
	struct msghdr mh = { 0 };
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov;
	uint64_t addr;
	int sv[2], status, err, fd;
	pid_t pid;

	t_deadline(30, "foreign_fork_blocking: the handler stopped serving");
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	      "socketpair");
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(client(sv[1]));
	}
	close(sv[1]);
	st = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(st, "mem store");
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(st) + i * PG, PG, i);
	h = t_upager_handler(2, NULL, NULL);
	iov = (struct iovec){ &addr, sizeof(addr) };
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	CHECK(recvmsg(sv[0], &mh, 0) == sizeof(addr) && CMSG_FIRSTHDR(&mh),
	      "recvmsg");
	memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
	sp.pid = pid;
	struct upager_space *s = upager_space_adopt(h, fd, &sp, &err);
	CHECK(s, "adopt: %s", strerror(-err));
	CHECK(upager_space_map(s, st, addr, NPAGES * PG, NULL, &err),
	      "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(write(sv[0], "g", 1) == 1, "write");
	CHECK(t_wait_child(pid, 25000, &status) == 0 && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "the client failed (status %#x)", status);
	upager_space_release(s);
	upager_handler_free(h);
	upager_store_close(st);
	t_deadline(0, NULL);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Another process's memory (upager_space_adopt(), upager_space_map()):
 * what a manager such as upagerd does for each client.
 *
 * A client process maps two private anonymous ranges with a gap between
 * them (as Firecracker maps guest memory), opens a uffd with EVENT_REMOVE,
 * registers both ranges MISSING and sends the uffd to this process over a
 * unix socket (SCM_RIGHTS) with the ranges' addresses.  This process
 * adopts it into a handler and maps two regions over the ranges, from a
 * mem store at two offsets, the second with UPAGER_REMOVE_ZERO (a
 * balloon).  The client reads every page of both (each equal to the store
 * at its region's offset), writes some, drops a range of each with
 * MADV_DONTNEED (the first reads the store again, the second zeros) and
 * exits; the handler notices (on_exit, from the pidfd) and the space is
 * released.  Also: bad descriptors and ranges are refused, and a client
 * still running when its space is released gets SIGBUS for pages it
 * never had, not zeros and not a hang.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 64 /* per range */
#define OFF2 200  /* the second range's store offset, in pages */

struct ranges {
	uint64_t a, b; /* the client's two ranges, NPAGES pages each */
};

static void send_fd(int sock, int fd, const void *data, size_t len)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)data, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	CHECK(sendmsg(sock, &mh, 0) == (ssize_t)len, "sendmsg: %s",
	      strerror(errno));
}

static int recv_fd(int sock, void *data, size_t len)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { data, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct cmsghdr *c;
	int fd;

	CHECK(recvmsg(sock, &mh, 0) == (ssize_t)len, "recvmsg: %s",
	      strerror(errno));
	c = CMSG_FIRSTHDR(&mh);
	CHECK(c && c->cmsg_type == SCM_RIGHTS, "no descriptor came");
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* The client's side: what Firecracker does, with upager_ll_* calls. */
static int client(int sock, bool linger)
{
	size_t len = NPAGES * PG;
	char *m = mmap(NULL, 3 * len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct ranges rg;
	int uffd, ok = 1;
	char go;

	if (m == MAP_FAILED)
		return 2;
	munmap(m + len, len); /* the gap */
	rg.a = (uintptr_t)m;
	rg.b = (uintptr_t)m + 2 * len;
	uffd = upager_ll_open(0, NULL);
	if (uffd < 0 || upager_ll_api(uffd, UFFD_FEATURE_EVENT_REMOVE, NULL) ||
	    upager_ll_register(uffd, m, len, UFFDIO_REGISTER_MODE_MISSING,
			       NULL) ||
	    upager_ll_register(uffd, m + 2 * len, len,
			       UFFDIO_REGISTER_MODE_MISSING, NULL))
		return 3;
	send_fd(sock, uffd, &rg, sizeof(rg));
	close(uffd);
	if (read(sock, &go, 1) != 1) /* the regions are mapped */
		return 4;
	if (linger) {
		/* Served a page, then the manager lets go: SIGBUS beyond. */
		ok &= t_verify(m, PG, 0);
		if (write(sock, "r", 1) != 1 || read(sock, &go, 1) != 1)
			return 5;
		ok &= t_read_sigbus(m + 50 * PG); /* past fault-around */
		return ok ? 0 : 1;
	}
	for (size_t i = 0; i < NPAGES; i++) {
		ok &= t_verify(m + i * PG, PG, i);
		ok &= t_verify(m + 2 * len + i * PG, PG, OFF2 + i);
	}
	memset(m + 3 * PG, 'x', PG);
	memset(m + 2 * len + 3 * PG, 'x', PG);
	if (madvise(m, 8 * PG, MADV_DONTNEED) ||
	    madvise(m + 2 * len, 8 * PG, MADV_DONTNEED))
		return 6;
	for (size_t i = 0; i < 8; i++) {
		const char *z = m + 2 * len + i * PG;

		ok &= t_verify(m + i * PG, PG, i);
		for (size_t k = 0; k < PG; k++)
			ok &= !z[k];
	}
	ok &= t_verify(m + 2 * len + 9 * PG, PG, OFF2 + 9);
	return ok ? 0 : 1;
}

struct exited {
	atomic_int calls;
	struct upager_space *_Atomic sp;
};

static void on_exit_cb(void *arg, struct upager_space *sp)
{
	struct exited *e = arg;

	atomic_store(&e->sp, sp);
	atomic_fetch_add(&e->calls, 1);
}

static pid_t start_client(int *sock, bool linger)
{
	int sv[2];
	pid_t pid;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	      "socketpair: %s", strerror(errno));
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		_exit(client(sv[1], linger));
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

static struct upager_space *adopt(struct upager_handler *h, int fd, pid_t pid,
				  struct exited *e)
{
	struct upager_space_params sp = { .size = sizeof(sp),
					  .pid = pid,
					  .features = UFFD_FEATURE_EVENT_REMOVE,
					  .on_exit = on_exit_cb,
					  .exit_arg = e };
	struct upager_space *s;
	int err;

	s = upager_space_adopt(h, fd, &sp, &err);
	CHECK(s, "adopt: %s", strerror(-err));
	return s;
}

static struct upager_region *map(struct upager_space *s,
				 struct upager_store *st, uint64_t addr,
				 uint64_t off, bool zero)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.store_offset = off * PG,
					.remove = zero ? UPAGER_REMOVE_ZERO
						       : UPAGER_REMOVE_REFETCH };
	struct upager_region *r;
	int err;

	r = upager_space_map(s, st, addr, NPAGES * PG, &mp, &err);
	CHECK(r, "space map: %s", strerror(-err));
	return r;
}

static void refused(struct upager_handler *h, struct upager_store *st)
{
	struct upager_space_params sp = { .size = sizeof(sp) };
	struct upager_map_params mp = { .size = sizeof(mp) };
	struct upager_space *s;
	int fds[2], err, fd;

	/* A pipe, and a uffd never set up, are no space. */
	CHECK(pipe(fds) == 0, "pipe");
	CHECK(!upager_space_adopt(h, fds[0], &sp, &err) && err == -EBADF,
	      "a pipe adopted: %s", strerror(-err));
	close(fds[1]);
	fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC);
	CHECK(fd >= 0, "userfaultfd: %s", strerror(errno));
	CHECK(!upager_space_adopt(h, fd, &sp, &err) && err == -EINVAL,
	      "a uffd without UFFDIO_API adopted: %s", strerror(-err));

	/* Ranges: misaligned, wrapping, past the address space, overlapping,
	 * a memory type that needs the memory to be ours. */
	fd = upager_ll_open(0, NULL);
	CHECK(fd >= 0 && upager_ll_api(fd, 0, NULL) == 0, "uffd");
	s = upager_space_adopt(h, fd, &sp, &err);
	CHECK(s, "adopt: %s", strerror(-err));
	CHECK(!upager_space_map(s, st, 0x10000001, PG, &mp, &err) &&
		      err == -EINVAL, "misaligned: %s", strerror(-err));
	CHECK(!upager_space_map(s, st, UINT64_MAX - PG + 1, 2 * PG, &mp,
				&err) && err == -EINVAL,
	      "wrapping: %s", strerror(-err));
	CHECK(!upager_space_map(s, st, 1ull << 60, PG, &mp, &err) &&
		      err == -EINVAL, "past user space: %s", strerror(-err));
	CHECK(upager_space_map(s, st, 0x10000000, 4 * PG, &mp, &err),
	      "a first region: %s", strerror(-err));
	CHECK(!upager_space_map(s, st, 0x0fffe000, 4 * PG, &mp, &err) &&
		      err == -EEXIST, "overlapping: %s", strerror(-err));
	CHECK(!upager_space_map(s, st, 0x0ff00000, 2 << 20, &mp, &err) &&
		      err == -EEXIST, "covering: %s", strerror(-err));
	mp.memtype = UPAGER_MEM_SHMEM;
	CHECK(!upager_space_map(s, st, 0x20000000, PG, &mp, &err) &&
		      err == -EINVAL, "shmem: %s", strerror(-err));
	CHECK_RET(upager_space_release(s), 0);
}

int main(void)
{
	struct exited e = { 0 };
	struct upager_handler *h;
	struct upager_space *s;
	struct upager_store *st;
	struct upager_stats rs;
	struct upager_region *r1, *r2;
	struct ranges rg;
	int sock, status, fd, err;
	char go;
	pid_t pid;
	char *img;

	t_deadline(60, "foreign did not finish in 60 s");
	/* Clients first: this process has no thread of the engine yet. */
	pid = start_client(&sock, false);
	st = upager_store_mem_new(512 * PG, &err);
	CHECK(st, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(st);
	for (size_t i = 0; i < 512; i++)
		t_fill(img + i * PG, PG, i);
	h = t_upager_handler(2, NULL, NULL);
	refused(h, st);

	fd = recv_fd(sock, &rg, sizeof(rg));
	s = adopt(h, fd, pid, &e);
	CHECK(upager_space_pid(s) == pid, "pid");
	r1 = map(s, st, rg.a, 0, false);
	r2 = map(s, st, rg.b, OFF2, true);
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(write(sock, "g", 1) == 1, "write");
	CHECK(t_wait_child(pid, 20000, &status) == 0 && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "the client failed (status %#x)", status);
	for (int ms = 0; !atomic_load(&e.calls); ms++) {
		CHECK(ms < 5000, "on_exit never came");
		t_sleep_ms(1);
	}
	CHECK(atomic_load(&e.sp) == s && atomic_load(&e.calls) == 1,
	      "on_exit: %d calls", atomic_load(&e.calls));
	upager_region_stats(r1, &rs);
	CHECK(rs.bytes_fetched == (NPAGES + 8) * PG && rs.pages_removed == 8,
	      "region 1: fetched %llu, pages_removed %llu",
	      (unsigned long long)rs.bytes_fetched,
	      (unsigned long long)rs.pages_removed);
	upager_region_stats(r2, &rs);
	CHECK(rs.bytes_fetched == NPAGES * PG,
	      "region 2 fetched %llu (zeros must not be fetched)",
	      (unsigned long long)rs.bytes_fetched);
	CHECK_RET(upager_space_release(s), 0);
	close(sock);

	/* Released while its process runs: SIGBUS where it had nothing. */
	CHECK_RET(upager_handler_stop(h), 0);
	e.calls = 0;
	pid = start_client(&sock, true);
	fd = recv_fd(sock, &rg, sizeof(rg));
	s = adopt(h, fd, pid, &e);
	map(s, st, rg.a, 0, false);
	map(s, st, rg.b, OFF2, false);
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(write(sock, "g", 1) == 1, "write");
	CHECK(read(sock, &go, 1) == 1, "read");
	CHECK_RET(upager_space_release(s), 0);
	CHECK(write(sock, "g", 1) == 1, "write");
	CHECK(t_wait_child(pid, 20000, &status) == 0 && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "the lingering client failed (status %#x)", status);
	close(sock);
	upager_handler_free(h);
	upager_store_close(st);
	t_deadline(0, NULL);
	return 0;
}

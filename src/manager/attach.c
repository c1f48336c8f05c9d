// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The client side of the attach protocol: everything a process does to
 * hand its memory to a manager, in one call.  The uffd asks for the
 * events a manager needs to follow the process (REMOVE, REMAP, UNMAP,
 * and FORK when the process may have it) and drops those the kernel
 * refuses, as a program would rather be served without fork-following
 * than not at all; the manager is told what the uffd has and checks it.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/util.h"
#include "upager/ll.h"
#include "manager/attach_wire.h"

#define WANT_EVENTS                                                        \
	(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP |            \
	 UFFD_FEATURE_EVENT_UNMAP)

/* A uffd with as many of @want as this process may have. */
static int open_uffd(uint64_t want, uint64_t *got)
{
	for (int tries = 0; tries < 4; tries++) {
		struct upager_ll_api_info info = { 0 };
		/* Non-blocking, as a manager reads it; the kernel opens
		 * forked children's uffds in the same mode. */
		int fd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL), ret;

		if (fd < 0)
			return fd;
		ret = upager_ll_api(fd, want, &info);
		if (!ret) {
			*got = want;
			return fd;
		}
		close(fd);
		if (ret == -EOPNOTSUPP && (want & info.missing))
			want &= ~info.missing;
		else if (ret == -EPERM && (want & UFFD_FEATURE_EVENT_FORK))
			want &= ~UFFD_FEATURE_EVENT_FORK;
		else
			return ret;
	}
	return -EOPNOTSUPP;
}

static int check(const struct upager_attach_region *r, unsigned int n)
{
	if (!r || !n || n > UPAGER_ATTACH_MAX_REGIONS)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		size_t page = r[i].memtype == UPAGER_MEM_HUGETLB ? 2u << 20
								  : 4096;

		if ((r[i].memtype != UPAGER_MEM_ANON &&
		     r[i].memtype != UPAGER_MEM_HUGETLB) ||
		    (unsigned int)r[i].remove > UPAGER_REMOVE_ZERO ||
		    !r[i].name || !*r[i].name ||
		    strlen(r[i].name) > UPAGER_ATTACH_NAME_MAX || !r[i].len ||
		    (uintptr_t)r[i].addr % page || r[i].len % page)
			return -EINVAL;
	}
	return 0;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	do
		ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

static int send_req(int sock, int uffd, const uint8_t *buf, size_t len)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	ssize_t n;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &uffd, sizeof(int));
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* The rest, if the socket took less (the descriptor went first). */
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

static int recv_answer(int sock, unsigned int timeout_ms,
		       struct attach_answer *a)
{
	uint8_t buf[ATTACH_ANSWER_LEN];
	size_t got = 0;

	while (got < sizeof(buf)) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		int ret = poll(&pfd, 1, (int)timeout_ms);
		ssize_t n;

		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (!ret)
			return -ETIMEDOUT;
		n = recv(sock, buf + got, sizeof(buf) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -EPROTO; /* closed without an answer */
		got += (size_t)n;
	}
	return attach_answer_decode(buf, got, a);
}

int upager_attach(const char *path, const struct upager_attach_region *r,
		  unsigned int n, const struct upager_attach_params *params,
		  struct upager_attach_result *res)
{
	struct upager_attach_params p = { .size = sizeof(p) };
	struct upager_attach_result out = { .size = sizeof(out) };
	static __thread struct attach_req req;
	static __thread uint8_t buf[ATTACH_REQ_MAX];
	struct attach_answer a = { 0 };
	uint64_t features = 0;
	unsigned int reg = 0;
	int ret, uffd = -1, sock = -1;

	ret = params_copy(&p, sizeof(p), params);
	if (!ret && !path)
		ret = -EINVAL;
	if (!ret)
		ret = check(r, n);
	if (!ret) {
		uffd = open_uffd(WANT_EVENTS | (p.no_fork ? 0 :
						UFFD_FEATURE_EVENT_FORK),
				 &features);
		ret = uffd < 0 ? uffd : 0;
	}
	for (; !ret && reg < n; reg++)
		ret = upager_ll_register(uffd, r[reg].addr, r[reg].len,
					 UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret && reg)
		reg--; /* the one that failed is not registered */
	if (!ret) {
		sock = connect_to(path);
		ret = sock < 0 ? sock : 0;
	}
	if (!ret) {
		memset(&req, 0, sizeof(req));
		req.features = features;
		req.nregions = n;
		for (unsigned int i = 0; i < n; i++) {
			req.r[i].addr = (uintptr_t)r[i].addr;
			req.r[i].len = r[i].len;
			req.r[i].offset = r[i].offset;
			req.r[i].fill = r[i].fill;
			req.r[i].memtype = (uint8_t)r[i].memtype;
			req.r[i].remove = (uint8_t)r[i].remove;
			snprintf(req.r[i].name, sizeof(req.r[i].name), "%s",
				 r[i].name);
		}
		ret = send_req(sock, uffd, buf, attach_encode(buf, &req));
	}
	if (!ret)
		ret = recv_answer(sock, p.timeout_ms ? p.timeout_ms : 10000, &a);
	if (!ret) {
		out.version = a.version;
		out.features = a.features;
		memcpy(out.field, a.field, sizeof(out.field));
		memcpy(out.text, a.text, sizeof(out.text));
		ret = -(int)a.err;
	}
	if (res)
		output_copy(res, &out, sizeof(out));
	if (uffd >= 0 && ret)
		for (unsigned int i = 0; i < reg; i++)
			upager_ll_unregister(uffd, r[i].addr, r[i].len);
	if (uffd >= 0)
		close(uffd);
	if (ret && sock >= 0)
		close(sock);
	return ret ? ret : sock;
}

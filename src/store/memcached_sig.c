// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Signal-safe connections to a memcached server (memcached_sig.h).  The
 * sockets are non-blocking and every wait is a poll(2) bounded by the
 * caller's deadline, so a server that stops answering costs a fault
 * timeout=, never a thread stuck in a signal handler.  Sends use
 * MSG_NOSIGNAL: a server that went away is an error, not SIGPIPE.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "store/memcached_sig.h"

#define RETRY_NS 1000000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mcsig_deadline(unsigned int ms)
{
	return mono_ns() + (uint64_t)ms * 1000000ull;
}

int mcsig_init(struct mcsig_server *sv, const char *host, in_port_t port,
	       unsigned int nconns)
{
	struct addrinfo hints = {.ai_family = AF_INET,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;

	memset(sv, 0, sizeof(*sv));
	sv->conns = calloc(nconns, sizeof(*sv->conns));
	if (!sv->conns)
		return -ENOMEM;
	sv->nconns = nconns;
	for (unsigned int i = 0; i < nconns; i++)
		sv->conns[i].fd = -1;
	if (!getaddrinfo(host, NULL, &hints, &ai) && ai) {
		memcpy(&sv->addr, ai->ai_addr, sizeof(sv->addr));
		sv->addr.sin_port = htons(port);
		sv->resolved = true;
	}
	if (ai)
		freeaddrinfo(ai);
	return 0;
}

void mcsig_fini(struct mcsig_server *sv)
{
	for (unsigned int i = 0; sv->conns && i < sv->nconns; i++)
		if (sv->conns[i].fd >= 0)
			close(sv->conns[i].fd);
	free(sv->conns);
	sv->conns = NULL;
}

struct mcsig_conn *mcsig_claim(struct mcsig_server *sv, uint64_t deadline)
{
	for (;;) {
		uint64_t busy = atomic_load(&sv->busy);

		for (unsigned int i = 0; i < sv->nconns; i++)
			if (!(busy & (1ull << i)) &&
			    atomic_compare_exchange_weak(&sv->busy, &busy,
							 busy | (1ull << i)))
				return &sv->conns[i];
		if (mono_ns() >= deadline)
			return NULL;
		sched_yield();
	}
}

static void drop(struct mcsig_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->pos = c->len = 0;
}

void mcsig_put(struct mcsig_server *sv, struct mcsig_conn *c, bool clean)
{
	if (!clean)
		drop(c);
	atomic_fetch_and(&sv->busy, ~(1ull << (c - sv->conns)));
}

/* Wait for @events on @fd until @deadline: 0 or -ETIMEDOUT. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		uint64_t now = mono_ns();
		int n;

		if (now >= deadline)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -EHOSTDOWN;
	}
}

static int connect_to(struct mcsig_server *sv, struct mcsig_conn *c,
		      uint64_t deadline)
{
	int one = 1, err = 0, ret;
	socklen_t elen = sizeof(err);

	if (!sv->resolved || mono_ns() < atomic_load(&sv->retry_ns))
		return -EHOSTDOWN;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -EHOSTDOWN;
	c->pos = c->len = 0;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!connect(c->fd, (struct sockaddr *)&sv->addr, sizeof(sv->addr)))
		return 0;
	ret = errno == EINPROGRESS ? wait_fd(c->fd, POLLOUT, deadline)
				   : -EHOSTDOWN;
	if (!ret &&
	    (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) || err))
		ret = -EHOSTDOWN;
	if (ret) {
		drop(c);
		/* Refused or unreachable, not slow: fail fast for a while. */
		if (ret == -EHOSTDOWN)
			atomic_store(&sv->retry_ns, mono_ns() + RETRY_NS);
	}
	return ret;
}

int mcsig_send(struct mcsig_server *sv, struct mcsig_conn *c, struct iovec *iov,
	       int n, uint64_t deadline)
{
	int ret;

	if (c->fd < 0 && (ret = connect_to(sv, c, deadline)))
		return ret;
	c->asked = true;
	while (n > 0) {
		struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t k = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -EHOSTDOWN;
			if ((ret = wait_fd(c->fd, POLLOUT, deadline)))
				return ret;
			continue;
		}
		for (; n > 0 && (size_t)k >= iov->iov_len; iov++, n--)
			k -= (ssize_t)iov->iov_len;
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= (size_t)k;
		}
	}
	return 0;
}

/*
 * Up to @cap bytes of @c's stream into @dst and, when @more, what follows
 * into c->buf (which must be empty), in one system call: how many in
 * all, or -errno.  Right after a request the reply cannot be there yet:
 * wait before the first read instead of failing one with EAGAIN.
 */
static ssize_t rcv(struct mcsig_conn *c, char *dst, size_t cap, bool more,
		   uint64_t deadline)
{
	struct iovec iov[2] = {{.iov_base = dst, .iov_len = cap},
			       {.iov_base = c->buf, .iov_len = sizeof(c->buf)}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = more ? 2 : 1};
	int ret;

	if (c->asked) {
		c->asked = false;
		if ((ret = wait_fd(c->fd, POLLIN, deadline)))
			return ret;
	}
	for (;;) {
		ssize_t k = recvmsg(c->fd, &mh, 0);

		if (k > 0)
			return k;
		if (k == 0 || (errno != EAGAIN && errno != EINTR))
			return -EHOSTDOWN;
		if (errno == EAGAIN && (ret = wait_fd(c->fd, POLLIN, deadline)))
			return ret;
	}
}

/* More bytes into c->buf after what is unread.  0 or -errno. */
static int fill(struct mcsig_conn *c, uint64_t deadline)
{
	ssize_t k;

	if (c->pos) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->pos = 0;
	}
	if (c->len == sizeof(c->buf))
		return -EPROTO;
	k = rcv(c, c->buf + c->len, sizeof(c->buf) - c->len, false, deadline);
	if (k < 0)
		return (int)k;
	c->len += (unsigned int)k;
	return 0;
}

int mcsig_line(struct mcsig_conn *c, uint64_t deadline, char **line)
{
	for (;;) {
		char *b = c->buf + c->pos;
		char *nl = memchr(b, '\n', c->len - c->pos);
		int ret;

		if (nl && nl > b && nl[-1] == '\r') {
			nl[-1] = 0;
			*line = b;
			c->pos = (unsigned int)(nl + 1 - c->buf);
			return 0;
		}
		if (nl || c->len - c->pos >= MCSIG_LINE_MAX)
			return -EPROTO;
		if ((ret = fill(c, deadline)))
			return ret;
	}
}

int mcsig_data(struct mcsig_conn *c, uint64_t deadline, char *dst, size_t len)
{
	size_t done = 0;
	ssize_t k;
	int ret;

	/*
	 * What the buffer holds (a page's whole reply, when it came in one
	 * piece), then straight from the socket to @dst.
	 */
	while (done < len) {
		size_t have = c->len - c->pos;

		if (have) {
			k = (ssize_t)(have < len - done ? have : len - done);
			memcpy(dst + done, c->buf + c->pos, (size_t)k);
			c->pos += (unsigned int)k;
			done += (size_t)k;
			continue;
		}
		c->pos = c->len = 0;
		/* The data, and the "\r\n" and the next line behind it. */
		k = rcv(c, dst + done, len - done, true, deadline);
		if (k < 0)
			return (int)k;
		if ((size_t)k > len - done) {
			c->len = (unsigned int)((size_t)k - (len - done));
			k = (ssize_t)(len - done);
		}
		done += (size_t)k;
	}
	while (c->len - c->pos < 2)
		if ((ret = fill(c, deadline)))
			return ret;
	if (c->buf[c->pos] != '\r' || c->buf[c->pos + 1] != '\n')
		return -EPROTO;
	c->pos += 2;
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Socket helpers shared by the page server (src/server.c) and the remote:
 * store (stores/remote.c).  See src/net.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net.h"
#include "net/tls.h"

static int parse_tcp(const char *s, size_t len, struct net_addr *a)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	char host[256], port[8];
	const char *colon, *h = s;
	size_t hlen, plen;
	int ret;

	/* The port follows the last ':', so that "[::1]:80" works. */
	colon = memrchr(s, ':', len);
	if (!colon)
		return -EINVAL;
	hlen = (size_t)(colon - s);
	plen = len - hlen - 1;
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host) || !plen || plen >= sizeof(port))
		return -EINVAL;
	memcpy(port, colon + 1, plen);
	port[plen] = '\0';
	if (strspn(port, "0123456789") != plen || atol(port) > 65535)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (!hlen || !strcmp(host, "*"))
		hints.ai_flags |= AI_PASSIVE;
	ret = getaddrinfo(hlen && strcmp(host, "*") ? host : NULL, port, &hints,
			  &res);
	if (ret == EAI_NONAME || ret == EAI_NODATA || ret == EAI_FAMILY)
		return -ENOENT;
	if (ret == EAI_MEMORY)
		return -ENOMEM;
	if (ret)
		return -EINVAL;
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int net_parse(const char *spec, size_t len, struct net_addr *a)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;

	memset(a, 0, sizeof(*a));
	if (len > 4 && !memcmp(spec, "tcp:", 4))
		return parse_tcp(spec + 4, len - 4, a);
	if (len > 5 && !memcmp(spec, "unix:", 5)) {
		len -= 5;
		if (len >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		if (memchr(spec + 5, '\0', len))
			return -EINVAL;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, spec + 5, len);
		a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
				     len + 1);
		return 0;
	}
	return -EINVAL;
}

int net_format(const struct net_addr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	switch (a->sa.ss_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const void *)&a->sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		n = snprintf(buf, len, "tcp:%s:%u", host, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const void *)&a->sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		n = snprintf(buf, len, "tcp:[%s]:%u", host,
			     ntohs(in6->sin6_port));
		break;
	}
	default:
		n = snprintf(buf, len, "unix:%s",
			     ((const struct sockaddr_un *)&a->sa)->sun_path);
		break;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

unsigned int net_port(const struct net_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
	if (a->sa.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	return 0;
}

/*
 * A unix socket file outlives its server.  Replace it only when nobody
 * answers on it (and it is a socket): never steal a live server's name,
 * never unlink a regular file.
 */
static void remove_stale(const struct net_addr *a)
{
	const char *path = ((const struct sockaddr_un *)&a->sa)->sun_path;
	struct stat st;
	int fd;

	if (stat(path, &st) || !S_ISSOCK(st.st_mode))
		return;
	fd = net_connect(a, false, 0);
	if (fd == -ECONNREFUSED)
		unlink(path);
	else if (fd >= 0)
		close(fd);
}

int net_listen(struct net_addr *a)
{
	int fd, one = 1, ret;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (a->sa.ss_family == AF_UNIX)
		remove_stale(a);
	else /* a restarted server must get its port back from TIME_WAIT */
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a->sa, a->len) < 0 ||
	    listen(fd, 64) < 0)
		goto fail;
	if (a->sa.ss_family != AF_UNIX) {
		socklen_t len = sizeof(a->sa);

		if (getsockname(fd, (struct sockaddr *)&a->sa, &len) < 0)
			goto fail;
		a->len = len;
	}
	return fd;
fail:
	ret = -errno;
	close(fd);
	return ret;
}

static void set_timeout(int fd, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* The socket's timeouts for plaintext I/O, poll()'s for TLS. */
void net_timeout(struct net_conn *c, int seconds)
{
	set_timeout(c->fd, seconds);
	c->timeout_ms = seconds ? seconds * 1000 : -1;
}

struct net_conn *net_conn_new(int fd)
{
	struct net_conn *c = calloc(1, sizeof(*c));

	if (c) {
		c->fd = fd;
		c->timeout_ms = -1;
	}
	return c;
}

void net_conn_free(struct net_conn *c)
{
	if (!c)
		return;
	tls_conn_free(c);
	close(c->fd);
	free(c);
}

/* Where a PAGES message's data starts, from the start of the message. */
#define PAGES_AT (WIRE_HDR + WIRE_PAGES_FIXED)
#define ALIGN	 4096

uint8_t *net_msg_buf_new(void)
{
	void *base;

	/* Not aligned_alloc(): the size is no multiple of the alignment. */
	if (posix_memalign(&base, ALIGN, ALIGN + NET_MSG_MAX))
		return NULL;
	return (uint8_t *)base + ALIGN - PAGES_AT;
}

void net_msg_buf_free(uint8_t *buf)
{
	if (buf)
		free(buf - (ALIGN - PAGES_AT));
}

int net_connect(const struct net_addr *a, bool nodelay, int timeout_s)
{
	int fd, ret;

	fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* SO_SNDTIMEO bounds connect() too (socket(7)). */
	if (timeout_s)
		set_timeout(fd, timeout_s);
	do
		ret = connect(fd, (const struct sockaddr *)&a->sa, a->len);
	while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (nodelay)
		net_nodelay(fd);
	return fd;
}

void net_nodelay(int fd)
{
	int one = 1;

	/* EOPNOTSUPP on a unix socket: nothing to do there. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		return;
}

void net_pace(int fd, uint64_t rate)
{
	unsigned long r = rate;

	/* Best effort: where nothing paces, the caller's throttle limits. */
	if (setsockopt(fd, SOL_SOCKET, SO_MAX_PACING_RATE, &r, sizeof(r)))
		return;
}

int net_sendv(struct net_conn *c, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	if (c->tls)
		return tls_sendv(c, iov, n, false);
	while (mh.msg_iovlen) {
		ssize_t put = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (put < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (mh.msg_iovlen && (size_t)put >= mh.msg_iov->iov_len) {
			put -= (ssize_t)mh.msg_iov->iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + put;
			mh.msg_iov->iov_len -= (size_t)put;
		}
	}
	return 0;
}

int net_send(struct net_conn *c, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return net_sendv(c, &iov, 1);
}

/* Exactly @len bytes: 1, 0 on EOF before the first byte, else -errno. */
static int read_full(struct net_conn *c, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = c->tls ? tls_read(c, buf + got, len - got)
				   : recv(c->fd, buf + got, len - got, 0);

		if (c->tls && n < 0) {
			errno = (int)-n;
			n = -1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return got ? -ECONNRESET : 0;
		got += (size_t)n;
	}
	return 1;
}

long net_read_msg(struct net_conn *c, uint8_t *buf, const char **why)
{
	enum wire_type type;
	uint16_t flags;
	uint32_t len, csum;
	int ret;

	*why = NULL;
	ret = read_full(c, buf, WIRE_HDR);
	if (ret <= 0)
		return ret;
	/* The length is checked against the limit before it sizes a read. */
	ret = wire_header(buf, &type, &flags, &len, &csum, why);
	if (ret < 0)
		return ret;
	if (len) {
		ret = read_full(c, buf + WIRE_HDR, len);
		if (ret <= 0)
			return ret ? ret : -ECONNRESET;
	}
	return WIRE_HDR + (long)len;
}

void net_send_error(struct net_conn *c, int code, const char *text)
{
	uint8_t buf[WIRE_HDR + 6 + 256];
	struct iovec iov = { buf, wire_error(buf, (uint32_t)code, text) };

	/* Never block on a peer that does not read: it is being dropped. */
	if (c->tls)
		tls_sendv(c, &iov, 1, true);
	else if (send(c->fd, buf, iov.iov_len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return;
}

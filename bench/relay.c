// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * relay: a TCP relay that holds every byte for a fixed time in each
 * direction, the latency of the network tests (this kernel has tbf but no
 * netem).  Run it inside a test namespace (tests/netns.sh: netns_relay).
 *
 *   relay --listen ADDR:PORT --to ADDR:PORT --delay-ms N
 *
 * Each accepted connection gets its own connection to --to.  What is read
 * from one side is stamped with the time it may leave and queued, and
 * written when that time comes, so the delay costs latency and not
 * throughput: the queue holds a bandwidth-delay product.  A queue is a
 * ring of 16 MiB with a ring of chunk stamps beside it; when either is
 * full the relay stops reading that side and TCP's flow control pushes
 * back, so memory stays bounded.  An EOF takes its turn like data: the
 * other side is shut down for writing when its time comes.  The relay
 * runs until it is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QBYTES	 (16u << 20) /* bytes a direction may hold: a power of 2 */
#define QCHUNKS	 4096u	     /* reads a direction may hold: a power of 2 */
#define READ_MAX (256u << 10)

struct chunk {
	uint64_t due_ns;
	uint32_t len; /* 0: the EOF */
};

/* One direction: bytes read from @in, waiting to be written to @out. */
struct dir {
	int in, out;
	uint8_t *buf;	     /* QBYTES, a ring */
	uint64_t head, tail; /* bytes written, bytes read */
	struct chunk *chunk; /* QCHUNKS, a ring */
	uint32_t chead, ctail;
	bool eof_read, eof_sent;
};

struct conn {
	int fd[2]; /* accepted, upstream */
	bool connecting;
	struct dir d[2]; /* fd[0] -> fd[1], fd[1] -> fd[0] */
	struct conn *next;
};

struct relay {
	int lfd;
	struct sockaddr_storage to;
	socklen_t to_len;
	const char *to_name;
	uint64_t delay_ns;
	struct conn *conns;
	unsigned int nconns;
	struct pollfd *pfd;
	unsigned int pfd_cap;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "ADDR:PORT" or "[ADDR]:PORT" into @ss; 0 or -EINVAL. */
static int parse_addr(const char *s, bool passive, struct sockaddr_storage *ss,
		      socklen_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV |
					     (passive ? AI_PASSIVE : 0)};
	struct addrinfo *ai;
	char host[256];
	const char *colon = strrchr(s, ':');
	size_t n;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	n = (size_t)(colon - s);
	if (s[0] == '[' && s[n - 1] == ']') {
		memcpy(host, s + 1, n - 2);
		host[n - 2] = '\0';
	} else {
		memcpy(host, s, n);
		host[n] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return -EINVAL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void nodelay(int fd)
{
	int one = 1;

	/* The relay keeps the timing it is given: no Nagle on top. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void conn_free(struct relay *r, struct conn *c)
{
	struct conn **p;

	for (p = &r->conns; *p != c; p = &(*p)->next)
		;
	*p = c->next;
	r->nconns--;
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] >= 0)
			close(c->fd[i]);
		if (c->d[i].buf)
			munmap(c->d[i].buf, QBYTES);
		free(c->d[i].chunk);
	}
	free(c);
}

/* A new client on @fd: start connecting upstream.  0 or -errno. */
static int conn_new(struct relay *r, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int err;

	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->fd[0] = fd;
	c->fd[1] = -1;
	c->next = r->conns;
	r->conns = c;
	r->nconns++;
	for (int i = 0; i < 2; i++) {
		/* Untouched pages of a ring cost nothing. */
		c->d[i].buf =
		    mmap(NULL, QBYTES, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (c->d[i].buf == MAP_FAILED)
			c->d[i].buf = NULL;
		c->d[i].chunk = calloc(QCHUNKS, sizeof(struct chunk));
		if (!c->d[i].buf || !c->d[i].chunk) {
			conn_free(r, c);
			return -ENOMEM;
		}
	}
	c->fd[1] = socket(r->to.ss_family,
			  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd[1] < 0) {
		err = -errno;
		conn_free(r, c);
		return err;
	}
	nodelay(c->fd[0]);
	nodelay(c->fd[1]);
	if (connect(c->fd[1], (struct sockaddr *)&r->to, r->to_len) &&
	    errno != EINPROGRESS) {
		err = -errno;
		conn_free(r, c);
		return err;
	}
	c->connecting = true;
	for (int i = 0; i < 2; i++) {
		c->d[i].in = c->fd[i];
		c->d[i].out = c->fd[1 - i];
	}
	return 0;
}

static bool can_read(const struct dir *d)
{
	return !d->eof_read && d->tail - d->head < QBYTES &&
	       d->ctail - d->chead < QCHUNKS;
}

/* The head chunk's due time, or UINT64_MAX when the queue is empty. */
static uint64_t due(const struct dir *d)
{
	if (d->chead == d->ctail)
		return UINT64_MAX;
	return d->chunk[d->chead & (QCHUNKS - 1)].due_ns;
}

/* Read what is there into the ring, stamped @when.  0 or -errno. */
static int dir_read(struct dir *d, uint64_t when)
{
	size_t pos = d->tail & (QBYTES - 1);
	size_t room = QBYTES - (size_t)(d->tail - d->head);
	ssize_t n;

	if (room > QBYTES - pos)
		room = QBYTES - pos;
	if (room > READ_MAX)
		room = READ_MAX;
	n = read(d->in, d->buf + pos, room);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	d->chunk[d->ctail++ & (QCHUNKS - 1)] =
	    (struct chunk){.due_ns = when, .len = (uint32_t)n};
	d->tail += (size_t)n;
	d->eof_read = n == 0;
	return 0;
}

/* Write every chunk due by @now, until the socket is full.  0 or -errno. */
static int dir_flush(struct dir *d, uint64_t now)
{
	while (due(d) <= now) {
		struct chunk *c = &d->chunk[d->chead & (QCHUNKS - 1)];
		size_t pos = d->head & (QBYTES - 1);
		size_t n = c->len;
		ssize_t w;

		if (!n) {
			/* The peer may be gone already: nothing to tell. */
			shutdown(d->out, SHUT_WR);
			d->eof_sent = true;
			d->chead++;
			continue;
		}
		if (n > QBYTES - pos)
			n = QBYTES - pos;
		w = send(d->out, d->buf + pos, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		d->head += (size_t)w;
		c->len -= (uint32_t)w;
		if (!c->len)
			d->chead++;
	}
	return 0;
}

static short events(const struct conn *c, int i, uint64_t now)
{
	short ev = 0;

	if (c->connecting)
		return i == 1 ? POLLOUT : 0;
	if (can_read(&c->d[i]))
		ev |= POLLIN;
	if (due(&c->d[1 - i]) <= now)
		ev |= POLLOUT;
	return ev;
}

/* Poll the listener and every connection; the earliest due time bounds
 * the wait.  0 or -errno. */
static int wait_events(struct relay *r, uint64_t now)
{
	unsigned int need = 1 + 2 * r->nconns, k = 1;
	uint64_t next = UINT64_MAX;
	struct timespec ts, *tsp = NULL;

	if (need > r->pfd_cap) {
		struct pollfd *p = realloc(r->pfd, need * 2 * sizeof(*p));

		if (!p)
			return -ENOMEM;
		r->pfd = p;
		r->pfd_cap = need * 2;
	}
	r->pfd[0] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
	for (struct conn *c = r->conns; c; c = c->next) {
		for (int i = 0; i < 2; i++) {
			uint64_t t = due(&c->d[i]);
			short ev = events(c, i, now);

			/* A socket we wait for nothing on is left out: its
			 * POLLHUP would wake us until its queue drains. */
			r->pfd[k++] = (struct pollfd){.fd = ev ? c->fd[i] : -1,
						      .events = ev};
			if (!c->connecting && t > now && t < next)
				next = t;
		}
	}
	if (next != UINT64_MAX) {
		ts.tv_sec = (time_t)((next - now) / 1000000000u);
		ts.tv_nsec = (long)((next - now) % 1000000000u);
		tsp = &ts;
	}
	if (ppoll(r->pfd, k, tsp, NULL) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static void accept_all(struct relay *r)
{
	for (;;) {
		int fd =
		    accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int err;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				fprintf(stderr, "relay: accept: %s\n",
					strerror(errno));
			return;
		}
		err = conn_new(r, fd);
		if (err)
			fprintf(stderr, "relay: connect to %s: %s\n",
				r->to_name, strerror(-err));
	}
}

/* Serve @c after a poll that reported @rev for its two sockets.  0 while
 * it lives, else -errno (or 1 when both directions ended). */
static int conn_serve(struct relay *r, struct conn *c, const short rev[2])
{
	uint64_t now = now_ns();
	int err = 0;

	if (c->connecting) {
		socklen_t len = sizeof(err);

		if (!rev[1])
			return 0;
		if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len))
			err = errno;
		if (err) {
			fprintf(stderr, "relay: connect to %s: %s\n",
				r->to_name, strerror(err));
			return -err;
		}
		c->connecting = false;
		return 0;
	}
	for (int i = 0; i < 2 && !err; i++)
		if (can_read(&c->d[i]) && rev[i] & (POLLIN | POLLHUP | POLLERR))
			err = dir_read(&c->d[i], now + r->delay_ns);
	now = now_ns();
	for (int i = 0; i < 2 && !err; i++)
		err = dir_flush(&c->d[i], now);
	if (err)
		return err;
	return c->d[0].eof_sent && c->d[1].eof_sent;
}

static int relay_run(struct relay *r)
{
	for (;;) {
		unsigned int k = 1;
		struct conn *c, *next;
		int err = wait_events(r, now_ns());

		if (err)
			return err;
		/* The poll array follows the list; new connections join
		 * the list's head, after this pass. */
		c = r->conns;
		if (r->pfd[0].revents)
			accept_all(r);
		for (; c; c = next) {
			short rev[2] = {r->pfd[k].revents,
					r->pfd[k + 1].revents};

			next = c->next;
			k += 2;
			if (conn_serve(r, c, rev))
				conn_free(r, c);
		}
	}
}

static int listen_on(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	if (parse_addr(spec, true, &ss, &len))
		return -EINVAL;
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 128)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: relay --listen ADDR:PORT --to ADDR:PORT --delay-ms N\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"to", required_argument, NULL, 't'},
	    {"delay-ms", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct relay r = {.lfd = -1};
	const char *listen_spec = NULL;
	char *end;
	long delay = 0;
	int opt, err;

	while ((opt = getopt_long(argc, argv, "l:t:d:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_spec = optarg;
			break;
		case 't':
			r.to_name = optarg;
			break;
		case 'd':
			errno = 0;
			delay = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || delay < 0 ||
			    delay > 3600 * 1000) {
				fprintf(stderr, "relay: bad --delay-ms '%s'\n",
					optarg);
				return 2;
			}
			break;
		default:
			usage();
		}
	}
	if (!listen_spec || !r.to_name || optind != argc)
		usage();
	if (parse_addr(r.to_name, false, &r.to, &r.to_len)) {
		fprintf(stderr, "relay: bad --to '%s'\n", r.to_name);
		return 2;
	}
	r.delay_ns = (uint64_t)delay * 1000000u;
	r.lfd = listen_on(listen_spec);
	if (r.lfd < 0) {
		fprintf(stderr, "relay: listen on %s: %s\n", listen_spec,
			strerror(-r.lfd));
		return 1;
	}
	err = relay_run(&r);
	fprintf(stderr, "relay: %s\n", strerror(-err));
	return 1;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The page server (docs/PROTOCOL.md): an accept thread, a thread per
 * connection.  A stream connection owns a session (its sent-bitmap and
 * stream cursor) and pushes every unsent page; the urgent connection
 * paired with it by session id answers REQUESTs at once and moves the
 * cursor after them.  The two share the session under its lock, held only
 * to pick pages and set bits, never across I/O.
 *
 * Every message is read as a header, whose length wire_header() checks
 * against the protocol's limit, then exactly that payload into a buffer
 * of that fixed limit, then decoded by wire_decode() before a field is
 * used.  A connection that sends something it should not gets ERROR and
 * is closed; nothing else is affected.
 *
 * With a key (upager_server_tls_psk()) a connection's thread runs the TLS
 * handshake before it reads a message: a client without the key is
 * refused before it can name an export, let alone get a page.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "upager/remote.h"
#include "base/util.h"
#include "engine/store_call.h"
#include "net/net.h"
#include "net/tls.h"

#define PAGE WIRE_PAGE
#define TLS_HANDSHAKE_S 10
#define STAT(srv, field, n) \
	__atomic_fetch_add(&(srv)->st.field, (n), __ATOMIC_RELAXED)

struct export {
	struct export *next;
	struct upager_store *store;
	char name[WIRE_MAX_NAME + 1];
};

struct session {
	struct session *next; /* in srv->sessions while the stream lives */
	uint64_t id;
	struct upager_store *store;
	uint64_t npages;
	bool csum;
	int refs;	/* the stream and urgent connections; under srv->lock */
	int urgent_fd;	/* the paired urgent connection, or -1 */

	pthread_mutex_t lock; /* the fields below */
	uint64_t *sent;	/* bitmap, one bit a page */
	uint64_t nsent;	/* bits set */
	uint64_t cursor; /* where the stream looks next */
	uint64_t pages_sent; /* by either connection, for END */
};

struct conn {
	struct conn *next;
	struct upager_server *srv;
	pthread_t thread;
	int fd;		/* -1 once closed; under srv->lock */
	struct net_conn *nc; /* its I/O: plaintext or TLS */
	char peer[64];	/* the client's address, for the log */
	atomic_bool done;
	uint8_t *buf;	/* NET_MSG_MAX: one incoming message */
	uint8_t *stage; /* WIRE_MAX_PAGES pages for stores without direct() */
};

struct upager_server {
	struct net_addr addr;
	int lfd;
	int stopfd;
	uint64_t rate;
	upager_server_log_fn log;
	void *log_arg;
	struct net_tls *tls; /* NULL: plaintext, if allowed */
	bool plaintext;
	bool pin_stream; /* stream senders on stream_cpus only */
	cpu_set_t stream_cpus;

	pthread_mutex_t lock; /* everything below; cond waits on it */
	pthread_cond_t cond;  /* rate-limit sleeps, woken by stop */
	struct export *exports;
	struct session *sessions;
	struct conn *conns;
	pthread_t accept_thread;
	bool running;
	bool stopping;

	struct upager_server_stats st; /* atomics */
};

static void srv_log(struct upager_server *srv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void srv_log(struct upager_server *srv, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!srv->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv->log(srv->log_arg, msg);
}

/*
 * A message we refuse: say why; the caller then closes.  A malformed or
 * unexpected message counts as a protocol error, an unknown export or
 * session does not.
 */
static void refuse(struct conn *c, int err, const char *why)
{
	if (err != -ENOENT)
		STAT(c->srv, protocol_errors, 1);
	srv_log(c->srv, "client %s refused: %s (%s)", c->peer, why,
		strerror(-err));
	net_send_error(c->nc, -err, why);
}

static bool stopping(struct upager_server *srv)
{
	bool s;

	pthread_mutex_lock(&srv->lock);
	s = srv->stopping;
	pthread_mutex_unlock(&srv->lock);
	return s;
}

/* ---- bitmaps ----------------------------------------------------------- */

static bool bit_test(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

/* Set bits [first, first+n); returns how many were clear. */
static uint64_t bits_set(uint64_t *map, uint64_t first, uint64_t n)
{
	uint64_t fresh = 0;

	for (uint64_t i = first; i < first + n; i++) {
		uint64_t m = 1ull << (i % 64);

		fresh += !(map[i / 64] & m);
		map[i / 64] |= m;
	}
	return fresh;
}

/* The first clear bit at or after @from, wrapping; the map is not full. */
static uint64_t next_clear(const uint64_t *map, uint64_t npages, uint64_t from)
{
	uint64_t words = (npages + 63) / 64;

	for (uint64_t k = 0; k <= words; k++) {
		uint64_t w = (from / 64 + k) % words;
		uint64_t bits = ~map[w];

		if (k == 0)
			bits &= ~0ull << (from % 64);
		if (bits) {
			uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(bits);

			if (i < npages)
				return i;
		}
	}
	return npages; /* not reached while nsent < npages */
}

/* ---- sending pages ----------------------------------------------------- */

static bool page_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE];

	return !memcmp(p, zero, PAGE);
}

/* One PAGES message: a ZERO run when @data is NULL, else header + data. */
static int send_run(struct conn *c, struct session *s, uint64_t page,
		    uint32_t n, uint32_t flags, const uint8_t *data,
		    uint64_t *bytes)
{
	uint8_t hdr[WIRE_HDR + WIRE_PAGES_FIXED];
	struct iovec iov[2] = { { hdr, sizeof(hdr) },
				{ (void *)data, (size_t)n * PAGE } };
	size_t len = sizeof(hdr) + (data ? iov[1].iov_len : 0);
	int ret;

	wire_pages_header(hdr, page, n, flags, data, s->csum);
	ret = net_sendv(c->nc, iov, data ? 2 : 1);
	if (ret < 0)
		return ret;
	STAT(c->srv, bytes_sent, len);
	*bytes += len;
	if (!data)
		STAT(c->srv, pages_zero, n);
	if (flags & WIRE_PAGES_URGENT)
		STAT(c->srv, pages_urgent, n);
	else
		STAT(c->srv, pages_streamed, n);
	return 0;
}

/*
 * Send pages [page, page+n) (n <= WIRE_MAX_PAGES) as PAGES runs, all-zero
 * pages as ZERO runs: those the store knows to be holes (zero_run()) are
 * not even read.  Data goes out straight from the store's memory when it
 * has direct(), else through the connection's staging buffer.  0 or
 * -errno (the store's or the socket's).
 */
static int send_pages(struct conn *c, struct session *s, uint64_t page,
		      uint32_t n, uint32_t flags, uint64_t *bytes)
{
	struct upager_store *st = s->store;
	const uint8_t *src = NULL;
	uint32_t i, j;
	size_t hole;
	int ret;

	hole = STORE_HAS(st->ops, zero_run) ? st->ops->zero_run(st, page, n) : 0;
	if (hole) {
		hole = hole < n ? hole : n;
		ret = send_run(c, s, page, (uint32_t)hole, flags, NULL, bytes);
		if (ret < 0 || hole == n)
			return ret;
		page += hole;
		n -= (uint32_t)hole;
	}
	if (STORE_HAS(st->ops, direct))
		src = st->ops->direct(st, page, n);
	if (!src) {
		/* Page aligned, for a store reading with O_DIRECT. */
		if (!c->stage &&
		    !(c->stage = aligned_alloc(PAGE, (size_t)WIRE_MAX_PAGES * PAGE)))
			return -ENOMEM;
		ret = st->ops->fetch(st, page, c->stage, n);
		if (ret < 0)
			return ret;
		src = c->stage;
	}
	for (i = 0; i < n; i = j) {
		bool zero = page_zero(src + (size_t)i * PAGE);

		for (j = i + 1; j < n && page_zero(src + (size_t)j * PAGE) == zero;)
			j++;
		ret = send_run(c, s, page + i, j - i, flags,
			       zero ? NULL : src + (size_t)i * PAGE, bytes);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* Sleep until the stream may send again under the rate limit. */
static void throttle(struct upager_server *srv, uint64_t t0, uint64_t bytes)
{
	uint64_t due = t0 + bytes * 1000000000ull / srv->rate;
	struct timespec ts = { .tv_sec = (time_t)(due / 1000000000ull),
			       .tv_nsec = (long)(due % 1000000000ull) };

	pthread_mutex_lock(&srv->lock);
	while (!srv->stopping && now_ns() < due)
		pthread_cond_timedwait(&srv->cond, &srv->lock, &ts);
	pthread_mutex_unlock(&srv->lock);
}

/* ---- sessions ---------------------------------------------------------- */

static struct export *find_export(struct upager_server *srv, const char *name)
{
	struct export *e, *only = srv->exports;

	for (e = srv->exports; e; e = e->next)
		if (!strcmp(e->name, name))
			return e;
	/* No name: the one export, when there is exactly one. */
	return !*name && only && !only->next ? only : NULL;
}

static void session_put(struct upager_server *srv, struct session *s)
{
	pthread_mutex_lock(&srv->lock);
	if (--s->refs) {
		pthread_mutex_unlock(&srv->lock);
		return;
	}
	pthread_mutex_unlock(&srv->lock);
	pthread_mutex_destroy(&s->lock);
	free(s->sent);
	free(s);
}

static struct session *session_new(struct upager_server *srv,
				   struct upager_store *store, bool csum)
{
	struct session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->npages = store->npages;
	s->sent = calloc((s->npages + 63) / 64, sizeof(uint64_t));
	if (!s->sent) {
		free(s);
		return NULL;
	}
	s->store = store;
	s->csum = csum;
	s->refs = 1;
	s->urgent_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_lock(&srv->lock);
	/* Ids are random so that a client cannot guess another's session. */
	do {
		if (getrandom(&s->id, sizeof(s->id), 0) != sizeof(s->id))
			s->id = now_ns() ^ (uintptr_t)s;
		for (struct session *o = srv->sessions; o && s->id; o = o->next)
			if (o->id == s->id)
				s->id = 0;
	} while (!s->id);
	s->next = srv->sessions;
	srv->sessions = s;
	pthread_mutex_unlock(&srv->lock);
	STAT(srv, sessions, 1);
	return s;
}

/* The stream is gone: so is the session, and its urgent connection. */
static void session_end(struct upager_server *srv, struct session *s)
{
	pthread_mutex_lock(&srv->lock);
	for (struct session **p = &srv->sessions; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	if (s->urgent_fd >= 0)
		shutdown(s->urgent_fd, SHUT_RDWR);
	pthread_mutex_unlock(&srv->lock);
	session_put(srv, s);
}

/* Read and decode one message.  1 with @m, 0 on close, <0 refused. */
static int next_msg(struct conn *c, uint64_t npages, struct wire_msg *m)
{
	const char *why;
	long n = net_read_msg(c->nc, c->buf, &why);
	int ret;

	if (n <= 0) {
		if (why)
			refuse(c, (int)n, why);
		return (int)n;
	}
	ret = wire_decode(c->buf, (size_t)n, npages, m, &why);
	if (ret < 0) {
		refuse(c, ret, why);
		return ret;
	}
	if (m->type == WIRE_ERROR) {
		srv_log(c->srv, "client error: %s (%s)", m->error.text,
			strerror((int)m->error.code));
		return 0;
	}
	return 1;
}

static void unexpected(struct conn *c, const struct wire_msg *m,
		       const char *when)
{
	char why[128];

	snprintf(why, sizeof(why), "unexpected %s %s",
		 wire_type_name(m->type), when);
	refuse(c, -EPROTO, why);
}

/* The background stream of @s, from START to END. */
static int stream(struct conn *c, struct session *s)
{
	uint64_t t0 = now_ns(), bytes = 0;
	uint8_t end[WIRE_HDR + 8];
	int ret;

	for (;;) {
		uint64_t p;
		uint32_t n = 1;

		if (stopping(c->srv))
			return -ECANCELED;
		pthread_mutex_lock(&s->lock);
		if (s->nsent == s->npages) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		p = next_clear(s->sent, s->npages, s->cursor);
		while (n < WIRE_MAX_PAGES && p + n < s->npages &&
		       !bit_test(s->sent, p + n))
			n++;
		s->nsent += bits_set(s->sent, p, n);
		s->pages_sent += n;
		s->cursor = p + n < s->npages ? p + n : 0;
		pthread_mutex_unlock(&s->lock);

		ret = send_pages(c, s, p, n, 0, &bytes);
		if (ret < 0) {
			if (ret != -EPIPE && ret != -ECONNRESET)
				srv_log(c->srv, "stream of pages %llu+%u: %s",
					(unsigned long long)p, n,
					strerror(-ret));
			net_send_error(c->nc, -ret, "sending pages failed");
			return ret;
		}
		if (c->srv->rate)
			throttle(c->srv, t0, bytes);
	}
	pthread_mutex_lock(&s->lock);
	wire_end(end, s->pages_sent);
	pthread_mutex_unlock(&s->lock);
	ret = net_send(c->nc, end, sizeof(end));
	if (!ret)
		STAT(c->srv, bytes_sent, sizeof(end));
	return ret;
}

static void serve_stream(struct conn *c, const struct wire_msg *hello)
{
	struct upager_server *srv = c->srv;
	uint8_t welcome[WIRE_HDR + 24];
	struct wire_msg m;
	struct export *e;
	struct session *s;
	int ret;

	if (hello->hello.session) {
		refuse(c, -EPROTO, "stream HELLO with a session id");
		return;
	}
	pthread_mutex_lock(&srv->lock);
	e = find_export(srv, hello->hello.name);
	pthread_mutex_unlock(&srv->lock);
	if (!e) {
		refuse(c, -ENOENT, *hello->hello.name ? "no export by that name"
						      : "no export name given");
		return;
	}
	s = session_new(srv, e->store, hello->hello.caps & WIRE_CAP_CSUM);
	if (!s) {
		net_send_error(c->nc, ENOMEM, "out of memory");
		return;
	}
	wire_welcome(welcome, WIRE_CAP_CSUM, s->npages * PAGE, s->id);
	if (net_send(c->nc, welcome, sizeof(welcome)) < 0)
		goto out;
	STAT(srv, bytes_sent, sizeof(welcome));

	/* HAVE* START: the sent-bitmap starts as what the client holds. */
	while ((ret = next_msg(c, s->npages, &m)) > 0) {
		if (m.type == WIRE_START)
			break;
		if (m.type != WIRE_HAVE) {
			unexpected(c, &m, "before START");
			goto out;
		}
		pthread_mutex_lock(&s->lock);
		for (uint32_t i = 0; i < m.have.npages; i++)
			if (m.have.bitmap[i / 8] >> (i % 8) & 1)
				s->nsent += bits_set(s->sent, m.have.first + i, 1);
		pthread_mutex_unlock(&s->lock);
	}
	/*
	 * The kernel spreads the stream's segments: the throttle alone lets
	 * each run go out at once, and that burst waits in the bottleneck's
	 * queue with any urgent page behind it.  An eighth over the rate:
	 * the pacer never makes up time it lost (its timer late on a busy
	 * CPU), so at the rate itself the stream would fall behind it; the
	 * throttle keeps the average, and a run queues at most an eighth.
	 */
	if (ret > 0 && srv->rate)
		net_pace(c->fd, srv->rate + srv->rate / 8);
	if (ret <= 0 || stream(c, s) < 0)
		goto out;
	/* Quiet until the client closes; it has nothing more to say here. */
	if (next_msg(c, s->npages, &m) > 0)
		unexpected(c, &m, "after END");
out:
	session_end(srv, s);
}

static void serve_urgent(struct conn *c, const struct wire_msg *hello)
{
	struct upager_server *srv = c->srv;
	uint8_t welcome[WIRE_HDR + 24];
	struct session *s;
	struct wire_msg m;
	uint64_t bytes = 0;
	const char *why = "unknown session id";

	pthread_mutex_lock(&srv->lock);
	for (s = srv->sessions; s && s->id != hello->hello.session;)
		s = s->next;
	if (s && s->urgent_fd >= 0) {
		why = "the session has an urgent connection";
		s = NULL;
	}
	if (s) {
		s->refs++;
		s->urgent_fd = c->fd;
	}
	pthread_mutex_unlock(&srv->lock);
	if (!s) {
		refuse(c, -ENOENT, why);
		return;
	}

	net_nodelay(c->fd); /* an answer must not wait for an ACK */
	wire_welcome(welcome, WIRE_CAP_CSUM, s->npages * PAGE, s->id);
	if (net_send(c->nc, welcome, sizeof(welcome)) < 0)
		goto out;
	STAT(srv, bytes_sent, sizeof(welcome));
	while (next_msg(c, s->npages, &m) > 0) {
		uint64_t p = m.request.page;
		uint32_t n = m.request.count;
		int ret;

		if (m.type != WIRE_REQUEST) {
			unexpected(c, &m, "on the urgent connection");
			break;
		}
		STAT(srv, requests, 1);
		/* Priority follows the faults: the stream goes on from here. */
		pthread_mutex_lock(&s->lock);
		s->nsent += bits_set(s->sent, p, n);
		s->pages_sent += n;
		s->cursor = p + n < s->npages ? p + n : 0;
		pthread_mutex_unlock(&s->lock);
		/* Sent even when streamed: it may sit in a socket buffer. */
		ret = send_pages(c, s, p, n, WIRE_PAGES_URGENT, &bytes);
		if (ret < 0) {
			net_send_error(c->nc, -ret, "sending pages failed");
			break;
		}
	}
out:
	pthread_mutex_lock(&srv->lock);
	s->urgent_fd = -1;
	pthread_mutex_unlock(&srv->lock);
	session_put(srv, s);
}

/*
 * A TLS server runs the handshake first (within a time limit: a silent
 * client must not hold a thread); a plaintext one is told a TLS client
 * by its first byte, to say so in the log.  True to go on.
 */
static bool secure(struct conn *c)
{
	struct upager_server *srv = c->srv;
	char why[TLS_WHY];
	uint8_t b;
	int ret;

	if (!srv->tls) {
		if (recv(c->fd, &b, 1, MSG_PEEK) == 1 && b == 0x16) {
			STAT(srv, protocol_errors, 1);
			srv_log(srv, "client %s refused: a TLS client on a "
				"plaintext server (give the server a key, or "
				"the client plaintext)", c->peer);
			net_send_error(c->nc, EPROTONOSUPPORT,
				       "this server speaks plaintext");
			return false;
		}
		return true;
	}
	net_timeout(c->nc, TLS_HANDSHAKE_S);
	ret = tls_handshake(srv->tls, c->nc, why);
	if (ret < 0) {
		STAT(srv, tls_refused, 1);
		srv_log(srv, "client %s refused: %s (%s)", c->peer, why,
			strerror(-ret));
		return false;
	}
	net_timeout(c->nc, 0);
	return true;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct upager_server *srv = c->srv;
	struct wire_msg m;

	/* Itself, before it knows its role: a later name must not lose. */
	thread_name(pthread_self(), "srv-conn");
	if (secure(c) && next_msg(c, 0, &m) > 0) {
		if (m.type != WIRE_HELLO)
			unexpected(c, &m, "before HELLO");
		else if (m.hello.role == WIRE_ROLE_STREAM) {
			thread_name(pthread_self(), "srv-strm");
			if (srv->pin_stream)
				thread_pin(pthread_self(), &srv->stream_cpus);
			serve_stream(c, &m);
		} else {
			thread_name(pthread_self(), "srv-urg");
			serve_urgent(c, &m);
		}
	}
	/* stop() shuts fds down under the lock: never one reused. */
	pthread_mutex_lock(&srv->lock);
	c->fd = -1;
	pthread_mutex_unlock(&srv->lock);
	net_conn_free(c->nc);
	c->nc = NULL;
	__atomic_fetch_sub(&srv->st.clients_open, 1, __ATOMIC_RELAXED);
	atomic_store(&c->done, true);
	return NULL;
}

/* ---- accepting --------------------------------------------------------- */

static void peer_name(int fd, char *buf, size_t len)
{
	struct net_addr a = { .len = sizeof(a.sa) };

	if (getpeername(fd, (struct sockaddr *)&a.sa, &a.len) < 0 ||
	    net_format(&a, buf, len) < 0)
		snprintf(buf, len, "?");
}

static void conn_free(struct conn *c)
{
	net_conn_free(c->nc);
	free(c->buf);
	free(c->stage);
	free(c);
}

/* Join the connections that have ended.  Caller holds srv->lock. */
static void reap(struct upager_server *srv)
{
	for (struct conn **p = &srv->conns; *p;) {
		struct conn *c = *p;

		if (!atomic_load(&c->done)) {
			p = &c->next;
			continue;
		}
		*p = c->next;
		pthread_join(c->thread, NULL);
		conn_free(c);
	}
}

static void accept_one(struct upager_server *srv)
{
	struct conn *c;
	int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
			srv_log(srv, "accept: %s", strerror(errno));
			usleep(100 * 1000); /* the fd stays readable */
		}
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c) {
		c->buf = malloc(NET_MSG_MAX);
		c->nc = net_conn_new(fd);
	}
	if (!c || !c->buf || !c->nc)
		goto fail;
	c->srv = srv;
	c->fd = fd;
	peer_name(fd, c->peer, sizeof(c->peer));
	pthread_mutex_lock(&srv->lock);
	if (pthread_create(&c->thread, NULL, conn_main, c)) {
		pthread_mutex_unlock(&srv->lock);
		goto fail;
	}
	c->next = srv->conns;
	srv->conns = c;
	STAT(srv, clients, 1);
	STAT(srv, clients_open, 1);
	reap(srv);
	pthread_mutex_unlock(&srv->lock);
	return;
fail:
	srv_log(srv, "no memory or thread for a new connection");
	if (c && c->nc)
		c->fd = -1; /* conn_free() closes it */
	else
		close(fd);
	if (c)
		conn_free(c);
}

static void *accept_main(void *arg)
{
	struct upager_server *srv = arg;
	struct pollfd pfd[2] = { { .fd = srv->lfd, .events = POLLIN },
				 { .fd = srv->stopfd, .events = POLLIN } };

	for (;;) {
		int n = poll(pfd, 2, 1000);

		if (n < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (n > 0 && pfd[0].revents)
			accept_one(srv);
		pthread_mutex_lock(&srv->lock);
		reap(srv);
		pthread_mutex_unlock(&srv->lock);
	}
	return NULL;
}

/* ---- the API ----------------------------------------------------------- */

struct upager_server *upager_server_new(const struct upager_server_params *params,
					int *err)
{
	struct upager_server_params p = { .size = sizeof(p) };
	struct upager_server *srv = NULL;
	pthread_condattr_t ca;
	const char *listen;
	int ret;

	ret = params_copy(&p, sizeof(p), params);
	if (ret < 0)
		goto fail;
	listen = p.listen ? p.listen : "tcp:127.0.0.1:0";
	srv = calloc(1, sizeof(*srv));
	if (!srv) {
		ret = -ENOMEM;
		goto fail;
	}
	srv->lfd = srv->stopfd = -1;
	srv->rate = p.stream_rate;
	srv->log = p.log;
	srv->log_arg = p.log_arg;
	if (p.stream_cpus) {
		ret = -EINVAL;
		if (!cpus_usable(p.stream_cpus))
			goto fail;
		srv->pin_stream = true;
		srv->stream_cpus = *p.stream_cpus;
	}
	ret = net_parse(listen, strlen(listen), &srv->addr);
	if (ret < 0)
		goto fail;
	srv->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->stopfd < 0) {
		ret = -errno;
		goto fail;
	}
	srv->lfd = net_listen(&srv->addr);
	if (srv->lfd < 0) {
		ret = srv->lfd;
		goto fail;
	}
	pthread_mutex_init(&srv->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		*err = 0;
	return srv;
fail:
	if (srv) {
		if (srv->stopfd >= 0)
			close(srv->stopfd);
		free(srv);
	}
	if (err)
		*err = ret;
	return NULL;
}

int upager_server_address(struct upager_server *srv, char *buf, size_t len)
{
	return net_format(&srv->addr, buf, len);
}

unsigned int upager_server_port(struct upager_server *srv)
{
	return net_port(&srv->addr);
}

int upager_server_export(struct upager_server *srv, const char *name,
			 struct upager_store *store)
{
	size_t len = name ? strlen(name) : 0;
	struct export *e, **tail;

	if (!len || len > WIRE_MAX_NAME || strpbrk(name, "/,") || !store ||
	    !store->npages || store->npages == UPAGER_STORE_UNBOUNDED ||
	    store->npages > (1ull << 46) / PAGE)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	memcpy(e->name, name, len);
	e->store = store;
	pthread_mutex_lock(&srv->lock);
	for (struct export *o = srv->exports; o; o = o->next) {
		if (!strcmp(o->name, name)) {
			pthread_mutex_unlock(&srv->lock);
			free(e);
			return -EEXIST;
		}
	}
	/* Appended: exports are listed in the order they were made. */
	tail = &srv->exports;
	while (*tail)
		tail = &(*tail)->next;
	*tail = e;
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

int upager_server_tls_psk(struct upager_server *srv, const char *path)
{
	struct net_tls *t;
	char why[TLS_WHY];
	int err;

	if (!path)
		return -EINVAL;
	t = tls_new(path, true, &err, why);
	if (!t) {
		srv_log(srv, "key file %s: %s", path, why);
		return err;
	}
	pthread_mutex_lock(&srv->lock);
	if (srv->running || srv->tls || srv->plaintext) {
		pthread_mutex_unlock(&srv->lock);
		tls_free(t);
		return -EBUSY;
	}
	srv->tls = t;
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

int upager_server_plaintext(struct upager_server *srv)
{
	int ret = 0;

	pthread_mutex_lock(&srv->lock);
	if (srv->running || srv->tls)
		ret = -EBUSY;
	else
		srv->plaintext = true;
	pthread_mutex_unlock(&srv->lock);
	return ret;
}

int upager_server_start(struct upager_server *srv)
{
	int ret = 0;

	pthread_mutex_lock(&srv->lock);
	if (srv->running) {
		ret = -EALREADY;
		goto out;
	}
	if (!srv->tls && !srv->plaintext) {
		srv_log(srv, "no key: give the server a pre-shared key, or "
			"allow plaintext explicitly");
		ret = -ENOKEY;
		goto out;
	}
	if (srv->lfd < 0) {
		ret = net_listen(&srv->addr);
		if (ret < 0)
			goto out;
		srv->lfd = ret;
		ret = 0;
	}
	ret = -pthread_create(&srv->accept_thread, NULL, accept_main, srv);
	if (!ret) {
		thread_name(srv->accept_thread, "srv-lstn");
		srv->running = true;
	}
out:
	pthread_mutex_unlock(&srv->lock);
	return ret;
}

int upager_server_stop(struct upager_server *srv)
{
	uint64_t one = 1;
	struct conn *list;

	pthread_mutex_lock(&srv->lock);
	if (!srv->running) {
		pthread_mutex_unlock(&srv->lock);
		return 0;
	}
	srv->stopping = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	if (write(srv->stopfd, &one, sizeof(one)) < 0)
		return -errno; /* an eventfd write cannot fail */
	pthread_join(srv->accept_thread, NULL);

	/* Wake every connection thread out of its recv()/send(). */
	pthread_mutex_lock(&srv->lock);
	for (struct conn *c = srv->conns; c; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	list = srv->conns;
	srv->conns = NULL;
	pthread_mutex_unlock(&srv->lock);
	while (list) {
		struct conn *c = list;

		list = c->next;
		pthread_join(c->thread, NULL);
		conn_free(c);
	}

	close(srv->lfd);
	srv->lfd = -1;
	if (srv->addr.sa.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&srv->addr.sa)->sun_path);
	if (read(srv->stopfd, &one, sizeof(one)) < 0)
		one = 0;
	pthread_mutex_lock(&srv->lock);
	srv->stopping = false;
	srv->running = false;
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

void upager_server_free(struct upager_server *srv)
{
	if (!srv)
		return;
	upager_server_stop(srv);
	if (srv->lfd >= 0) {
		close(srv->lfd);
		if (srv->addr.sa.ss_family == AF_UNIX)
			unlink(((struct sockaddr_un *)&srv->addr.sa)->sun_path);
	}
	while (srv->exports) {
		struct export *e = srv->exports;

		srv->exports = e->next;
		free(e);
	}
	close(srv->stopfd);
	tls_free(srv->tls);
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->cond);
	free(srv);
}

int upager_server_stats(struct upager_server *srv,
			struct upager_server_stats *st)
{
	struct upager_server_stats k;

	memset(&k, 0, sizeof(k));
	/* The counters are bumped outside the lock: read each atomically. */
#define READ(field) k.field = __atomic_load_n(&srv->st.field, __ATOMIC_RELAXED)
	READ(clients);
	READ(clients_open);
	READ(sessions);
	READ(pages_streamed);
	READ(pages_urgent);
	READ(pages_zero);
	READ(requests);
	READ(bytes_sent);
	READ(protocol_errors);
	READ(tls_refused);
#undef READ
	return output_copy(st, &k, sizeof(k));
}

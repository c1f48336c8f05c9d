// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The remote: store, the client of docs/PROTOCOL.md: a page server's
 * export, pushed into the region and fetched on faults.
 *
 * Threads: a manager (connects, reconnects with back-off, closes the
 * connections once every page is here), a stream receiver and an urgent
 * receiver.  Both receivers hand what arrives to deliver(): it copies the
 * pages into the buffers of the fetches waiting for them, then installs
 * each page whose bit in the received-bitmap it was first to set.  The
 * bitmap is what makes "no page installed twice" hold across duplicates,
 * races between the two channels and reconnections, and it is what the
 * client sends back as HAVE after a drop.  A page whose install fails (the
 * application unmapped or unregistered that part of the region) gets its
 * bit back: it is not received, so a fault there asks for it again and a
 * later session's HAVE leaves it out; the lost-map counts it meanwhile, so
 * that upager_remote_wait_complete() can tell "nothing more will come" and
 * say why.
 *
 * fetch() (a handler worker on a fault) serves a page that is already
 * installed from the region itself, waiting for a receiver that is
 * installing it; otherwise it sends REQUEST on the urgent connection and
 * waits for deliver(), across reconnections, up to the deadline.
 *
 * Connections belong to a generation (gen).  A thread using a socket
 * outside the lock counts itself in users; the manager shuts a broken
 * generation's sockets down (which wakes every recv and send on them),
 * waits for users to drop to zero, and only then closes them, so no
 * thread ever touches a descriptor number that was reused.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "upager/remote.h"
#include "base/util.h"
#include "net/net.h"
#include "net/remote_store.h"
#include "net/tls.h"

#define PAGE WIRE_PAGE
#define BACKOFF_MIN_NS (50 * 1000000ull)
#define BACKOFF_MAX_NS (2000 * 1000000ull)
#define HANDSHAKE_TIMEOUT_S 5
#define STAT(rs, field, n) \
	__atomic_fetch_add(&(rs)->st.field, (n), __ATOMIC_RELAXED)

enum conn_state {
	CONN_DOWN, /* not connected: the manager connects when needed */
	CONN_UP,   /* both channels connected */
};

/* A fetch waiting for pages [page, page+n). */
struct waiter {
	struct waiter *next;
	uint64_t page;
	size_t n;
	uint8_t *dst;
	uint8_t *got;	 /* n flags */
	size_t missing;
	uint64_t gen;	 /* connection its REQUEST went out on, 0: none */
	uint64_t t0;
	pthread_cond_t cond;
};

struct remote_store {
	struct upager_store s;
	struct net_addr addr;
	char name[WIRE_MAX_NAME + 1];
	bool csum;	     /* asked for */
	uint64_t deadline_ns; /* 0: wait forever */
	struct net_tls *tls; /* the psk= option's key; NULL: plaintext */
	bool plaintext;	     /* the plaintext option */
	bool pin_stream;     /* the stream_cpu= option: */
	cpu_set_t stream_cpus; /* its receiver runs there only */

	pthread_mutex_t lock; /* everything down to the bitmap */
	pthread_cond_t cond;  /* state, started, need of a connection */
	pthread_cond_t idle;  /* users or region_users dropped to 0, or an
				 install ended that a fetch waits for */
	enum conn_state state;
	bool closing;
	bool csum_on;	/* negotiated on this generation */
	bool started;	/* START sent on this generation */
	bool ever;	/* connected once: later connections are reconnects */
	struct net_conn *sc, *uc; /* stream and urgent channels, or NULL */
	int hs[2];	/* sockets of a handshake in progress, or -1 */
	uint64_t gen;
	int users;
	struct waiter *waiters;
	struct upager_region *region;
	int region_users; /* threads installing into or reading region */
	int installing;	  /* of which in deliver() */
	int install_waits; /* fetches waiting for an install to end */

	pthread_mutex_t send_lock; /* one writer at a time on uc */
	_Atomic uint64_t *have;	   /* received-bitmap */
	_Atomic uint64_t received; /* pages received and installed */
	_Atomic uint64_t *lost;	   /* pages that arrived but would not go in */
	_Atomic uint64_t nlost;	   /* bits set in it */
	int install_err;	   /* the last such install's error */

	pthread_t mgr, rx[2];
	uint8_t *buf[3]; /* a message each: stream rx, urgent rx, manager */
	struct upager_remote_stats st;
};

static struct remote_store *to_remote(struct upager_store *s)
{
	return (struct remote_store *)s;
}

/* ---- the received-bitmap ----------------------------------------------- */

/* Set bit @i; true when this call set it. */
static bool have_claim(struct remote_store *rs, uint64_t i)
{
	uint64_t m = 1ull << (i % 64);

	return !(atomic_fetch_or(&rs->have[i / 64], m) & m);
}

static bool have_test(struct remote_store *rs, uint64_t i)
{
	return atomic_load(&rs->have[i / 64]) >> (i % 64) & 1;
}

static bool complete(struct remote_store *rs)
{
	return atomic_load(&rs->received) == rs->s.npages;
}

/*
 * Every page received or lost: nothing more arrives unless asked for.
 * The sum never overshoots: a page is marked lost before its bit is
 * cleared, and unmarked before it is counted received again.
 */
static bool settled(struct remote_store *rs)
{
	return atomic_load(&rs->received) + atomic_load(&rs->nlost) >=
	       rs->s.npages;
}

/*
 * Page @i arrived but could not be installed: not received.  Marked lost
 * first, then its bit is cleared, so whoever claims it next finds the
 * mark to take off.
 */
static void unreceive(struct remote_store *rs, uint64_t i)
{
	uint64_t m = 1ull << (i % 64);

	if (!(atomic_fetch_or(&rs->lost[i / 64], m) & m))
		atomic_fetch_add(&rs->nlost, 1);
	atomic_fetch_and(&rs->have[i / 64], ~m);
	STAT(rs, install_errors, 1);
}

/* Pages [page, page+n) went in: none of them is lost any more. */
static void found(struct remote_store *rs, uint64_t page, uint64_t n)
{
	if (!atomic_load(&rs->nlost))
		return;
	for (uint64_t i = page; i < page + n; i++) {
		uint64_t m = 1ull << (i % 64);

		if (atomic_fetch_and(&rs->lost[i / 64], ~m) & m)
			atomic_fetch_sub(&rs->nlost, 1);
	}
}

/* ---- connections ------------------------------------------------------- */

static struct timespec abstime(uint64_t ns)
{
	return (struct timespec){ .tv_sec = (time_t)(ns / 1000000000ull),
				  .tv_nsec = (long)(ns % 1000000000ull) };
}

/*
 * Make a handshake's socket known to close(), which shuts it down rather
 * than wait for the handshake's timeouts.  0, or -ECANCELED once closing.
 */
static int publish(struct remote_store *rs, int i, int fd)
{
	int ret = 0;

	pthread_mutex_lock(&rs->lock);
	if (rs->closing)
		ret = -ECANCELED;
	else
		rs->hs[i] = fd;
	pthread_mutex_unlock(&rs->lock);
	return ret;
}

/*
 * A round trip on the urgent channel took @ns: keep the shortest.  Only
 * noise (a busy CPU, a queue) makes one longer than the path's.
 */
static void rtt_seen(struct remote_store *rs, uint64_t ns)
{
	uint64_t us = ns / 1000 ? ns / 1000 : 1;
	uint64_t old = __atomic_load_n(&rs->st.rtt_us, __ATOMIC_RELAXED);

	while ((!old || us < old) &&
	       !__atomic_compare_exchange_n(&rs->st.rtt_us, &old, us, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Send HELLO on @fd and read the WELCOME.  0 or -errno. */
static int hello(struct remote_store *rs, struct net_conn *c,
		 enum wire_role role,
		 uint64_t *session, uint32_t *caps, uint64_t *bytes)
{
	uint8_t *buf = rs->buf[2];
	uint64_t t0 = now_ns();
	struct wire_msg m;
	const char *why;
	long n;
	int ret;

	ret = net_send(c, buf,
		       wire_hello(buf, rs->csum ? WIRE_CAP_CSUM : 0, role,
				  *session, rs->name));
	if (ret < 0)
		return ret;
	n = net_read_msg(c, buf, &why);
	if (n <= 0)
		return n ? (int)n : -ECONNRESET;
	ret = wire_decode(buf, (size_t)n, 0, &m, &why);
	if (ret < 0) {
		STAT(rs, protocol_errors, 1);
		net_send_error(c, -ret, why);
		return ret;
	}
	if (m.type == WIRE_ERROR)
		return m.error.code && m.error.code < 4096 ? -(int)m.error.code
							   : -EPROTO;
	if (m.type != WIRE_WELCOME || (*session && m.welcome.session != *session)) {
		STAT(rs, protocol_errors, 1);
		net_send_error(c, EPROTO, "expected WELCOME");
		return -EPROTO;
	}
	if (role == WIRE_ROLE_URGENT)
		rtt_seen(rs, now_ns() - t0);
	*session = m.welcome.session;
	*caps = m.welcome.caps;
	*bytes = m.welcome.image_bytes;
	return 0;
}

/*
 * Connect one channel: the socket, published for close() to shut down,
 * then TLS when we have a key, then HELLO and WELCOME.  0 or -errno; *@c
 * is set once the socket is (the caller frees it on failure).
 */
static int channel(struct remote_store *rs, int i, enum wire_role role,
		   struct net_conn **c, uint64_t *session, uint32_t *caps,
		   uint64_t *bytes)
{
	char why[TLS_WHY];
	int fd, ret;

	fd = net_connect(&rs->addr, role == WIRE_ROLE_URGENT,
			 HANDSHAKE_TIMEOUT_S);
	if (fd < 0)
		return fd;
	*c = net_conn_new(fd);
	if (!*c) {
		close(fd);
		return -ENOMEM;
	}
	net_timeout(*c, HANDSHAKE_TIMEOUT_S);
	ret = publish(rs, i, fd);
	if (ret == 0 && rs->tls)
		ret = tls_handshake(rs->tls, *c, why);
	if (ret == 0)
		ret = hello(rs, *c, role, session, caps, bytes);
	if (ret == 0)
		net_timeout(*c, 0);
	return ret;
}

/*
 * Open both channels: stream first (it creates the session), then the
 * urgent one paired to it.  Unlocked: only the manager (or open()) calls
 * it, with rs->buf[2] to itself.  0 or -errno; *@sc and *@uc are set
 * (NULL on failure).
 */
static int handshake(struct remote_store *rs, struct net_conn **sc,
		     struct net_conn **uc)
{
	uint64_t session = 0, bytes, b2;
	uint32_t caps, c2;
	int ret;

	*sc = *uc = NULL;
	ret = channel(rs, 0, WIRE_ROLE_STREAM, sc, &session, &caps, &bytes);
	if (ret < 0)
		goto fail;
	/*
	 * A server restarted with another image is not ours to resume.  The
	 * size is learnt once, by open(): written again on a reconnection it
	 * would race with readers of npages for nothing.
	 */
	ret = -ESTALE;
	if (rs->s.npages && bytes / PAGE != rs->s.npages)
		goto fail;
	if (!rs->s.npages)
		rs->s.npages = bytes / PAGE;
	ret = channel(rs, 1, WIRE_ROLE_URGENT, uc, &session, &c2, &b2);
	if (ret < 0)
		goto fail;
	pthread_mutex_lock(&rs->lock);
	rs->csum_on = rs->csum && (caps & WIRE_CAP_CSUM);
	rs->hs[0] = rs->hs[1] = -1;
	pthread_mutex_unlock(&rs->lock);
	return 0;
fail:
	pthread_mutex_lock(&rs->lock);
	rs->hs[0] = rs->hs[1] = -1;
	pthread_mutex_unlock(&rs->lock);
	net_conn_free(*sc);
	net_conn_free(*uc);
	*sc = *uc = NULL;
	return ret;
}

/*
 * Is a connection needed?  While a fetch waits, or the attached region
 * lacks pages that may still come (a lost page comes again only when a
 * fault asks for it).  Caller holds rs->lock.
 */
static bool needed(struct remote_store *rs)
{
	return rs->waiters || (rs->region && !settled(rs));
}

/* Caller holds rs->lock. */
static void put_user(struct remote_store *rs)
{
	if (!--rs->users)
		pthread_cond_broadcast(&rs->idle);
}

static void put_region(struct remote_store *rs)
{
	if (!--rs->region_users)
		pthread_cond_broadcast(&rs->idle);
}

/* The generation @gen is broken.  Caller holds rs->lock. */
static void broken(struct remote_store *rs, uint64_t gen)
{
	if (gen != rs->gen || rs->state != CONN_UP)
		return;
	rs->state = CONN_DOWN;
	shutdown(rs->sc->fd, SHUT_RDWR);
	shutdown(rs->uc->fd, SHUT_RDWR);
	pthread_cond_broadcast(&rs->cond);
}

/* Close the sockets once nobody uses them.  Caller holds rs->lock. */
static void teardown(struct remote_store *rs)
{
	if (!rs->sc)
		return;
	shutdown(rs->sc->fd, SHUT_RDWR);
	shutdown(rs->uc->fd, SHUT_RDWR);
	while (rs->users)
		pthread_cond_wait(&rs->idle, &rs->lock);
	net_conn_free(rs->sc);
	net_conn_free(rs->uc);
	rs->sc = rs->uc = NULL;
	rs->started = false;
}

/*
 * Send @len bytes on the urgent (or stream) socket of the current
 * generation, outside the lock.  Caller holds rs->lock, which is dropped
 * and retaken.  A failure breaks the generation.  0 or -errno.
 */
static int send_locked(struct remote_store *rs, bool urgent, const void *buf,
		       size_t len)
{
	uint64_t gen = rs->gen;
	struct net_conn *c = urgent ? rs->uc : rs->sc;
	int ret;

	if (rs->state != CONN_UP)
		return -ENOTCONN;
	rs->users++;
	pthread_mutex_unlock(&rs->lock);
	if (urgent)
		pthread_mutex_lock(&rs->send_lock);
	ret = net_send(c, buf, len);
	if (urgent)
		pthread_mutex_unlock(&rs->send_lock);
	pthread_mutex_lock(&rs->lock);
	put_user(rs);
	if (ret < 0)
		broken(rs, gen);
	return ret;
}

/*
 * REQUEST @w's pages on the current generation, in messages of at most
 * WIRE_MAX_PAGES.  Caller holds rs->lock, and @w is on the list.
 */
static void request(struct remote_store *rs, struct waiter *w)
{
	/* @w may be gone once the lock was dropped: copy what we need. */
	uint64_t page = w->page, gen = rs->gen;
	size_t npages = w->n;
	uint8_t msg[WIRE_HDR + 12];

	w->gen = gen;
	for (size_t i = 0; i < npages; i += WIRE_MAX_PAGES) {
		uint32_t n = (uint32_t)(npages - i < WIRE_MAX_PAGES
						? npages - i
						: WIRE_MAX_PAGES);

		if (gen != rs->gen)
			break;
		STAT(rs, requests, 1);
		if (send_locked(rs, true, msg,
				wire_request(msg, page + i, n)) < 0)
			break;
	}
}

/*
 * On a new generation: HAVE (the non-empty parts of the bitmap) and
 * START, when a region is attached.  Caller holds rs->lock.
 */
static void start_stream(struct remote_store *rs)
{
	uint8_t *msg = rs->buf[2];
	uint8_t bits[WIRE_MAX_HAVE / 8];
	uint64_t gen = rs->gen;

	if (rs->state != CONN_UP || !rs->region || rs->started)
		return;
	rs->started = true;
	pthread_cond_broadcast(&rs->cond); /* the stream receiver may read */
	for (uint64_t first = 0; first < rs->s.npages; first += WIRE_MAX_HAVE) {
		uint64_t left = rs->s.npages - first;
		uint32_t n = (uint32_t)(left < WIRE_MAX_HAVE ? left
							     : WIRE_MAX_HAVE);
		bool any = false;

		if (gen != rs->gen)
			return;
		memset(bits, 0, (n + 7) / 8);
		for (uint32_t i = 0; i < n; i++) {
			if (have_test(rs, first + i)) {
				bits[i / 8] |= (uint8_t)(1u << (i % 8));
				any = true;
			}
		}
		if (any && send_locked(rs, false, msg,
				       wire_have(msg, first, n, bits)) < 0)
			return;
	}
	if (gen == rs->gen)
		send_locked(rs, false, msg, wire_start(msg, 0));
}

/* Waiters whose REQUEST went out on an older generation: send again. */
static void resend(struct remote_store *rs)
{
	struct waiter *w;

	do {
		for (w = rs->waiters; w && w->gen == rs->gen;)
			w = w->next;
		if (w)
			request(rs, w);
	} while (w && rs->state == CONN_UP);
}

static void *manager_main(void *arg)
{
	struct remote_store *rs = arg;
	uint64_t backoff = BACKOFF_MIN_NS;

	pthread_mutex_lock(&rs->lock);
	while (!rs->closing) {
		struct timespec ts;
		struct net_conn *sc, *uc;
		int ret;

		if (rs->state == CONN_UP) {
			/*
			 * Every page is here and no fetch waits: let go.  Up
			 * to the attach, the connection opened waits for it.
			 */
			if (!rs->region || needed(rs)) {
				pthread_cond_wait(&rs->cond, &rs->lock);
				continue;
			}
			rs->state = CONN_DOWN;
		}
		teardown(rs);
		/* teardown() may have waited: closing may be set since. */
		if (rs->closing)
			break;
		if (!needed(rs)) {
			pthread_cond_wait(&rs->cond, &rs->lock);
			continue;
		}
		pthread_mutex_unlock(&rs->lock);
		ret = handshake(rs, &sc, &uc);
		pthread_mutex_lock(&rs->lock);
		if (ret < 0 || rs->closing) {
			if (ret == 0) {
				net_conn_free(sc);
				net_conn_free(uc);
				break;
			}
			ts = abstime(now_ns() + backoff);
			while (!rs->closing &&
			       pthread_cond_timedwait(&rs->cond, &rs->lock,
						      &ts) != ETIMEDOUT)
				;
			backoff = backoff * 2 < BACKOFF_MAX_NS ? backoff * 2
							       : BACKOFF_MAX_NS;
			continue;
		}
		backoff = BACKOFF_MIN_NS;
		rs->sc = sc;
		rs->uc = uc;
		rs->gen++;
		rs->state = CONN_UP;
		if (rs->ever)
			STAT(rs, reconnects, 1);
		rs->ever = true;
		pthread_cond_broadcast(&rs->cond);
		start_stream(rs);
		resend(rs);
	}
	teardown(rs);
	pthread_mutex_unlock(&rs->lock);
	return NULL;
}

/* ---- receiving --------------------------------------------------------- */

/* The lat_fine bucket of @us (include/upager/remote.h). */
static unsigned int fine_bucket(uint64_t us)
{
	unsigned int k, b;

	if (us < 8)
		return (unsigned int)us;
	k = 63 - (unsigned int)__builtin_clzll(us) - 3;
	b = 8 + 8 * k + (unsigned int)(us >> k & 7);
	return b < UPAGER_REMOTE_LAT_FINE ? b : UPAGER_REMOTE_LAT_FINE - 1;
}

/* The upper end of lat_fine bucket @b, in µs. */
static double fine_upper(unsigned int b)
{
	if (b < 8)
		return b + 1;
	return (double)((9ull + (b - 8) % 8) << ((b - 8) / 8));
}

static void record_latency(struct remote_store *rs, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int b = us ? 64 - (unsigned int)__builtin_clzll(us) : 0;

	STAT(rs, lat_hist[b < UPAGER_LAT_BUCKETS ? b : UPAGER_LAT_BUCKETS - 1],
	     1);
	STAT(rs, lat_fine[fine_bucket(us)], 1);
}

/*
 * Copy what the waiters want of [page, page+n), which came on the urgent
 * channel when @urgent.  Caller holds rs->lock.
 */
static void feed_waiters(struct remote_store *rs, uint64_t page, uint32_t n,
			 const uint8_t *data, bool urgent)
{
	for (struct waiter *w = rs->waiters; w; w = w->next) {
		uint64_t lo = page > w->page ? page : w->page;
		uint64_t hi = page + n < w->page + w->n ? page + n
							: w->page + w->n;

		for (uint64_t i = lo; i < hi; i++) {
			uint8_t *dst = w->dst + (i - w->page) * PAGE;

			if (w->got[i - w->page])
				continue;
			if (data)
				memcpy(dst, data + (i - page) * PAGE, PAGE);
			else
				memset(dst, 0, PAGE);
			w->got[i - w->page] = 1;
			w->missing--;
		}
		if (lo < hi && !w->missing) {
			record_latency(rs, now_ns() - w->t0);
			/* The stream may bring a page sooner than a trip. */
			if (urgent && w->n == 1)
				rtt_seen(rs, now_ns() - w->t0);
			pthread_cond_signal(&w->cond);
		}
	}
}

/*
 * Install pages [page, page+n), whose bits this thread set.  Returns how
 * many went in; the others are not received (unreceive()), and *@err gets
 * their install's error.
 */
static uint32_t install_run(struct remote_store *rs, struct upager_region *r,
			    uint64_t page, uint32_t n, const uint8_t *data,
			    int *err)
{
	long ret = upager_region_install(r, page * PAGE, data,
					 (size_t)n * PAGE);
	uint32_t in = 0;

	if (ret == (long)n * PAGE) {
		found(rs, page, n);
		return n;
	}
	/*
	 * Fewer bytes than asked: units a fault's fill had installed or was
	 * installing (counted as races, not bytes), or an install that
	 * failed part-way, which the engine reports as an error only when
	 * nothing went in before it and whose units it may leave marked
	 * absent though some are in.  Page by page tells them apart: a page
	 * the engine does not show present goes in alone again, which for
	 * one that is in finds -EEXIST and settles it present.
	 */
	for (uint32_t i = 0; i < n; i++) {
		size_t off = (size_t)(page + i) * PAGE;
		long one = 0;

		if (!upager_region_present(r, off))
			one = upager_region_install(
				r, off, data ? data + (size_t)i * PAGE : NULL,
				PAGE);
		if (one < 0) {
			*err = (int)one;
			unreceive(rs, page + i);
			continue;
		}
		found(rs, page + i, 1);
		in++;
	}
	return in;
}

/*
 * Pages [page, page+n) arrived (@data NULL: zeros): to the waiters, then
 * into the region, each page by the one thread that set its bit.
 */
static void deliver(struct remote_store *rs, uint64_t page, uint32_t n,
		    const uint8_t *data, bool urgent)
{
	struct upager_region *r;
	uint64_t fresh = 0;
	int err = 0;

	pthread_mutex_lock(&rs->lock);
	feed_waiters(rs, page, n, data, urgent);
	r = rs->region;
	if (r) {
		rs->region_users++;
		rs->installing++;
	}
	pthread_mutex_unlock(&rs->lock);
	/* No region: nothing to install, and the bitmap stays as it was. */
	if (!r)
		return;

	for (uint32_t i = 0, j; i < n; i = j) {
		if (!have_claim(rs, page + i)) {
			STAT(rs, duplicates, 1);
			j = i + 1;
			continue;
		}
		for (j = i + 1; j < n && have_claim(rs, page + j);)
			j++;
		fresh += install_run(rs, r, page + i, j - i,
				     data ? data + (size_t)i * PAGE : NULL,
				     &err);
	}
	if (urgent)
		STAT(rs, pages_urgent, fresh);
	else
		STAT(rs, pages_pushed, fresh);
	if (!data)
		STAT(rs, pages_zero, fresh);

	pthread_mutex_lock(&rs->lock);
	if (err)
		rs->install_err = err;
	atomic_fetch_add(&rs->received, fresh);
	rs->installing--;
	if (rs->install_waits)
		pthread_cond_broadcast(&rs->idle);
	put_region(rs);
	/*
	 * The manager lets go, wait_complete() returns: every page is in
	 * or lost, and no install that could change that is under way.
	 */
	if (!rs->installing && settled(rs))
		pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
}

/*
 * Handle one message on a channel: 0 to go on, <0 to drop the connection
 * (after an ERROR of ours when the message was bad).
 */
static int handle(struct remote_store *rs, struct net_conn *c, uint8_t *buf,
		  long len,
		  bool urgent)
{
	struct wire_msg m;
	const char *why;
	bool csum;
	int ret;

	ret = wire_decode(buf, (size_t)len, rs->s.npages, &m, &why);
	if (ret == 0 && m.type == WIRE_PAGES) {
		pthread_mutex_lock(&rs->lock);
		csum = rs->csum_on;
		pthread_mutex_unlock(&rs->lock);
		if (csum && !(m.flags & WIRE_F_CSUM)) {
			ret = -EBADMSG;
			why = "PAGES without the checksum agreed on";
		}
	} else if (ret == 0 && m.type != WIRE_END && m.type != WIRE_ERROR) {
		ret = -EPROTO;
		why = "unexpected message from the server";
	}
	if (ret < 0) {
		STAT(rs, protocol_errors, 1);
		net_send_error(c, -ret, why);
		return ret;
	}
	if (m.type == WIRE_ERROR)
		return -ECONNABORTED;
	if (m.type == WIRE_PAGES)
		deliver(rs, m.pages.page, m.pages.count, m.pages.data, urgent);
	return 0;
}

/* A receiver: rx[0] the stream channel, rx[1] the urgent one. */
static void receive(struct remote_store *rs, bool urgent)
{
	uint8_t *buf = rs->buf[urgent];

	pthread_mutex_lock(&rs->lock);
	for (;;) {
		const char *why;
		uint64_t gen;
		long n;
		struct net_conn *c;

		while (!rs->closing &&
		       !(rs->state == CONN_UP && (urgent || rs->started)))
			pthread_cond_wait(&rs->cond, &rs->lock);
		if (rs->closing)
			break;
		c = urgent ? rs->uc : rs->sc;
		gen = rs->gen;
		rs->users++;
		pthread_mutex_unlock(&rs->lock);
		for (;;) {
			n = net_read_msg(c, buf, &why);
			if (n <= 0) {
				if (why) {
					STAT(rs, protocol_errors, 1);
					net_send_error(c, (int)-n, why);
				}
				break;
			}
			STAT(rs, bytes_received, (uint64_t)n);
			if (handle(rs, c, buf, n, urgent) < 0)
				break;
		}
		pthread_mutex_lock(&rs->lock);
		put_user(rs);
		broken(rs, gen);
	}
	pthread_mutex_unlock(&rs->lock);
}

static void *rx_stream_main(void *arg)
{
	receive(arg, false);
	return NULL;
}

static void *rx_urgent_main(void *arg)
{
	receive(arg, true);
	return NULL;
}

/* ---- the store ops ----------------------------------------------------- */

enum where { NOT_HERE, INSTALLING, HERE };

/*
 * Are pages [pgoff, pgoff+n) here and mapped in @r?  Their bits say they
 * arrived; mincore() says the page table holds them.  Arrived but not
 * mapped: a receiver set the bits and is installing them (or the pages
 * were dropped since).
 */
static enum where where(struct remote_store *rs, struct upager_region *r,
			uint64_t pgoff, size_t n)
{
	unsigned char vec[64];
	char *base = (char *)upager_region_addr(r) + pgoff * PAGE;

	for (size_t i = 0; i < n; i++)
		if (!have_test(rs, pgoff + i))
			return NOT_HERE;
	for (size_t i = 0; i < n; i += sizeof(vec)) {
		size_t k = n - i < sizeof(vec) ? n - i : sizeof(vec);

		if (mincore(base + i * PAGE, k * PAGE, vec))
			return NOT_HERE;
		for (size_t j = 0; j < k; j++)
			if (!(vec[j] & 1))
				return INSTALLING;
	}
	return HERE;
}

static int remote_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
			size_t npages)
{
	struct remote_store *rs = to_remote(s);
	struct waiter w = { .page = pgoff, .n = npages, .dst = dst,
			    .missing = npages, .t0 = now_ns() };
	enum where here = NOT_HERE;
	struct upager_region *r;
	pthread_condattr_t ca;
	struct timespec ts;
	int ret = 0;

	/*
	 * Pages already installed (a fault read before the stream's install
	 * resolved it) are copied from the region: present pages are
	 * readable, and the engine's install will find them there.  Pages
	 * being installed are waited for: asking the server for them could
	 * find it gone once every page is here (a finished migration).
	 */
	pthread_mutex_lock(&rs->lock);
	r = rs->region;
	if (r) {
		rs->region_users++;
		rs->install_waits++;
		while ((here = where(rs, r, pgoff, npages)) == INSTALLING &&
		       rs->installing)
			pthread_cond_wait(&rs->idle, &rs->lock);
		rs->install_waits--;
	}
	pthread_mutex_unlock(&rs->lock);
	if (r) {
		if (here == HERE)
			memcpy(dst, (char *)upager_region_addr(r) + pgoff * PAGE,
			       npages * PAGE);
		pthread_mutex_lock(&rs->lock);
		put_region(rs);
		pthread_mutex_unlock(&rs->lock);
		if (here == HERE) {
			STAT(rs, fetch_local, 1);
			return 0;
		}
	}

	w.got = calloc(npages, 1);
	if (!w.got)
		return -ENOMEM;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cond, &ca);
	pthread_condattr_destroy(&ca);
	ts = abstime(w.t0 + rs->deadline_ns);

	pthread_mutex_lock(&rs->lock);
	w.next = rs->waiters;
	rs->waiters = &w;
	if (rs->state == CONN_UP)
		request(rs, &w);
	else
		pthread_cond_broadcast(&rs->cond); /* the manager: connect */
	while (w.missing && !rs->closing && !ret) {
		if (!rs->deadline_ns)
			pthread_cond_wait(&w.cond, &rs->lock);
		else if (pthread_cond_timedwait(&w.cond, &rs->lock, &ts) ==
				 ETIMEDOUT &&
			 w.missing)
			ret = -ETIMEDOUT;
	}
	if (w.missing && !ret)
		ret = -ECANCELED;
	for (struct waiter **p = &rs->waiters; *p; p = &(*p)->next) {
		if (*p == &w) {
			*p = w.next;
			break;
		}
	}
	if (!rs->waiters && settled(rs))
		pthread_cond_broadcast(&rs->cond); /* the manager may let go */
	pthread_mutex_unlock(&rs->lock);
	if (ret == -ETIMEDOUT)
		STAT(rs, timeouts, 1);
	pthread_cond_destroy(&w.cond);
	free(w.got);
	return ret;
}

static int remote_attach(struct upager_store *s, struct upager_region *r)
{
	struct remote_store *rs = to_remote(s);
	int ret = 0;

	/*
	 * Pages are installed one 4 KiB page at a time at their image
	 * offset: the region must be the whole image in 4 KiB units.  An
	 * empty install at offset 4096 is refused (-EINVAL) by a region
	 * with larger units, and costs nothing in one with 4 KiB units.
	 */
	if (upager_region_len(r) != s->npages * PAGE ||
	    upager_region_install(r, PAGE, NULL, 0) < 0)
		return -EINVAL;
	pthread_mutex_lock(&rs->lock);
	if (rs->region) {
		ret = -EBUSY;
	} else {
		rs->region = r;
		start_stream(rs);
		pthread_cond_broadcast(&rs->cond);
	}
	pthread_mutex_unlock(&rs->lock);
	return ret;
}

/*
 * The region goes: stop installing, forget what it held, and close the
 * session (a later attach starts a new one from an empty bitmap).
 */
static void remote_detach(struct upager_store *s, struct upager_region *r)
{
	struct remote_store *rs = to_remote(s);

	pthread_mutex_lock(&rs->lock);
	if (rs->region != r) {
		pthread_mutex_unlock(&rs->lock);
		return;
	}
	rs->region = NULL;
	while (rs->region_users)
		pthread_cond_wait(&rs->idle, &rs->lock);
	for (uint64_t i = 0; i < (s->npages + 63) / 64; i++) {
		atomic_store(&rs->have[i], 0);
		atomic_store(&rs->lost[i], 0);
	}
	atomic_store(&rs->received, 0);
	atomic_store(&rs->nlost, 0);
	rs->install_err = 0;
	broken(rs, rs->gen);
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
}

static void remote_free(struct remote_store *rs)
{
	tls_free(rs->tls);
	free(rs->have);
	free(rs->lost);
	for (int i = 0; i < 3; i++)
		net_msg_buf_free(rs->buf[i]);
	pthread_mutex_destroy(&rs->lock);
	pthread_mutex_destroy(&rs->send_lock);
	pthread_cond_destroy(&rs->cond);
	pthread_cond_destroy(&rs->idle);
	free(rs);
}

static void remote_close(struct upager_store *s)
{
	struct remote_store *rs = to_remote(s);

	pthread_mutex_lock(&rs->lock);
	rs->closing = true;
	for (int i = 0; i < 2; i++)
		if (rs->hs[i] >= 0)
			shutdown(rs->hs[i], SHUT_RDWR);
	if (rs->sc) {
		shutdown(rs->sc->fd, SHUT_RDWR);
		shutdown(rs->uc->fd, SHUT_RDWR);
	}
	for (struct waiter *w = rs->waiters; w; w = w->next)
		pthread_cond_signal(&w->cond);
	pthread_cond_broadcast(&rs->cond);
	pthread_mutex_unlock(&rs->lock);
	pthread_join(rs->rx[0], NULL);
	pthread_join(rs->rx[1], NULL);
	pthread_join(rs->mgr, NULL); /* it closes the sockets */
	remote_free(rs);
}

/* ---- opening ----------------------------------------------------------- */

/* The key of the psk=PATH option (@olen bytes at @path). */
static int load_psk(struct remote_store *rs, const char *path, size_t olen)
{
	char p[PATH_MAX], why[TLS_WHY];
	int err;

	if (rs->tls || !olen || olen >= sizeof(p))
		return -EINVAL;
	memcpy(p, path, olen);
	p[olen] = '\0';
	rs->tls = tls_new(p, false, &err, why);
	return rs->tls ? 0 : err;
}

/*
 * Strip a trailing ",csum", ",deadline=SECONDS", ",psk=PATH",
 * ",plaintext" or ",stream_cpu=N" off @*len bytes.  1 stripped, 0 none,
 * or -errno.
 */
static int strip_option(struct remote_store *rs, const char *arg, size_t *len)
{
	const char *comma = memrchr(arg, ',', *len), *opt;
	size_t olen;
	char num[32], *end;
	double secs;
	int ret;

	if (!comma)
		return 0;
	opt = comma + 1;
	olen = *len - (size_t)(opt - arg);
	if (olen == 4 && !memcmp(opt, "csum", 4)) {
		rs->csum = true;
	} else if (olen > 9 && !memcmp(opt, "deadline=", 9) &&
		   olen - 9 < sizeof(num)) {
		memcpy(num, opt + 9, olen - 9);
		num[olen - 9] = '\0';
		secs = strtod(num, &end);
		if (*end || end == num || !(secs >= 0 && secs <= 1e6))
			return -EINVAL;
		rs->deadline_ns = (uint64_t)(secs * 1e9);
	} else if (olen > 4 && !memcmp(opt, "psk=", 4)) {
		ret = load_psk(rs, opt + 4, olen - 4);
		if (ret < 0)
			return ret;
	} else if (olen == 9 && !memcmp(opt, "plaintext", 9)) {
		rs->plaintext = true;
	} else if (olen > 11 && !memcmp(opt, "stream_cpu=", 11) &&
		   olen - 11 < sizeof(num)) {
		long cpu;

		memcpy(num, opt + 11, olen - 11);
		num[olen - 11] = '\0';
		cpu = strtol(num, &end, 10);
		if (*end || end == num || cpu < 0 || cpu >= CPU_SETSIZE)
			return -EINVAL;
		CPU_ZERO(&rs->stream_cpus);
		CPU_SET((int)cpu, &rs->stream_cpus);
		if (!cpus_usable(&rs->stream_cpus))
			return -EINVAL;
		rs->pin_stream = true;
	} else {
		return 0;
	}
	*len = (size_t)(comma - arg);
	return 1;
}

static bool is_socket(const char *path, size_t len)
{
	char p[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;

	if (!len || len >= sizeof(p))
		return false;
	memcpy(p, path, len);
	p[len] = '\0';
	return !stat(p, &st) && S_ISSOCK(st.st_mode);
}

/*
 * "HOST:PORT[/NAME]" or "unix:PATH[/NAME]", options stripped.  For unix,
 * the last '/' separates a NAME only when what precedes it is a socket.
 */
static int parse_target(struct remote_store *rs, const char *arg, size_t len)
{
	char spec[sizeof(((struct sockaddr_un *)0)->sun_path) + 300];
	const char *slash, *name = "";
	size_t alen = len, nlen = 0;

	if (len > 5 && !memcmp(arg, "unix:", 5)) {
		slash = memrchr(arg + 5, '/', len - 5);
		if (!is_socket(arg + 5, len - 5) && slash &&
		    is_socket(arg + 5, (size_t)(slash - arg - 5)))
			alen = (size_t)(slash - arg);
		if (snprintf(spec, sizeof(spec), "%.*s", (int)alen, arg) >=
		    (int)sizeof(spec))
			return -ENAMETOOLONG;
	} else {
		slash = memchr(arg, '/', len);
		if (slash)
			alen = (size_t)(slash - arg);
		if (snprintf(spec, sizeof(spec), "tcp:%.*s", (int)alen, arg) >=
		    (int)sizeof(spec))
			return -EINVAL;
	}
	if (alen < len) {
		name = arg + alen + 1;
		nlen = len - alen - 1;
	}
	if (nlen > WIRE_MAX_NAME || memchr(name, ',', nlen) ||
	    memchr(name, '/', nlen) || (alen < len && !nlen))
		return -EINVAL;
	memcpy(rs->name, name, nlen);
	rs->name[nlen] = '\0';
	return net_parse(spec, strlen(spec), &rs->addr);
}

static int remote_open(const char *arg, struct upager_store **out)
{
	struct remote_store *rs = calloc(1, sizeof(*rs));
	pthread_condattr_t ca;
	size_t len = strlen(arg);
	int ret, started = 0;

	if (!rs)
		return -ENOMEM;
	rs->s.ops = &store_remote_ops;
	rs->deadline_ns = 30 * 1000000000ull;
	rs->hs[0] = rs->hs[1] = -1;
	pthread_mutex_init(&rs->lock, NULL);
	pthread_mutex_init(&rs->send_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rs->cond, &ca);
	pthread_cond_init(&rs->idle, NULL);
	pthread_condattr_destroy(&ca);
	while ((ret = strip_option(rs, arg, &len)) > 0)
		;
	if (ret == 0)
		ret = parse_target(rs, arg, len);
	/* Secure by default: plaintext only when asked for by name. */
	if (ret == 0 && !rs->tls && !rs->plaintext)
		ret = -ENOKEY;
	if (ret == 0 && rs->tls && rs->plaintext)
		ret = -EINVAL;
	for (int i = 0; i < 3 && ret == 0; i++)
		if (!(rs->buf[i] = net_msg_buf_new()))
			ret = -ENOMEM;
	if (ret == 0)
		ret = handshake(rs, &rs->sc, &rs->uc);
	if (ret < 0)
		goto fail;
	rs->have = calloc((rs->s.npages + 63) / 64, sizeof(*rs->have));
	rs->lost = calloc((rs->s.npages + 63) / 64, sizeof(*rs->lost));
	if (!rs->have || !rs->lost) {
		ret = -ENOMEM;
		goto fail;
	}
	rs->gen = 1;
	rs->ever = true;
	rs->state = CONN_UP;
	ret = -pthread_create(&rs->mgr, NULL, manager_main, rs);
	if (!ret && ++started)
		ret = -pthread_create(&rs->rx[0], NULL, rx_stream_main, rs);
	if (!ret && ++started)
		ret = -pthread_create(&rs->rx[1], NULL, rx_urgent_main, rs);
	if (ret)
		goto fail;
	thread_name(rs->mgr, "rmt-conn");
	thread_name(rs->rx[0], "rmt-strm");
	if (rs->pin_stream)
		thread_pin(rs->rx[0], &rs->stream_cpus);
	thread_name(rs->rx[1], "rmt-urg");
	*out = &rs->s;
	return 0;
fail:
	if (started) {
		/* Threads the failed create left out are not joined. */
		pthread_mutex_lock(&rs->lock);
		rs->closing = true;
		teardown(rs);
		pthread_cond_broadcast(&rs->cond);
		pthread_mutex_unlock(&rs->lock);
		pthread_join(rs->mgr, NULL);
		if (started > 1)
			pthread_join(rs->rx[0], NULL);
	} else {
		net_conn_free(rs->sc);
		net_conn_free(rs->uc);
	}
	remote_free(rs);
	return ret;
}

const struct upager_store_ops store_remote_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "remote",
	.help = "remote:HOST:PORT[/NAME],psk=FILE|plaintext[,deadline=S][,csum]"
		"[,stream_cpu=N]  pages from a page server (also "
		"remote:unix:PATH[/NAME])",
	.open = remote_open,
	.fetch = remote_fetch,
	.close = remote_close,
	.attach = remote_attach,
	.detach = remote_detach,
};

/* ---- the public calls -------------------------------------------------- */

int upager_remote_stats(struct upager_store *s, struct upager_remote_stats *st)
{
	struct upager_remote_stats k;
	struct remote_store *rs;

	if (!s || s->ops != &store_remote_ops)
		return -EINVAL;
	rs = to_remote(s);
	memset(&k, 0, sizeof(k));
	/* The counters are bumped outside the lock: read each atomically. */
#define READ(field) k.field = __atomic_load_n(&rs->st.field, __ATOMIC_RELAXED)
	READ(pages_pushed);
	READ(pages_urgent);
	READ(pages_zero);
	READ(duplicates);
	READ(requests);
	READ(fetch_local);
	READ(timeouts);
	READ(reconnects);
	READ(protocol_errors);
	READ(bytes_received);
	READ(install_errors);
	for (int i = 0; i < UPAGER_LAT_BUCKETS; i++)
		READ(lat_hist[i]);
	for (int i = 0; i < UPAGER_REMOTE_LAT_FINE; i++)
		READ(lat_fine[i]);
	READ(rtt_us);
#undef READ
	k.npages = s->npages;
	k.pages_received = atomic_load(&rs->received);
	return output_copy(st, &k, sizeof(k));
}

double upager_remote_percentile(const struct upager_remote_stats *st, double p)
{
	struct upager_stats s = { 0 };
	uint64_t total = 0, seen = 0;

	for (unsigned int i = 0; i < UPAGER_REMOTE_LAT_FINE; i++)
		total += st->lat_fine[i];
	for (unsigned int i = 0; total && i < UPAGER_REMOTE_LAT_FINE; i++) {
		seen += st->lat_fine[i];
		if ((double)seen >= p / 100.0 * (double)total)
			return fine_upper(i);
	}

	memcpy(s.lat_hist, st->lat_hist, sizeof(s.lat_hist));
	return upager_stats_percentile(&s, p);
}

int upager_remote_wait_complete(struct upager_store *s, int timeout_ms)
{
	struct remote_store *rs;
	struct timespec ts;
	int ret = 0;

	if (!s || s->ops != &store_remote_ops)
		return -EINVAL;
	rs = to_remote(s);
	ts = abstime(now_ns() +
		     (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000ull);
	/*
	 * deliver() counts a page received once it is installed, and wakes
	 * rs->cond when the last install that settles the image ends.
	 */
	pthread_mutex_lock(&rs->lock);
	while (rs->region && (!settled(rs) || rs->installing) && !ret) {
		if (timeout_ms < 0)
			pthread_cond_wait(&rs->cond, &rs->lock);
		else if (pthread_cond_timedwait(&rs->cond, &rs->lock, &ts) ==
				 ETIMEDOUT &&
			 (!settled(rs) || rs->installing))
			ret = -ETIMEDOUT;
	}
	if (!rs->region)
		ret = -ENOTCONN;
	else if (!ret && !complete(rs))
		ret = rs->install_err ? rs->install_err : -EIO;
	pthread_mutex_unlock(&rs->lock);
	return ret;
}

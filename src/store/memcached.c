// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The memcached store: pages in a cluster of memcached servers, through
 * libmemcached (docs/MEMCACHED.md).  Keys are spread by ketama consistent
 * hashing; automatic ejection of failed servers stays off, so a key is
 * always asked of the one server that holds it, and a server that is down
 * fails its own pages instead of having them looked for on another (where
 * they are not).
 *
 * Absent and zero: memcached forgets keys (LRU eviction, a restart), and
 * a key it forgot must not read as a zero page.  So a push writes every
 * page, a zero page as an empty value, and a missing key is an error.
 * The item flags of every page carry the generation of its push (the meta
 * record names the current one): a reader never takes a page of another
 * push for its own, and a value that is neither 4 KiB nor empty is
 * refused.
 *
 * A memcached_st is one connection per server and is not thread-safe:
 * each fetch takes one of conns= of them (clones made at open) for its
 * duration.  A window of pages is asked for with one multi-get per mget=
 * keys; a key the multi-get did not return is asked for alone, and that
 * answer says why (not there, or the server's error).  Results are read
 * into one memcached_result_st per connection, whose buffer is reused:
 * no allocation per page.
 *
 * In-thread regions fetch from a SIGBUS handler, where libmemcached must
 * not run: fetch_signal() speaks the text protocol itself over
 * connections of its own (memcached_sig.c), asks each server for its
 * pages of a batch with one "get", and picks the server as the others
 * do, with libmemcached's memcached_generate_hash() (an MD5 and a search
 * of the ketama continuum: no lock, no allocation, no failure state with
 * ejection off).  Errors are told the same way, in lines built without
 * stdio.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <libmemcached/memcached.h>

#include "upager/memcached.h"
#include "base/util.h"
#include "engine/store_call.h"
#include "store/builtin.h"
#include "store/memcached_sig.h"

#define PAGE	    UPAGER_STORE_PAGE
#define NS_MAX	    200 /* a key is NS + "/" + 16 hex: under memcached's 250 */
#define KEY_MAX	    (NS_MAX + 18)
#define SERVERS_MAX 64
#define MGET_MAX    1024
#define CONNS_MAX   64
#define META_MAX    128 /* a meta record longer than this is not ours */
#define REPORTS_MAX 32	/* lines about missing or bad pages, then quiet */
#define META_FORMAT "upager-memcached 1 pages=%" PRIu64 " gen=%08" PRIx32 "\n"

struct server {
	char host[256];
	in_port_t port;
	atomic_bool told; /* its failure was told; reset when it answers */
	struct mcsig_server sig;
};

struct conn {
	memcached_st *mc;
	memcached_result_st res;
	bool busy;
	char keys[MGET_MAX][KEY_MAX];
	const char *kp[MGET_MAX];
	size_t kl[MGET_MAX];
	bool got[MGET_MAX];
};

struct mcs {
	struct upager_store s;
	char ns[NS_MAX + 1];
	uint32_t gen;
	unsigned int timeout_ms, mget, nconns, nservers;
	struct server servers[SERVERS_MAX];
	unsigned char at[SERVERS_MAX]; /* libmemcached's position -> ours */
	char ns_sp[NS_MAX + 3];	       /* " NS/" */
	memcached_st *proto;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct conn *conns;
	atomic_uint reports;
};

static struct mcs *to_mcs(struct upager_store *s)
{
	return s && s->ops == &store_memcached_ops ? (struct mcs *)s : NULL;
}

/* ---- the spec -------------------------------------------------------- */

/* A decimal in [lo, hi] spanning [s, s+len) exactly. */
static bool parse_uint(const char *s, size_t len, unsigned long lo,
		       unsigned long hi, unsigned long *out)
{
	unsigned long v = 0;

	if (!len || len > 9)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return v >= lo && v <= hi;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

/* "HOST:PORT" ([@s, @s+@len)) into server @i. */
static int parse_server(struct mcs *m, const char *s, size_t len, char *why,
			size_t whylen)
{
	const char *colon = memrchr(s, ':', len);
	struct server *sv = &m->servers[m->nservers];
	size_t hlen = colon ? (size_t)(colon - s) : 0;
	unsigned long port;

	if (m->nservers == SERVERS_MAX)
		return why_fmt(-EINVAL, why, whylen, "more than %d servers",
			       SERVERS_MAX);
	if (!colon || !hlen || hlen >= sizeof(sv->host))
		return why_fmt(-EINVAL, why, whylen,
			       "server %u \"%.*s\": want HOST:PORT",
			       m->nservers + 1, (int)len, s);
	for (size_t i = 0; i < hlen; i++)
		if (!host_char(s[i]))
			return why_fmt(
			    -EINVAL, why, whylen,
			    "server %u \"%.*s\": a host name or IPv4 "
			    "address has no '%c'",
			    m->nservers + 1, (int)len, s, s[i]);
	if (!parse_uint(colon + 1, len - hlen - 1, 1, 65535, &port))
		return why_fmt(
		    -EINVAL, why, whylen,
		    "server %u \"%.*s\": port \"%.*s\" is not a number "
		    "from 1 to 65535",
		    m->nservers + 1, (int)len, s, (int)(len - hlen - 1),
		    colon + 1);
	memcpy(sv->host, s, hlen);
	sv->host[hlen] = 0;
	sv->port = (in_port_t)port;
	atomic_init(&sv->told, false);
	m->nservers++;
	return 0;
}

static int parse_option(struct mcs *m, const char *s, size_t len, char *why,
			size_t whylen)
{
	static const struct {
		const char *name;
		unsigned long lo, hi;
		size_t off;
	} opts[] = {
	    {"timeout", 1, 600000, offsetof(struct mcs, timeout_ms)},
	    {"mget", 1, MGET_MAX, offsetof(struct mcs, mget)},
	    {"conns", 1, CONNS_MAX, offsetof(struct mcs, nconns)},
	};
	const char *eq = memchr(s, '=', len);
	size_t nlen = eq ? (size_t)(eq - s) : len;
	unsigned long v;

	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		if (strlen(opts[i].name) != nlen ||
		    memcmp(s, opts[i].name, nlen))
			continue;
		if (!eq || !parse_uint(eq + 1, len - nlen - 1, opts[i].lo,
				       opts[i].hi, &v))
			return why_fmt(-EINVAL, why, whylen,
				       "option \"%.*s\": want %s=N, N from %lu "
				       "to %lu",
				       (int)len, s, opts[i].name, opts[i].lo,
				       opts[i].hi);
		*(unsigned int *)((char *)m + opts[i].off) = (unsigned int)v;
		return 0;
	}
	return why_fmt(-EINVAL, why, whylen,
		       "unknown option \"%.*s\" (timeout=MS, mget=N, conns=N)",
		       (int)len, s);
}

/* "HOST:PORT[,HOST:PORT...]/NAMESPACE[,OPTION...]" */
static int parse_spec(struct mcs *m, const char *arg, char *why, size_t whylen)
{
	const char *slash = strchr(arg, '/'), *p, *end, *comma;
	size_t nslen;
	int ret;

	if (!slash)
		return why_fmt(
		    -EINVAL, why, whylen,
		    "want HOST:PORT[,HOST:PORT...]/NAMESPACE[,OPTION...]"
		    ": no '/' before a namespace");
	for (p = arg; p <= slash; p = comma + 1) {
		comma = memchr(p, ',', (size_t)(slash - p));
		if (!comma)
			comma = slash;
		ret = parse_server(m, p, (size_t)(comma - p), why, whylen);
		if (ret)
			return ret;
	}
	p = slash + 1;
	end = strchr(p, ',');
	nslen = end ? (size_t)(end - p) : strlen(p);
	if (!nslen || nslen > NS_MAX)
		return why_fmt(-EINVAL, why, whylen,
			       "namespace \"%.*s\": want 1 to %d characters",
			       (int)nslen, p, NS_MAX);
	for (size_t i = 0; i < nslen; i++)
		if (!host_char(p[i]))
			return why_fmt(
			    -EINVAL, why, whylen,
			    "namespace \"%.*s\": only letters, digits, "
			    "'.', '-' and '_', not '%c'",
			    (int)nslen, p, p[i]);
	memcpy(m->ns, p, nslen);
	m->ns[nslen] = 0;
	snprintf(m->ns_sp, sizeof(m->ns_sp), " %s/", m->ns);
	for (p = end; p; p = end) {
		p++;
		end = strchr(p, ',');
		ret = parse_option(m, p, end ? (size_t)(end - p) : strlen(p),
				   why, whylen);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- connections ----------------------------------------------------- */

static int behave(memcached_st *mc, unsigned int timeout_ms)
{
	static const memcached_behavior_t flags[] = {
	    MEMCACHED_BEHAVIOR_KETAMA, MEMCACHED_BEHAVIOR_TCP_NODELAY,
	    MEMCACHED_BEHAVIOR_NO_BLOCK};
	uint64_t us = (uint64_t)timeout_ms * 1000;
	memcached_return_t rc = MEMCACHED_SUCCESS;

	for (size_t i = 0; i < ARRAY_SIZE(flags) && rc == MEMCACHED_SUCCESS;
	     i++)
		rc = memcached_behavior_set(mc, flags[i], 1);
	/* Never move a dead server's keys to another: they are not there. */
	if (rc == MEMCACHED_SUCCESS)
		rc = memcached_behavior_set(
		    mc, MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, 0);
	if (rc == MEMCACHED_SUCCESS)
		rc = memcached_behavior_set(
		    mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, timeout_ms);
	if (rc == MEMCACHED_SUCCESS)
		rc = memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT,
					    timeout_ms);
	if (rc == MEMCACHED_SUCCESS)
		rc = memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT,
					    us);
	if (rc == MEMCACHED_SUCCESS)
		rc = memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT,
					    us);
	/* A server that failed is tried again a second later. */
	if (rc == MEMCACHED_SUCCESS)
		rc = memcached_behavior_set(
		    mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
	return rc == MEMCACHED_SUCCESS ? 0 : -EINVAL;
}

static void mcs_free(struct mcs *m)
{
	for (unsigned int i = 0; m->conns && i < m->nconns; i++) {
		if (!m->conns[i].mc)
			break;
		memcached_result_free(&m->conns[i].res);
		memcached_free(m->conns[i].mc);
	}
	free(m->conns);
	for (unsigned int i = 0; i < m->nservers; i++)
		mcsig_fini(&m->servers[i].sig);
	if (m->proto)
		memcached_free(m->proto);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}

static int connect_all(struct mcs *m, char *why, size_t whylen)
{
	memcached_return_t rc;

	m->proto = memcached_create(NULL);
	if (!m->proto)
		return why_fmt(-ENOMEM, why, whylen, "memcached_create");
	if (behave(m->proto, m->timeout_ms))
		return why_fmt(-EINVAL, why, whylen,
			       "libmemcached refused a setting");
	for (unsigned int i = 0; i < m->nservers; i++) {
		rc = memcached_server_add(m->proto, m->servers[i].host,
					  m->servers[i].port);
		if (rc != MEMCACHED_SUCCESS)
			return why_fmt(-EINVAL, why, whylen, "server %s:%u: %s",
				       m->servers[i].host, m->servers[i].port,
				       memcached_strerror(m->proto, rc));
		if (mcsig_init(&m->servers[i].sig, m->servers[i].host,
			       m->servers[i].port, m->nconns))
			return why_fmt(-ENOMEM, why, whylen, "connections");
	}
	/* Which of ours each of libmemcached's (it may sort them). */
	for (unsigned int p = 0; p < m->nservers; p++) {
		const memcached_instance_st *in =
		    memcached_server_instance_by_position(m->proto, p);
		unsigned int i = 0;

		while (in && i < m->nservers &&
		       (m->servers[i].port != memcached_server_port(in) ||
			strcmp(m->servers[i].host, memcached_server_name(in))))
			i++;
		if (!in || i == m->nservers)
			return why_fmt(-EINVAL, why, whylen,
				       "libmemcached lost server %u", p + 1);
		m->at[p] = (unsigned char)i;
	}
	m->conns = calloc(m->nconns, sizeof(*m->conns));
	if (!m->conns)
		return why_fmt(-ENOMEM, why, whylen, "connections");
	for (unsigned int i = 0; i < m->nconns; i++) {
		struct conn *c = &m->conns[i];

		c->mc = memcached_clone(NULL, m->proto);
		if (!c->mc)
			return why_fmt(-ENOMEM, why, whylen, "memcached_clone");
		if (!memcached_result_create(c->mc, &c->res)) {
			memcached_free(c->mc);
			c->mc = NULL;
			return why_fmt(-ENOMEM, why, whylen, "a result");
		}
		for (unsigned int k = 0; k < MGET_MAX; k++)
			c->kp[k] = c->keys[k];
	}
	return 0;
}

/* A free connection, waiting up to timeout=; NULL after it. */
static struct conn *conn_get(struct mcs *m)
{
	struct timespec until;
	struct conn *c = NULL;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += m->timeout_ms / 1000;
	until.tv_nsec += (long)(m->timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m->lock);
	for (;;) {
		for (unsigned int i = 0; i < m->nconns && !c; i++)
			if (!m->conns[i].busy)
				c = &m->conns[i];
		if (c || pthread_cond_timedwait(&m->cond, &m->lock, &until))
			break;
	}
	if (c)
		c->busy = true;
	pthread_mutex_unlock(&m->lock);
	return c;
}

static void conn_put(struct mcs *m, struct conn *c)
{
	pthread_mutex_lock(&m->lock);
	c->busy = false;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- errors ---------------------------------------------------------- */

/* The server of @key: ketama's choice, as libmemcached's. Signal-safe. */
static struct server *server_of(struct mcs *m, const char *key, size_t klen)
{
	uint32_t p = memcached_generate_hash(m->proto, key, klen);

	return p < m->nservers ? &m->servers[m->at[p]] : NULL;
}

static int errno_of(memcached_return_t rc)
{
	switch (rc) {
	case MEMCACHED_TIMEOUT:
		return -ETIMEDOUT;
	case MEMCACHED_CONNECTION_FAILURE:
	case MEMCACHED_CONNECTION_SOCKET_CREATE_FAILURE:
	case MEMCACHED_SERVER_MARKED_DEAD:
	case MEMCACHED_SERVER_TEMPORARILY_DISABLED:
	case MEMCACHED_HOST_LOOKUP_FAILURE:
	case MEMCACHED_UNKNOWN_READ_FAILURE:
	case MEMCACHED_READ_FAILURE:
	case MEMCACHED_WRITE_FAILURE:
	case MEMCACHED_ERRNO:
	case MEMCACHED_NO_SERVERS:
		return -EHOSTDOWN;
	default:
		return -EIO;
	}
}

/* The last @n hex digits of @v and a NUL into @out.  Signal-safe. */
static void hex_digits(char *out, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 4)
		out[i] = "0123456789abcdef"[v & 15];
	out[n] = 0;
}

/* Page @pg's key "NS/" and 16 hex digits into @key: its length. */
static size_t page_key(const struct mcs *m, char *key, uint64_t pg)
{
	size_t n = strlen(m->ns);

	memcpy(key, m->ns, n);
	key[n++] = '/';
	hex_digits(key + n, pg, 16);
	return n + 16;
}

/*
 * Tell on stderr why page @pg failed: a server's failure once until it
 * answers again, missing and bad pages up to REPORTS_MAX lines.
 * Signal-safe.
 */
static void report(struct mcs *m, uint64_t pg, int err, const char *what)
{
	bool page = err == -ENODATA || err == -EBADMSG;
	struct line l = {.n = 0};
	char key[KEY_MAX];
	struct server *sv = server_of(m, key, page_key(m, key, pg));
	unsigned int n = 0;

	if (!page) {
		if (sv && atomic_exchange(&sv->told, true))
			return;
	} else if ((n = atomic_fetch_add(&m->reports, 1)) >= REPORTS_MAX) {
		return;
	}
	line_str(&l, "upager: memcached:");
	line_str(&l, m->ns);
	line_str(&l, ": page ");
	line_u64(&l, pg);
	line_str(&l, " (key ");
	line_str(&l, key);
	line_str(&l, ") on ");
	line_str(&l, sv ? sv->host : "?");
	line_str(&l, ":");
	line_u64(&l, sv ? sv->port : 0);
	line_str(&l, ": ");
	line_str(&l, what);
	line_str(&l, page ? "; reads of it fail\n"
			  : "; reads of its pages fail until it answers\n");
	line_tell(&l);
	if (page && n == REPORTS_MAX - 1) {
		l.n = 0;
		line_str(&l, "upager: memcached:");
		line_str(&l, m->ns);
		line_str(&l, ": further missing or bad pages are not told\n");
		line_tell(&l);
	}
}

/* ---- pages ----------------------------------------------------------- */

/* The result in c->res as page @pg into @dst: 0 or -EBADMSG (told). */
static int take(struct mcs *m, struct conn *c, uint64_t pg, char *dst)
{
	size_t len = memcached_result_length(&c->res);
	uint32_t flags = memcached_result_flags(&c->res);
	char what[128];

	if (flags != m->gen) {
		snprintf(what, sizeof(what),
			 "from another push (generation %08" PRIx32
			 ", this one %08" PRIx32 ")",
			 flags, m->gen);
		report(m, pg, -EBADMSG, what);
		return -EBADMSG;
	}
	if (len == 0) {
		memset(dst, 0, PAGE);
	} else if (len == PAGE) {
		memcpy(dst, memcached_result_value(&c->res), PAGE);
	} else {
		snprintf(what, sizeof(what), "a value of %zu bytes, not a page",
			 len);
		report(m, pg, -EBADMSG, what);
		return -EBADMSG;
	}
	return 0;
}

/* One page by itself: its answer says why when it is not there. */
static int get_one(struct mcs *m, struct conn *c, uint64_t pg, char *dst)
{
	char *key = c->keys[0];
	size_t klen = page_key(m, key, pg);
	const char *kp[1] = {key};
	memcached_return_t rc;
	struct server *sv;
	char what[300];

	rc = memcached_mget(c->mc, kp, &klen, 1);
	if (rc == MEMCACHED_SUCCESS) {
		if (memcached_fetch_result(c->mc, &c->res, &rc)) {
			int ret = take(m, c, pg, dst);

			/* Drain the END so the connection is ready again. */
			while (memcached_fetch_result(c->mc, &c->res, &rc))
				;
			sv = server_of(m, key, klen);
			if (sv)
				atomic_store(&sv->told, false);
			return ret;
		}
		if (rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND) {
			report(m, pg, -ENODATA,
			       "not in the cache (evicted, flushed or never "
			       "pushed)");
			return -ENODATA;
		}
	}
	snprintf(what, sizeof(what), "server error: %s (%s)",
		 memcached_strerror(c->mc, rc),
		 memcached_last_error_message(c->mc));
	report(m, pg, errno_of(rc), what);
	return errno_of(rc);
}

/* The page number at the end of key @k (@kl bytes), or UINT64_MAX. */
static uint64_t key_page(const char *k, size_t kl)
{
	uint64_t v = 0;

	for (size_t i = kl - 16; i < kl; i++) {
		char ch = k[i];
		unsigned int d =
		    ch >= '0' && ch <= '9'   ? (unsigned int)(ch - '0')
		    : ch >= 'a' && ch <= 'f' ? (unsigned int)(ch - 'a' + 10)
					     : 16;

		if (d == 16)
			return UINT64_MAX;
		v = v << 4 | d;
	}
	return v;
}

/* Pages [@pg, @pg+@n) with one multi-get; n <= MGET_MAX. */
static int get_many(struct mcs *m, struct conn *c, uint64_t pg, size_t n,
		    char *dst)
{
	memcached_return_t rc;
	struct server *sv;
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		c->kl[i] = page_key(m, c->keys[i], pg + i);
		c->got[i] = false;
	}
	/* A server that fails leaves its keys out; the others still answer. */
	rc = memcached_mget(c->mc, c->kp, c->kl, n);
	if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_SOME_ERRORS) {
		while (memcached_fetch_result(c->mc, &c->res, &rc)) {
			const char *k = memcached_result_key_value(&c->res);
			size_t kl = memcached_result_key_length(&c->res);
			uint64_t at;

			/*
			 * Only a key of this window counts, and only once;
			 * after an error the rest is read and dropped, so
			 * the connection is ready for the next request.
			 */
			if (ret || kl != c->kl[0] ||
			    memcmp(k, c->keys[0], kl - 16))
				continue;
			at = key_page(k, kl);
			if (at < pg || at - pg >= n || c->got[at - pg])
				continue;
			ret = take(m, c, at, dst + (at - pg) * PAGE);
			c->got[at - pg] = !ret;
			sv = server_of(m, k, kl);
			if (sv)
				atomic_store_explicit(&sv->told, false,
						      memory_order_relaxed);
		}
	}
	for (size_t i = 0; i < n && !ret; i++)
		if (!c->got[i])
			ret = get_one(m, c, pg + i, dst + i * PAGE);
	return ret;
}

static int mcs_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		     size_t npages)
{
	struct mcs *m = to_mcs(s);
	struct conn *c = conn_get(m);
	char *out = dst;
	int ret = 0;

	if (!c) {
		fprintf(stderr,
			"upager: memcached:%s: no connection free within "
			"%u ms (conns=%u)\n",
			m->ns, m->timeout_ms, m->nconns);
		return -ETIMEDOUT;
	}
	for (size_t i = 0; i < npages && !ret; i += m->mget) {
		size_t n = npages - i < m->mget ? npages - i : m->mget;

		ret = n == 1 ? get_one(m, c, pgoff + i, out + i * PAGE)
			     : get_many(m, c, pgoff + i, n, out + i * PAGE);
	}
	conn_put(m, c);
	return ret;
}

/* ---- in-thread: the text protocol from a signal handler ------------- */

#define SIG_BATCH 32 /* pages asked for in one round */

/* A round of fetch_signal(): pages [pg, pg+n) into dst. */
struct round {
	struct mcs *m;
	uint64_t pg;
	size_t n;
	char *dst;
	uint64_t deadline; /* of the server being asked */
	char hex[SIG_BATCH][17];
	unsigned char owner[SIG_BATCH];
	bool got[SIG_BATCH];
};

/* "get NS/K1 NS/K2 ...\r\n" for server @s's pages of @rd into @iov. */
static int get_request(struct round *rd, unsigned int s,
		       struct iovec iov[2 * SIG_BATCH + 2])
{
	size_t nslen = strlen(rd->m->ns);
	int n = 0;

	iov[n++] = (struct iovec){.iov_base = "get", .iov_len = 3};
	for (size_t i = 0; i < rd->n; i++) {
		if (rd->owner[i] != s)
			continue;
		/* ns_sp is " NS/": the key's separator and prefix. */
		iov[n++] = (struct iovec){.iov_base = rd->m->ns_sp,
					  .iov_len = nslen + 2};
		iov[n++] =
		    (struct iovec){.iov_base = rd->hex[i], .iov_len = 16};
	}
	iov[n++] = (struct iovec){.iov_base = "\r\n", .iov_len = 2};
	return n;
}

/* A decimal of up to 19 digits at *@p, ending at a space or the end. */
static bool word_u64(const char **p, uint64_t *v)
{
	const char *s = *p;

	*v = 0;
	while (*s >= '0' && *s <= '9' && s - *p < 19)
		*v = *v * 10 + (uint64_t)(*s++ - '0');
	if (s == *p || (*s && *s != ' '))
		return false;
	*p = *s ? s + 1 : s;
	return true;
}

/*
 * One reply line "VALUE KEY FLAGS BYTES[ CAS]" of server @s, and its
 * data read into its page.  0; -EBADMSG (told) for a page of another
 * push or of the wrong size; -EPROTO for a key not asked of this server
 * in this round, or asked and already read; or -errno of the stream.
 * Every error but a page read leaves the stream out of step (the data
 * is not drained: the connection is closed instead).
 */
static int sig_value(struct round *rd, unsigned int s, struct mcsig_conn *c,
		     const char *line)
{
	struct mcs *m = rd->m;
	size_t nslen = strlen(m->ns), i;
	const char *k = line + 6, *p = strchr(k, ' ');
	uint64_t flags, bytes, at = UINT64_MAX;
	struct line what = {.n = 0};
	char hex[17];
	int ret;

	if (!p || !(p++, word_u64(&p, &flags)) || !word_u64(&p, &bytes))
		return -EPROTO;
	if ((size_t)(p - k) > nslen + 17 && !memcmp(k, m->ns, nslen) &&
	    k[nslen] == '/' && k[nslen + 17] == ' ')
		at = key_page(k, nslen + 17);
	if (at < rd->pg || at - rd->pg >= rd->n)
		return -EPROTO;
	i = at - rd->pg;
	if (rd->owner[i] != s || rd->got[i])
		return -EPROTO;
	if (flags == m->gen && (bytes == PAGE || bytes == 0)) {
		if ((ret = mcsig_data(c, rd->deadline, rd->dst + i * PAGE,
				      bytes)))
			return ret;
		if (!bytes)
			memset(rd->dst + i * PAGE, 0, PAGE);
		rd->got[i] = true;
		return 0;
	}
	if (flags != m->gen) {
		line_str(&what, "from another push (generation ");
		hex_digits(hex, flags, 8);
		line_str(&what, hex);
		line_str(&what, ", this one ");
		hex_digits(hex, m->gen, 8);
		line_str(&what, hex);
		line_str(&what, ")");
	} else {
		line_str(&what, "a value of ");
		line_u64(&what, bytes);
		line_str(&what, " bytes, not a page");
	}
	what.buf[what.n] = 0;
	report(m, at, -EBADMSG, what.buf);
	return -EBADMSG;
}

/* Server @s's reply to the round's get, up to its END.  0 or -errno. */
static int sig_reply(struct round *rd, unsigned int s, struct mcsig_conn *c,
		     bool *first_failed)
{
	bool first = true;
	char *line;
	int ret;

	for (;;) {
		if ((ret = mcsig_line(c, rd->deadline, &line))) {
			*first_failed = first;
			return ret;
		}
		first = false;
		if (!strcmp(line, "END"))
			return 0;
		if (!strcmp(line, "ERROR") ||
		    !strncmp(line, "SERVER_ERROR", 12) ||
		    !strncmp(line, "CLIENT_ERROR", 12))
			return -EBADE;
		if (strncmp(line, "VALUE ", 6))
			return -EPROTO;
		if ((ret = sig_value(rd, s, c, line)))
			return ret;
	}
}

/* Ask server @s for its pages of the round and read them.  0 or -errno. */
static int sig_server(struct round *rd, unsigned int s)
{
	struct mcs *m = rd->m;
	struct server *sv = &m->servers[s];
	struct iovec iov[2 * SIG_BATCH + 2];
	struct mcsig_conn *c;
	bool reused, first_failed = false;
	uint64_t pg = rd->pg;
	int ret;

	for (size_t i = 0; i < rd->n; i++)
		if (rd->owner[i] == s) {
			pg += i;
			break;
		}
	/* Each server its own timeout=, as each of libmemcached's requests. */
	rd->deadline = mcsig_deadline(m->timeout_ms);
	if (!(c = mcsig_claim(&sv->sig, rd->deadline)))
		goto no_conn;
	/*
	 * A connection kept from before may have been closed by a server
	 * that restarted: a reply that fails at once is asked again once
	 * on a new one.
	 */
	for (int tries = 0; tries < 2; tries++) {
		reused = c->fd >= 0;
		ret = mcsig_send(&sv->sig, c, iov, get_request(rd, s, iov),
				 rd->deadline);
		first_failed = ret != 0;
		if (!ret)
			ret = sig_reply(rd, s, c, &first_failed);
		if (ret != -EHOSTDOWN || !reused || !first_failed)
			break;
		mcsig_put(&sv->sig, c, false);
		if (!(c = mcsig_claim(&sv->sig, rd->deadline)))
			goto no_conn;
	}
	mcsig_put(&sv->sig, c, !ret);
	if (!ret || ret == -EBADMSG) {
		atomic_store_explicit(&sv->told, false, memory_order_relaxed);
		return ret;
	}
	report(m, pg, ret == -EBADE ? -EIO : ret,
	       ret == -ETIMEDOUT ? "server error: no answer within timeout="
	       : ret == -EHOSTDOWN
		   ? "server error: no connection (down, refused, reset or "
		     "not resolved)"
	       : ret == -EBADE ? "server error: it answered an error"
			       : "server error: a reply that is not "
				 "memcached's protocol");
	return ret == -ETIMEDOUT || ret == -EHOSTDOWN ? ret : -EIO;
no_conn:
	report(m, pg, -ETIMEDOUT,
	       "no connection of this store free within timeout= (conns= "
	       "are in use)");
	return -ETIMEDOUT;
}

static int sig_round(struct round *rd)
{
	struct mcs *m = rd->m;
	char key[KEY_MAX];
	int ret = 0;

	for (size_t i = 0; i < rd->n; i++) {
		size_t klen = page_key(m, key, rd->pg + i);
		struct server *sv = server_of(m, key, klen);

		memcpy(rd->hex[i], key + klen - 16, 17);
		rd->owner[i] = (unsigned char)(sv ? sv - m->servers : 0);
		rd->got[i] = false;
	}
	/* Server by server: one get each, a round trip each. */
	for (unsigned int s = 0; s < m->nservers && !ret; s++)
		for (size_t i = 0; i < rd->n; i++)
			if (rd->owner[i] == s) {
				ret = sig_server(rd, s);
				break;
			}
	for (size_t i = 0; i < rd->n && !ret; i++)
		if (!rd->got[i]) {
			ret = -ENODATA;
			report(m, rd->pg + i, ret,
			       "not in the cache (evicted, flushed or never "
			       "pushed)");
		}
	return ret;
}

static int mcs_fetch_signal(struct upager_store *s, uint64_t pgoff, void *dst,
			    size_t npages)
{
	struct round rd = {.m = to_mcs(s)};
	int ret = 0;

	for (size_t i = 0; i < npages && !ret; i += SIG_BATCH) {
		rd.pg = pgoff + i;
		rd.n = npages - i < SIG_BATCH ? npages - i : SIG_BATCH;
		rd.dst = (char *)dst + i * PAGE;
		ret = sig_round(&rd);
	}
	return ret;
}

static bool all_zero(const char *p)
{
	for (size_t i = 0; i < PAGE; i += 8)
		if (*(const uint64_t *)(p + i))
			return false;
	return true;
}

static int set_key(struct mcs *m, struct conn *c, const char *key, size_t klen,
		   const char *val, size_t vlen, uint32_t flags, uint64_t pg)
{
	memcached_return_t rc =
	    memcached_set(c->mc, key, klen, val, vlen, 0, flags);
	char what[300];

	if (rc == MEMCACHED_SUCCESS)
		return 0;
	snprintf(what, sizeof(what), "set failed: %s (%s)",
		 memcached_strerror(c->mc, rc),
		 memcached_last_error_message(c->mc));
	report(m, pg, errno_of(rc), what);
	return errno_of(rc);
}

static int mcs_writeback(struct upager_store *s, uint64_t pgoff,
			 const void *src, size_t npages)
{
	struct mcs *m = to_mcs(s);
	struct conn *c = conn_get(m);
	const char *p = src;
	int ret = 0;

	if (!c)
		return -ETIMEDOUT;
	for (size_t i = 0; i < npages && !ret; i++, p += PAGE) {
		size_t klen = page_key(m, c->keys[0], pgoff + i);

		/* A zero page is an empty value: there, unlike a lost key. */
		ret = set_key(m, c, c->keys[0], klen, p, all_zero(p) ? 0 : PAGE,
			      m->gen, pgoff + i);
	}
	conn_put(m, c);
	return ret;
}

/* ---- opening --------------------------------------------------------- */

static struct mcs *mcs_new(const char *arg, char *why, size_t whylen, int *err)
{
	struct mcs *m = calloc(1, sizeof(*m));
	pthread_condattr_t ca;

	if (why && whylen)
		*why = 0;
	if (!m) {
		*err = why_fmt(-ENOMEM, why, whylen, "no memory");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	m->s.ops = &store_memcached_ops;
	m->timeout_ms = 2000;
	m->mget = 256;
	m->nconns = 8;
	atomic_init(&m->reports, 0);
	*err = arg ? parse_spec(m, arg, why, whylen)
		   : why_fmt(-EINVAL, why, whylen, "no spec");
	if (!*err)
		*err = connect_all(m, why, whylen);
	if (*err) {
		mcs_free(m);
		return NULL;
	}
	return m;
}

static int read_meta(struct mcs *m, char *why, size_t whylen)
{
	struct conn *c = &m->conns[0];
	char key[KEY_MAX], val[META_MAX + 1];
	size_t klen = (size_t)snprintf(key, sizeof(key), "%s/meta", m->ns);
	const char *kp[1] = {key};
	memcached_return_t rc;
	struct server *sv = server_of(m, key, klen);
	uint64_t npages;
	uint32_t gen;
	size_t len;
	int used = -1;

	rc = memcached_mget(c->mc, kp, &klen, 1);
	if (rc == MEMCACHED_SUCCESS &&
	    !memcached_fetch_result(c->mc, &c->res, &rc)) {
		if (rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND)
			return why_fmt(-ENODATA, why, whylen,
				       "no key %s on %s:%u: the namespace was "
				       "never pushed, or was evicted",
				       key, sv ? sv->host : "?",
				       sv ? sv->port : 0);
	}
	if (rc != MEMCACHED_SUCCESS)
		return why_fmt(errno_of(rc), why, whylen,
			       "reading %s on %s:%u: %s", key,
			       sv ? sv->host : "?", sv ? sv->port : 0,
			       memcached_strerror(c->mc, rc));
	len = memcached_result_length(&c->res);
	if (len <= META_MAX) {
		memcpy(val, memcached_result_value(&c->res), len);
		val[len] = 0;
	}
	while (memcached_fetch_result(c->mc, &c->res, &rc))
		;
	if (len > META_MAX ||
	    sscanf(val,
		   "upager-memcached 1 pages=%" SCNu64 " gen=%8" SCNx32 "\n%n",
		   &npages, &gen, &used) != 2 ||
	    (size_t)used != len || !gen || !npages || npages > (1ull << 40))
		return why_fmt(-EBADMSG, why, whylen,
			       "%s on %s:%u is not a meta record this library "
			       "reads (%zu bytes)",
			       key, sv ? sv->host : "?", sv ? sv->port : 0,
			       len);
	m->s.npages = npages;
	m->gen = gen;
	return 0;
}

struct upager_store *upager_memcached_open(const char *arg, char *why,
					   size_t whylen, int *err)
{
	int e;
	struct mcs *m = mcs_new(arg, why, whylen, &e);

	if (m && (e = read_meta(m, why, whylen))) {
		mcs_free(m);
		m = NULL;
	}
	if (err)
		*err = e;
	return m ? &m->s : NULL;
}

struct upager_store *upager_memcached_create(const char *arg, uint64_t npages,
					     char *why, size_t whylen, int *err)
{
	int e;
	struct mcs *m = NULL;

	if (!npages || npages > (1ull << 40))
		e = why_fmt(-EINVAL, why, whylen,
			    "%" PRIu64 " pages: want 1 to 2^40", npages);
	else
		m = mcs_new(arg, why, whylen, &e);
	if (m) {
		m->s.npages = npages;
		/* Not 0: a page of generation 0 would be anyone's. */
		while (!m->gen)
			if (getrandom(&m->gen, sizeof(m->gen), 0) !=
			    sizeof(m->gen))
				m->gen = (uint32_t)time(NULL) ^
					 (uint32_t)(uintptr_t)m;
	}
	if (err)
		*err = e;
	return m ? &m->s : NULL;
}

int upager_memcached_commit(struct upager_store *s)
{
	struct mcs *m = to_mcs(s);
	char key[KEY_MAX], val[META_MAX];
	struct conn *c;
	size_t klen;
	int vlen, ret;

	if (!m)
		return -EINVAL;
	c = conn_get(m);
	if (!c)
		return -ETIMEDOUT;
	klen = (size_t)snprintf(key, sizeof(key), "%s/meta", m->ns);
	vlen = snprintf(val, sizeof(val), META_FORMAT, m->s.npages, m->gen);
	ret = set_key(m, c, key, klen, val, (size_t)vlen, 0, 0);
	conn_put(m, c);
	return ret;
}

static int mcs_open(const char *arg, struct upager_store **out)
{
	char why[512];
	int err;

	*out = upager_memcached_open(arg, why, sizeof(why), &err);
	if (err)
		fprintf(stderr, "upager: memcached:%s: %s\n", arg, why);
	return err;
}

static void mcs_close(struct upager_store *s)
{
	mcs_free(to_mcs(s));
}

const struct upager_store_ops store_memcached_ops = {
    .size = sizeof(struct upager_store_ops),
    .name = "memcached",
    .help = "memcached:HOST:PORT[,HOST:PORT...]/NAMESPACE[,timeout=MS,"
	    "mget=N,conns=N]  pages in memcached servers (docs/MEMCACHED.md)",
    .open = mcs_open,
    .fetch = mcs_fetch,
    .close = mcs_close,
    .writeback = mcs_writeback,
    .fetch_signal = mcs_fetch_signal,
};

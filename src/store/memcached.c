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

static struct server *server_of(struct mcs *m, struct conn *c, const char *key,
				size_t klen)
{
	memcached_return_t rc;
	const memcached_instance_st *in =
	    memcached_server_by_key(c->mc, key, klen, &rc);

	for (unsigned int i = 0; in && i < m->nservers; i++)
		if (m->servers[i].port == memcached_server_port(in) &&
		    !strcmp(m->servers[i].host, memcached_server_name(in)))
			return &m->servers[i];
	return NULL;
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

/*
 * Tell on stderr why page @pg failed: a server's failure once until it
 * answers again, missing and bad pages up to REPORTS_MAX lines.
 */
static void report(struct mcs *m, struct conn *c, uint64_t pg, int err,
		   const char *what)
{
	const char *key = c->keys[MGET_MAX - 1];
	size_t klen = (size_t)snprintf(c->keys[MGET_MAX - 1], KEY_MAX,
				       "%s/%016" PRIx64, m->ns, pg);
	struct server *sv = server_of(m, c, key, klen);
	unsigned int n = 0;

	if (err != -ENODATA && err != -EBADMSG) {
		if (sv && atomic_exchange(&sv->told, true))
			return;
	} else if ((n = atomic_fetch_add(&m->reports, 1)) >= REPORTS_MAX) {
		return;
	}
	fprintf(stderr,
		"upager: memcached:%s: page %" PRIu64 " (key %s) on %s:%u: "
		"%s; %s\n",
		m->ns, pg, key, sv ? sv->host : "?", sv ? sv->port : 0, what,
		err == -ENODATA || err == -EBADMSG
		    ? "reads of it fail"
		    : "reads of its pages fail until it answers");
	if ((err == -ENODATA || err == -EBADMSG) && n == REPORTS_MAX - 1)
		fprintf(stderr,
			"upager: memcached:%s: further missing or bad pages "
			"are not told\n",
			m->ns);
}

/* ---- pages ----------------------------------------------------------- */

static size_t page_key(const struct mcs *m, char *key, uint64_t pg)
{
	return (size_t)snprintf(key, KEY_MAX, "%s/%016" PRIx64, m->ns, pg);
}

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
		report(m, c, pg, -EBADMSG, what);
		return -EBADMSG;
	}
	if (len == 0) {
		memset(dst, 0, PAGE);
	} else if (len == PAGE) {
		memcpy(dst, memcached_result_value(&c->res), PAGE);
	} else {
		snprintf(what, sizeof(what), "a value of %zu bytes, not a page",
			 len);
		report(m, c, pg, -EBADMSG, what);
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
			sv = server_of(m, c, key, klen);
			if (sv)
				atomic_store(&sv->told, false);
			return ret;
		}
		if (rc == MEMCACHED_END || rc == MEMCACHED_NOTFOUND) {
			report(m, c, pg, -ENODATA,
			       "not in the cache (evicted, flushed or never "
			       "pushed)");
			return -ENODATA;
		}
	}
	snprintf(what, sizeof(what), "server error: %s (%s)",
		 memcached_strerror(c->mc, rc),
		 memcached_last_error_message(c->mc));
	report(m, c, pg, errno_of(rc), what);
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
			sv = server_of(m, c, k, kl);
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
	report(m, c, pg, errno_of(rc), what);
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
	struct server *sv = server_of(m, c, key, klen);
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
};

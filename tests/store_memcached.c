// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The memcached store against three memcached servers on loopback
 * (issue 11 item 3), without a region:
 *
 * spec     every malformed part of a spec is refused with -EINVAL and a
 *          line naming it: no namespace, a server without a port, a bad
 *          port, a bad host, a bad namespace, each option out of range,
 *          an unknown option; a namespace never pushed is -ENODATA naming
 *          the meta key and its server.
 * data     a push of data with zero pages reads back whole and in windows
 *          (mget=1 and the default multi-get), zero pages as zeros; the
 *          pages are spread over all three servers (ketama).
 * threads  four threads fetch pages and windows at once through one
 *          and through two connections (conns=1, conns=2): every page
 *          right, the connections shared, none crossed.
 * absent   a page whose key is deleted (what eviction does) fails with
 *          -ENODATA and a line naming the page, the key and its server,
 *          also inside a window; a zero page's key deleted likewise: never
 *          zeros.  A value of the wrong size, or of another push's
 *          generation, fails with -EBADMSG.
 * down     one server killed: the pages on the other two read right,
 *          alone and in windows; its pages fail with -EHOSTDOWN, told
 *          once with the server's address.
 * timeout  a server stopped (SIGSTOP) answers nothing: a page it holds
 *          fails with -ETIMEDOUT (timeout=300), told naming the server;
 *          continued, it serves the page again (after libmemcached's
 *          one-second retry wait).
 *
 * Each part but spec runs twice: through fetch() (libmemcached) and
 * through fetch_signal(), the async-signal-safe client in-thread regions
 * use (its own connections, the text protocol, libmemcached's ketama
 * choice of server), which must read and fail alike.
 */
#include <pthread.h>

#include "tmemcached.h"

#define NPAGES 300
#define NS     "t-store"

static char *data;
static char buf[NPAGES * TMC_PAGE];
static struct tmc t;
static const char *via = "fetch";

/* The store's fetch() or its fetch_signal(), as main() chose. */
static int fetch_sig(struct upager_store *s, uint64_t pg, void *dst, size_t n)
{
	return s->ops->fetch_signal(s, pg, dst, n);
}
static int (*fetch)(struct upager_store *s, uint64_t pg, void *dst,
		    size_t n) = upager_store_fetch;

static void check_spec(void)
{
	static const struct {
		const char *spec, *why;
	} bad[] = {
	    {"127.0.0.1:1", "no '/'"},
	    {"127.0.0.1/ns", "want HOST:PORT"},
	    {":11211/ns", "want HOST:PORT"},
	    {"127.0.0.1:0/ns", "port \"0\""},
	    {"127.0.0.1:65536/ns", "port \"65536\""},
	    {"127.0.0.1:x/ns", "port \"x\""},
	    {"127.0.0.1:1,,127.0.0.1:2/ns", "server 2"},
	    {"h st:1/ns", "no ' '"},
	    {"127.0.0.1:1/", "namespace \"\""},
	    {"127.0.0.1:1/a b", "namespace \"a b\""},
	    {"127.0.0.1:1/a:b", "not ':'"},
	    {"127.0.0.1:1/ns,timeout=0", "timeout=N, N from 1"},
	    {"127.0.0.1:1/ns,timeout=", "option \"timeout=\""},
	    {"127.0.0.1:1/ns,timeout=1s", "option \"timeout=1s\""},
	    {"127.0.0.1:1/ns,mget=0", "mget=N, N from 1 to 1024"},
	    {"127.0.0.1:1/ns,mget=1025", "mget=N"},
	    {"127.0.0.1:1/ns,conns=65", "conns=N, N from 1 to 64"},
	    {"127.0.0.1:1/ns,conns", "option \"conns\""},
	    {"127.0.0.1:1/ns,ketama", "unknown option \"ketama\""},
	    {"127.0.0.1:1/ns,", "unknown option \"\""},
	};
	char why[512], spec[512];
	int err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!upager_memcached_open(bad[i].spec, why, sizeof(why),
					     &err) &&
			  err == -EINVAL && strstr(why, bad[i].why),
		      "%s: err %d, \"%s\", want \"%s\"", bad[i].spec, err, why,
		      bad[i].why);
	}
	snprintf(spec, sizeof(spec), "%s/never-pushed", t.servers);
	CHECK(!upager_memcached_open(spec, why, sizeof(why), &err) &&
		  err == -ENODATA &&
		  strstr(why, "no key never-pushed/meta on 127.0.0.1:"),
	      "never pushed: err %d, %s", err, why);
	/* The same through the registry: the line goes to stderr. */
	snprintf(spec, sizeof(spec), "memcached:%s/ns,mget=x", t.servers);
	CHECK(!upager_store_open(spec, &err) && err == -EINVAL, "registry");
}

static struct upager_store *open_ns(const char *opts)
{
	char spec[512], why[512];
	struct upager_store *s;
	int err;

	snprintf(spec, sizeof(spec), "%s/%s%s", t.servers, NS, opts);
	s = upager_memcached_open(spec, why, sizeof(why), &err);
	CHECK(s, "open %s: %s", spec, why);
	CHECK(s->npages == NPAGES, "%llu pages", (unsigned long long)s->npages);
	CHECK(!(s->flags & UPAGER_STORE_CHEAP), "a network store is cheap");
	return s;
}

static void check_data(void)
{
	static const char *const opts[] = {"", ",mget=1", ",mget=7,conns=1"};
	unsigned int on[TMC_MAX] = {0};

	for (size_t o = 0; o < sizeof(opts) / sizeof(opts[0]); o++) {
		struct upager_store *s = open_ns(opts[o]);

		memset(buf, 0xaa, sizeof(buf));
		CHECK_RET(fetch(s, 0, buf, NPAGES), 0);
		CHECK(!memcmp(buf, data, NPAGES * TMC_PAGE), "all (%s, %s)",
		      opts[o], via);
		for (uint64_t pg = 0; pg < NPAGES; pg += 37) {
			size_t n = NPAGES - pg < 50 ? NPAGES - pg : 50;

			memset(buf, 0xaa, n * TMC_PAGE);
			CHECK_RET(fetch(s, pg, buf, n), 0);
			CHECK(!memcmp(buf, data + pg * TMC_PAGE, n * TMC_PAGE),
			      "pages %llu+%zu (%s, %s)", (unsigned long long)pg,
			      n, opts[o], via);
		}
		upager_store_close(s);
	}
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		int who = tmc_holder(&t, NS, pg);

		CHECK(who >= 0, "page %llu is on no server",
		      (unsigned long long)pg);
		on[who]++;
	}
	for (unsigned int i = 0; i < t.n; i++)
		CHECK(on[i] > NPAGES / 10, "server %u holds %u of %u pages", i,
		      on[i], NPAGES);
}

static void *fetcher(void *arg)
{
	struct upager_store *s = arg;
	static _Thread_local char mine[8 * TMC_PAGE];
	unsigned int seed = (unsigned int)(uintptr_t)&seed;

	for (int i = 0; i < 300; i++) {
		uint64_t pg = (uint64_t)rand_r(&seed) % NPAGES;
		size_t n = 1 + (size_t)rand_r(&seed) % 8;

		if (n > NPAGES - pg)
			n = NPAGES - pg;
		memset(mine, 0xaa, sizeof(mine));
		CHECK_RET(fetch(s, pg, mine, n), 0);
		CHECK(!memcmp(mine, data + pg * TMC_PAGE, n * TMC_PAGE),
		      "pages %llu+%zu in a thread (%s)", (unsigned long long)pg,
		      n, via);
	}
	return NULL;
}

static void check_threads(void)
{
	static const char *const opts[] = {",conns=1", ",conns=2"};

	for (size_t o = 0; o < 2; o++) {
		struct upager_store *s = open_ns(opts[o]);
		pthread_t th[4];

		for (int i = 0; i < 4; i++)
			CHECK(!pthread_create(&th[i], NULL, fetcher, s),
			      "pthread_create");
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		upager_store_close(s);
	}
}

/* Page @pg's key on the server that holds it, with @fn. */
static void on_key(uint64_t pg,
		   void (*fn)(memcached_st *mc, const char *key, size_t len))
{
	char key[256];
	int who = tmc_holder(&t, NS, pg);
	memcached_st *mc;

	CHECK(who >= 0, "page %llu on no server", (unsigned long long)pg);
	mc = tmc_client(&t, (unsigned int)who);
	tmc_key(key, sizeof(key), NS, pg);
	fn(mc, key, strlen(key));
	memcached_free(mc);
}

static void del(memcached_st *mc, const char *key, size_t len)
{
	CHECK(memcached_delete(mc, key, len, 0) == MEMCACHED_SUCCESS,
	      "delete %s", key);
}

static void short_value(memcached_st *mc, const char *key, size_t len)
{
	uint32_t flags;
	size_t vlen;
	memcached_return_t rc;
	char *v = memcached_get(mc, key, len, &vlen, &flags, &rc);

	CHECK(v, "get %s", key);
	CHECK(memcached_set(mc, key, len, v, 100, 0, flags) ==
		  MEMCACHED_SUCCESS,
	      "set %s", key);
	free(v);
}

static void other_gen(memcached_st *mc, const char *key, size_t len)
{
	CHECK(memcached_set(mc, key, len, data, TMC_PAGE, 0, 1) ==
		  MEMCACHED_SUCCESS,
	      "set %s", key);
}

static void check_absent(void)
{
	/* Page 5 is a zero page (main() below); 40 is data. */
	struct upager_store *s = open_ns("");
	char want[256], *out;

	on_key(40, del);
	on_key(5, del);
	on_key(77, short_value);
	on_key(78, other_gen);
	tmc_capture_begin();
	memset(buf, 0, TMC_PAGE);
	CHECK_RET(fetch(s, 40, buf, 1), -ENODATA);
	CHECK_RET(fetch(s, 30, buf, 20), -ENODATA);
	CHECK_RET(fetch(s, 5, buf, 1), -ENODATA);
	CHECK_RET(fetch(s, 0, buf, 10), -ENODATA);
	CHECK_RET(fetch(s, 77, buf, 1), -EBADMSG);
	CHECK_RET(fetch(s, 70, buf, 10), -EBADMSG);
	CHECK_RET(fetch(s, 78, buf, 1), -EBADMSG);
	out = tmc_capture_end();
	snprintf(want, sizeof(want), "page 40 (key %s/%016x) on 127.0.0.1:", NS,
		 40);
	CHECK(strstr(out, want) && strstr(out, "not in the cache"),
	      "stderr \"%s\", want \"%s...not in the cache\"", out, want);
	CHECK(strstr(out, "page 5 (key") &&
		  strstr(out, "a value of 100 bytes") &&
		  strstr(out, "from another push"),
	      "stderr \"%s\"", out);
	/* The rest still reads. */
	CHECK_RET(fetch(s, 41, buf, 36), 0);
	CHECK(!memcmp(buf, data + 41 * TMC_PAGE, 36 * TMC_PAGE), "41..76");
	upager_store_close(s);
}

static void check_down(void)
{
	struct upager_store *s = open_ns(",timeout=500");
	unsigned int dead = 1, ndead = 0, nlive = 0;
	int holder[NPAGES];
	char want[128], *out, *at;

	for (uint64_t pg = 0; pg < NPAGES; pg++)
		holder[pg] = tmc_holder(&t, NS, pg);
	/* Warm every connection, then kill a server under them. */
	CHECK_RET(fetch(s, 100, buf, 10), 0);
	tmc_kill(&t, dead);
	tmc_capture_begin();
	for (uint64_t pg = 100; pg < NPAGES; pg++) {
		int ret;

		memset(buf, 0, TMC_PAGE);
		ret = fetch(s, pg, buf, 1);
		if (holder[pg] == (int)dead) {
			CHECK(ret == -EHOSTDOWN || ret == -ETIMEDOUT,
			      "page %llu on the dead server: %d",
			      (unsigned long long)pg, ret);
			ndead++;
		} else {
			CHECK(ret == 0 &&
				  !memcmp(buf, data + pg * TMC_PAGE, TMC_PAGE),
			      "page %llu on a live server: %d",
			      (unsigned long long)pg, ret);
			nlive++;
		}
	}
	/* A window across them fails; one of live pages only reads. */
	CHECK(fetch(s, 100, buf, 100) < 0, "a window");
	for (uint64_t pg = 100; pg < NPAGES; pg++) {
		uint64_t n = 0;

		while (pg + n < NPAGES && holder[pg + n] != (int)dead && n < 20)
			n++;
		if (n < 2)
			continue;
		CHECK_RET(fetch(s, pg, buf, n), 0);
		CHECK(!memcmp(buf, data + pg * TMC_PAGE, n * TMC_PAGE),
		      "live window %llu+%llu", (unsigned long long)pg,
		      (unsigned long long)n);
		pg += n;
	}
	out = tmc_capture_end();
	CHECK(ndead > 10 && nlive > 10, "%u dead, %u live pages", ndead, nlive);
	snprintf(want, sizeof(want), "on 127.0.0.1:%u: server error",
		 t.port[dead]);
	at = strstr(out, want);
	CHECK(at, "stderr \"%s\", want \"%s\"", out, want);
	CHECK(!strstr(at + 1, want), "told more than once: \"%s\"", out);
	upager_store_close(s);
}

static void check_timeout(void)
{
	struct upager_store *s = open_ns(",timeout=300");
	unsigned int srv = 0;
	uint64_t pg = 0;
	char want[128], *out;
	int ret = -1;

	while (pg < NPAGES && tmc_holder(&t, NS, pg) != (int)srv)
		pg++;
	CHECK(pg < NPAGES, "no page on server %u", srv);
	CHECK_RET(fetch(s, pg, buf, 1), 0);
	tmc_pause(&t, srv);
	tmc_capture_begin();
	ret = fetch(s, pg, buf, 1);
	out = tmc_capture_end();
	kill(t.pid[srv], SIGCONT);
	CHECK(ret == -ETIMEDOUT, "a stopped server: %d", ret);
	snprintf(want, sizeof(want), "on 127.0.0.1:%u: server error",
		 t.port[srv]);
	CHECK(strstr(out, want), "stderr \"%s\", want \"%s\"", out, want);
	/* Not a timing: the deadline of the test bounds the wait. */
	tmc_capture_begin();
	for (int i = 0; i < 100 && ret; i++) {
		usleep(100000);
		ret = fetch(s, pg, buf, 1);
	}
	tmc_capture_end();
	CHECK(!ret && !memcmp(buf, data + pg * TMC_PAGE, TMC_PAGE),
	      "page %llu once its server is continued: %d",
	      (unsigned long long)pg, ret);
	upager_store_close(s);
}

int main(void)
{
	t_deadline(100, "store_memcached");
	data = malloc(NPAGES * TMC_PAGE);
	CHECK(data, "malloc");
	tmc_data(data, NPAGES);
	tmc_start(&t, 3);
	check_spec();
	for (int v = 0; v < 2; v++) {
		if (v) {
			/*
			 * New servers: none may keep a page of the first
			 * push, which tmc_holder() would find.
			 */
			for (unsigned int i = 0; i < t.n; i++) {
				if (t.pid[i] > 0)
					tmc_kill(&t, i);
				tmc_start_one(&t, i);
			}
			tmc_list(&t);
			fetch = fetch_sig;
			via = "fetch_signal";
		}
		tmc_push(&t, NS, "", data, NPAGES);
		check_data();
		check_threads();
		check_absent();
		check_timeout();
		check_down();
	}
	tmc_stop(&t);
	free(data);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Remote pages in one process: a page server exports a mem store (each
 * page t_fill()ed, every 7th page and a 64-page run all zero) on
 * 127.0.0.1, port 0; a region over "remote:127.0.0.1:PORT/img" (no
 * read-ahead) is touched at random pages by reader threads at once, which
 * takes the urgent path, while the rate-limited background stream pushes
 * the rest.  Once complete, every byte is checked; faults got urgent
 * answers, the stream installed pages, zero pages travelled as ZERO runs,
 * and no page was installed twice (pages_filled == npages).  The server
 * streamed no page twice, and every duplicate the client dropped is a page
 * the server sent twice (an urgent answer for a page the stream had sent:
 * it may still be in a socket buffer).  Malformed specs are -EINVAL, an
 * unknown export -ENOENT, a refused connection -ECONNREFUSED, a spec with
 * neither a key nor plaintext -ENOKEY; a server with neither does not
 * start (-ENOKEY).  Variants: tls (the peers share a key) and plain.
 *
 * Then faults the stream cannot race (ordered()): the exported store
 * holds the stream's first fetch at a gate while one thread touches pages
 * from the top of the image down, each answered urgently, which moves the
 * stream's cursor past it, away from the next; then the stream goes on.
 * Every page must travel exactly once: the server streams only the pages
 * it did not send urgently (streamed + urgent == pages), and the client
 * drops no duplicate.  A server that forgot an urgent page in its
 * sent-bitmap would stream it again.
 */
#include <pthread.h>
#include <unistd.h>

#include "tremote.h"
#include "tstore.h"

#define NPAGES 8192u /* 32 MiB */
#define READERS 4
#define TOUCHES 200

static bool page_is_zero(uint64_t i)
{
	return i % 7 == 3 || (i >= 1000 && i < 1064);
}

static void fill_image(uint8_t *img)
{
	for (uint64_t i = 0; i < NPAGES; i++)
		if (!page_is_zero(i))
			t_fill(img + i * PG, PG, i);
}

static bool page_ok(const uint8_t *p, uint64_t i)
{
	static const uint8_t zero[PG];

	return page_is_zero(i) ? !memcmp(p, zero, PG) : t_verify(p, PG, i);
}

struct reader {
	pthread_t t;
	const uint8_t *base;
	unsigned int seed;
	uint64_t bad;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	for (int k = 0; k < TOUCHES; k++) {
		uint64_t i = (uint64_t)rand_r(&rd->seed) % NPAGES;

		if (!page_ok(rd->base + i * PG, i))
			rd->bad++;
	}
	return NULL;
}

#define ONPAGES 2048u /* the image of ordered() */
#define OTOUCHED 16u  /* pages it touches, 97 apart from the top down */

static void ordered(void)
{
	struct tstore *t = tstore_open(ONPAGES);
	struct upager_server_stats ss = { .size = sizeof(ss) };
	struct upager_remote_stats rst = { .size = sizeof(rst) };
	struct upager_server *srv;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	char spec[160];
	uint8_t *p;

	atomic_store(&t->hold_at, 1);
	srv = t_serve(&t->s, 0, 0);
	h = t_handler();
	t_spec(spec, sizeof(spec), upager_server_port(srv), "/img");
	p = t_map_remote(h, spec, &s, &r);
	tstore_wait_held(t, "the stream's first fetch");
	for (uint64_t k = 0; k < OTOUCHED; k++) {
		uint64_t i = ONPAGES - 1 - 97 * k;

		CHECK(t_verify(p + i * PG, PG, i), "page %llu",
		      (unsigned long long)i);
	}
	tstore_release(t);
	CHECK_RET(upager_remote_wait_complete(s, 30000), 0);
	for (uint64_t i = 0; i < ONPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %llu differs",
		      (unsigned long long)i);

	CHECK_RET(upager_remote_stats(s, &rst), 0);
	CHECK_RET(upager_server_stats(srv, &ss), 0);
	t_print_counts("ordered", &ss, &rst);
	CHECK(ss.pages_urgent == OTOUCHED &&
		      ss.pages_streamed + ss.pages_urgent == ONPAGES,
	      "server: %llu streamed + %llu urgent, want %u + %u",
	      (unsigned long long)ss.pages_streamed,
	      (unsigned long long)ss.pages_urgent, ONPAGES - OTOUCHED,
	      OTOUCHED);
	CHECK(rst.duplicates == 0 && rst.pages_urgent == OTOUCHED &&
		      rst.pages_pushed == ONPAGES - OTOUCHED,
	      "client: %llu duplicates, %llu urgent, %llu pushed",
	      (unsigned long long)rst.duplicates,
	      (unsigned long long)rst.pages_urgent,
	      (unsigned long long)rst.pages_pushed);
	CHECK(rst.reconnects == 0 && rst.protocol_errors == 0 &&
		      ss.protocol_errors == 0 && atomic_load(&t_errors) == 0,
	      "reconnects/protocol errors/store errors");

	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_server_free(srv);
	upager_store_close(&t->s);
}

/*
 * The fine histogram counts what the power-of-two one counts, each
 * percentile lies in the power of two of the coarse one, and the round
 * trip (the shortest single-page urgent answer, or a HELLO's) is no longer
 * than the slowest answer.  Not the fastest: a fault the stream answers
 * may wait less than any round trip (15 us against a 40 us trip, seen in
 * CI), and it is counted in the histograms too.
 */
static void check_latency(const struct upager_remote_stats *rst)
{
	uint64_t coarse = 0, fine = 0, last = 0;
	struct upager_remote_stats c = *rst;

	for (int i = 0; i < UPAGER_LAT_BUCKETS; i++)
		coarse += rst->lat_hist[i];
	for (unsigned int i = 0; i < UPAGER_REMOTE_LAT_FINE; i++) {
		fine += rst->lat_fine[i];
		if (rst->lat_fine[i])
			last = i;
	}
	CHECK(fine == coarse && fine > 0, "fine %llu, coarse %llu",
	      (unsigned long long)fine, (unsigned long long)coarse);
	memset(c.lat_fine, 0, sizeof(c.lat_fine));
	for (double q = 1; q <= 100; q += 7) {
		double f = upager_remote_percentile(rst, q);
		double pow2 = upager_remote_percentile(&c, q);

		CHECK(f <= pow2 && (f > pow2 / 2 || pow2 <= 1),
		      "p%.0f: %.0f us, its power of two %.0f", q, f, pow2);
	}
	/* Bucket 8 + 8k + j starts at (8 + j) << k. */
	CHECK(rst->rtt_us > 0 &&
		      rst->rtt_us <= (last < 8 ? last + 1
					       : (9ull + (last - 8) % 8)
							 << (last - 8) / 8),
	      "round trip %llu us, slowest answer in bucket %llu",
	      (unsigned long long)rst->rtt_us, (unsigned long long)last);
}

static void bad_specs(unsigned int port)
{
	static const char *const bad[] = {
		"remote:", "remote:127.0.0.1", "remote:127.0.0.1:",
		"remote:127.0.0.1:99999", "remote:127.0.0.1:80x",
	};
	/* After "remote:127.0.0.1:PORT". */
	static const char *const bad_tail[] = {
		"/", "/a/b", "/img,deadline=-1", "/img,deadline=x",
		"/img,nosuch", "/img,",
	};
	char spec[160];
	int err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!upager_store_open(bad[i], &err) && err == -EINVAL,
		      "'%s': %s, want EINVAL", bad[i], strerror(-err));
	for (size_t i = 0; i < sizeof(bad_tail) / sizeof(bad_tail[0]); i++) {
		t_spec(spec, sizeof(spec), port, bad_tail[i]);
		CHECK(!upager_store_open(spec, &err) && err == -EINVAL,
		      "'%s': %s, want EINVAL", spec, strerror(-err));
	}
	t_spec(spec, sizeof(spec), port, "/nosuch");
	CHECK(!upager_store_open(spec, &err) && err == -ENOENT,
	      "unknown export: %s", strerror(-err));
	/* Port 1 on loopback: nobody listens there. */
	t_spec(spec, sizeof(spec), 1, "/img");
	CHECK(!upager_store_open(spec, &err) && err == -ECONNREFUSED,
	      "refused: %s", strerror(-err));
	/* Secure by default: no key and no plaintext is refused. */
	snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img", port);
	CHECK(!upager_store_open(spec, &err) && err == -ENOKEY,
	      "no key: %s, want ENOKEY", strerror(-err));
	snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img,psk=%s,plaintext",
		 port, t_psk());
	CHECK(!upager_store_open(spec, &err) && err == -EINVAL,
	      "a key and plaintext: %s, want EINVAL", strerror(-err));
}

int main(int argc, char **argv)
{
	struct upager_server_params sp = { .size = sizeof(sp),
					   .listen = "tcp:127.0.0.1:0",
					   /* the stream takes ~250 ms */
					   .stream_rate = 128u << 20 };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct upager_server_stats ss = { .size = sizeof(ss) };
	struct upager_remote_stats rst = { .size = sizeof(rst) };
	struct reader rd[READERS];
	struct upager_stats st;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_server *srv;
	struct upager_store *img, *s;
	char addr[128], spec[200];
	uint64_t t0, t1;
	uint8_t *p;
	int err;

	t_security(argc, argv);
	img = upager_store_mem_new((uint64_t)NPAGES * PG, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	fill_image(upager_store_mem_data(img));

	srv = upager_server_new(&sp, &err);
	CHECK(srv, "server: %s", strerror(-err));
	CHECK_RET(upager_server_export(srv, "img", img), 0);
	CHECK_RET(upager_server_export(srv, "img", img), -EEXIST);
	CHECK_RET(upager_server_export(srv, "a/b", img), -EINVAL);
	CHECK_RET(upager_server_export(srv, "", img), -EINVAL);
	CHECK_RET(upager_server_start(srv), -ENOKEY);
	t_secure(srv);
	CHECK_RET(upager_server_plaintext(srv), t_tls ? -EBUSY : 0);
	CHECK_RET(upager_server_tls_psk(srv, t_psk()), -EBUSY);
	CHECK_RET(upager_server_start(srv), 0);
	CHECK_RET(upager_server_start(srv), -EALREADY);
	CHECK(upager_server_address(srv, addr, sizeof(addr)) > 0, "address");
	CHECK(upager_server_port(srv) > 0, "port");
	printf("server at %s\n", addr);
	bad_specs(upager_server_port(srv));

	t_spec(spec, sizeof(spec), upager_server_port(srv), "/img");
	s = upager_store_open(spec, &err);
	CHECK(s, "open %s: %s", spec, strerror(-err));
	CHECK(s->npages == NPAGES, "npages %llu",
	      (unsigned long long)s->npages);
	CHECK_RET(upager_remote_wait_complete(s, 0), -ENOTCONN);
	CHECK_RET(upager_remote_stats(img, &rst), -EINVAL);

	h = t_handler();
	t0 = t_now_ns();
	p = upager_map(h, s, (size_t)NPAGES * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	/* One region per remote store. */
	CHECK(!upager_map(h, s, (size_t)NPAGES * PG, &mp, NULL, &err) &&
		      err == -EBUSY,
	      "second map: %s", strerror(-err));

	for (int i = 0; i < READERS; i++) {
		rd[i] = (struct reader){ .base = p, .seed = 17u * (unsigned)i + 1 };
		CHECK(!pthread_create(&rd[i].t, NULL, reader_main, &rd[i]),
		      "thread");
	}
	for (int i = 0; i < READERS; i++) {
		pthread_join(rd[i].t, NULL);
		CHECK(!rd[i].bad, "reader %d saw %llu bad pages", i,
		      (unsigned long long)rd[i].bad);
	}
	CHECK_RET(upager_remote_wait_complete(s, 30000), 0);
	t1 = t_now_ns();
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(page_ok(p + i * PG, i), "page %llu differs",
		      (unsigned long long)i);

	upager_region_stats(r, &st);
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	CHECK_RET(upager_server_stats(srv, &ss), 0);
	printf("remote: received %llu (pushed %llu, urgent %llu, zero %llu), "
	       "duplicates %llu, requests %llu, local %llu, reconnects %llu\n",
	       (unsigned long long)rst.pages_received,
	       (unsigned long long)rst.pages_pushed,
	       (unsigned long long)rst.pages_urgent,
	       (unsigned long long)rst.pages_zero,
	       (unsigned long long)rst.duplicates,
	       (unsigned long long)rst.requests,
	       (unsigned long long)rst.fetch_local,
	       (unsigned long long)rst.reconnects);
	printf("urgent latency p50 %.0f us, p99 %.0f us; %u MiB in %.0f ms\n",
	       upager_remote_percentile(&rst, 50),
	       upager_remote_percentile(&rst, 99), NPAGES * PG >> 20,
	       (double)(t1 - t0) / 1e6);
	printf("server: streamed %llu, urgent %llu, zero %llu, requests %llu, "
	       "clients %llu\n",
	       (unsigned long long)ss.pages_streamed,
	       (unsigned long long)ss.pages_urgent,
	       (unsigned long long)ss.pages_zero,
	       (unsigned long long)ss.requests, (unsigned long long)ss.clients);
	printf("region: faults %llu, pages filled %llu, eexist %llu\n",
	       (unsigned long long)st.faults,
	       (unsigned long long)st.pages_filled,
	       (unsigned long long)st.eexist);

	CHECK(rst.pages_received == NPAGES, "received %llu",
	      (unsigned long long)rst.pages_received);
	CHECK(rst.pages_urgent > 0, "no urgent pages");
	CHECK(rst.pages_pushed > 0, "no pushed pages");
	CHECK(rst.pages_pushed + rst.pages_urgent == NPAGES, "pushed+urgent");
	CHECK(rst.pages_zero > 0 && ss.pages_zero > 0, "no zero runs");
	CHECK(ss.requests > 0 && ss.pages_urgent > 0, "server saw no requests");
	check_latency(&rst);
	/*
	 * The stream sends a page at most once; only an urgent answer can
	 * repeat one, and the client drops what it already has.
	 */
	CHECK(ss.pages_streamed <= NPAGES &&
		      ss.pages_streamed + ss.pages_urgent >= NPAGES &&
		      rst.duplicates <=
			      ss.pages_streamed + ss.pages_urgent - NPAGES,
	      "server streamed %llu + urgent %llu for %u pages, client "
	      "dropped %llu",
	      (unsigned long long)ss.pages_streamed,
	      (unsigned long long)ss.pages_urgent, NPAGES,
	      (unsigned long long)rst.duplicates);
	CHECK(st.pages_filled == NPAGES, "pages filled %llu, want %u",
	      (unsigned long long)st.pages_filled, NPAGES);
	CHECK(st.store_errors == 0 && atomic_load(&t_errors) == 0,
	      "store errors");
	CHECK(rst.reconnects == 0 && rst.timeouts == 0 &&
		      rst.protocol_errors == 0,
	      "reconnects/timeouts/protocol errors");

	/* The connections are let go once complete. */
	for (int i = 0; i < 1000; i++) {
		CHECK_RET(upager_server_stats(srv, &ss), 0);
		if (!ss.clients_open)
			break;
		usleep(10 * 1000);
	}
	CHECK(ss.clients_open == 0, "%llu connections still open",
	      (unsigned long long)ss.clients_open);

	t_remote_done(r, h, s, srv);
	upager_store_close(img);
	ordered();
	return 0;
}

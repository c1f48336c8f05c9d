// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Postcopy recovery.  A 64 MiB image streams at 64 MiB/s; once a quarter
 * of it is streamed the server is stopped and freed, and 300 ms later a
 * new server starts on the same port with the same image.  Readers that
 * fault meanwhile wait (no zeros, no crash); the client reconnects, sends
 * its received-bitmap as HAVE, and the new server streams only the rest.
 * The region completes with every page right, at least one reconnect, and
 * no page installed twice (pages_filled == npages).
 *
 * Then the deadline: the server goes for good, and a fault on a page not
 * yet received waits "deadline=1" second, gets SIGBUS, on_error is told
 * -ETIMEDOUT and the region counts a store error.  "1 second" is judged
 * against a 1 s sleep of another thread over the same second, not
 * against a fixed bound a busy machine could miss.
 */
#include <inttypes.h>
#include <pthread.h>
#include <unistd.h>

#include "tremote.h"

#define NPAGES 16384u /* 64 MiB */

struct reader {
	pthread_t t;
	const uint8_t *base;
	uint64_t first, bad;
};

/* Touch pages far ahead of the stream, one every 16. */
static void *reader_main(void *arg)
{
	struct reader *rd = arg;

	for (uint64_t i = rd->first; i < NPAGES; i += 16 * 61)
		if (!t_verify(rd->base + i * PG, PG, i))
			rd->bad++;
	return NULL;
}

static void recovery(struct upager_store *img)
{
	struct upager_server_stats ss1 = { .size = sizeof(ss1) };
	struct upager_server_stats ss2 = { .size = sizeof(ss2) };
	struct upager_remote_stats rst = { .size = sizeof(rst) };
	struct upager_server *srv;
	struct upager_handler *h = t_handler();
	struct upager_region *r;
	struct upager_store *s;
	struct upager_stats st;
	struct reader rd[2];
	unsigned int port;
	char spec[200];
	uint8_t *p;

	srv = t_serve(img, 0, 64u << 20);
	port = upager_server_port(srv);
	t_spec(spec, sizeof(spec), port, "/img");
	p = t_map_remote(h, spec, &s, &r);

	/* A quarter streamed (the rate allows no more than 1/4 in 250 ms). */
	for (int ms = 0; ms < 10000; ms++) {
		CHECK_RET(upager_server_stats(srv, &ss1), 0);
		if (ss1.pages_streamed >= NPAGES / 4)
			break;
		usleep(1000);
	}
	CHECK_RET(upager_server_stats(srv, &ss1), 0);
	upager_server_free(srv);
	CHECK(ss1.pages_streamed > 0 && ss1.pages_streamed < NPAGES,
	      "streamed %llu of %u before the stop",
	      (unsigned long long)ss1.pages_streamed, NPAGES);
	/* These fault while no server is there: they wait. */
	for (int i = 0; i < 2; i++) {
		rd[i] = (struct reader){ .base = p, .first = NPAGES / 2 + 7 * (uint64_t)i };
		CHECK(!pthread_create(&rd[i].t, NULL, reader_main, &rd[i]),
		      "thread");
	}
	usleep(300 * 1000);
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	CHECK(rst.pages_received < NPAGES, "complete without a server");

	srv = t_serve(img, port, 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(rd[i].t, NULL);
		CHECK(!rd[i].bad, "reader %d saw %llu bad pages", i,
		      (unsigned long long)rd[i].bad);
	}
	CHECK_RET(upager_remote_wait_complete(s, 30000), 0);
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %llu differs",
		      (unsigned long long)i);

	upager_region_stats(r, &st);
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	CHECK_RET(upager_server_stats(srv, &ss2), 0);
	printf("streamed by the first server %" PRIu64 ", by the second %" PRIu64
	       " (+%" PRIu64 " urgent)\n",
	       ss1.pages_streamed, ss2.pages_streamed, ss2.pages_urgent);
	printf("reconnects %" PRIu64 ", duplicates %" PRIu64
	       ", pages filled %" PRIu64 "\n",
	       rst.reconnects, rst.duplicates, st.pages_filled);
	CHECK(rst.reconnects >= 1, "no reconnect");
	CHECK(st.pages_filled == NPAGES, "pages filled %llu, want %u",
	      (unsigned long long)st.pages_filled, NPAGES);
	/* The new server resumed from the client's bitmap. */
	CHECK(ss2.pages_streamed < NPAGES - ss1.pages_streamed / 2,
	      "second server streamed %llu", (unsigned long long)ss2.pages_streamed);
	CHECK(rst.timeouts == 0 && atomic_load(&t_errors) == 0 &&
		      atomic_load(&t_timeouts) == 0,
	      "errors");

	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_server_free(srv);
}

/* How long a 1 s sleep takes here and now. */
static void *sleep_1s(void *arg)
{
	uint64_t t0 = t_now_ns();

	usleep(1000 * 1000);
	*(uint64_t *)arg = (t_now_ns() - t0) / 1000000;
	return NULL;
}

static void deadline(struct upager_store *img)
{
	struct upager_remote_stats rst = { .size = sizeof(rst) };
	struct upager_server *srv;
	struct upager_handler *h = t_handler();
	struct upager_region *r;
	struct upager_store *s;
	struct upager_stats st;
	uint64_t t0, ms, slept = 0;
	pthread_t sleeper;
	char spec[200];
	uint8_t *p;

	srv = t_serve(img, 0, 1u << 20);
	t_spec(spec, sizeof(spec), upager_server_port(srv), "/img,deadline=1");
	p = t_map_remote(h, spec, &s, &r);
	/* The stream's first message (256 pages), then it waits 1 s. */
	for (int i = 0; i < 10000 && !upager_region_present(r, 0); i++)
		usleep(1000);
	upager_server_free(srv);

	CHECK(!upager_region_present(r, (size_t)(NPAGES - 1) * PG),
	      "the last page arrived at 1 MiB/s");
	CHECK(!pthread_create(&sleeper, NULL, sleep_1s, &slept), "thread");
	t0 = t_now_ns();
	CHECK(t_read_sigbus((char *)p + (size_t)(NPAGES - 1) * PG),
	      "no SIGBUS after the deadline");
	ms = (t_now_ns() - t0) / 1000000;
	pthread_join(sleeper, NULL);
	printf("SIGBUS after %llu ms; a 1 s sleep took %llu ms\n",
	       (unsigned long long)ms, (unsigned long long)slept);
	/* The wait itself, and a few wake-ups more than the sleep's. */
	CHECK(ms >= 1000 && ms < slept * 3 / 2,
	      "SIGBUS after %llu ms, deadline 1 s (a 1 s sleep took %llu ms)",
	      (unsigned long long)ms, (unsigned long long)slept);
	CHECK(atomic_load(&t_timeouts) == 1, "on_error saw %d timeouts",
	      atomic_load(&t_timeouts));
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	CHECK(rst.timeouts == 1, "remote timeouts %llu",
	      (unsigned long long)rst.timeouts);
	upager_region_stats(r, &st);
	CHECK(st.store_errors == 1, "store errors %llu, want 1",
	      (unsigned long long)st.store_errors);
	/* Pages that did arrive are still there. */
	CHECK(upager_region_present(r, 0) && t_verify(p, PG, 0), "page 0");

	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	struct upager_store *img;
	uint8_t *data;
	int err;

	t_security(argc, argv);
	img = upager_store_mem_new((uint64_t)NPAGES * PG, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	data = upager_store_mem_data(img);
	for (uint64_t i = 0; i < NPAGES; i++)
		t_fill(data + i * PG, PG, i);

	recovery(img);
	deadline(img);
	upager_store_close(img);
	return 0;
}

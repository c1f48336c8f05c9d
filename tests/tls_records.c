// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * How a PAGES message is cut into TLS records, and where its pages land
 * in the reader's buffer (docs/BENCHMARKS.md, "TLS on the page server").
 *
 * Records: a client and a server over a socketpair, TLS with one key;
 * the client sends PAGES messages of 1 to 256 pages and the test reads
 * the server's end raw, record headers and all.  A message's header and
 * a run under a record's size share one record; a longer run starts a
 * record of its own on its first page, and goes out in full records
 * (16 KiB of plaintext) and one for what is left.
 *
 * Landing: the same messages, read by net_read_msg() into a
 * net_msg_buf_new() buffer, TLS and plaintext: every page is right and
 * the data starts on a page boundary.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "net/net.h"
#include "net/tls.h"

#define PAGE   WIRE_PAGE
#define REC    16384
#define TAG    17 /* a TLS 1.3 record's content type and tag */
#define RECHDR 5

static const uint32_t counts[] = {1, 3, 4, 5, 64, 255, 256};
#define NCOUNTS (sizeof(counts) / sizeof(counts[0]))

static struct net_tls *tls[2]; /* client, server */
static uint8_t *pages;

struct side {
	struct net_conn *c;
	bool server;
	int ret;
	char why[TLS_WHY];
};

static void *handshake_main(void *arg)
{
	struct side *s = arg;

	s->ret = tls_handshake(tls[s->server], s->c, s->why);
	return NULL;
}

/* A connected pair, under TLS when @secure: [0] client, [1] server. */
static void pair(bool secure, struct net_conn *c[2])
{
	struct side sd[2];
	pthread_t t;
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
	      "socketpair: %s", strerror(errno));
	for (int i = 0; i < 2; i++) {
		c[i] = net_conn_new(sv[i]);
		CHECK(c[i], "net_conn_new");
		c[i]->timeout_ms = 10000;
		sd[i] = (struct side){.c = c[i], .server = i};
	}
	if (!secure)
		return;
	CHECK(pthread_create(&t, NULL, handshake_main, &sd[1]) == 0, "thread");
	handshake_main(&sd[0]);
	pthread_join(t, NULL);
	for (int i = 0; i < 2; i++)
		CHECK(sd[i].ret == 0, "handshake (%s): %s",
		      i ? "server" : "client", sd[i].why);
}

struct sender {
	struct net_conn *c;
	int ret;
};

/* Every message of counts[], pages from the start of the image. */
static void *send_main(void *arg)
{
	struct sender *s = arg;

	for (size_t i = 0; i < NCOUNTS && !s->ret; i++) {
		uint8_t hdr[WIRE_HDR + WIRE_PAGES_FIXED];
		struct iovec iov[2] = {
		    {hdr,
		     wire_pages_header(hdr, i, counts[i], 0, pages, false)},
		    {pages, (size_t)counts[i] * PAGE}};

		s->ret = net_sendv(s->c, iov, 2);
	}
	return NULL;
}

/* Exactly @len raw bytes from @fd (non-blocking after the handshake). */
static void raw_read(int fd, uint8_t *buf, size_t len)
{
	while (len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		CHECK(poll(&p, 1, 10000) == 1, "no data for 10 s");
		n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EAGAIN)
			continue;
		CHECK(n > 0, "recv: %zd (%s)", n, strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* The plaintext sizes of the records of a message of @n pages. */
static size_t want_records(uint32_t n, size_t *want)
{
	size_t k = 0, data = (size_t)n * PAGE;

	if (data < REC) {
		want[k++] = WIRE_HDR + WIRE_PAGES_FIXED + data;
		return k;
	}
	want[k++] = WIRE_HDR + WIRE_PAGES_FIXED;
	for (; data >= REC; data -= REC)
		want[k++] = REC;
	if (data)
		want[k++] = data;
	return k;
}

static void records(void)
{
	struct net_conn *c[2];
	struct sender s = {0};
	pthread_t t;

	pair(true, c);
	s.c = c[0];
	CHECK(pthread_create(&t, NULL, send_main, &s) == 0, "thread");
	for (size_t i = 0; i < NCOUNTS; i++) {
		size_t want[80], nwant = want_records(counts[i], want);

		for (size_t r = 0; r < nwant; r++) {
			static uint8_t rec[RECHDR + REC + 256];
			size_t len;

			raw_read(c[1]->fd, rec, RECHDR);
			CHECK(rec[0] == 0x17,
			      "%u pages: record %zu has type %#x", counts[i], r,
			      rec[0]);
			len = (size_t)rec[3] << 8 | rec[4];
			CHECK(len <= sizeof(rec) - RECHDR, "record of %zu",
			      len);
			raw_read(c[1]->fd, rec + RECHDR, len);
			CHECK(len == want[r] + TAG,
			      "%u pages: record %zu holds %zu bytes, want %zu",
			      counts[i], r, len - TAG, want[r]);
		}
	}
	pthread_join(t, NULL);
	CHECK(s.ret == 0, "send: %s", strerror(-s.ret));
	net_conn_free(c[0]);
	net_conn_free(c[1]);
}

static void landing(bool secure)
{
	uint8_t *buf = net_msg_buf_new();
	struct net_conn *c[2];
	struct sender s = {0};
	pthread_t t;

	CHECK(buf, "net_msg_buf_new");
	pair(secure, c);
	s.c = c[0];
	CHECK(pthread_create(&t, NULL, send_main, &s) == 0, "thread");
	for (size_t i = 0; i < NCOUNTS; i++) {
		const char *why = NULL;
		struct wire_msg m;
		long n = net_read_msg(c[1], buf, &why);

		CHECK(n > 0, "%s: read: %ld (%s)", secure ? "TLS" : "plain", n,
		      why ? why : strerror((int)-n));
		CHECK(wire_decode(buf, (size_t)n, 1024, &m, &why) == 0,
		      "decode: %s", why);
		CHECK(m.type == WIRE_PAGES && m.pages.count == counts[i],
		      "message %zu: type %d, %u pages", i, (int)m.type,
		      m.pages.count);
		CHECK((uintptr_t)m.pages.data % PAGE == 0,
		      "%s: %u pages land at %p, not on a page boundary",
		      secure ? "TLS" : "plain", counts[i],
		      (const void *)m.pages.data);
		CHECK(!memcmp(m.pages.data, pages, (size_t)counts[i] * PAGE),
		      "%s: %u pages read wrong", secure ? "TLS" : "plain",
		      counts[i]);
	}
	pthread_join(t, NULL);
	CHECK(s.ret == 0, "send: %s", strerror(-s.ret));
	net_conn_free(c[0]);
	net_conn_free(c[1]);
	net_msg_buf_free(buf);
}

int main(void)
{
	char path[] = "/tmp/upager-tls-records-XXXXXX", why[TLS_WHY];
	static const char key[] = "records:00112233445566778899aabbccddeeff"
				  "00112233445566778899aabbccddeeff\n";
	int fd = mkstemp(path), err;

	CHECK(fd >= 0 && fchmod(fd, 0600) == 0 &&
		  write(fd, key, strlen(key)) == (ssize_t)strlen(key),
	      "key file: %s", strerror(errno));
	close(fd);
	for (int i = 0; i < 2; i++) {
		tls[i] = tls_new(path, i, &err, why);
		CHECK(tls[i], "tls_new: %s", why);
	}
	unlink(path);
	pages = malloc(256 * PAGE);
	CHECK(pages, "malloc");
	for (size_t i = 0; i < 256 * PAGE; i++)
		pages[i] = (uint8_t)(i * 7 + i / PAGE);

	records();
	landing(true);
	landing(false);
	tls_free(tls[0]);
	tls_free(tls[1]);
	free(pages);
	return 0;
}

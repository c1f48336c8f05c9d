// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Peers that break the protocol, met by a live page server and a live
 * remote: store (the codec alone is tests/wire_codec.c).  Each message a
 * server must refuse gets ERROR with the errno docs/PROTOCOL.md gives,
 * then the connection is closed:
 *
 *   a header whose length is over the protocol's limit   EMSGSIZE
 *   a header with the wrong magic                        EPROTO
 *   a START before HELLO                                 EPROTO
 *   a HELLO for an export that does not exist            ENOENT
 *   an urgent HELLO for a session nobody has             ENOENT
 *
 * the first three counted as protocol errors, the last two not; and the
 * server goes on serving a client that keeps to the protocol.  A length
 * over the limit must be refused from the header alone: a reader that
 * waited for that many bytes would overrun its buffer, or wait forever.
 * The client side: a server that answers HELLO with such a header makes
 * upager_store_open() fail with -EMSGSIZE at once.  The peers speak
 * plaintext: what is tested is the protocol under TLS (tests/remote_tls
 * covers the handshake).
 */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tremote.h"
#include "net/net.h"

#define NPAGES 256u

static uint8_t buf[NET_MSG_MAX];

static struct net_conn *connect_to(unsigned int port)
{
	struct net_conn *c;
	struct net_addr a;
	char spec[64];
	int fd;

	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", port);
	CHECK_RET(net_parse(spec, strlen(spec), &a), 0);
	/* Sends and receives give up after 10 s: no answer is a failure. */
	fd = net_connect(&a, true, 10);
	CHECK(fd >= 0, "connect %s: %s", spec, strerror(-fd));
	c = net_conn_new(fd);
	CHECK(c, "out of memory");
	return c;
}

/* A message's length field, set to @len. */
static void set_length(uint8_t *msg, uint32_t len)
{
	for (int i = 0; i < 4; i++)
		msg[8 + i] = (uint8_t)(len >> (8 * i));
}

/* Send @len bytes of @msg on a new connection: the ERROR's code back. */
static uint32_t refused(unsigned int port, const uint8_t *msg, size_t len,
			const char *what)
{
	struct net_conn *c = connect_to(port);
	struct wire_msg m;
	const char *why;
	long n;

	CHECK_RET(net_send(c, msg, len), 0);
	n = net_read_msg(c, buf, &why);
	CHECK(n > 0, "%s: no answer (%s)", what,
	      n ? (why ? why : strerror((int)-n)) : "closed");
	CHECK(wire_decode(buf, (size_t)n, 0, &m, &why) == 0 &&
		      m.type == WIRE_ERROR,
	      "%s: the answer is %s, not ERROR", what,
	      why ? why : wire_type_name(m.type));
	fprintf(stderr, "%s: ERROR %u (%s)\n", what, m.error.code,
		m.error.text);
	/* A reset when the server closed with our bytes unread. */
	n = recv(c->fd, buf, 1, 0);
	CHECK(n == 0 || (n < 0 && errno == ECONNRESET),
	      "%s: the connection stays open (%s)", what,
	      n < 0 ? strerror(errno) : "data");
	net_conn_free(c);
	return m.error.code;
}

static void bad_clients(unsigned int port)
{
	uint8_t msg[WIRE_HDR + 64];
	size_t len;

	wire_request(msg, 0, 1);
	set_length(msg, WIRE_MAX_PAYLOAD + 1);
	CHECK(refused(port, msg, WIRE_HDR, "an oversized length") == EMSGSIZE,
	      "oversized: want EMSGSIZE");

	len = wire_hello(msg, 0, WIRE_ROLE_STREAM, 0, "img");
	msg[0] ^= 0xff;
	CHECK(refused(port, msg, len, "bad magic") == EPROTO,
	      "bad magic: want EPROTO");

	len = wire_start(msg, 0);
	CHECK(refused(port, msg, len, "START before HELLO") == EPROTO,
	      "START before HELLO: want EPROTO");

	len = wire_hello(msg, 0, WIRE_ROLE_STREAM, 0, "nosuch");
	CHECK(refused(port, msg, len, "unknown export") == ENOENT,
	      "unknown export: want ENOENT");

	len = wire_hello(msg, 0, WIRE_ROLE_URGENT, 0x5eed, "img");
	CHECK(refused(port, msg, len, "unknown session") == ENOENT,
	      "unknown session: want ENOENT");
}

/* A server that answers the first HELLO with an oversized header. */
struct liar {
	struct net_addr addr;
	int lfd;
	pthread_t t;
};

static void *liar_main(void *arg)
{
	struct liar *l = arg;
	uint8_t msg[WIRE_HDR + 12];
	const char *why;
	int fd = accept(l->lfd, NULL, NULL);
	struct net_conn *c;

	CHECK(fd >= 0, "accept: %s", strerror(errno));
	c = net_conn_new(fd);
	CHECK(c, "out of memory");
	net_timeout(c, 10);
	CHECK(net_read_msg(c, buf, &why) > 0, "no HELLO");
	wire_request(msg, 0, 1);
	set_length(msg, WIRE_MAX_PAYLOAD + 1);
	CHECK_RET(net_send(c, msg, WIRE_HDR), 0);
	/* Until the client gives up. */
	while (recv(fd, msg, sizeof(msg), 0) > 0)
		;
	net_conn_free(c);
	return NULL;
}

static void bad_server(void)
{
	struct liar l;
	char spec[64];
	uint64_t t0;
	int err = 0;

	CHECK_RET(net_parse("tcp:127.0.0.1:0", 15, &l.addr), 0);
	l.lfd = net_listen(&l.addr);
	CHECK(l.lfd >= 0, "listen: %s", strerror(-l.lfd));
	CHECK(!pthread_create(&l.t, NULL, liar_main, &l), "thread");
	snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img,plaintext",
		 net_port(&l.addr));
	t0 = t_now_ns();
	CHECK(!upager_store_open(spec, &err) && err == -EMSGSIZE,
	      "a server's oversized header: open gives %s, want EMSGSIZE",
	      strerror(-err));
	fprintf(stderr, "a lying server: open failed in %llu ms\n",
		(unsigned long long)((t_now_ns() - t0) / 1000000));
	pthread_join(l.t, NULL);
	close(l.lfd);
}

int main(void)
{
	struct upager_server_stats ss = { .size = sizeof(ss) };
	struct upager_remote_stats rst = { .size = sizeof(rst) };
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_server *srv;
	struct upager_store *img, *s;
	char spec[200];
	uint8_t *p;
	int err;

	t_tls = false;
	img = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	for (uint64_t i = 0; i < NPAGES; i++)
		t_fill((uint8_t *)upager_store_mem_data(img) + i * PG, PG, i);
	srv = t_serve(img, 0, 0);
	bad_clients(upager_server_port(srv));

	/* A client that keeps to the protocol is served all the same. */
	h = t_handler();
	t_spec(spec, sizeof(spec), upager_server_port(srv), "/img");
	p = t_map_remote(h, spec, &s, &r);
	CHECK(t_verify(p + 100 * PG, PG, 100), "page 100");
	CHECK_RET(upager_remote_wait_complete(s, 30000), 0);
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %llu",
		      (unsigned long long)i);
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	CHECK(rst.protocol_errors == 0, "the good client: %llu protocol errors",
	      (unsigned long long)rst.protocol_errors);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);

	CHECK_RET(upager_server_stats(srv, &ss), 0);
	CHECK(ss.protocol_errors == 3, "server: %llu protocol errors, want 3",
	      (unsigned long long)ss.protocol_errors);
	upager_server_free(srv);
	upager_store_close(img);

	bad_server();
	return 0;
}

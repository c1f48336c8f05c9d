// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Write the TLS fuzzer's seeds into the directory argv[1]: a real
 * ClientHello with the shared key (server side: byte 0 even), what a TLS
 * server answers it (client side: byte 0 odd), and a plaintext HELLO.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/tls.h"
#include "net/wire.h"
#include "tls_key.h"

static uint8_t hello[65536], answer[65536];
static size_t hello_len, answer_len;

static int put(const char *dir, const char *name, uint8_t side,
	       const uint8_t *buf, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fputc(side, f) == EOF || fwrite(buf, 1, len, f) != len ||
	    fclose(f)) {
		fprintf(stderr, "tls_seeds: %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

/* Read what arrives on @fd for 200 ms of quiet into @buf. */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;
	ssize_t n;

	while (got < cap && poll(&p, 1, 200) > 0 &&
	       (n = recv(fd, buf + got, cap - got, 0)) > 0)
		got += (size_t)n;
	return got;
}

static struct net_tls *client;

/* A client handshake on one end whose other end only records. */
static void *client_main(void *arg)
{
	struct net_conn *c = arg;
	char why[TLS_WHY];

	c->timeout_ms = 300;
	tls_handshake(client, c, why);
	return NULL;
}

int main(int argc, char **argv)
{
	uint8_t plain[WIRE_HDR + 300];
	struct net_tls *server;
	struct net_conn *c;
	char why[TLS_WHY];
	pthread_t t;
	int sv[2], sv2[2];

	if (argc != 2) {
		fprintf(stderr, "usage: tls_seeds DIR\n");
		return 2;
	}
	client = fuzz_tls(false);
	server = fuzz_tls(true);
	/* The ClientHello: a client whose server never answers. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
	    !(c = net_conn_new(sv[1])) ||
	    pthread_create(&t, NULL, client_main, c))
		return 1;
	hello_len = drain(sv[0], hello, sizeof(hello));
	pthread_join(t, NULL);
	net_conn_free(c);
	close(sv[0]);
	/* The server's answer to it. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv2) < 0 ||
	    send(sv2[0], hello, hello_len, 0) != (ssize_t)hello_len ||
	    !(c = net_conn_new(sv2[1])))
		return 1;
	c->timeout_ms = 300;
	tls_handshake(server, c, why);
	answer_len = drain(sv2[0], answer, sizeof(answer));
	net_conn_free(c);
	close(sv2[0]);
	tls_free(client);
	tls_free(server);
	if (!hello_len || !answer_len) {
		fprintf(stderr, "tls_seeds: no handshake to record\n");
		return 1;
	}
	return put(argv[1], "clienthello", 0, hello, hello_len) |
	       put(argv[1], "serverhello", 1, answer, answer_len) |
	       put(argv[1], "plaintext-hello", 0, plain,
		   wire_hello(plain, 0, WIRE_ROLE_STREAM, 0, "img"));
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer harness for the TLS handshake (`make fuzz`): the bytes a peer
 * sends before it is authenticated.  The first byte picks our side: even,
 * we are the server and the rest is what a client sent (a ClientHello, a
 * plaintext HELLO, garbage); odd, we are a client and the rest is the
 * server's answer to our ClientHello.  Whatever the bytes, tls_handshake()
 * returns one of the errors tls.h names, with a reason, and neither
 * crashes nor leaks (ASan) nor waits (the peer's end is closed).  With
 * tls_seeds' corpus (a ClientHello with a binder that verifies) the
 * fuzzer starts past the PSK check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/tls.h"
#include "tls_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct net_tls *side[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_conn *c;
	char why[TLS_WHY];
	int sv[2], ret;

	if (!side[0]) {
		side[0] = fuzz_tls(true);
		side[1] = fuzz_tls(false);
	}
	if (!size || size > 60000)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* Within the socket's buffer: the send never blocks. */
	if (size > 1 && send(sv[0], data + 1, size - 1, MSG_DONTWAIT) < 0)
		abort();
	shutdown(sv[0], SHUT_WR);
	c = net_conn_new(sv[1]);
	if (!c)
		abort();
	c->timeout_ms = 0;
	ret = tls_handshake(side[data[0] & 1], c, why);
	if (ret != -ENOKEY && ret != -EKEYREJECTED && ret != -EPROTONOSUPPORT &&
	    ret != -ETIMEDOUT && ret != -ECONNRESET && ret != -EPROTO) {
		fprintf(stderr, "tls_fuzz: handshake gave %d (%s)\n", ret, why);
		abort();
	}
	if (!*why) {
		fprintf(stderr, "tls_fuzz: refused with %d and no reason\n",
			ret);
		abort();
	}
	net_conn_free(c);
	close(sv[0]);
	return 0;
}

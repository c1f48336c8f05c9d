/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Sockets for the page server and the remote: store: addresses in the
 * "tcp:HOST:PORT" / "unix:PATH" form, and whole-message I/O on top of the
 * wire codec (src/wire.h).  Not installed.
 */
#ifndef UPAGER_NET_H
#define UPAGER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "net/wire.h"

/* Every message a peer can send fits in this. */
#define NET_MSG_MAX (WIRE_HDR + WIRE_MAX_PAYLOAD)

struct net_addr {
	struct sockaddr_storage sa;
	socklen_t len;
};

struct tls_conn;

/*
 * A connected socket, in plaintext or under TLS (src/net/tls.h, set up by
 * tls_handshake()).  Its messages go through the calls below either way.
 */
struct net_conn {
	int fd;
	int timeout_ms;	      /* TLS waits in poll(): -1 none */
	struct tls_conn *tls; /* NULL: plaintext */
};

/* A plaintext connection over @fd, or NULL (no memory; @fd stays open). */
struct net_conn *net_conn_new(int fd);
/* Close @c's socket and free it (NULL: nothing). */
void net_conn_free(struct net_conn *c);

/*
 * Parse and resolve "tcp:HOST:PORT" or "unix:PATH" (@len bytes of @spec,
 * which need not be NUL-terminated there).  HOST "" or "*" is every
 * interface; "[...]" brackets an IPv6 address.  0, -EINVAL (malformed),
 * -ENOENT (no such host), -ENAMETOOLONG (a unix path too long).
 */
int net_parse(const char *spec, size_t len, struct net_addr *a);
/* "tcp:ADDR:PORT" or "unix:PATH" into @buf; its length or -ENOSPC. */
int net_format(const struct net_addr *a, char *buf, size_t len);
/* TCP port of @a, 0 for a unix address. */
unsigned int net_port(const struct net_addr *a);

/*
 * A listening socket bound to @a; a TCP port 0 in @a is replaced by the
 * port the kernel chose.  A unix socket file left by a dead server is
 * replaced.  The fd (close-on-exec) or -errno.
 */
int net_listen(struct net_addr *a);
/*
 * A connected socket (close-on-exec), TCP_NODELAY when @nodelay, or
 * -errno.  With @timeout_s, connect() gives up after that many seconds
 * (-EINPROGRESS), and so do later sends and receives until
 * net_timeout(fd, 0).
 */
int net_connect(const struct net_addr *a, bool nodelay, int timeout_s);
/* Send and receive timeout of @c in seconds, 0 for none. */
void net_timeout(struct net_conn *c, int seconds);
/*
 * TCP_NODELAY on @fd (no-op on a unix socket): small messages go out at
 * once instead of waiting for the ACK of the previous one, which a
 * delayed ACK can hold for 40 ms.  For the urgent channel.
 */
void net_nodelay(int fd);

/*
 * Pace @fd's TCP segments at @rate bytes/s of payload (SO_MAX_PACING_RATE;
 * TCP paces by itself under any qdisc since Linux 4.13, fq does it on
 * older kernels): a write goes out spread at that rate instead of in one
 * burst that fills the bottleneck's queue.  No-op on a unix socket.
 */
void net_pace(int fd, uint64_t rate);

/* Send all of @iov as one message (MSG_NOSIGNAL: a closed peer is
 * -EPIPE, no signal); the iov array is consumed.  0 or -errno. */
int net_sendv(struct net_conn *c, struct iovec *iov, int n);
int net_send(struct net_conn *c, const void *buf, size_t len);

/*
 * A buffer for net_read_msg() whose PAGES data starts on a page boundary,
 * or NULL (no memory); free it with net_msg_buf_free() (NULL: nothing).
 * The copies into it (out of OpenSSL's read buffer a record at a time,
 * tls.c cutting records on page boundaries; recv(2)'s) and out of it
 * (UFFDIO_COPY's) then start on a cache line: glibc's memcpy of 16 KiB
 * into a destination 48 bytes past one ran at half the speed here.
 */
uint8_t *net_msg_buf_new(void);
void net_msg_buf_free(uint8_t *buf);

/*
 * Read one message into @buf (NET_MSG_MAX bytes, from net_msg_buf_new()
 * where it may carry PAGES): exactly the header,
 * then exactly the payload length it gives, which wire_header() checked
 * against the protocol's limit.  Returns the message's total length for
 * wire_decode(); 0 on an orderly close before a header; -ECONNRESET on a
 * close inside a message; -errno of recv(2); or the header's decoding
 * error (-EPROTO, -EMSGSIZE) with *@why set.
 */
long net_read_msg(struct net_conn *c, uint8_t *buf, const char **why);

/* Send ERROR(@code, @text), best effort (the connection is closing). */
void net_send_error(struct net_conn *c, int code, const char *text);

/* CLOCK_MONOTONIC in ns (src/stats.c). */
uint64_t now_ns(void);

#endif

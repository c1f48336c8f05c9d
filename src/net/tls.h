/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TLS 1.3 with an external pre-shared key for the page server and the
 * remote: store (docs/PROTOCOL.md, "Security"), through OpenSSL.  The
 * connection it wraps is a struct net_conn (net.h): net.c's message I/O
 * calls tls_read() and tls_sendv() when the connection has TLS.  Not
 * installed.
 */
#ifndef UPAGER_NET_TLS_H
#define UPAGER_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct net_conn;
struct net_tls;

/* Room for a reason a key file or a handshake was refused. */
#define TLS_WHY 256

/*
 * Credentials from the key file at @path: one line "IDENTITY:HEXKEY"
 * (IDENTITY 1 to 64 of [A-Za-z0-9._@-], HEXKEY 32 to 128 hex digits:
 * 16 to 64 bytes), a regular file owned by the caller's effective user
 * (or root) that neither group nor others may access.  @server: for
 * accepting, else for connecting.  NULL with *@err -ENOENT, -EACCES (the
 * mode or owner), -EINVAL (the format), -EIO (OpenSSL) or -ENOMEM, and
 * @why (TLS_WHY bytes) saying what was wrong.  Any thread.
 */
struct net_tls *tls_new(const char *path, bool server, int *err, char *why);
void tls_free(struct net_tls *t);

/*
 * The TLS handshake on @c (connected, no TLS yet, nothing read from it):
 * as the server when @t is, else as the client, within c->timeout_ms.
 * The socket becomes non-blocking (tls_read() and tls_sendv() wait in
 * poll()).  0, or -ENOKEY (a server: the client spoke the protocol in
 * plaintext; it was sent an ERROR saying so), -EKEYREJECTED (wrong key
 * or identity, either side), -EPROTONOSUPPORT (a client: the server
 * speaks plaintext), -ETIMEDOUT, -ECONNRESET, -EPROTO (anything else),
 * with @why (TLS_WHY bytes) set.
 */
int tls_handshake(struct net_tls *t, struct net_conn *c, char *why);

/* Free @c's TLS state (net_conn_free() calls it). */
void tls_conn_free(struct net_conn *c);

/*
 * Up to @len bytes of application data: the count, 0 on a close, or
 * -errno (-EAGAIN: c->timeout_ms passed; -EBADMSG: a record failed its
 * authentication).  Another thread may send on @c meanwhile.
 */
long tls_read(struct net_conn *c, void *buf, size_t len);

/*
 * Send all of @iov as one message: small pieces are gathered into full
 * records, large ones are encrypted where they lie.  One sender at a time
 * (serialized here), concurrent with a reader.  0 or -errno.  With
 * @dontwait, give up rather than wait for room (a best-effort ERROR).
 */
int tls_sendv(struct net_conn *c, const struct iovec *iov, int n,
	      bool dontwait);

#endif

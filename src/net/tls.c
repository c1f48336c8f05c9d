// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * TLS 1.3 with an external PSK (RFC 8446 §2.2, psk_dhe_ke: the key
 * authenticates, an ECDHE exchange gives each connection keys of its
 * own, so a key stolen later does not open recorded traffic).  See
 * src/net/tls.h and docs/PROTOCOL.md, "Security".
 *
 * Threads.  An SSL object takes one call at a time, but the remote:
 * store reads a connection in its receiver thread while fetches send
 * REQUESTs on it.  So the socket is non-blocking, every SSL call is made
 * under the connection's lock and returns at once, and the waits for the
 * socket happen in poll() with the lock dropped: a reader waiting for
 * data never holds up a sender.  Senders are serialized by a second lock
 * held for a whole message, so messages never interleave.
 *
 * I/O goes through a BIO of our own rather than OpenSSL's socket BIO,
 * which writes with write(2): a peer that went away would raise SIGPIPE
 * in the application.  Ours sends with MSG_NOSIGNAL, and remembers the
 * first bytes the peer sent, which tell a plaintext peer from a TLS one.
 * It also gathers records: OpenSSL writes one 16 KiB record a call, and
 * a send(2) each would cost a TCP segment each (four times plaintext's
 * on loopback, where a segment is 64 KiB) and their syscalls; the BIO
 * keeps up to WRITE_BUF bytes, sent when full and at the end of each
 * message (flush()), never waiting under the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "upager/remote.h"
#include "net/net.h"
#include "net/tls.h"

#define REC	      16384 /* a full TLS record's plaintext */
#define IDENT_MAX     64
#define KEY_MIN	      16
#define KEY_MAX	      64
#define KEYFILE_MAX   512
#define TLS_HANDSHAKE 0x16 /* the content type of a ClientHello's record */
#define READ_BUF      (256u << 10)
#define WRITE_BUF     (256u << 10)

struct net_tls {
	SSL_CTX *ctx;
	bool server;
	size_t idlen, keylen;
	char ident[IDENT_MAX + 1];
	uint8_t key[KEY_MAX];
};

struct tls_conn {
	SSL *ssl;
	pthread_mutex_t lock;  /* the SSL object */
	pthread_mutex_t wlock; /* one message at a time */
	int err;	       /* errno of the BIO's last failed send/recv */
	size_t nfirst;
	uint8_t first[4]; /* the first bytes the peer sent */
	size_t staged;
	uint8_t *stage;	   /* REC bytes: small pieces gathered */
	bool gather;	   /* records go to wbuf (after the handshake) */
	size_t woff, wlen; /* wbuf[woff, wlen) is still to send */
	uint8_t *wbuf;	   /* WRITE_BUF bytes of records */
	char why[TLS_WHY]; /* a refused PSK identity, from the callback */
};

/* ---- the key file ------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse "IDENTITY:HEXKEY\n" of @len bytes at @s into @t. */
static int parse_key(struct net_tls *t, const char *s, size_t len, char *why)
{
	const char *colon = memchr(s, ':', len), *hex;
	size_t hlen;

	if (len && s[len - 1] == '\n')
		len--;
	if (!colon || colon == s || (size_t)(colon - s) > IDENT_MAX) {
		snprintf(why, TLS_WHY,
			 "not IDENTITY:HEXKEY with an identity "
			 "of 1 to %d bytes",
			 IDENT_MAX);
		return -EINVAL;
	}
	t->idlen = (size_t)(colon - s);
	for (size_t i = 0; i < t->idlen; i++) {
		if (!strchr(
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789._@-",
			s[i]) ||
		    !s[i]) {
			snprintf(why, TLS_WHY,
				 "the identity may hold only "
				 "letters, digits and . _ @ -");
			return -EINVAL;
		}
	}
	memcpy(t->ident, s, t->idlen);
	hex = colon + 1;
	hlen = len - (size_t)(hex - s);
	if (hlen % 2 || hlen < 2 * KEY_MIN || hlen > 2 * KEY_MAX) {
		snprintf(why, TLS_WHY,
			 "the key must be %d to %d hex digits, an "
			 "even count (e.g. openssl rand -hex 32)",
			 2 * KEY_MIN, 2 * KEY_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < hlen; i += 2) {
		int hi = hexval(hex[i]), lo = hexval(hex[i + 1]);

		if (hi < 0 || lo < 0) {
			snprintf(why, TLS_WHY,
				 "the key has a character that "
				 "is not a hex digit");
			return -EINVAL;
		}
		t->key[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	t->keylen = hlen / 2;
	return 0;
}

/*
 * Read the key file: ssh's rule for a private key, since it is one.  The
 * checks are made on the open file, so a swap between check and read
 * cannot pass another file off.
 */
static int load_key(struct net_tls *t, const char *path, char *why)
{
	char buf[KEYFILE_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, TLS_WHY, "%s", strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(why, TLS_WHY, "%s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(why, TLS_WHY, "not a regular file");
	} else if (st.st_uid != geteuid() && st.st_uid != 0) {
		ret = -EACCES;
		snprintf(why, TLS_WHY,
			 "owned by uid %u, not by this user "
			 "(%u) or root",
			 (unsigned int)st.st_uid, (unsigned int)geteuid());
	} else if (st.st_mode & 077) {
		ret = -EACCES;
		snprintf(why, TLS_WHY,
			 "mode %04o lets others read or change "
			 "the key: chmod 600 it",
			 (unsigned int)st.st_mode & 07777);
	} else if (st.st_size > KEYFILE_MAX) {
		ret = -EINVAL;
		snprintf(why, TLS_WHY, "larger than %d bytes", KEYFILE_MAX);
	}
	if (!ret) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			ret = -errno;
			snprintf(why, TLS_WHY, "%s", strerror(errno));
		} else {
			ret = parse_key(t, buf, (size_t)n, why);
		}
		OPENSSL_cleanse(buf, sizeof(buf));
	}
	close(fd);
	return ret;
}

/* ---- the PSK ------------------------------------------------------------ */

static const unsigned char aes128gcm_sha256[2] = {0x13, 0x01};

/* A session that carries the key, as TLS 1.3 external PSKs are given. */
static SSL_SESSION *psk_session(SSL *ssl, const struct net_tls *t)
{
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm_sha256);
	SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;

	if (s && (!SSL_SESSION_set1_master_key(s, t->key, t->keylen) ||
		  !SSL_SESSION_set_cipher(s, cipher) ||
		  !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
		SSL_SESSION_free(s);
		s = NULL;
	}
	return s;
}

static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		   size_t *idlen, SSL_SESSION **sess)
{
	const struct net_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	/* A second call (after a HelloRetryRequest) names the hash. */
	if (md && md != SSL_CIPHER_get_handshake_digest(
			    SSL_CIPHER_find(ssl, aes128gcm_sha256))) {
		*sess = NULL;
		return 1;
	}
	*sess = psk_session(ssl, t);
	*id = (const unsigned char *)t->ident;
	*idlen = t->idlen;
	return *sess != NULL;
}

static int find_psk(SSL *ssl, const unsigned char *id, size_t idlen,
		    SSL_SESSION **sess)
{
	const struct net_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct net_conn *c = SSL_get_app_data(ssl);

	*sess = NULL;
	if (idlen != t->idlen || memcmp(id, t->ident, idlen)) {
		snprintf(c->tls->why, TLS_WHY, "unknown PSK identity '%.*s'",
			 (int)(idlen < IDENT_MAX ? idlen : IDENT_MAX),
			 (const char *)id);
		return 0; /* abort the handshake */
	}
	*sess = psk_session(ssl, t);
	return *sess != NULL;
}

struct net_tls *tls_new(const char *path, bool server, int *err, char *why)
{
	struct net_tls *t = calloc(1, sizeof(*t));
	int ret;

	*why = '\0';
	if (!t) {
		*err = -ENOMEM;
		snprintf(why, TLS_WHY, "out of memory");
		return NULL;
	}
	ret = load_key(t, path, why);
	if (ret < 0)
		goto fail;
	t->server = server;
	t->ctx =
	    SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	ret = -EIO;
	if (!t->ctx || !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
	    /* Both hash with SHA-256, as the PSK does. */
	    !SSL_CTX_set_ciphersuites(t->ctx, "TLS_AES_128_GCM_SHA256:"
					      "TLS_CHACHA20_POLY1305_SHA256")) {
		snprintf(why, TLS_WHY, "OpenSSL: %s",
			 ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	SSL_CTX_set_app_data(t->ctx, t);
	/*
	 * No session tickets (nothing to resume: the PSK is the key), so
	 * no record but application data follows the handshake.  A close
	 * without close_notify is an end of stream: the protocol's own
	 * framing tells a cut message (net_read_msg()).
	 */
	SSL_CTX_set_options(t->ctx,
			    SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read many records a recv(2): a stream's runs are 64 records each. */
	SSL_CTX_set_read_ahead(t->ctx, 1);
	SSL_CTX_set_default_read_buffer_len(t->ctx, READ_BUF);
	if (server) {
		SSL_CTX_set_num_tickets(t->ctx, 0);
		SSL_CTX_set_psk_find_session_callback(t->ctx, find_psk);
	} else {
		SSL_CTX_set_psk_use_session_callback(t->ctx, use_psk);
	}
	return t;
fail:
	tls_free(t);
	*err = ret;
	return NULL;
}

void tls_free(struct net_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	OPENSSL_cleanse(t->key, sizeof(t->key));
	free(t);
}

/* ---- the BIO ------------------------------------------------------------ */

/*
 * Send what wbuf holds without waiting.  0 once empty, -EAGAIN when the
 * socket is full, or -errno.  Caller holds the lock.
 */
static int drain(struct net_conn *c)
{
	struct tls_conn *tc = c->tls;

	while (tc->woff < tc->wlen) {
		ssize_t n =
		    send(c->fd, tc->wbuf + tc->woff, tc->wlen - tc->woff,
			 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return -EAGAIN;
		if (n < 0) {
			tc->err = errno;
			return -errno;
		}
		tc->woff += (size_t)n;
	}
	tc->woff = tc->wlen = 0;
	return 0;
}

static int bio_write(BIO *b, const char *buf, int len)
{
	struct net_conn *c = BIO_get_data(b);
	struct tls_conn *tc = c->tls;
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (tc->gather) {
		if (WRITE_BUF - tc->wlen < (size_t)len && drain(c) < -EAGAIN)
			return -1;
		if (tc->woff) {
			memmove(tc->wbuf, tc->wbuf + tc->woff,
				tc->wlen - tc->woff);
			tc->wlen -= tc->woff;
			tc->woff = 0;
		}
		if (WRITE_BUF - tc->wlen < (size_t)len) {
			BIO_set_retry_write(b); /* flush() waits for room */
			return -1;
		}
		memcpy(tc->wbuf + tc->wlen, buf, (size_t)len);
		tc->wlen += (size_t)len;
		return len;
	}
	n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL);
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EINTR)
		BIO_set_retry_write(b);
	else
		tc->err = errno;
	return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
	struct net_conn *c = BIO_get_data(b);
	struct tls_conn *tc = c->tls;
	ssize_t n = recv(c->fd, buf, (size_t)len, 0);

	BIO_clear_retry_flags(b);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			BIO_set_retry_read(b);
		else
			tc->err = errno;
		return -1;
	}
	for (ssize_t i = 0; i < n && tc->nfirst < sizeof(tc->first); i++)
		tc->first[tc->nfirst++] = (uint8_t)buf[i];
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH; /* sends are not buffered */
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "upager socket");

	if (m && (!BIO_meth_set_write(m, bio_write) ||
		  !BIO_meth_set_read(m, bio_read) ||
		  !BIO_meth_set_ctrl(m, bio_ctrl) ||
		  !BIO_meth_set_create(m, bio_create))) {
		BIO_meth_free(m);
		m = NULL;
	}
	bio_method = m;
}

/* ---- waiting ------------------------------------------------------------ */

/* Wait, unlocked, for what @ssl_err asks: 0, -EAGAIN (timeout), -errno. */
static int wait_io(struct net_conn *c, int ssl_err)
{
	struct pollfd pfd = {
	    .fd = c->fd,
	    .events = ssl_err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
	int n;

	do
		n = poll(&pfd, 1, c->timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -EAGAIN;
}

/*
 * One SSL call's result under the lock: 1 done, 0 to wait (*@want set),
 * or -errno.  ERR_clear_error() must precede the call: SSL_get_error()
 * reads this thread's error queue.
 */
static int outcome(struct net_conn *c, int ok, int *want)
{
	struct tls_conn *tc = c->tls;
	int e;

	if (ok > 0)
		return 1;
	e = SSL_get_error(tc->ssl, ok);
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		*want = e;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -ECONNRESET;
	case SSL_ERROR_SYSCALL:
		return tc->err ? -tc->err : -ECONNRESET;
	default:
		return -EBADMSG;
	}
}

/* ---- the handshake ------------------------------------------------------ */

/* Why the handshake failed, from OpenSSL's queue and what the peer sent. */
static int refused(struct net_tls *t, struct net_conn *c, int ret, char *why)
{
	struct tls_conn *tc = c->tls;
	unsigned long e = ERR_peek_error();
	int reason = ERR_GET_REASON(e);

	if (*tc->why) {
		snprintf(why, TLS_WHY, "%s", tc->why);
		return -EKEYREJECTED;
	}
	if (!t->server && tc->nfirst >= 4 && !memcmp(tc->first, "UPGR", 4)) {
		snprintf(why, TLS_WHY,
			 "the server speaks plaintext (no TLS): "
			 "give it a key, or this client plaintext");
		return -EPROTONOSUPPORT;
	}
	if (ret == -ETIMEDOUT || ret == -ECONNRESET) {
		snprintf(why, TLS_WHY, "%s during the TLS handshake",
			 ret == -ETIMEDOUT ? "timed out" : "connection closed");
		return ret;
	}
	/*
	 * A wrong key: the server finds that the binder of the client's PSK
	 * does not verify, and OpenSSL says illegal_parameter; an unknown
	 * identity aborts in our callback (internal_error).  Our server
	 * authenticates nothing else, so a client reads those alerts as a
	 * refused key.
	 */
	if (reason == SSL_R_BINDER_DOES_NOT_VERIFY ||
	    reason == SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER ||
	    reason == SSL_R_TLSV1_ALERT_DECRYPT_ERROR ||
	    reason == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE ||
	    reason == SSL_R_TLSV1_ALERT_INTERNAL_ERROR) {
		snprintf(why, TLS_WHY, "%s (%s)",
			 t->server ? "the client's key is not ours"
				   : "the server refused our key",
			 ERR_reason_error_string(e));
		return -EKEYREJECTED;
	}
	snprintf(why, TLS_WHY, "TLS handshake failed: %s",
		 e ? ERR_reason_error_string(e) : strerror(-ret));
	return -EPROTO;
}

/*
 * A server first looks at the first byte: a TLS client starts with a
 * handshake record; an upager client in plaintext starts with "UPGR" and
 * is told, in plaintext, that this server wants a key.
 */
static int plaintext_client(struct net_conn *c, char *why)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	uint8_t b;
	ssize_t n;

	if (poll(&pfd, 1, c->timeout_ms) == 0)
		return -ETIMEDOUT;
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0 || b == TLS_HANDSHAKE)
		return 0;
	if (b == 'U') {
		snprintf(why, TLS_WHY,
			 "a plaintext client: this server "
			 "requires TLS with its pre-shared key");
		net_send_error(c, ENOKEY,
			       "this server requires TLS: give the "
			       "client the server's key (psk=FILE)");
	} else {
		snprintf(why, TLS_WHY, "not a TLS client (first byte %#x)", b);
	}
	return b == 'U' ? -ENOKEY : -EPROTO;
}

int tls_handshake(struct net_tls *t, struct net_conn *c, char *why)
{
	struct tls_conn *tc;
	BIO *bio;
	int ret, want = 0, fl;

	*why = '\0';
	if (t->server) {
		ret = plaintext_client(c, why);
		if (ret < 0)
			return ret;
	}
	pthread_once(&bio_once, bio_method_init);
	tc = calloc(1, sizeof(*tc));
	if (tc) {
		tc->stage = malloc(REC);
		tc->wbuf = malloc(WRITE_BUF);
	}
	if (!tc || !tc->stage || !tc->wbuf || !bio_method) {
		if (tc) {
			free(tc->stage);
			free(tc->wbuf);
		}
		free(tc);
		snprintf(why, TLS_WHY, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&tc->lock, NULL);
	pthread_mutex_init(&tc->wlock, NULL);
	c->tls = tc;
	tc->ssl = SSL_new(t->ctx);
	bio = tc->ssl ? BIO_new(bio_method) : NULL;
	if (!bio) {
		snprintf(why, TLS_WHY, "out of memory");
		return -ENOMEM; /* net_conn_free() frees tc */
	}
	BIO_set_data(bio, c);
	SSL_set_bio(tc->ssl, bio, bio);
	SSL_set_app_data(tc->ssl, c);
	if (t->server)
		SSL_set_accept_state(tc->ssl);
	else
		SSL_set_connect_state(tc->ssl);
	net_nodelay(c->fd);
	fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(why, TLS_WHY, "%s", strerror(errno));
		return -errno;
	}
	for (;;) {
		/* Nobody else knows @c yet: no lock. */
		ERR_clear_error();
		ret = outcome(c, SSL_do_handshake(tc->ssl), &want);
		if (ret > 0) {
			tc->gather = true;
			return 0;
		}
		if (ret == 0)
			ret = wait_io(c, want);
		if (ret == -EAGAIN)
			ret = -ETIMEDOUT;
		if (ret < 0)
			return refused(t, c, ret, why);
	}
}

void tls_conn_free(struct net_conn *c)
{
	struct tls_conn *tc = c->tls;

	if (!tc)
		return;
	SSL_free(tc->ssl); /* and the BIO */
	pthread_mutex_destroy(&tc->lock);
	pthread_mutex_destroy(&tc->wlock);
	free(tc->stage);
	free(tc->wbuf);
	free(tc);
	c->tls = NULL;
}

/* ---- data --------------------------------------------------------------- */

/* One SSL_read_ex() or SSL_write_ex() under the lock, as outcome(). */
static int io(struct net_conn *c, bool write, void *buf, size_t len,
	      size_t *done, int *want)
{
	struct tls_conn *tc = c->tls;
	int ret;

	*done = 0;
	pthread_mutex_lock(&tc->lock);
	ERR_clear_error();
	ret = outcome(c,
		      write ? SSL_write_ex(tc->ssl, buf, len, done)
			    : SSL_read_ex(tc->ssl, buf, len, done),
		      want);
	/* A record a read had to answer (a KeyUpdate) goes out now. */
	if (!write && tc->wlen)
		drain(c);
	pthread_mutex_unlock(&tc->lock);
	return ret;
}

long tls_read(struct net_conn *c, void *buf, size_t len)
{
	for (;;) {
		size_t got;
		int want = 0, ret = io(c, false, buf, len, &got, &want);

		if (ret > 0)
			return (long)got;
		if (ret == -ECONNRESET)
			return 0; /* the caller tells a cut message */
		if (ret == 0)
			ret = wait_io(c, want);
		if (ret < 0)
			return ret;
	}
}

/*
 * Send the records wbuf holds, waiting for room in the socket unlocked
 * (unless @dontwait).  0 or -errno.  Caller holds wlock.
 */
static int flush(struct net_conn *c, bool dontwait)
{
	struct tls_conn *tc = c->tls;

	for (;;) {
		int ret;

		pthread_mutex_lock(&tc->lock);
		ret = drain(c);
		pthread_mutex_unlock(&tc->lock);
		if (ret != -EAGAIN || dontwait)
			return ret;
		ret = wait_io(c, SSL_ERROR_WANT_WRITE);
		if (ret < 0)
			return ret;
	}
}

/* Encrypt @len bytes into records.  Caller holds wlock. */
static int write_all(struct net_conn *c, const uint8_t *p, size_t len,
		     bool dontwait)
{
	while (len) {
		size_t put;
		int want = 0, ret = io(c, true, (void *)p, len, &put, &want);

		if (ret > 0) {
			p += put;
			len -= put;
			continue;
		}
		/* wbuf is full: send some of it, then encrypt on. */
		if (ret == 0)
			ret = want == SSL_ERROR_WANT_WRITE ? flush(c, dontwait)
							   : -EPROTO;
		if (ret < 0)
			return ret == -EBADMSG ? -EPIPE : ret;
	}
	return 0;
}

static int flush_stage(struct net_conn *c, bool dontwait)
{
	struct tls_conn *tc = c->tls;
	int ret = write_all(c, tc->stage, tc->staged, dontwait);

	tc->staged = 0;
	return ret;
}

int tls_sendv(struct net_conn *c, const struct iovec *iov, int n, bool dontwait)
{
	struct tls_conn *tc = c->tls;
	int ret = 0;

	if (dontwait ? pthread_mutex_trylock(&tc->wlock)
		     : pthread_mutex_lock(&tc->wlock))
		return -EAGAIN;
	/*
	 * A record costs a header, a tag and a send: a message's header and
	 * a lone page go out together in one record.  A large run is
	 * encrypted from where the data lies, with no copy, in whole records
	 * that start where its pages do: what was staged before it goes
	 * first in a record of its own (a message keeps its count of
	 * records), so that the reader's copy out of each record lands on
	 * the page boundaries of its buffer (net_msg_buf_new()).
	 */
	for (int i = 0; i < n && !ret; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		while (len && !ret) {
			size_t k;

			if (len < REC) {
				k = REC - tc->staged < len ? REC - tc->staged
							   : len;
				memcpy(tc->stage + tc->staged, p, k);
				tc->staged += k;
				if (tc->staged == REC)
					ret = flush_stage(c, dontwait);
			} else {
				k = len - len % REC;
				if (tc->staged)
					ret = flush_stage(c, dontwait);
				if (!ret)
					ret = write_all(c, p, k, dontwait);
			}
			p += k;
			len -= k;
		}
	}
	if (!ret && tc->staged)
		ret = flush_stage(c, dontwait);
	if (!ret)
		ret = flush(c, dontwait);
	tc->staged = 0;
	pthread_mutex_unlock(&tc->wlock);
	return ret;
}

/* ---- the public check --------------------------------------------------- */

int upager_psk_check(const char *path, char *why, size_t len)
{
	struct net_tls t;
	char w[TLS_WHY] = "";
	int ret = path ? load_key(&t, path, w) : -EINVAL;

	OPENSSL_cleanse(t.key, sizeof(t.key));
	if (why && len)
		snprintf(why, len, "%s", ret < 0 ? w : "");
	return ret;
}

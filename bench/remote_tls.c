// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * remote_tls: what TLS costs the remote: store, over loopback, against
 * plaintext in the same run.
 *
 *   remote_tls [--size SIZE] [--faults N] [--rounds N]
 *
 * A page server in this process exports SIZE bytes (a mem store, every
 * page distinct data, none zero); a remote: store in this process maps it.
 * Each round runs both transports, plaintext first, then TLS 1.3
 * (AES-128-GCM, a pre-shared key):
 *
 *   stream  the background stream alone pushes the whole image (nobody
 *           faults): MB/s from map to the last install, and the CPU time
 *           of the whole process (server and client) per MiB;
 *   fault   a server whose stream is held back (a rate of 4 KiB/s) and a
 *           reader that touches N random pages once each: every touch is
 *           a 4 KiB fault answered by an urgent request; its latency is
 *           timed around the access, p50 and p99.
 *
 * The table gives each transport's median over the rounds and TLS's ratio
 * to plaintext.  Two floors are printed first: the cipher's own speed
 * (OpenSSL's AES-128-GCM encrypting 1 MiB buffers in one thread), and a
 * bare stream of SIZE bytes over loopback TCP, a thread at each end
 * writing and reading 256 KiB at a time, plaintext and then through
 * OpenSSL's TLS 1.3 with the same suite and a pre-shared key: what TLS
 * costs a transfer with nothing of upager in it.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <upager/remote.h>
#include <upager/upager.h>

#define PAGE	   4096u
#define MAX_ROUNDS 16

struct result {
	double mbps, cpu_us_per_mib; /* stream */
	double p50_us, p99_us;	     /* fault */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		   1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		   1000ull;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "remote_tls: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* OpenSSL's AES-128-GCM over 1 MiB buffers for ~0.3 s: GB/s. */
static double cipher_gbps(void)
{
	static unsigned char in[1 << 20], out[(1 << 20) + 16];
	unsigned char key[16] = {1}, iv[12] = {2}, tag[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	uint64_t t0 = now_ns(), bytes = 0;
	int n;

	RAND_bytes(in, sizeof(in));
	while (now_ns() - t0 < 300000000ull) {
		EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, iv);
		EVP_EncryptUpdate(ctx, out, &n, in, sizeof(in));
		EVP_EncryptFinal_ex(ctx, out + n, &n);
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag);
		bytes += sizeof(in);
	}
	EVP_CIPHER_CTX_free(ctx);
	return (double)bytes / (double)(now_ns() - t0);
}

/* ---- the bare stream: TLS against plaintext, nothing of upager ------- */

#define BARE_CHUNK (256u << 10)

struct bare_stream {
	int lfd;
	uint64_t len;
	bool tls;
};

/* TLS_AES_128_GCM_SHA256 and a fixed key, as a PSK session. */
static SSL_SESSION *bare_session(SSL *ssl)
{
	static const unsigned char suite[2] = {0x13, 0x01}, key[32] = {7};
	SSL_SESSION *s = SSL_SESSION_new();

	if (!s || !SSL_SESSION_set1_master_key(s, key, sizeof(key)) ||
	    !SSL_SESSION_set_cipher(s, SSL_CIPHER_find(ssl, suite)) ||
	    !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))
		die("bare stream: PSK session", -EPROTO);
	return s;
}

static int bare_use(SSL *ssl, const EVP_MD *md, const unsigned char **id,
		    size_t *idlen, SSL_SESSION **sess)
{
	(void)md;
	*id = (const unsigned char *)"bench";
	*idlen = 5;
	*sess = bare_session(ssl);
	return 1;
}

static int bare_find(SSL *ssl, const unsigned char *id, size_t idlen,
		     SSL_SESSION **sess)
{
	(void)id;
	(void)idlen;
	*sess = bare_session(ssl);
	return 1;
}

/* A TLS 1.3 end on @fd, or NULL for plaintext. */
static SSL *bare_tls(int fd, bool tls, bool server)
{
	SSL_CTX *ctx;
	SSL *ssl;

	if (!tls)
		return NULL;
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256"))
		die("bare stream: SSL_CTX", -EPROTO);
	if (server)
		SSL_CTX_set_psk_find_session_callback(ctx, bare_find);
	else
		SSL_CTX_set_psk_use_session_callback(ctx, bare_use);
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx); /* ssl holds it */
	if (!ssl || !SSL_set_fd(ssl, fd) ||
	    (server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1)
		die("bare stream: handshake", -EPROTO);
	return ssl;
}

/* Up to @len bytes of @buf out (@put) or in: how many, <= 0 at the end. */
static long bare_io(SSL *ssl, int fd, char *buf, size_t len, bool put)
{
	if (ssl)
		return put ? SSL_write(ssl, buf, (int)len)
			   : SSL_read(ssl, buf, (int)len);
	return put ? (long)send(fd, buf, len, MSG_NOSIGNAL)
		   : (long)recv(fd, buf, len, 0);
}

/* The reading end: all of it, then one byte back to say so. */
static void *bare_reader(void *arg)
{
	struct bare_stream *b = arg;
	int fd = accept(b->lfd, NULL, NULL);
	SSL *ssl = fd < 0 ? NULL : bare_tls(fd, b->tls, true);
	char *buf = malloc(BARE_CHUNK), ack = 1;
	long n;

	if (fd < 0 || !buf)
		die("bare stream: reader", -errno);
	for (uint64_t got = 0; got < b->len; got += (uint64_t)n)
		if ((n = bare_io(ssl, fd, buf, BARE_CHUNK, false)) <= 0)
			die("bare stream: read", -EPIPE);
	if (bare_io(ssl, fd, &ack, 1, true) != 1)
		die("bare stream: ack", -EPIPE);
	SSL_free(ssl);
	close(fd);
	free(buf);
	return NULL;
}

/* @len bytes through loopback TCP, TLS or plaintext: seconds. */
static double bare_stream(uint64_t len, bool tls)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct bare_stream b = {.lfd = socket(AF_INET, SOCK_STREAM, 0),
				.len = len,
				.tls = tls};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	char *buf = malloc(BARE_CHUNK), ack;
	uint64_t t0;
	pthread_t t;
	SSL *ssl;
	long n;

	if (b.lfd < 0 || fd < 0 || !buf ||
	    bind(b.lfd, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(b.lfd, 1) ||
	    getsockname(b.lfd, (struct sockaddr *)&a, &alen) ||
	    pthread_create(&t, NULL, bare_reader, &b))
		die("bare stream: set-up", -errno);
	/* As upager's connections are set. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die("bare stream: connect", -errno);
	ssl = bare_tls(fd, tls, false);
	memset(buf, 0x5a, BARE_CHUNK);
	t0 = now_ns();
	for (uint64_t put = 0; put < len; put += (uint64_t)n)
		if ((n = bare_io(ssl, fd, buf, BARE_CHUNK, true)) <= 0)
			die("bare stream: write", -EPIPE);
	if (bare_io(ssl, fd, &ack, 1, false) != 1)
		die("bare stream: ack", -EPIPE);
	t0 = now_ns() - t0;
	pthread_join(t, NULL);
	SSL_free(ssl);
	close(fd);
	close(b.lfd);
	free(buf);
	return (double)t0 / 1e9;
}

static struct upager_server *serve(struct upager_store *img, const char *psk,
				   uint64_t rate)
{
	struct upager_server_params sp = {.size = sizeof(sp),
					  .listen = "tcp:127.0.0.1:0",
					  .stream_rate = rate};
	struct upager_server *srv = upager_server_new(&sp, NULL);
	int err;

	if (!srv)
		die("server", -ENOMEM);
	err = upager_server_export(srv, "img", img);
	if (!err)
		err = psk ? upager_server_tls_psk(srv, psk)
			  : upager_server_plaintext(srv);
	if (!err)
		err = upager_server_start(srv);
	if (err)
		die("server", err);
	return srv;
}

/* Map the export of @srv; *@s and *@r are set. */
static char *map(struct upager_handler *h, struct upager_server *srv,
		 const char *psk, struct upager_store **s,
		 struct upager_region **r)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .readahead_max = (size_t)-1};
	char spec[512];
	char *p;
	int err;

	if (psk)
		snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img,psk=%s",
			 upager_server_port(srv), psk);
	else
		snprintf(spec, sizeof(spec),
			 "remote:127.0.0.1:%u/img,plaintext",
			 upager_server_port(srv));
	*s = upager_store_open(spec, &err);
	if (!*s)
		die(spec, err);
	p = upager_map(h, *s, (*s)->npages * PAGE, &mp, r, &err);
	if (!p)
		die("map", err);
	return p;
}

static void done(struct upager_region *r, struct upager_store *s,
		 struct upager_server *srv)
{
	upager_unmap(r);
	upager_store_close(s);
	upager_server_free(srv);
}

static void stream(struct upager_handler *h, struct upager_store *img,
		   const char *psk, struct result *res)
{
	struct upager_server *srv = serve(img, psk, 0);
	struct upager_region *r;
	struct upager_store *s;
	uint64_t t0 = now_ns(), c0 = cpu_ns(), t, c;
	double mib = (double)img->npages * PAGE / (1 << 20);
	int err;

	map(h, srv, psk, &s, &r);
	err = upager_remote_wait_complete(s, 600000);
	if (err)
		die("stream", err);
	t = now_ns() - t0;
	c = cpu_ns() - c0;
	res->mbps = (double)img->npages * PAGE / ((double)t / 1e9) / 1e6;
	res->cpu_us_per_mib = (double)c / 1e3 / mib;
	done(r, s, srv);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void faults(struct upager_handler *h, struct upager_store *img,
		   const char *psk, unsigned int n, struct result *res)
{
	struct upager_server *srv = serve(img, psk, PAGE);
	struct upager_region *r;
	struct upager_store *s;
	uint64_t *lat = calloc(n, sizeof(*lat)), x = 0x9e3779b97f4a7c15ull;
	uint8_t *seen = calloc(img->npages, 1);
	volatile char *p = map(h, srv, psk, &s, &r);
	unsigned int k = 0;

	if (!lat || !seen)
		die("faults", -ENOMEM);
	/* The first stream message (256 pages at the image's start) is out
	 * before the rate holds the stream: touch pages past it. */
	while (k < n) {
		uint64_t i, t0;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		i = 1024 + x % (img->npages - 1024);
		if (seen[i])
			continue;
		seen[i] = 1;
		t0 = now_ns();
		(void)p[i * PAGE];
		lat[k++] = now_ns() - t0;
	}
	qsort(lat, n, sizeof(*lat), cmp_u64);
	res->p50_us = (double)lat[n / 2] / 1e3;
	res->p99_us = (double)lat[n * 99 / 100] / 1e3;
	done(r, s, srv);
	free(lat);
	free(seen);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of field @off of @n results. */
static double median(const struct result *res, int n, size_t off)
{
	double v[MAX_ROUNDS];

	for (int i = 0; i < n; i++)
		memcpy(&v[i], (const char *)&res[i] + off, sizeof(double));
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * Whether this kernel could take the record layer (kTLS): the "tls" upper
 * layer protocol on a connected TCP socket.  upager's TLS is OpenSSL's,
 * in user space, either way; this says what a kTLS build could expect.
 */
static const char *ktls(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0),
	    c = socket(AF_INET, SOCK_STREAM, 0);
	static char why[128];

	if (l < 0 || c < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len) ||
	    connect(c, (struct sockaddr *)&a, sizeof(a)))
		snprintf(why, sizeof(why), "unknown (%s)", strerror(errno));
	else if (setsockopt(c, IPPROTO_TCP, TCP_ULP, "tls", 3))
		snprintf(why, sizeof(why), "no (TCP_ULP \"tls\": %s)",
			 strerror(errno));
	else
		snprintf(why, sizeof(why), "yes");
	if (l >= 0)
		close(l);
	if (c >= 0)
		close(c);
	return why;
}

/* A key file for this run, mode 0600, in @path. */
static void make_key(char *path, size_t len)
{
	unsigned char key[32];
	FILE *f;
	int fd;

	snprintf(path, len, "/tmp/upager-bench-tls-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || fchmod(fd, 0600) < 0 || !(f = fdopen(fd, "w")))
		die("key file", -errno);
	RAND_bytes(key, sizeof(key));
	fprintf(f, "bench:");
	for (size_t i = 0; i < sizeof(key); i++)
		fprintf(f, "%02x", key[i]);
	fprintf(f, "\n");
	fclose(f);
}

static int usage(int rc)
{
	printf("usage: remote_tls [--size SIZE] [--faults N] [--rounds N]\n\n"
	       "The remote: store over loopback, TLS 1.3 (AES-128-GCM, a "
	       "pre-shared key)\nagainst plaintext in the same run: stream "
	       "throughput and the CPU it costs,\n4 KiB fault latency; and "
	       "first a bare stream of SIZE through OpenSSL\nwith nothing "
	       "of upager, its floor.\n\n"
	       "  --size SIZE   image size in MiB (default 256)\n"
	       "  --faults N    faults timed per round (default 2000)\n"
	       "  --rounds N    rounds of both transports (default 3, at most "
	       "%d)\n",
	       MAX_ROUNDS);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"size", required_argument, NULL, 's'},
	    {"faults", required_argument, NULL, 'f'},
	    {"rounds", required_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {0}};
	struct upager_handler_params hp = {.size = sizeof(hp), .threads = 2};
	struct result res[2][MAX_ROUNDS];
	static const char *const name[2] = {"plaintext", "TLS 1.3"};
	unsigned long mib = 256, nfaults = 2000, rounds = 3;
	struct upager_handler *h;
	struct upager_store *img;
	char key[64];
	uint64_t *w;
	int c, err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end = NULL;
		unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;

		if (c == 'h')
			return usage(0);
		if (c == '?' || !end || *end || !v)
			return usage(2);
		if (c == 's')
			mib = v;
		else if (c == 'f')
			nfaults = v;
		else if (v <= MAX_ROUNDS)
			rounds = v;
		else
			return usage(2);
	}
	if (mib < 8 || nfaults > (mib << 8) / 2) {
		fprintf(stderr, "remote_tls: --size of at least 8 MiB and "
				"--faults at most half its pages\n");
		return 2;
	}
	img = upager_store_mem_new((uint64_t)mib << 20, &err);
	if (!img)
		die("mem store", err);
	w = upager_store_mem_data(img);
	for (uint64_t i = 0; i < (mib << 20) / 8; i++)
		w[i] = i * 0x9e3779b97f4a7c15ull | 1;
	make_key(key, sizeof(key));
	h = upager_handler_new(&hp, &err);
	if (!h || (err = upager_handler_start(h)) < 0)
		die("handler", err);

	printf("OpenSSL AES-128-GCM, one thread: %.2f GB/s\n", cipher_gbps());
	printf("kernel TLS (kTLS) in this kernel: %s\n", ktls());
	{
		double bs[2][MAX_ROUNDS], m[2];

		for (unsigned long i = 0; i < rounds; i++)
			for (int t = 0; t < 2; t++)
				bs[t][i] = bare_stream((uint64_t)mib << 20,
						       t);
		for (int t = 0; t < 2; t++) {
			qsort(bs[t], rounds, sizeof(double), cmp_double);
			m[t] = bs[t][rounds / 2];
		}
		printf("bare stream of %lu MiB over loopback, no upager "
		       "(median of %lu): plaintext %.0f MB/s, TLS 1.3 %.0f "
		       "MB/s, %.2fx the time\n",
		       mib, rounds, (double)(mib << 20) / m[0] / 1e6,
		       (double)(mib << 20) / m[1] / 1e6, m[1] / m[0]);
	}
	printf("image %lu MiB, %lu faults a round, %lu rounds\n", mib, nfaults,
	       rounds);
	for (unsigned long i = 0; i < rounds; i++) {
		for (int t = 0; t < 2; t++) {
			stream(h, img, t ? key : NULL, &res[t][i]);
			faults(h, img, t ? key : NULL, (unsigned int)nfaults,
			       &res[t][i]);
			fprintf(stderr,
				"round %lu %-9s: %7.0f MB/s, %6.0f us CPU/MiB, "
				"fault p50 %5.0f us p99 %6.0f us\n",
				i + 1, name[t], res[t][i].mbps,
				res[t][i].cpu_us_per_mib, res[t][i].p50_us,
				res[t][i].p99_us);
		}
	}

	printf("\n%-10s %12s %14s %14s %14s\n", "transport", "stream MB/s",
	       "CPU us/MiB", "fault p50 us", "fault p99 us");
	for (int t = 0; t < 2; t++)
		printf(
		    "%-10s %12.0f %14.0f %14.0f %14.0f\n", name[t],
		    median(res[t], (int)rounds, offsetof(struct result, mbps)),
		    median(res[t], (int)rounds,
			   offsetof(struct result, cpu_us_per_mib)),
		    median(res[t], (int)rounds,
			   offsetof(struct result, p50_us)),
		    median(res[t], (int)rounds,
			   offsetof(struct result, p99_us)));
	printf(
	    "%-10s %11.2fx %13.2fx %13.2fx %13.2fx\n", "TLS/plain",
	    median(res[0], (int)rounds, offsetof(struct result, mbps)) /
		median(res[1], (int)rounds, offsetof(struct result, mbps)),
	    median(res[1], (int)rounds,
		   offsetof(struct result, cpu_us_per_mib)) /
		median(res[0], (int)rounds,
		       offsetof(struct result, cpu_us_per_mib)),
	    median(res[1], (int)rounds, offsetof(struct result, p50_us)) /
		median(res[0], (int)rounds, offsetof(struct result, p50_us)),
	    median(res[1], (int)rounds, offsetof(struct result, p99_us)) /
		median(res[0], (int)rounds, offsetof(struct result, p99_us)));
	printf("(stream: plaintext's MB/s over TLS's, i.e. the time ratio; the "
	       "others TLS over plaintext)\n");
	upager_handler_free(h);
	upager_store_close(img);
	unlink(key);
	return 0;
}

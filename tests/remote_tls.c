// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Who a TLS page server lets in.  A server holding key K exports an image
 * and serves a good client (key K) whose stream is slowed down, while
 * these clients try and are refused before any session exists, each with
 * its errno on the client side and a line naming the reason in the
 * server's log:
 *
 *   the same identity with another key      EKEYREJECTED   "not ours"
 *   another identity                        EKEYREJECTED   "unknown PSK
 * identity" plaintext (no key)                      ENOKEY         "plaintext
 * client" a TLS client at a plaintext server      EPROTONOSUPPORT "TLS client
 * on a plaintext"
 *
 * The server counts them in tls_refused and opens no session for them;
 * the good client gets every page right.  Key files: a mode others may
 * read (0644, 0640), a bad format, a missing file are refused by
 * upager_psk_check(), upager_server_tls_psk() and the psk= option alike.
 *
 * Then integrity: a relay between a good client and the server flips one
 * byte of the server's stream once.  The client must not take the
 * record (its authentication fails), drop the connection, reconnect and
 * still end with every page right.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tremote.h"
#include "net/net.h"

#define NPAGES 1024u

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[8192];

static void log_line(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "server: %s\n", msg);
	pthread_mutex_lock(&log_lock);
	if (strlen(log_buf) + strlen(msg) + 2 < sizeof(log_buf)) {
		strcat(log_buf, msg);
		strcat(log_buf, "\n");
	}
	pthread_mutex_unlock(&log_lock);
}

static bool logged(const char *what)
{
	bool found;

	pthread_mutex_lock(&log_lock);
	found = strstr(log_buf, what) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

static struct upager_server *server(struct upager_store *img, const char *psk,
				    uint64_t rate)
{
	struct upager_server_params sp = {.size = sizeof(sp),
					  .listen = "tcp:127.0.0.1:0",
					  .stream_rate = rate,
					  .log = log_line};
	struct upager_server *srv;
	int err;

	srv = upager_server_new(&sp, &err);
	CHECK(srv, "server: %s", strerror(-err));
	CHECK_RET(upager_server_export(srv, "img", img), 0);
	CHECK_RET(psk ? upager_server_tls_psk(srv, psk)
		      : upager_server_plaintext(srv),
		  0);
	CHECK_RET(upager_server_start(srv), 0);
	return srv;
}

/* Open "remote:127.0.0.1:PORT/img,@opt": must fail with @want. */
static void refused(unsigned int port, const char *opt, int want,
		    const char *log_says)
{
	char spec[256];
	int err = 0;

	snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img,%s", port, opt);
	CHECK(!upager_store_open(spec, &err) && err == want, "%s: %s, want %s",
	      opt, strerror(-err), strerror(-want));
	/* The server logs from the connection's thread: give it a moment. */
	for (int i = 0; i < 2000 && !logged(log_says); i++)
		usleep(1000);
	CHECK(logged(log_says), "%s: the server's log does not say '%s'", opt,
	      log_says);
	printf("%s: refused (%s)\n", opt, strerror(-want));
}

static void key_files(const char *dir, unsigned int port)
{
	static const struct {
		const char *content;
		mode_t mode;
		int err;
		const char *why;
	} bad[] = {
	    {"k:00112233445566778899aabbccddeeff\n", 0644, -EACCES,
	     "mode 0644"},
	    {"k:00112233445566778899aabbccddeeff\n", 0640, -EACCES,
	     "mode 0640"},
	    {"00112233445566778899aabbccddeeff\n", 0600, -EINVAL,
	     "IDENTITY:HEXKEY"},
	    {"k:0011\n", 0600, -EINVAL, "hex digits"},
	    {"k:00112233445566778899aabbccddeefg\n", 0600, -EINVAL,
	     "not a hex digit"},
	    {"a b:00112233445566778899aabbccddeeff\n", 0600, -EINVAL,
	     "identity may hold only"},
	};
	struct upager_server *srv;
	char path[128], spec[256], why[256];
	int err;

	srv = upager_server_new(NULL, &err);
	CHECK(srv, "server: %s", strerror(-err));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s-bad%zu", dir, i);
		unlink(path);
		f = fopen(path, "w");
		CHECK(f, "%s", path);
		fputs(bad[i].content, f);
		fclose(f);
		CHECK(chmod(path, bad[i].mode) == 0, "chmod");
		CHECK_RET(upager_psk_check(path, why, sizeof(why)), bad[i].err);
		CHECK(strstr(why, bad[i].why), "%s: '%s' does not say '%s'",
		      bad[i].content, why, bad[i].why);
		printf("key file %zu refused: %s\n", i, why);
		CHECK_RET(upager_server_tls_psk(srv, path), bad[i].err);
		snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img,psk=%s",
			 port, path);
		CHECK(!upager_store_open(spec, &err) && err == bad[i].err,
		      "open with key file %zu: %s", i, strerror(-err));
		unlink(path);
	}
	CHECK_RET(upager_psk_check("/nonexistent/key", why, sizeof(why)),
		  -ENOENT);
	CHECK_RET(upager_psk_check(t_psk(), why, sizeof(why)), 0);
	upager_server_free(srv);
}

/* ---- a relay that flips one byte of the server's first stream -------- */

#define PUMPS 8

struct pump {
	struct relay *rl;
	int cfd, sfd;
	long at; /* the byte of the server's data to flip, or -1 */
	pthread_t t;
};

struct relay {
	struct net_addr addr; /* where it listens */
	unsigned int to;      /* the server's port */
	int lfd;
	pthread_t t;
	atomic_bool stop;
	atomic_int flipped;
	struct pump pumps[PUMPS];
	int npumps;
};

/* Copy both ways until either side closes, flipping byte @at once. */
static void *pump_main(void *arg)
{
	struct pump *pm = arg;
	struct pollfd p[2] = {{.fd = pm->cfd, .events = POLLIN},
			      {.fd = pm->sfd, .events = POLLIN}};
	uint8_t *buf = malloc(65536);
	long seen = 0, at = pm->at;

	CHECK(buf, "out of memory");
	while (!atomic_load(&pm->rl->stop) && poll(p, 2, 100) >= 0) {
		bool done = false;

		for (int i = 0; i < 2 && !done; i++) {
			ssize_t n;

			if (!p[i].revents)
				continue;
			n = recv(p[i].fd, buf, 65536, 0);
			if (n <= 0) {
				done = true;
				break;
			}
			if (i == 1 && at >= seen && at < seen + n) {
				buf[at - seen] ^= 0x40;
				atomic_fetch_add(&pm->rl->flipped, 1);
				at = -1;
			}
			if (i == 1)
				seen += n;
			done =
			    send(p[!i].fd, buf, (size_t)n, MSG_NOSIGNAL) != n;
		}
		if (done)
			break;
	}
	shutdown(pm->cfd, SHUT_RDWR);
	shutdown(pm->sfd, SHUT_RDWR);
	free(buf);
	return NULL;
}

static void *relay_main(void *arg)
{
	struct relay *rl = arg;
	struct net_addr sa;
	char spec[64];

	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u", rl->to);
	CHECK_RET(net_parse(spec, strlen(spec), &sa), 0);
	while (!atomic_load(&rl->stop) && rl->npumps < PUMPS) {
		struct pollfd p = {.fd = rl->lfd, .events = POLLIN};
		struct pump *pm = &rl->pumps[rl->npumps];

		if (poll(&p, 1, 100) <= 0)
			continue;
		pm->cfd = accept(rl->lfd, NULL, NULL);
		if (pm->cfd < 0)
			continue;
		pm->sfd = net_connect(&sa, true, 0);
		CHECK(pm->sfd >= 0, "relay connect: %s", strerror(-pm->sfd));
		pm->rl = rl;
		/* 200 KiB into the first (stream) connection: in a record. */
		pm->at = rl->npumps ? -1 : 200000;
		CHECK(!pthread_create(&pm->t, NULL, pump_main, pm), "thread");
		rl->npumps++;
	}
	return NULL;
}

static void tampered(struct upager_store *img)
{
	struct upager_remote_stats rst = {.size = sizeof(rst)};
	struct upager_server *srv = server(img, t_psk(), 16u << 20);
	struct relay rl = {.to = upager_server_port(srv)};
	struct upager_handler *h = t_handler();
	struct upager_region *r;
	struct upager_store *s;
	char spec[256];
	uint8_t *p;

	CHECK_RET(net_parse("tcp:127.0.0.1:0", 15, &rl.addr), 0);
	rl.lfd = net_listen(&rl.addr);
	CHECK(rl.lfd >= 0, "listen: %s", strerror(-rl.lfd));
	CHECK(!pthread_create(&rl.t, NULL, relay_main, &rl), "thread");
	snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img,psk=%s",
		 net_port(&rl.addr), t_psk());
	p = t_map_remote(h, spec, &s, &r);
	CHECK_RET(upager_remote_wait_complete(s, 60000), 0);
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %llu",
		      (unsigned long long)i);
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	printf("a flipped byte: reconnects %llu, pages %llu, all right\n",
	       (unsigned long long)rst.reconnects,
	       (unsigned long long)rst.pages_received);
	CHECK(rst.reconnects >= 1, "the tampered connection was kept");
	CHECK(atomic_load(&rl.flipped) == 1, "no byte was flipped");
	t_remote_done(r, h, s, srv);
	atomic_store(&rl.stop, true);
	pthread_join(rl.t, NULL);
	for (int i = 0; i < rl.npumps; i++) {
		pthread_join(rl.pumps[i].t, NULL);
		close(rl.pumps[i].cfd);
		close(rl.pumps[i].sfd);
	}
	close(rl.lfd);
}

int main(void)
{
	struct upager_server_stats ss = {.size = sizeof(ss)};
	struct upager_server *srv, *plain;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *img, *s;
	char dir[64], other[96], ident[96], spec[256];
	unsigned int port;
	uint8_t *p;
	int err;

	img = upager_store_mem_new((uint64_t)NPAGES * PG, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	for (uint64_t i = 0; i < NPAGES; i++)
		t_fill((uint8_t *)upager_store_mem_data(img) + i * PG, PG, i);
	snprintf(dir, sizeof(dir), "/tmp/upager-tls-%d", (int)getpid());
	snprintf(other, sizeof(other), "%s-other", dir);
	snprintf(ident, sizeof(ident), "%s-ident", dir);
	t_psk_write(other, "test", 12345); /* t_psk()'s identity */
	t_psk_write(ident, "stranger", (uint64_t)getpid());

	/* 4 MiB at 1 MiB/s: the good client is served throughout. */
	srv = server(img, t_psk(), 1u << 20);
	port = upager_server_port(srv);
	h = t_handler();
	t_spec(spec, sizeof(spec), port, "/img");
	p = t_map_remote(h, spec, &s, &r);
	CHECK(t_verify(p + 700 * PG, PG, 700), "page 700");

	snprintf(spec, sizeof(spec), "psk=%s", other);
	refused(port, spec, -EKEYREJECTED, "the client's key is not ours");
	snprintf(spec, sizeof(spec), "psk=%s", ident);
	refused(port, spec, -EKEYREJECTED, "unknown PSK identity 'stranger'");
	refused(port, "plaintext", -ENOKEY, "a plaintext client");
	CHECK_RET(upager_server_stats(srv, &ss), 0);
	CHECK(ss.tls_refused == 3 && ss.sessions == 1,
	      "server: %llu refused by TLS, %llu sessions; want 3, 1",
	      (unsigned long long)ss.tls_refused,
	      (unsigned long long)ss.sessions);

	plain = server(img, NULL, 0);
	snprintf(spec, sizeof(spec), "psk=%s", t_psk());
	refused(upager_server_port(plain), spec, -EPROTONOSUPPORT,
		"a TLS client on a plaintext server");
	CHECK_RET(upager_server_stats(plain, &ss), 0);
	CHECK(ss.sessions == 0 && ss.bytes_sent == 0,
	      "plaintext server: %llu sessions, %llu bytes sent",
	      (unsigned long long)ss.sessions,
	      (unsigned long long)ss.bytes_sent);
	upager_server_free(plain);

	key_files(dir, port);

	CHECK(t_verify(p + 300 * PG, PG, 300), "page 300");
	CHECK_RET(upager_remote_wait_complete(s, 60000), 0);
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %llu",
		      (unsigned long long)i);
	t_remote_done(r, h, s, srv);

	tampered(img);
	unlink(other);
	unlink(ident);
	upager_store_close(img);
	return 0;
}

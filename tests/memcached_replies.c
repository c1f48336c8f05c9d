// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The memcached store's signal-safe client (fetch_signal(), what
 * in-thread regions read through) against a fake server that answers
 * what each case scripts: a server's reply is input, and a broken or
 * hostile one must never make a fetch succeed with a page it did not
 * send, write past the pages asked for, or hang.
 *
 * Each case fetches page 0 into the first of two pages whose second is a
 * guard (it must keep its fill), and wants one return:
 * good          a page of the meta record's generation: 0, its bytes
 * zero          an empty value: 0, zeros (a zero page, as pushed)
 * missing       END alone: -ENODATA
 * other_key     a value of a key not asked for: -EIO
 * long_key      a key that only begins like page 0's: -EIO
 * twice         page 0's value twice: -EIO
 * other_gen     item flags of another push: -EBADMSG, told with both
 *               generations
 * short_value   100 bytes: -EBADMSG
 * huge_value    a length of 2^36 bytes: -EBADMSG, nothing read
 * bad_flags     flags that are not a number: -EIO
 * long_line     600 bytes without a line end: -EIO
 * no_crlf       the data not followed by "\r\n": -EIO
 * server_error  SERVER_ERROR: -EIO, told as the server's error
 * error         ERROR: -EIO
 * banner        a line that is not memcached's: -EIO, told so
 * cut           the connection closed in the middle of the data:
 *               -EHOSTDOWN
 * silent        no answer (timeout=300): -ETIMEDOUT
 * trickle       a page's bytes one every 5 ms: -ETIMEDOUT, not the page
 *               20 s later
 * reconnect     the server closes each connection after its reply (as a
 *               restarted server leaves a kept one): the next fetch asks
 *               again on a new connection and reads the page
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <upager/memcached.h>
#include <upager/store.h>

#include "harness.h"
#include "tmemcached.h"

#define PAGE 4096u
#define NS   "fz"
#define GEN  "0000abcd" /* 43981 */
#define KEY0 NS "/0000000000000000"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char reply[3 * PAGE];
static size_t reply_len;
static bool close_after, silent, trickle;
static atomic_uint accepted;

static void script(const char *head, size_t data, char fill, const char *tail,
		   bool close_it)
{
	size_t n = strlen(head);

	pthread_mutex_lock(&lock);
	memcpy(reply, head, n);
	memset(reply + n, fill, data);
	n += data;
	memcpy(reply + n, tail, strlen(tail));
	reply_len = n + strlen(tail);
	close_after = close_it;
	silent = trickle = false;
	pthread_mutex_unlock(&lock);
}

/* One request line into @line (NUL-terminated); false at EOF. */
static bool read_line(int fd, char *line, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		if (read(fd, line + n, 1) != 1)
			return false;
		if (line[n] == '\n') {
			line[n] = 0;
			return true;
		}
		n++;
	}
	return false;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

static void *conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[1024];

	while (read_line(fd, line, sizeof(line))) {
		char out[3 * PAGE];
		size_t n;
		bool bye, quiet, slow;

		if (strstr(line, NS "/meta")) {
			static const char meta[] =
			    "upager-memcached 1 pages=4 gen=" GEN "\n";

			n = (size_t)snprintf(out, sizeof(out),
					     "VALUE " NS "/meta 0 %zu\r\n%s\r\n"
					     "END\r\n",
					     strlen(meta), meta);
			send_all(fd, out, n);
			continue;
		}
		pthread_mutex_lock(&lock);
		memcpy(out, reply, reply_len);
		n = reply_len;
		bye = close_after;
		quiet = silent;
		slow = trickle;
		pthread_mutex_unlock(&lock);
		if (quiet)
			continue;
		for (size_t i = 0; slow && i < n; i++) {
			if (send(fd, out + i, 1, MSG_NOSIGNAL) != 1)
				break; /* the client gave up */
			usleep(5000);
		}
		if (!slow)
			send_all(fd, out, n);
		if (bye)
			break;
	}
	close(fd);
	return NULL;
}

static void *server(void *arg)
{
	int ls = (int)(intptr_t)arg;

	for (;;) {
		int fd = accept(ls, NULL, NULL);
		pthread_t t;

		if (fd < 0)
			continue;
		atomic_fetch_add(&accepted, 1);
		CHECK(!pthread_create(&t, NULL, conn, (void *)(intptr_t)fd),
		      "pthread_create");
		pthread_detach(t);
	}
	return NULL;
}

static char buf[2 * PAGE];

/* Page 0 through fetch_signal(): its return; the guard page checked. */
static int fetch0(struct upager_store *s, const char *name)
{
	int ret;

	memset(buf, 0xee, sizeof(buf));
	ret = s->ops->fetch_signal(s, 0, buf, 1);
	for (size_t i = PAGE; i < sizeof(buf); i++)
		CHECK((unsigned char)buf[i] == 0xee,
		      "%s: byte %zu past the page written", name, i - PAGE);
	return ret;
}

static void want(struct upager_store *s, const char *name, int ret)
{
	int got = fetch0(s, name);

	CHECK(got == ret, "%s: %d (%s), want %d (%s)", name, got,
	      strerror(-got), ret, strerror(-ret));
	printf("%s: ok\n", name);
}

int main(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	char spec[128], why[256], head[128], twice[160], *out;
	struct upager_store *s;
	pthread_t srv;
	unsigned int before;
	int ls, err;

	t_deadline(60, "memcached_replies");
	ls = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(ls >= 0 && !bind(ls, (struct sockaddr *)&a, sizeof(a)) &&
		  !listen(ls, 16) &&
		  !getsockname(ls, (struct sockaddr *)&a, &alen),
	      "a listening socket: %s", strerror(errno));
	CHECK(!pthread_create(&srv, NULL, server, (void *)(intptr_t)ls),
	      "pthread_create");
	snprintf(spec, sizeof(spec), "127.0.0.1:%u/" NS ",timeout=300",
		 ntohs(a.sin_port));
	s = upager_memcached_open(spec, why, sizeof(why), &err);
	CHECK(s, "open %s: %s", spec, why);
	CHECK(s->ops->fetch_signal, "no fetch_signal()");

	snprintf(head, sizeof(head), "VALUE " KEY0 " 43981 %u\r\n", PAGE);
	script(head, PAGE, 'x', "\r\nEND\r\n", false);
	want(s, "good", 0);
	for (size_t i = 0; i < PAGE; i++)
		CHECK(buf[i] == 'x', "good: byte %zu", i);

	script("VALUE " KEY0 " 43981 0\r\n", 0, 0, "\r\nEND\r\n", false);
	want(s, "zero", 0);
	for (size_t i = 0; i < PAGE; i++)
		CHECK(!buf[i], "zero: byte %zu", i);

	script("END\r\n", 0, 0, "", false);
	want(s, "missing", -ENODATA);
	script("VALUE " NS "/0000000000000001 43981 4096\r\n", PAGE, 'y',
	       "\r\nEND\r\n", false);
	want(s, "other_key", -EIO);
	script("VALUE " KEY0 "0 43981 4096\r\n", PAGE, 'y', "\r\nEND\r\n",
	       false);
	want(s, "long_key", -EIO);
	snprintf(twice, sizeof(twice), "\r\n%s", head);
	script(head, PAGE, 'y', twice, false);
	want(s, "twice", -EIO);
	tmc_capture_begin();
	script("VALUE " KEY0 " 1 4096\r\n", PAGE, 'y', "\r\nEND\r\n", false);
	want(s, "other_gen", -EBADMSG);
	out = tmc_capture_end();
	CHECK(strstr(out, "page 0 (key " KEY0 ") on 127.0.0.1:") &&
		  strstr(out, "from another push (generation 00000001, this "
			      "one " GEN ")"),
	      "other_gen: stderr \"%s\"", out);
	script("VALUE " KEY0 " 43981 100\r\n", 100, 'y', "\r\nEND\r\n", false);
	want(s, "short_value", -EBADMSG);
	script("VALUE " KEY0 " 43981 68719476736\r\n", PAGE, 'y', "", false);
	want(s, "huge_value", -EBADMSG);
	CHECK((unsigned char)buf[0] == 0xee, "huge_value: the page written");
	script("VALUE " KEY0 " 4x 4096\r\n", PAGE, 'y', "\r\nEND\r\n", false);
	want(s, "bad_flags", -EIO);
	script("", 600, 'A', "", false);
	want(s, "long_line", -EIO);
	script(head, PAGE, 'y', "XXEND\r\n", false);
	want(s, "no_crlf", -EIO);
	/* A good page between: the server's failure is told again. */
	script(head, PAGE, 'x', "\r\nEND\r\n", false);
	want(s, "good", 0);
	tmc_capture_begin();
	script("SERVER_ERROR out of memory\r\n", 0, 0, "", false);
	want(s, "server_error", -EIO);
	out = tmc_capture_end();
	CHECK(strstr(out, "server error: it answered an error"),
	      "server_error: stderr \"%s\"", out);
	script("ERROR\r\n", 0, 0, "", false);
	want(s, "error", -EIO);
	script(head, PAGE, 'x', "\r\nEND\r\n", false);
	want(s, "good", 0);
	tmc_capture_begin();
	script("SSH-2.0-OpenSSH_9.2\r\n", 0, 0, "", false);
	want(s, "banner", -EIO);
	out = tmc_capture_end();
	CHECK(strstr(out, "server error: a reply that is not memcached's"),
	      "banner: stderr \"%s\"", out);
	script(head, 100, 'y', "", true);
	want(s, "cut", -EHOSTDOWN);

	pthread_mutex_lock(&lock);
	silent = true;
	pthread_mutex_unlock(&lock);
	want(s, "silent", -ETIMEDOUT);

	script(head, PAGE, 't', "\r\nEND\r\n", false);
	pthread_mutex_lock(&lock);
	trickle = true;
	pthread_mutex_unlock(&lock);
	want(s, "trickle", -ETIMEDOUT);

	/* Each reply closes its connection: every fetch finds it closed. */
	script(head, PAGE, 'z', "\r\nEND\r\n", true);
	before = atomic_load(&accepted);
	for (int i = 0; i < 3; i++) {
		CHECK_RET(fetch0(s, "reconnect"), 0);
		CHECK(buf[0] == 'z' && buf[PAGE - 1] == 'z', "reconnect: data");
	}
	CHECK(atomic_load(&accepted) - before >= 3,
	      "reconnect: %u connections for 3 fetches",
	      atomic_load(&accepted) - before);
	printf("reconnect: ok\n");

	upager_store_close(s);
	return 0;
}

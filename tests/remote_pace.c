// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A page server with a stream rate has the kernel pace the stream's
 * segments (net_pace()), rather than let each run of 256 pages leave in
 * one burst and then sleep: over a network, such a burst waits in the
 * bottleneck's queue, and so does every urgent page sent behind it
 * (docs/BENCHMARKS.md, "Postcopy migration").  A raw client starts the
 * stream of a 4 MiB export served at 8 MB/s and times its bytes: the end
 * of the first run must arrive spread at about the rate, not at once.
 * The kernel sends a connection's first 10 segments unpaced (64 KiB each
 * on loopback), so the window timed starts after 704 KiB.  The times are
 * the kernel's, of each byte's arrival (SO_TIMESTAMPNS, read 16 KiB at a
 * time), so that a reader the scheduler holds back finds them all the
 * same.  A ratio in one run: that window's time over the whole stream's
 * (paced, about 320/4096 of it; in bursts, microseconds of half a second).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tremote.h"
#include "net/net.h"

#define NPAGES 1024u
#define RATE   (8u << 20)
#define WIN_LO (704u << 10) /* past the unpaced first segments */
#define WIN_HI (1u << 20)   /* the first run's end */

static uint8_t buf[NET_MSG_MAX];

/*
 * The kernel stamps arriving packets only once a worker has turned the
 * stamping on, after the first socket asked for it: until a datagram to
 * ourselves comes back stamped.  The socket stays open, so it stays on.
 */
static int stamps_on(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;

	CHECK(
	    fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
		!getsockname(fd, (struct sockaddr *)&a, &len) &&
		!setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)),
	    "a stamped UDP socket: %s", strerror(errno));
	for (int i = 0; i < 1000; i++) {
		char c = 0, ctl[CMSG_SPACE(sizeof(struct timespec))];
		struct iovec iov = {&c, 1};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl,
				    .msg_controllen = sizeof(ctl)};

		CHECK(sendto(fd, &c, 1, 0, (struct sockaddr *)&a, len) == 1 &&
			  recvmsg(fd, &mh, 0) == 1,
		      "a datagram to ourselves: %s", strerror(errno));
		if (CMSG_FIRSTHDR(&mh))
			return fd;
		usleep(10000);
	}
	FAIL("arriving packets are never stamped");
}

/* Up to 16 KiB of the stream into buf; *@ns: when the kernel got them. */
static ssize_t recv_stamped(int fd, uint64_t *ns)
{
	union {
		char b[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {buf, 16u << 10};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.b,
			    .msg_controllen = sizeof(ctl.b)};
	ssize_t k = recvmsg(fd, &mh, 0);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	struct timespec ts;

	if (k <= 0)
		return k;
	CHECK(cm && cm->cmsg_level == SOL_SOCKET &&
		  cm->cmsg_type == SCM_TIMESTAMPNS,
	      "no arrival time with %zd bytes", k);
	memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
	*ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return k;
}

int main(void)
{
	uint64_t total = (uint64_t)NPAGES * PG, got = 0, t0 = 0, t_lo = 0,
		 t_hi = 0, t = 0;
	struct upager_server *srv;
	struct upager_store *img;
	struct net_conn *c;
	struct net_addr a;
	const char *why;
	char spec[64];
	double ratio;
	int err, fd, one = 1, stamps;
	long n;

	t_tls = false;
	stamps = stamps_on();
	img = upager_store_mem_new(total, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	for (uint64_t i = 0; i < NPAGES; i++)
		t_fill((uint8_t *)upager_store_mem_data(img) + i * PG, PG, i);
	srv = t_serve(img, 0, RATE);

	snprintf(spec, sizeof(spec), "tcp:127.0.0.1:%u",
		 upager_server_port(srv));
	CHECK_RET(net_parse(spec, strlen(spec), &a), 0);
	fd = net_connect(&a, false, 10);
	CHECK(fd >= 0, "connect %s: %s", spec, strerror(-fd));
	c = net_conn_new(fd);
	CHECK(c, "out of memory");
	CHECK_RET(
	    net_send(c, buf, wire_hello(buf, 0, WIRE_ROLE_STREAM, 0, "img")),
	    0);
	n = net_read_msg(c, buf, &why);
	CHECK(n > 0, "WELCOME: %ld", n);
	CHECK(!setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)),
	      "SO_TIMESTAMPNS: %s", strerror(errno));
	CHECK_RET(net_send(c, buf, wire_start(buf, 0)), 0);

	/* Every page is data: the stream is 4 PAGES runs of 1 MiB. */
	while (got < total) {
		ssize_t k = recv_stamped(fd, &t);

		CHECK(k > 0, "recv after %llu bytes: %s",
		      (unsigned long long)got, k ? strerror(errno) : "EOF");
		if (!t0)
			t0 = t;
		got += (uint64_t)k;
		if (!t_lo && got >= WIN_LO)
			t_lo = t;
		if (!t_hi && got >= WIN_HI)
			t_hi = t;
	}
	ratio = (double)(t_hi - t_lo) / (double)(t - t0);
	printf("stream of %llu KiB at %u KiB/s: %.1f ms; its bytes %u-%u KiB "
	       "in %.2f ms (%.3f of it)\n",
	       (unsigned long long)(total >> 10), RATE >> 10,
	       (double)(t - t0) / 1e6, WIN_LO >> 10, WIN_HI >> 10,
	       (double)(t_hi - t_lo) / 1e6, ratio);
	CHECK(ratio > 0.003,
	      "the first run came in a burst (%.4f of the "
	      "stream's time)",
	      ratio);

	net_conn_free(c);
	close(stamps);
	upager_server_free(srv);
	upager_store_close(img);
	return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connections to one memcached server that a SIGBUS handler may use: the
 * memcached: store's fetch_signal() (src/store/memcached.c) for
 * in-thread regions, where libmemcached (which locks and allocates) must
 * not run.  Everything here but init and fini is async-signal-safe:
 * atomics, the monotonic clock and socket syscalls, no locks, no
 * allocation.  The store speaks memcached's text protocol over them.
 */
#ifndef UPAGER_STORE_MEMCACHED_SIG_H
#define UPAGER_STORE_MEMCACHED_SIG_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* A reply line longer than this is not memcached's (keys are 250). */
#define MCSIG_LINE_MAX 512

struct mcsig_conn {
	int fd;		       /* -1: not connected */
	unsigned int pos, len; /* unread bytes are buf[pos, len) */
	bool asked;	       /* a request sent, nothing read since */
	/* A reply to a get of one page fits: one read takes it. */
	char buf[4096 + MCSIG_LINE_MAX];
};

/* busy and retry_ns are touched from signal handlers: lock-free only. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics take a lock");

struct mcsig_server {
	struct sockaddr_in addr;
	bool resolved;	     /* the host had an IPv4 address at open */
	unsigned int nconns; /* at most 64: a bit each in busy */
	_Atomic uint64_t busy;
	_Atomic uint64_t retry_ns; /* after a failed connect: fail until then */
	struct mcsig_conn *conns;
};

/*
 * Resolve @host (IPv4) and make room for @nconns (1..64) connections,
 * none open yet.  A host that does not resolve is not an error here: its
 * fetches fail -EHOSTDOWN.  0 or -ENOMEM.  Not signal-safe.
 */
int mcsig_init(struct mcsig_server *sv, const char *host, in_port_t port,
	       unsigned int nconns);
/* Close what is open and free the room.  Not signal-safe. */
void mcsig_fini(struct mcsig_server *sv);

/* CLOCK_MONOTONIC nanoseconds @ms from now. */
uint64_t mcsig_deadline(unsigned int ms);

/* A free connection of @sv, waiting until @deadline; NULL after it. */
struct mcsig_conn *mcsig_claim(struct mcsig_server *sv, uint64_t deadline);
/* Give @c back; @clean false closes it (its stream is out of step). */
void mcsig_put(struct mcsig_server *sv, struct mcsig_conn *c, bool clean);

/*
 * Send @iov (@n entries, changed as it goes) on @c, connecting first
 * when it is not connected (TCP_NODELAY; a second of -EHOSTDOWN after a
 * connect failed, as libmemcached's retry timeout).  0, -ETIMEDOUT,
 * -EHOSTDOWN (refused, reset, closed, or did not resolve).
 */
int mcsig_send(struct mcsig_server *sv, struct mcsig_conn *c, struct iovec *iov,
	       int n, uint64_t deadline);
/*
 * The next reply line of @c without its "\r\n", NUL-terminated, in
 * *@line (valid until the next call).  0, -ETIMEDOUT, -EHOSTDOWN (the
 * server closed or reset), -EPROTO (a line longer than MCSIG_LINE_MAX).
 */
int mcsig_line(struct mcsig_conn *c, uint64_t deadline, char **line);
/*
 * The next @len bytes of @c into @dst, then the "\r\n" that ends a
 * value.  0, -ETIMEDOUT, -EHOSTDOWN, -EPROTO (no
 * "\r\n" after the data).
 */
int mcsig_data(struct mcsig_conn *c, uint64_t deadline, char *dst, size_t len);

#endif

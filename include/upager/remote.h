/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * upager remote pages: a page server that exports stores over the
 * network, and the remote: store that maps them (docs/PROTOCOL.md).
 *
 * Source side (a page server, or a postcopy migration source):
 *
 *   struct upager_server *srv = upager_server_new(&sp, &err);
 *   upager_server_export(srv, "img", upager_store_open("file:/img", &err));
 *   upager_server_start(srv);       // accept thread + a thread per client
 *   ...
 *   upager_server_free(srv);        // stops first; stores stay the caller's
 *
 * Destination side: a region over "remote:HOST:PORT/img" runs at once; a
 * fault sends an urgent request on its own connection while a background
 * stream installs every other page whether or not anyone touched it.  Map
 * such regions with readahead_max = (size_t)-1: the server already pushes
 * everything, and a read-ahead window would only turn pushed pages into
 * urgent requests.
 *
 *   struct upager_store *s = upager_store_open("remote:10.0.0.1:7070/img",
 *                                              &err);
 *   struct upager_map_params mp = { .size = sizeof(mp),
 *                                   .readahead_max = (size_t)-1 };
 *   char *p = upager_map(h, s, s->npages * 4096, &mp, &r, &err);
 *   upager_remote_wait_complete(s, -1);   // optional: every page is here
 *
 * Every int function returns 0 (or a count) or -errno; those returning a
 * pointer store -errno in *err (when err is not NULL) and return NULL.
 */
#ifndef UPAGER_REMOTE_H
#define UPAGER_REMOTE_H

#include <stddef.h>
#include <sched.h>
#include <stdint.h>

#include <upager/store.h>
#include <upager/upager.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* ---- the page server --------------------------------------------------- */

struct upager_server;

/* Called for events worth a line in a log: a client that sent garbage, a
 * store that failed.  From any of the server's threads. */
typedef void (*upager_server_log_fn)(void *arg, const char *msg);

/*
 * Copied by its size, as the kernel's copy_struct_from_user() does: a
 * caller built with an older, smaller struct gets the defaults for the
 * fields it lacks; a newer, larger one is accepted when the part this
 * library does not know is all zeros.
 */
struct upager_server_params {
	uint32_t size;	    /* sizeof(struct upager_server_params) */
	/*
	 * "tcp:HOST:PORT" (HOST a name or an address, "[::1]" for IPv6, ""
	 * or "*" for every interface; PORT 0 picks a free port) or
	 * "unix:PATH".  NULL: "tcp:127.0.0.1:0".
	 */
	const char *listen;
	/*
	 * Limit on the background stream of each session, in bytes per
	 * second of its messages (0: none).  Urgent answers are never
	 * limited.  For tests, and for a migration that must leave the link
	 * to other traffic and to its urgent pages: over TCP the kernel
	 * paces the stream's segments at an eighth over this rate
	 * (SO_MAX_PACING_RATE), so that no burst of it fills the
	 * bottleneck's queue.  TCP/IP headers come on top (about 5% with
	 * 1448-byte segments).
	 */
	uint64_t stream_rate;
	upager_server_log_fn log; /* NULL: silent */
	void *log_arg;
	/*
	 * The CPUs the background streams' sending threads run on (copied;
	 * NULL: any).  On a machine whose few CPUs the stream, the program
	 * and its urgent faults share (a migration over loopback, a small
	 * VM), a stream kept to one CPU leaves the others to the faults:
	 * on 2 CPUs an urgent page's p99 fell from 0.2-3 ms to 0.1-0.2 ms,
	 * the migration taking a fifth longer (docs/BENCHMARKS.md).  With
	 * the remote: store's stream_cpu= on the same CPU when both ends
	 * share a machine.  upager_server_new() fails -EINVAL when the
	 * process may run on none of them.
	 */
	const cpu_set_t *stream_cpus;
};

/*
 * Server statistics; like struct upager_remote_stats they start with their
 * size, since counters come with every feature of the protocol.  Fields
 * are only appended.
 */
struct upager_server_stats {
	/*
	 * In: sizeof(struct upager_server_stats) as the caller was built.
	 * Out: the bytes filled (an older library fills less; the rest of a
	 * newer caller's struct is zeroed).
	 */
	uint32_t size;
	uint64_t clients;	 /* connections accepted */
	uint64_t clients_open;	 /* connections open now */
	uint64_t sessions;	 /* stream sessions begun (reconnects too) */
	uint64_t pages_streamed; /* pages sent by background streams */
	uint64_t pages_urgent;	 /* pages sent in answer to REQUESTs */
	uint64_t pages_zero;	 /* of both, sent as ZERO runs (no data) */
	uint64_t requests;	 /* REQUESTs received */
	uint64_t bytes_sent;	 /* every byte written, headers included */
	uint64_t protocol_errors; /* messages refused (then ERROR, close) */
	/* connections refused in the TLS handshake (a wrong key, no TLS, a
	 * close or 10 s of silence before it ended) */
	uint64_t tls_refused;
};

/*
 * A server bound and listening on @p->listen (not yet accepting: see
 * upager_server_start()).  @p may be NULL for defaults.  Any thread.
 * NULL with *err = -EINVAL (malformed address, @p->stream_cpus none this
 * process may run on, or @p->size smaller than the size field), -E2BIG (@p is larger than this library's struct and
 * sets a field it does not know), -EADDRINUSE, -EACCES,
 * -ENOENT (a host name that does not resolve), -ENOMEM, or another
 * socket(2)/bind(2) error.
 */
struct upager_server *upager_server_new(const struct upager_server_params *p,
					int *err);
/*
 * The address the server is bound to, "tcp:ADDR:PORT" with the real port
 * when PORT 0 was asked, or "unix:PATH", as a NUL-terminated string in
 * @buf.  Returns its length, or -ENOSPC when @len is too small.
 */
int upager_server_address(struct upager_server *srv, char *buf, size_t len);
/* The TCP port the server is bound to (0 for a unix socket). */
unsigned int upager_server_port(struct upager_server *srv);
/*
 * Export @store under @name (1 to 255 bytes, no '/', ',' or NUL).  The
 * store must have a bounded size that is a whole number of pages; it
 * stays the caller's and must stay open until upager_server_free().  A
 * client naming no export gets the only one when there is exactly one.
 * Any thread, before or after start.  0, -EINVAL (bad name, unbounded or
 * empty store), -EEXIST (the name is taken), -ENOMEM.
 *
 * A live region of this process can be exported through
 * upager_store_mem_wrap(): that is a postcopy migration source.
 */
int upager_server_export(struct upager_server *srv, const char *name,
			 struct upager_store *store);
/*
 * Security (docs/PROTOCOL.md, "Security"): one of these two calls, before
 * upager_server_start(), which refuses to start without.
 *
 * upager_server_tls_psk(): every connection must complete a TLS 1.3
 * handshake with the pre-shared key in the file at @path before anything
 * else; pages travel encrypted and authenticated.  The file holds one line
 * "IDENTITY:HEXKEY" (IDENTITY 1 to 64 of [A-Za-z0-9._@-]; HEXKEY 32 to 128
 * hex digits, 16 to 64 bytes, e.g. from `openssl rand -hex 32`), must be a
 * regular file owned by this user or root, and neither group nor others
 * may have any access to it (mode 0600 or 0400).  A client with another
 * key, another identity or no TLS is refused with a log line saying why,
 * and counted in tls_refused.  0, -ENOENT, -EACCES (the file's owner or
 * mode), -EINVAL (@path NULL, or the format), -EBUSY (after start, or a
 * second call), -EIO (OpenSSL), -ENOMEM; the log callback is told what
 * was wrong with the file.
 *
 * upager_server_plaintext(): no TLS, anyone who can connect reads every
 * export; for loopback tests and benchmarks.  0, -EBUSY (after start, or
 * after a key).
 *
 * Any thread.
 */
int upager_server_tls_psk(struct upager_server *srv, const char *path);
int upager_server_plaintext(struct upager_server *srv);
/*
 * Start accepting: an accept thread and, per connection, a thread.  After
 * upager_server_stop() it binds the same address again.  Any thread but
 * the server's own.  0, -ENOKEY (neither a key nor plaintext was chosen),
 * -EALREADY, -errno of bind(2) or pthread_create().
 */
int upager_server_start(struct upager_server *srv);
/*
 * Stop accepting, close every connection (clients see a dropped link and
 * try to reconnect) and the listening socket, and join the threads.  Any
 * thread but the server's own; a stopped server is a no-op.  Returns 0.
 */
int upager_server_stop(struct upager_server *srv);
/* Stop, and free.  The exported stores are left open. */
void upager_server_free(struct upager_server *srv);
/*
 * A snapshot of the counters into @st, whose size field the caller sets.
 * 0, or -EINVAL (a size smaller than the size field).  Any thread.
 */
int upager_server_stats(struct upager_server *srv,
			struct upager_server_stats *st);

/*
 * Check the pre-shared key file at @path as upager_server_tls_psk() and
 * the remote: store's psk= option read it (format, owner, mode), for a
 * program that wants to say what is wrong before it starts.  0, or
 * -ENOENT, -EACCES, -EINVAL... with a reason in @why (@len bytes, may be
 * NULL).  Any thread.
 */
int upager_psk_check(const char *path, char *why, size_t len);

/* ---- the remote: store ------------------------------------------------- */

/*
 * Spec: "remote:HOST:PORT[/NAME][,OPTION...]" or
 * "remote:unix:PATH[/NAME][,OPTION...]".  For unix, PATH/NAME is read as a
 * socket PATH and an export NAME when PATH names a socket, else all of it
 * is the socket's path.  Options:
 *   psk=PATH          TLS 1.3 with the pre-shared key in the file PATH (no
 *                     ',' in it; the format and the rules of
 *                     upager_server_tls_psk()); the server must hold the
 *                     same key, or the connection is refused
 *   plaintext         no TLS: the pages travel in clear, unauthenticated
 *                     (loopback tests, benchmarks)
 *   deadline=SECONDS  a fault waits at most this long for its page, then
 *                     fails (-ETIMEDOUT: the engine poisons the page and
 *                     the faulting thread gets SIGBUS); 0 waits forever;
 *                     default 30
 *   csum              ask for checksummed PAGES (CAP_CSUM)
 *   stream_cpu=N      the background stream's receiver (which installs
 *                     the pushed pages) runs on CPU N only, leaving the
 *                     others to the program and its urgent faults (see
 *                     upager_server_params.stream_cpus); -EINVAL when
 *                     the process may not run there
 *
 * One of psk= and plaintext is required: open() fails with -ENOKEY
 * without either (-EINVAL with both).  A key file that cannot be used
 * fails open() as upager_psk_check() says; a server that refuses the key
 * fails it with -EKEYREJECTED, one that has none with -EPROTONOSUPPORT,
 * a TLS server asked in plaintext with -ENOKEY.
 *
 * open() connects both channels and learns the image size; attach() (by
 * upager_map()) starts the background stream, whose pages are installed
 * as they come.  Connections that drop are re-established with
 * exponential back-off (50 ms doubling to 2 s) and the stream resumes
 * where it was: no page is installed twice, and faults wait, never get
 * zeros.  Once every page has arrived and no fault waits, the
 * connections are closed: the region is ordinary memory.
 *
 * One region per store, covering the whole image (store_offset 0, length
 * npages * 4096), anonymous memory with 4 KiB fill units; attach()
 * refuses others with -EINVAL (-EBUSY for a second region).  Not
 * signal-safe (no in-thread mode).
 */

/* Buckets of upager_remote_stats.lat_fine. */
#define UPAGER_REMOTE_LAT_FINE 192

/*
 * Remote-store statistics.  They start with their size rather than end in
 * reserved space: counters come with every feature of the protocol, at a
 * pace no fixed reserve would follow.  Fields are only appended.
 */
struct upager_remote_stats {
	/*
	 * In: sizeof(struct upager_remote_stats) as the caller was built.
	 * Out: the bytes filled (an older library fills less; the rest of a
	 * newer caller's struct is zeroed).
	 */
	uint32_t size;
	uint64_t npages;	 /* pages in the image */
	uint64_t pages_received; /* distinct pages held, installed */
	uint64_t pages_pushed;	 /* of which arrived on the background stream */
	uint64_t pages_urgent;	 /* of which arrived as urgent answers */
	uint64_t pages_zero;	 /* of which arrived as ZERO runs */
	uint64_t duplicates;	 /* pages dropped: already held */
	uint64_t requests;	 /* REQUESTs sent (re-sent ones included) */
	uint64_t fetch_local;	 /* fetches served from pages already here */
	uint64_t timeouts;	 /* fetches failed by the deadline */
	uint64_t reconnects;	 /* sessions re-established after a drop */
	uint64_t protocol_errors; /* messages refused (bad checksum too) */
	uint64_t bytes_received; /* every byte read, headers included */
	/*
	 * Time from a fetch's REQUEST to the arrival of its last page: bucket
	 * i counts [2^(i-1), 2^i) µs, bucket 0 under 1 µs, as in
	 * struct upager_stats (upager_remote_percentile() reads it).
	 */
	uint64_t lat_hist[UPAGER_LAT_BUCKETS];
	/*
	 * Pages that arrived but could not be installed (that part of the
	 * region was unmapped or unregistered); each stays wanted.
	 */
	uint64_t install_errors;
	/*
	 * The times of lat_hist, finer: bucket i < 8 counts [i, i+1) µs;
	 * above, each power of two is cut in 8: bucket 8 + 8k + j counts
	 * [(8+j) << k, (9+j) << k) µs (12% wide), the last one all beyond.
	 * upager_remote_percentile() reads this one when it holds counts.
	 */
	uint64_t lat_fine[UPAGER_REMOTE_LAT_FINE];
	/*
	 * The shortest round trip seen on the urgent channel, in µs: its
	 * HELLO and WELCOME at a (re)connection (before the stream starts),
	 * or a one-page REQUEST and its answer.  The floor of an urgent
	 * answer; noise only lengthens a sample.  0 before the first.
	 */
	uint64_t rtt_us;
};

/*
 * Statistics of a remote: store into @st, whose size field the caller
 * sets.  0, or -EINVAL for another kind of store or a size smaller than
 * the size field.  Any thread.
 */
int upager_remote_stats(struct upager_store *s, struct upager_remote_stats *st);
/*
 * Percentile @p (0..100) of the urgent latency histogram, in µs: the upper
 * end of the bucket it falls in (lat_fine's when it holds counts, else
 * lat_hist's power of two).  0 when nothing was measured.
 */
double upager_remote_percentile(const struct upager_remote_stats *st, double p);
/*
 * Wait until every page of the image has arrived and is installed in the
 * attached region, at most @timeout_ms milliseconds (negative: no limit),
 * sleeping meanwhile.  Any thread but a handler worker.  0, -ETIMEDOUT,
 * -EINVAL (not a remote: store), -ENOTCONN (no region attached), or, once
 * every other page is in, the error of upager_region_install() for a
 * page that arrived but could not be installed (-ENOENT: that part of the
 * region is no longer mapped or registered; -ESRCH...).  Such a page is
 * not received and stays wanted: a fault on it asks the server for it
 * again, and a later call returns 0 once it is in.
 */
int upager_remote_wait_complete(struct upager_store *s, int timeout_ms);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif

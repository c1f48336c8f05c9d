/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the remote-pages tests share beyond harness.h: a page server on
 * 127.0.0.1 exporting one store as "img", a handler whose on_error counts
 * what it is told (timeouts apart), and a region over a remote: spec with
 * read-ahead off, as remote regions should be mapped.  Header-only, and
 * may be included with tstore.h (a gated store to export).
 *
 * Security: servers and specs use TLS with a key file this process
 * writes (t_psk()), unless t_tls is false (t_security(): a test whose
 * variant is "plain", or one about something else that talks plaintext).
 */
#ifndef UPAGER_TEST_TREMOTE_H
#define UPAGER_TEST_TREMOTE_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <upager/remote.h>
#include <upager/upager.h>

#include "harness.h"

#define PG 4096u

static atomic_int t_errors, t_timeouts;
static bool t_tls = true;
static char t_psk_file[64];

static void t_psk_unlink(void)
{
	unlink(t_psk_file);
}

/*
 * Write a key file "IDENTITY:HEXKEY" at @path (mode 0600) with @seed's
 * key.  For tests that need a second, wrong key.
 */
static inline void t_psk_write(const char *path, const char *ident,
			       uint64_t seed)
{
	FILE *f;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0, "key file %s: %s", path, strerror(errno));
	CHECK(fchmod(fd, 0600) == 0, "chmod %s", path);
	f = fdopen(fd, "w");
	CHECK(f, "fdopen");
	fprintf(f, "%s:", ident);
	for (int i = 0; i < 4; i++)
		fprintf(f, "%016llx",
			(unsigned long long)(seed * 0x9e3779b97f4a7c15ull +
					     (uint64_t)i * 0xbf58476d1ce4e5b9ull));
	fprintf(f, "\n");
	fclose(f);
}

/* This process's key file, written on first use, removed at exit. */
static inline const char *t_psk(void)
{
	if (!*t_psk_file) {
		snprintf(t_psk_file, sizeof(t_psk_file), "/tmp/upager-test-%d.psk",
			 (int)getpid());
		t_psk_write(t_psk_file, "test", (uint64_t)getpid());
		atexit(t_psk_unlink);
	}
	return t_psk_file;
}

/* argv[1] "tls" (or none) or "plain": which the test's peers speak. */
static inline void t_security(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "plain"))
		t_tls = false;
	else if (argc > 1 && strcmp(argv[1], "tls"))
		CHECK(0, "variant '%s': want tls or plain", argv[1]);
	printf("peers speak %s\n", t_tls ? "TLS" : "plaintext");
}

/*
 * "remote:127.0.0.1:PORT" + @tail (e.g. "/img,csum") + the security
 * option, into @buf.
 */
static inline const char *t_spec(char *buf, size_t len, unsigned int port,
				 const char *tail)
{
	int n;

	if (t_tls)
		n = snprintf(buf, len, "remote:127.0.0.1:%u%s,psk=%s", port,
			     tail, t_psk());
	else
		n = snprintf(buf, len, "remote:127.0.0.1:%u%s,plaintext", port,
			     tail);
	CHECK(n > 0 && (size_t)n < len, "spec too long");
	return buf;
}

/* Give @srv the test's key, or allow plaintext. */
static inline void t_secure(struct upager_server *srv)
{
	CHECK_RET(t_tls ? upager_server_tls_psk(srv, t_psk())
			: upager_server_plaintext(srv),
		  0);
}

static void t_count_error(void *arg, struct upager_region *r, uint64_t addr,
			  int err, const char *what)
{
	(void)arg;
	(void)r;
	fprintf(stderr, "on_error: %s at %#llx: %s\n", what,
		(unsigned long long)addr, strerror(-err));
	atomic_fetch_add(err == -ETIMEDOUT ? &t_timeouts : &t_errors, 1);
}

/* A started server on 127.0.0.1:@port (0: any) exporting @img as "img",
 * with @sp's other parameters. */
static inline struct upager_server *
t_serve_params(struct upager_store *img, unsigned int port,
	       struct upager_server_params *sp)
{
	struct upager_server *srv;
	char listen[64];
	int err;

	snprintf(listen, sizeof(listen), "tcp:127.0.0.1:%u", port);
	sp->listen = listen;
	srv = upager_server_new(sp, &err);
	CHECK(srv, "server on %s: %s", listen, strerror(-err));
	CHECK_RET(upager_server_export(srv, "img", img), 0);
	t_secure(srv);
	CHECK_RET(upager_server_start(srv), 0);
	return srv;
}

static inline struct upager_server *t_serve(struct upager_store *img,
					    unsigned int port, uint64_t rate)
{
	struct upager_server_params sp = { .size = sizeof(sp),
					   .stream_rate = rate };

	return t_serve_params(img, port, &sp);
}

/* A started handler reporting to t_count_error(). */
static inline struct upager_handler *t_handler(void)
{
	struct upager_handler_params hp = { .size = sizeof(hp),
					    .on_error = t_count_error };
	struct upager_handler *h;
	int err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	return h;
}

/* One line: what the server sent, and what the client kept of it. */
static inline void t_print_counts(const char *what,
				  const struct upager_server_stats *ss,
				  const struct upager_remote_stats *rst)
{
	printf("%s: server streamed %llu, urgent %llu, zero %llu; client "
	       "pushed %llu, urgent %llu, zero %llu, duplicates %llu\n",
	       what, (unsigned long long)ss->pages_streamed,
	       (unsigned long long)ss->pages_urgent,
	       (unsigned long long)ss->pages_zero,
	       (unsigned long long)rst->pages_pushed,
	       (unsigned long long)rst->pages_urgent,
	       (unsigned long long)rst->pages_zero,
	       (unsigned long long)rst->duplicates);
}

/* Open @spec and map all of it from @h, read-ahead off. */
static inline void *t_map_remote(struct upager_handler *h, const char *spec,
				 struct upager_store **s,
				 struct upager_region **r)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	void *p;
	int err;

	*s = upager_store_open(spec, &err);
	CHECK(*s, "open %s: %s", spec, strerror(-err));
	p = upager_map(h, *s, (size_t)(*s)->npages * PG, &mp, r, &err);
	CHECK(p, "map: %s", strerror(-err));
	return p;
}

/* Unmap @r, free @h, close @s, free @srv: a remote test's end. */
static inline void t_remote_done(struct upager_region *r,
				 struct upager_handler *h,
				 struct upager_store *s,
				 struct upager_server *srv)
{
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_server_free(srv);
}

#endif

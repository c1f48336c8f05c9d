/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the in-process manager tests share: a manager over tstore.h's
 * stores on a socket in a fresh directory, and client processes forked
 * before it exists (TSan forbids threads in a child of a threaded
 * process, and the manager starts threads) that attach once it listens.
 * Header-only, as tstore.h.
 */
#ifndef UPAGER_TEST_TMANAGER_H
#define UPAGER_TEST_TMANAGER_H

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <upager/manager.h>

#include "tstore.h"

#define TM_PG 4096ul

struct tm_client {
	pid_t pid;
	int go[2]; /* the parent writes a byte when the client may go on */
};

/* Attach @len bytes at @p to @export, retrying while nobody listens. */
static inline int tm_attach(const char *sock, const char *export, void *p,
			    size_t len)
{
	struct upager_attach_region r = { .addr = p, .len = len,
					  .name = export };
	struct upager_attach_result res = { .size = sizeof(res) };
	int ret = -ENOENT;

	for (int ms = 0; ms < 10000; ms += 10) {
		ret = upager_attach(sock, &r, 1, NULL, &res);
		if (ret != -ENOENT && ret != -ECONNREFUSED)
			break;
		t_sleep_ms(10);
	}
	CHECK(ret >= 0, "attach %s: %s (%s: %s)", export, strerror(-ret),
	      res.field, res.text);
	return ret;
}

/* A private anonymous range of @npages, untouched. */
static inline char *tm_map(size_t npages)
{
	char *p = mmap(NULL, npages * TM_PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	CHECK(p != MAP_FAILED, "mmap");
	return p;
}

/* Wait for the parent's byte. */
static inline void tm_wait_go(struct tm_client *c)
{
	char b;

	CHECK(read(c->go[0], &b, 1) == 1, "the parent is gone");
}

static inline void tm_go(struct tm_client *c)
{
	CHECK(write(c->go[1], "g", 1) == 1, "write");
}

/* Fork a client running @fn(@c, @arg); its exit status is fn's. */
static inline void tm_fork(struct tm_client *c,
			   int (*fn)(struct tm_client *c, void *arg), void *arg)
{
	CHECK(pipe(c->go) == 0, "pipe");
	fflush(stdout);
	fflush(stderr);
	c->pid = fork();
	CHECK(c->pid >= 0, "fork");
	if (c->pid == 0)
		_exit(fn(c, arg));
}

static inline void tm_wait_ok(struct tm_client *c, const char *what)
{
	int status;

	CHECK(t_wait_child(c->pid, 30000, &status) == 0 && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "%s failed (status %#x)", what, status);
}

/* A manager on @sock exporting each store of @st under @names. */
static inline struct upager_manager *tm_manager(const char *sock,
						const char *const *names,
						struct tstore **st, int n)
{
	struct upager_manager_params mp = { .size = sizeof(mp), .threads = 2 };
	struct upager_listen_params lp = { .size = sizeof(lp), .path = sock };
	struct upager_manager *m;
	int err;

	m = upager_manager_new(&mp, &err);
	CHECK(m, "manager: %s", strerror(-err));
	for (int i = 0; i < n; i++)
		CHECK_RET(upager_manager_export(m, names[i], &st[i]->s, NULL), 0);
	CHECK_RET(upager_manager_listen(m, &lp), 0);
	CHECK_RET(upager_manager_start(m), 0);
	return m;
}

#endif

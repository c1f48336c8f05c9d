/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the memcached tests share: Debian's memcached servers started on
 * free loopback ports (common/memcached_server.c, as the benchmark starts
 * them), stopped or killed one by one, and a look at one
 * server alone to tell which holds a page.  Header-only, so each test
 * program stays one file plus the harness.  A test exits 77 (skip) when
 * /usr/bin/memcached is not installed (tools/deps.sh installs it).
 */
#ifndef UPAGER_TEST_TMEMCACHED_H
#define UPAGER_TEST_TMEMCACHED_H

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <libmemcached/memcached.h>

#include <upager/memcached.h>

#include "harness.h"
#include "memcached_server.h"

#define TMC_MAX	 4
#define TMC_PAGE 4096u

struct tmc {
	pid_t owner; /* the test process: only it stops the servers */
	unsigned int n;
	pid_t pid[TMC_MAX];
	unsigned int port[TMC_MAX];
	char servers[256]; /* "127.0.0.1:P1,127.0.0.1:P2,..." */
};

/* Start server @i of @t (again, after tmc_kill()), on a new port. */
static inline void tmc_start_one(struct tmc *t, unsigned int i)
{
	int ret = mcsrv_start(256, &t->pid[i], &t->port[i]);

	CHECK(ret == 0, "memcached on a loopback port: %s", strerror(-ret));
}

static inline void tmc_list(struct tmc *t)
{
	size_t k = 0;

	t->servers[0] = 0;
	for (unsigned int i = 0; i < t->n; i++)
		k += (size_t)snprintf(t->servers + k, sizeof(t->servers) - k,
				      "%s127.0.0.1:%u", i ? "," : "",
				      t->port[i]);
}

static struct tmc *tmc_running;

static inline void tmc_stop(struct tmc *t);

/* A failed CHECK exits: its servers must not outlive it. */
static inline void tmc_at_exit(void)
{
	if (tmc_running && tmc_running->owner == getpid())
		tmc_stop(tmc_running);
}

/* @n servers; exits 77 when memcached is not installed. */
static inline void tmc_start(struct tmc *t, unsigned int n)
{
	if (access(MCSRV_BIN, X_OK)) {
		printf("SKIP: no %s (tools/deps.sh installs it)\n", MCSRV_BIN);
		exit(77);
	}
	memset(t, 0, sizeof(*t));
	t->owner = getpid();
	t->n = n;
	tmc_running = t;
	atexit(tmc_at_exit);
	for (unsigned int i = 0; i < n; i++)
		tmc_start_one(t, i);
	tmc_list(t);
}

/* Kill server @i at once (SIGKILL): its keys are gone with it. */
static inline void tmc_kill(struct tmc *t, unsigned int i)
{
	mcsrv_kill(t->pid[i]);
	t->pid[i] = 0;
}

static inline void tmc_stop(struct tmc *t)
{
	for (unsigned int i = 0; i < t->n; i++)
		if (t->pid[i] > 0)
			kill(t->pid[i], SIGKILL);
	for (unsigned int i = 0; i < t->n; i++)
		tmc_kill(t, i);
}

/*
 * stderr into a file between tmc_capture_begin() and tmc_capture_end(),
 * which returns what was written; if the test fails meanwhile, the exit
 * copies it to the real stderr, the FAIL line with it.
 */
static int tmc_cap_fd = -1, tmc_cap_saved = -1;

static inline void tmc_capture_dump(void)
{
	char b[4096];
	ssize_t n;
	off_t off = 0;

	if (tmc_cap_fd < 0)
		return;
	dup2(tmc_cap_saved, 2);
	while ((n = pread(tmc_cap_fd, b, sizeof(b), off)) > 0 &&
	       write(2, b, (size_t)n) == n)
		off += n;
}

static inline void tmc_capture_begin(void)
{
	static bool hooked;
	char path[256];

	snprintf(path, sizeof(path), "%s/upager-mc-stderr-%d", t_tmpdir(),
		 (int)getpid());
	tmc_cap_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	tmc_cap_saved = dup(2);
	CHECK(tmc_cap_fd >= 0 && tmc_cap_saved >= 0, "%s", path);
	unlink(path);
	if (!hooked)
		atexit(tmc_capture_dump);
	hooked = true;
	fflush(stderr);
	dup2(tmc_cap_fd, 2);
}

static inline char *tmc_capture_end(void)
{
	static char out[16384];
	ssize_t n;

	fflush(stderr);
	dup2(tmc_cap_saved, 2);
	close(tmc_cap_saved);
	n = pread(tmc_cap_fd, out, sizeof(out) - 1, 0);
	out[n > 0 ? n : 0] = 0;
	close(tmc_cap_fd);
	tmc_cap_fd = tmc_cap_saved = -1;
	return out;
}

/*
 * Stop server @i (SIGSTOP) and wait until every thread of it is stopped:
 * kill() returns before the signal has taken them all.
 */
static inline void tmc_pause(struct tmc *t, unsigned int i)
{
	char path[64];

	kill(t->pid[i], SIGSTOP);
	for (int tries = 0; tries < 5000; tries++) {
		bool all = true;
		DIR *d;
		struct dirent *e;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)t->pid[i]);
		d = opendir(path);
		CHECK(d, "%s", path);
		while ((e = readdir(d))) {
			char st[512], *p;
			FILE *f;

			if (e->d_name[0] == '.')
				continue;
			snprintf(st, sizeof(st), "%s/%s/stat", path, e->d_name);
			f = fopen(st, "r");
			if (!f)
				continue;
			p = fgets(st, sizeof(st), f) ? strrchr(st, ')') : NULL;
			fclose(f);
			if (p && p[2] != 'T' && p[2] != 't')
				all = false;
		}
		closedir(d);
		if (all)
			return;
		usleep(1000);
	}
	FAIL("server %u did not stop", i);
}

/* A client of server @i alone. */
static inline memcached_st *tmc_client(const struct tmc *t, unsigned int i)
{
	memcached_st *mc = memcached_create(NULL);

	CHECK(mc && memcached_server_add(mc, "127.0.0.1",
					 (in_port_t)t->port[i]) ==
			MEMCACHED_SUCCESS,
	      "a client of server %u", i);
	return mc;
}

/* The key of page @pg in namespace @ns (docs/MEMCACHED.md). */
static inline void tmc_key(char *key, size_t len, const char *ns, uint64_t pg)
{
	snprintf(key, len, "%s/%016llx", ns, (unsigned long long)pg);
}

/* Which server holds page @pg of @ns, or -1 (none: gone or dead). */
static inline int tmc_holder(const struct tmc *t, const char *ns, uint64_t pg)
{
	char key[256];
	int who = -1;

	tmc_key(key, sizeof(key), ns, pg);
	for (unsigned int i = 0; i < t->n; i++) {
		memcached_st *mc;
		memcached_return_t rc;

		if (t->pid[i] <= 0)
			continue;
		mc = tmc_client(t, i);
		rc = memcached_exist(mc, key, strlen(key));
		memcached_free(mc);
		if (rc == MEMCACHED_SUCCESS)
			who = (int)i;
	}
	return who;
}

/* @npages pages of test data: page i zeros when i % 11 == 5, else t_fill(i). */
static inline void tmc_data(char *data, uint64_t npages)
{
	for (uint64_t pg = 0; pg < npages; pg++) {
		if (pg % 11 == 5)
			memset(data + pg * TMC_PAGE, 0, TMC_PAGE);
		else
			t_fill(data + pg * TMC_PAGE, TMC_PAGE, pg);
	}
}

/* Push @npages pages of @data into "SERVERS/@ns@opts". */
static inline void tmc_push(const struct tmc *t, const char *ns,
			    const char *opts, const char *data, uint64_t npages)
{
	char spec[512], why[512];
	struct upager_store *s;
	int err;

	snprintf(spec, sizeof(spec), "%s/%s%s", t->servers, ns, opts);
	s = upager_memcached_create(spec, npages, why, sizeof(why), &err);
	CHECK(s, "create %s: %s", spec, why);
	for (uint64_t pg = 0; pg < npages; pg += 64) {
		size_t n = npages - pg < 64 ? npages - pg : 64;

		CHECK_RET(
		    upager_store_writeback(s, pg, data + pg * TMC_PAGE, n), 0);
	}
	CHECK_RET(upager_memcached_commit(s), 0);
	upager_store_close(s);
}

#endif

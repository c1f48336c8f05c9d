/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What every test program shares: verdicts (exit 0 pass, 1 fail, 77 skip),
 * the memory types a case runs on (argv[1]: anon, shmem, hugetlb), opening
 * a uffd with the features a case needs, and a fault-handler thread that
 * polls the uffd together with an eventfd for shutdown.
 */
#ifndef UPAGER_TEST_HARNESS_H
#define UPAGER_TEST_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <upager/ll.h>

#define T_SKIP 77

#define FAIL(...)                                                         \
	do {                                                              \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		exit(1);                                                  \
	} while (0)

#define SKIP(...)                                                         \
	do {                                                              \
		fprintf(stderr, "SKIP: ");                                \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		exit(T_SKIP);                                             \
	} while (0)

#define CHECK(cond, ...)                                                  \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,     \
				__LINE__, #cond);                         \
			fprintf(stderr, __VA_ARGS__);                     \
			fputc('\n', stderr);                              \
			exit(1);                                          \
		}                                                         \
	} while (0)

/* An ll call that must return @want (0, a count, or -errno). */
#define CHECK_RET(call, want)                                             \
	do {                                                              \
		long long got_ = (call);                                  \
		long long want_ = (want);                                 \
		if (got_ != want_)                                        \
			FAIL("%s returned %lld (%s), want %lld (%s)",     \
			     #call, got_, got_ < 0 ? strerror((int)-got_) \
						   : "ok",                \
			     want_, want_ < 0 ? strerror((int)-want_)     \
					      : "ok");                    \
	} while (0)

enum upager_ll_memtype t_memtype(int argc, char **argv);

/* A test area: @npages pages of the memory type, not yet populated. */
struct t_mem {
	enum upager_ll_memtype type;
	char *addr;
	size_t len;
	size_t page;  /* 4 KiB, or 2 MiB for hugetlb */
	int fd;	      /* memfd for shmem / hugetlb, -1 for anon */
	char *alias;  /* second shared mapping of fd (NULL for anon) */
};

/*
 * Map @npages of @type, with @private for a MAP_PRIVATE mapping of the
 * memfd (shmem/hugetlb).  hugetlb reserves the huge pages it needs in
 * /proc/sys/vm/nr_hugepages and restores the old value at exit; it skips
 * when they cannot be had.
 */
void t_mem_map(struct t_mem *m, enum upager_ll_memtype type, size_t npages);
void t_mem_unmap(struct t_mem *m);

/*
 * A uffd with the handshake done for @features; skips the test when the
 * kernel lacks one of them, naming it.  @flags as for upager_ll_open().
 */
int t_uffd(uint64_t features, unsigned int flags);
/* Skip unless registering @mode on @m grants every ioctl in @need. */
void t_need_ioctls(uint64_t granted, uint64_t need, const char *what);

/*
 * The features a memory type needs for MISSING faults (MISSING_SHMEM,
 * MISSING_HUGETLBFS), WP (WP_HUGETLBFS_SHMEM) or MINOR faults.
 */
uint64_t t_features_missing(enum upager_ll_memtype type);
uint64_t t_features_wp(enum upager_ll_memtype type);
uint64_t t_features_minor(enum upager_ll_memtype type);

/* A fault-handler thread: calls @fn for each event until stopped. */
struct t_handler;
typedef void (*t_event_fn)(struct t_handler *h,
			   const struct upager_ll_event *ev);
struct t_handler *t_handler_start(int uffd, t_event_fn fn, void *arg);
/* Stop (through the eventfd) and join; returns the number of events. */
unsigned long t_handler_stop(struct t_handler *h);
void *t_handler_arg(struct t_handler *h);
int t_handler_uffd(struct t_handler *h);

/* Fill a page with a pattern derived from its index; check it back. */
void t_fill(void *dst, size_t len, uint64_t seed);
bool t_verify(const void *src, size_t len, uint64_t seed);
/* @order: 0 .. @n-1 in a pseudo-random order that @seed fixes. */
void t_shuffle(size_t *order, size_t n, uint64_t seed);

/* Does reading @p raise SIGBUS?  (Runs the read under a handler.) */
bool t_read_sigbus(const volatile char *p);
/* Does writing @p raise SIGBUS? */
bool t_write_sigbus(volatile char *p);
/* Does reading @p raise SIGSEGV (nothing mapped there)? */
bool t_read_sigsegv(const volatile char *p);
/* Does writing @p raise SIGSEGV (a read-only mapping)? */
bool t_write_sigsegv(volatile char *p);

uint64_t t_now_ns(void);

/* Is thread @tid of this process asleep in kernel function @fn (its
 * /proc wchan)?  False when the kernel does not tell. */
bool t_wchan_is(pid_t tid, const char *fn);
/* How many of this process's threads are called @name; the id of one
 * of them in *@tid (may be NULL; 0 when none is). */
int t_threads_named(const char *name, pid_t *tid);

/*
 * Wait up to @ms for child @pid: 0 with its wait status in *@status, or
 * -ETIMEDOUT once it has been killed (SIGKILL) and reaped.
 */
int t_wait_child(pid_t pid, unsigned int ms, int *status);
/*
 * In a forked child, where stdio may be locked by a thread that did not
 * come along and atexit handlers are the parent's: t_child_fail() writes
 * "FAIL child: @msg" and _exit(1)s; after t_child_alarm(@secs) the child
 * fails so if it still runs @secs later (blocked in a fault no one
 * serves).
 */
void t_child_fail(const char *msg) __attribute__((noreturn));
void t_child_alarm(unsigned int secs);

/*
 * A watchdog for operations that must not block: @nslots slots, each
 * the start time of the operation it stands for (t_watch_begin()) or
 * idle (t_watch_end()).  A thread looks every 10 ms; once a slot has
 * been busy for more than @limit_ms it prints "FAIL watchdog: @what",
 * calls @diag (may be NULL) to print what the test knows, gives the
 * hugetlb pages back and ends the process with status 1.  It does not
 * exit(): the blocked thread never returns, and atexit handlers and
 * stdio locks are no place to wait for it.
 */
struct t_watch;
struct t_watch *t_watch_new(unsigned int nslots, unsigned int limit_ms,
			    const char *what, void (*diag)(void *),
			    void *arg);
void t_watch_begin(struct t_watch *w, unsigned int slot);
void t_watch_end(struct t_watch *w, unsigned int slot);
void t_watch_free(struct t_watch *w);
/*
 * A deadline for the whole program (or the phase it names): fail with
 * "@what" unless called again within @secs seconds; @secs 0 disarms.
 */
void t_deadline(unsigned int secs, const char *what);

/* Where tests make files: $TMPDIR, or /tmp. */
const char *t_tmpdir(void);
/*
 * Where a file opened with O_DIRECT works: t_tmpdir(), else /var/tmp
 * (tmpfs before 6.6 and some overlays refuse O_DIRECT); NULL when
 * neither does.
 */
const char *t_direct_dir(void);
/* Write @len bytes at offset 0 of @fd: page i is t_fill(seed + i), the
 * last one cut short at @len. */
void t_fill_file(int fd, size_t len, uint64_t seed);
/*
 * A temporary file in t_tmpdir() of @len bytes of that pattern, open for
 * reading and writing; its name goes to @path (@size bytes).  The caller
 * unlinks it.
 */
int t_tmp_file(char *path, size_t size, size_t len, uint64_t seed);
/*
 * The same with seed 0, already unlinked (a store opens it again as
 * /proc/self/fd/N), so that a failing test leaves nothing behind.
 */
int t_tmp_unlinked(size_t len);

/*
 * A part of a test this machine cannot run (a filesystem without holes,
 * a page cache that cannot be dropped): say why, and go on with the
 * rest.  t_end() then exits 77 naming each such part instead of passing,
 * so that a pass never stands for a check that did not run.
 */
void t_not_checked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* main()'s return once every check passed: 0, or exit 77 as above. */
int t_end(void);

/*
 * A test of named parts that need no memory type: argv[1] names one to
 * run alone, or none for every part in order (@n of them).  Returns
 * main()'s return; an unknown name fails.
 */
struct t_plain_part {
	const char *name;
	void (*run)(void);
};
int t_plain_parts(int argc, char **argv, const struct t_plain_part *parts,
		  size_t n);

/* The /proc/self/pagemap entry of @addr (@pm: that file, open). */
#define PM_UFFD_WP (1ull << 57) /* the page is uffd write-protected */
uint64_t t_pagemap_entry(int pm, const void *addr);

#endif

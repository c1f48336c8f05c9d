// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A store error in in-thread mode reaches the application as one SIGBUS
 * (issue 8, defect 4).  Before the fix the faulting thread looped in
 * upager's SIGBUS handler forever: the page is poisoned, the poisoned
 * page raises SIGBUS again with si_code BUS_ADRERR on this kernel (not
 * BUS_MCEERR_AR), upager took it for a missing page, fetched again,
 * failed again, and called on_error ~100,000 times a second.
 *
 * Each part runs in a child process, so that a spinning thread can be
 * killed and the parent can say what the child was doing (on_error and
 * handler counts are in shared memory); every part is run and reported.
 *
 * handler   the application installs a SIGBUS handler (siglongjmp out)
 *           before mapping an UPAGER_MAP_IN_THREAD region over a store
 *           whose page 5 fails with -EIO: upager chains to it.  Reading
 *           page 5 calls the application's handler once, with the
 *           address in page 5, and on_error a bounded number of times
 *           (ERR_MAX: once per failed fetch, not once per spin); the
 *           other pages read fine; reading page 5 again calls the
 *           handler once more (SIGBUS again: never zeros, never a spin).
 * default   the same region in a process with no SIGBUS handler of its
 *           own: reading page 5 kills it with SIGBUS, within 4 s.
 * truncate  a region over a file store whose file is cut short after
 *           the map: reading a page past the new end kills the process
 *           with SIGBUS, within 4 s, not zeros and not a spin.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 16
#define BAD 5
#define ERR_MAX 2
#define CHILD_MS 4000

/* What a child did, in memory the parent sees after killing it. */
struct shared {
	struct t_errors e;
	volatile sig_atomic_t calls;	/* the application's handler */
	void *volatile addr;		/* its last si_addr */
	volatile sig_atomic_t reached; /* the step the child got to */
};

static struct shared *sh;
static sigjmp_buf jmp;

static void app_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	sh->calls++;
	sh->addr = si->si_addr;
	siglongjmp(jmp, 1);
}

static struct upager_handler *handler(void)
{
	return t_upager_handler(1, t_on_error, &sh->e);
}

static char *map_inthread(struct upager_handler *h, struct upager_store *s,
			  struct upager_region **r)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.flags = UPAGER_MAP_IN_THREAD };
	int err;
	char *p = upager_map(h, s, NPAGES * PG, &mp, r, &err);

	CHECK(p, "map: %s", strerror(-err));
	return p;
}

/* A store of NPAGES test pages whose page BAD fails; in-thread capable. */
static struct tstore *bad_store(void)
{
	struct tstore *t = tstore_open(NPAGES);

	t->bad = BAD;
	/* Its fetch is atomics, nanosleep and t_fill: async-signal-safe. */
	t->s.flags |= UPAGER_STORE_SIGNAL_SAFE;
	return t;
}

/* Read byte @off of @bad: the application's handler must jump out. */
static void read_bad(const char *bad, size_t off, const char *what)
{
	if (!sigsetjmp(jmp, 1)) {
		volatile char c = bad[off];

		(void)c;
		FAIL("%s returned (%s)", what,
		     t_verify(bad, PG, BAD) ? "its data?" : "zeros or junk");
	}
}

static void part_handler(void)
{
	struct sigaction sa = { .sa_sigaction = app_sigbus,
				.sa_flags = SA_SIGINFO };
	struct upager_handler *h;
	struct upager_region *r;
	struct tstore *t;
	char *p, *bad;
	unsigned int errs;

	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGBUS, &sa, NULL) == 0, "sigaction: %s",
	      strerror(errno));
	h = handler();
	t = bad_store();
	p = map_inthread(h, &t->s, &r);
	bad = p + BAD * PG;
	for (size_t i = 0; i < BAD; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
	CHECK(sh->calls == 0, "the application's handler ran for a good page");

	sh->reached = 1;
	read_bad(bad, 100, "reading the failed page");
	sh->reached = 2;
	errs = atomic_load(&sh->e.calls);
	CHECK(sh->calls == 1, "the application's handler ran %d times",
	      (int)sh->calls);
	CHECK(sh->addr >= (void *)bad && sh->addr < (void *)(bad + PG),
	      "si_addr %p, the failed page is %p", sh->addr, (void *)bad);
	CHECK(errs >= 1 && errs <= ERR_MAX,
	      "on_error called %u times for one access", errs);
	CHECK(atomic_load(&sh->e.err) == -EIO && atomic_load(&sh->e.r) == r,
	      "on_error(%p, %d), want (%p, -EIO)",
	      (void *)atomic_load(&sh->e.r), atomic_load(&sh->e.err),
	      (void *)r);
	for (size_t i = BAD + 1; i < NPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);

	sh->reached = 3;
	read_bad(bad, 0, "reading the failed page again");
	CHECK(sh->calls == 2, "the second access: the handler ran %d times",
	      (int)sh->calls);
	CHECK(atomic_load(&sh->e.calls) <= 2 * ERR_MAX,
	      "on_error called %u times for two accesses",
	      atomic_load(&sh->e.calls));
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(&t->s);
}

/* Read @bad, which the store cannot give: the process dies of SIGBUS. */
static void die_reading(const char *bad)
{
	volatile char c;

	sh->reached = 1;
	c = bad[0];
	(void)c;
	sh->reached = 2;
	FAIL("reading the failed page returned (%s)",
	     *(const uint64_t *)bad ? "junk" : "zeros");
}

static void part_default(void)
{
	struct upager_handler *h = handler();
	struct tstore *t = bad_store();
	struct upager_region *r;
	char *p = map_inthread(h, &t->s, &r);

	CHECK(t_verify(p, PG, 0), "page 0");
	die_reading(p + BAD * PG);
}

static void part_truncate(void)
{
	struct upager_handler *h = handler();
	struct upager_store *s;
	struct upager_region *r;
	char path[256], spec[300];
	int fd = t_tmp_file(path, sizeof(path), NPAGES * PG, 0), err;
	char *p;

	snprintf(spec, sizeof(spec), "file:%s", path);
	s = upager_store_open(spec, &err);
	unlink(path);
	CHECK(s, "open %s: %s", spec, strerror(-err));
	p = map_inthread(h, s, &r);
	CHECK(t_verify(p, PG, 0), "page 0");
	CHECK(ftruncate(fd, 4 * PG) == 0, "ftruncate: %s", strerror(errno));
	die_reading(p + 10 * PG);
}

/* Run @fn in a child; say what went wrong; true when it did. */
static bool run(const char *name, void (*fn)(void), int want_sig)
{
	int status;
	pid_t pid;

	memset(sh, 0, sizeof(*sh));
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		fn();
		exit(0);
	}
	if (t_wait_child(pid, CHILD_MS, &status) < 0) {
		fprintf(stderr,
			"FAIL %s: no outcome within %d s, killed (got to step "
			"%d): on_error called %u times, the application's "
			"SIGBUS handler %d times: the thread spins in "
			"upager's SIGBUS handler\n",
			name, CHILD_MS / 1000, (int)sh->reached,
			atomic_load(&sh->e.calls), (int)sh->calls);
		return true;
	}
	if (want_sig && WIFSIGNALED(status) && WTERMSIG(status) == want_sig) {
		if (atomic_load(&sh->e.calls) <= ERR_MAX) {
			fprintf(stderr, "%s: killed by %s as it should\n",
				name, strsignal(want_sig));
			return false;
		}
		fprintf(stderr, "FAIL %s: on_error called %u times\n", name,
			atomic_load(&sh->e.calls));
		return true;
	}
	if (!want_sig && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		fprintf(stderr, "%s: passed\n", name);
		return false;
	}
	fprintf(stderr, "FAIL %s: child %s %d%s\n", name,
		WIFSIGNALED(status) ? "killed by signal" : "exited",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		want_sig ? ", want death by SIGBUS" : "");
	return true;
}

int main(int argc, char **argv)
{
	bool failed = false;

	if (t_memtype(argc, argv) != UPAGER_LL_MEM_ANON)
		SKIP("in-thread store errors are tested on anon");
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED, "mmap: %s", strerror(errno));
	failed |= run("handler", part_handler, 0);
	failed |= run("default", part_default, SIGBUS);
	failed |= run("truncate", part_truncate, SIGBUS);
	return failed;
}

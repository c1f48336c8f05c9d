// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A forked child never reads zeros it should not (issue 8, defect 1).
 * Before the fix a child's copy of a region was an ordinary mapping: the
 * pages the parent had were copied, and every other page read as zeros.
 *
 * A parent maps two regions of the variant's memory type, one over a
 * mem store and one over a file store (a patterned temporary file),
 * reads some units and writes new data over others, leaves the rest
 * untouched (and, with the default fault-around, absent), then forks; the
 * child forks again at once.  Every process then reads every byte of
 * every page:
 *
 * anon, shmem, hugetlb  worker-mode regions, as root (EVENT_FORK is
 *            available, and followed by default): every page holds what
 *            the parent's did at the fork, the parent's writes or the
 *            store's data, in the child and the grandchild alike.
 *            The same runs again in a subprocess that has become
 *            nobody before creating its handler (EVENT_FORK needs
 *            CAP_SYS_PTRACE there, so the engine falls back to
 *            MADV_DONTFORK): the children then get for each page either
 *            its right data or SIGSEGV, never zeros or other data.
 * inthread   one anon UPAGER_MAP_IN_THREAD region over a mem store, which
 *            is never inherited: in the child and the grandchild every
 *            page raises SIGSEGV.
 *
 * The children report by exit status and a line on stderr, and _exit():
 * exit() would run the parent's atexit handlers (hugetlb_restore()).
 * argv[2] may be "root" or "nobody" to run one scene alone.
 */
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define HUGE (2u << 20)
#define MEM_SEED (1ull << 20)
#define FILE_SEED (2ull << 20)
#define WRITE_SEED (3ull << 20)
#define CHILD_S 5
#define NOBODY 65534

/* What the children of a scene must see of each page. */
enum expect {
	SAME,	   /* the parent's data */
	SEGV,	   /* SIGSEGV: not inherited */
	SAME_SEGV, /* either */
};

struct area {
	const char *name;
	struct upager_region *r;
	char *p;
	size_t npages; /* 4 KiB pages */
	uint64_t base;	/* the store's page i holds base + i */
	uint64_t *seed; /* what page i holds at the fork */
};

struct scene {
	enum upager_memtype type;
	bool inthread;
	size_t unit, nunits;
	int file_fd;	  /* the file store's file, unlinked */
	struct upager_handler *h;
	struct upager_store *stores[2];
	struct area areas[2];
	unsigned int nareas;
};

static const char *const level_name[] = { "parent", "child",
					  "grandchild" };
static int level;

static void child_fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

/* A failure in a forked process: no stdio locks, no atexit handlers. */
static void child_fail(const char *fmt, ...)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "FAIL %s (pid %d): ",
			 level_name[level], (int)getpid());
	va_list ap;

	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(2, msg, (size_t)n) < 0)
		_exit(1);
	_exit(1);
}

static void on_alarm(int sig)
{
	(void)sig;
	child_fail("no result within %d s: blocked in a fault?", CHILD_S);
}

static bool zeros(const char *p)
{
	for (size_t i = 0; i < PG; i++)
		if (p[i])
			return false;
	return true;
}

static const char *describe(const struct area *a, size_t i)
{
	const char *pg = a->p + i * PG;

	if (zeros(pg))
		return "zeros";
	if (t_verify(pg, PG, a->base + i))
		return "the store's data";
	return "other data";
}

/* Every byte of every page, as @e says; in a child, fail by _exit. */
static void check_pages(const struct scene *sc, enum expect e)
{
	for (unsigned int k = 0; k < sc->nareas; k++) {
		const struct area *a = &sc->areas[k];

		for (size_t i = 0; i < a->npages; i++) {
			const char *pg = a->p + i * PG;
			bool want_store = a->seed[i] == a->base + i;

			if (level && t_read_sigsegv(pg)) {
				if (e == SAME)
					child_fail("%s region, page %zu: "
						   "SIGSEGV",
						   a->name, i);
				continue;
			}
			if (e == SEGV)
				child_fail("%s region, page %zu: readable, "
					   "holds %s; want SIGSEGV",
					   a->name, i, describe(a, i));
			if (t_verify(pg, PG, a->seed[i]))
				continue;
			if (level)
				child_fail("%s region, page %zu: %s, want %s",
					   a->name, i, describe(a, i),
					   want_store ? "the store's data"
						      : "the parent's write");
			FAIL("%s region, page %zu: %s, want %s", a->name, i,
			     describe(a, i),
			     want_store ? "the store's data"
					: "the parent's write");
		}
	}
}

/* Child and grandchild: the grandchild is forked before anything is read. */
static void child(const struct scene *sc, enum expect e)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	int status;
	pid_t pid;

	level++;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	alarm(CHILD_S);
	pid = level < 2 ? fork() : -2;
	if (pid == -1)
		child_fail("fork: %s", strerror(errno));
	if (pid == 0) {
		child(sc, e);
		_exit(0);
	}
	check_pages(sc, e);
	if (pid < 0)
		return;
	if (waitpid(pid, &status, 0) != pid)
		child_fail("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		child_fail("the grandchild %s %d",
			   WIFSIGNALED(status) ? "was killed by signal"
					       : "exited",
			   WIFSIGNALED(status) ? WTERMSIG(status)
					       : WEXITSTATUS(status));
}

static void add_area(struct scene *sc, const char *name, const char *spec,
		     uint64_t base)
{
	struct upager_map_params mp = {
		.size = sizeof(mp),
		.memtype = sc->type,
		.flags = sc->inthread ? UPAGER_MAP_IN_THREAD : 0,
	};
	struct area *a = &sc->areas[sc->nareas];
	struct upager_store *s;
	size_t len = sc->unit * sc->nunits;
	int err;

	s = upager_store_open(spec, &err);
	CHECK(s, "open %s: %s", spec, strerror(-err));
	if (base == MEM_SEED)
		for (size_t i = 0; i < len / PG; i++)
			t_fill((char *)upager_store_mem_data(s) + i * PG, PG,
			       base + i);
	a->name = name;
	a->base = base;
	a->npages = len / PG;
	a->seed = malloc(a->npages * sizeof(*a->seed));
	CHECK(a->seed, "malloc");
	for (size_t i = 0; i < a->npages; i++)
		a->seed[i] = base + i;
	a->p = upager_map(sc->h, s, len, &mp, &a->r, &err);
	CHECK(a->p, "map %s: %s", name, strerror(-err));
	sc->stores[sc->nareas++] = s;
}

/* Read unit @u (the store's data), or write new data over all of it. */
static void touch(struct area *a, size_t unit, size_t u, bool wr)
{
	for (size_t i = u * unit / PG; i < (u + 1) * unit / PG; i++) {
		if (wr) {
			a->seed[i] = WRITE_SEED + a->base + i;
			t_fill(a->p + i * PG, PG, a->seed[i]);
		} else {
			CHECK(t_verify(a->p + i * PG, PG, a->seed[i]),
			      "%s region, page %zu before the fork: %s",
			      a->name, i, describe(a, i));
		}
	}
}

/*
 * Map, touch, fork, check everywhere.  4 KiB units: 16 fault-around
 * blocks of 16 units; one unit read in blocks 0, 4, 8, 12, one written in
 * blocks 1, 5, 9, 13 (far apart: no read-ahead stream), blocks 2-3, 6-7,
 * ... left absent.  2 MiB units: unit 1 written, then unit 0 read (in
 * that order, so no stream), units 2 and 3 absent.
 */
static void scene_run(struct scene *sc, enum expect e)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 2 };
	char spec[300];
	int err, status;
	pid_t pid;

	sc->unit = sc->type == UPAGER_MEM_HUGETLB ? HUGE : PG;
	sc->nunits = sc->type == UPAGER_MEM_HUGETLB ? 4 : 256;
	/* Not t_upager_handler(): nobody may lack a uffd, a skip. */
	sc->h = upager_handler_new(&hp, &err);
	if (!sc->h && geteuid() != 0)
		SKIP("uid %d cannot open a userfaultfd: %s", (int)geteuid(),
		     strerror(-err));
	CHECK(sc->h, "handler: %s", strerror(-err));
	snprintf(spec, sizeof(spec), "mem:%zu", sc->unit * sc->nunits);
	add_area(sc, "mem", spec, MEM_SEED);
	if (!sc->inthread) {
		snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d",
			 sc->file_fd);
		add_area(sc, "file", spec, FILE_SEED);
	}
	CHECK_RET(upager_handler_start(sc->h), 0);
	for (unsigned int k = 0; k < sc->nareas; k++) {
		struct area *a = &sc->areas[k];

		if (sc->unit == HUGE) {
			touch(a, sc->unit, 1, true);
			touch(a, sc->unit, 0, false);
			continue;
		}
		for (size_t b = 0; b < 16; b++) {
			if (b % 4 == 0)
				touch(a, sc->unit, 16 * b + 3, false);
			else if (b % 4 == 1)
				touch(a, sc->unit, 16 * b + 5, true);
		}
	}
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		child(sc, e);
		_exit(0);
	}
	check_pages(sc, SAME);
	CHECK(t_wait_child(pid, (CHILD_S + 1) * 1000, &status) == 0,
	      "the child did not finish in %d s", CHILD_S + 1);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child %s %d", WIFSIGNALED(status) ? "was killed by signal"
						     : "exited",
	      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	check_pages(sc, SAME);
	for (unsigned int k = 0; k < sc->nareas; k++) {
		CHECK_RET(upager_unmap(sc->areas[k].r), 0);
		free(sc->areas[k].seed);
	}
	upager_handler_free(sc->h);
	for (unsigned int k = 0; k < sc->nareas; k++)
		upager_store_close(sc->stores[k]);
}

/* The worker-mode scene as nobody, in a subprocess. */
/*
 * The scene as nobody runs in a fresh program (this one, exec'd after
 * the privileges are dropped): a process that forked while it had
 * threads must not start new ones under TSan, and an exec starts over.
 */
static void as_nobody(struct scene *sc, const char *type)
{
	char fd[16];
	int status;
	pid_t pid;

	fflush(stderr);
	snprintf(fd, sizeof(fd), "%d", sc->file_fd);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		CHECK(setgroups(0, NULL) == 0 &&
			      setresgid(NOBODY, NOBODY, NOBODY) == 0 &&
			      setresuid(NOBODY, NOBODY, NOBODY) == 0,
		      "becoming nobody: %s", strerror(errno));
		execl("/proc/self/exe", "fork", type, "as-nobody", fd,
		      (char *)NULL);
		FAIL("exec: %s", strerror(errno));
	}
	CHECK(t_wait_child(pid, (CHILD_S + 3) * 1000, &status) == 0,
	      "as nobody: the scene did not finish in %d s", CHILD_S + 3);
	if (WIFEXITED(status) && WEXITSTATUS(status) == T_SKIP) {
		fprintf(stderr, "note: the scene as nobody was skipped\n");
		return;
	}
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "as nobody: the scene %s %d",
	      WIFSIGNALED(status) ? "was killed by signal" : "failed, exit",
	      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

int main(int argc, char **argv)
{
	const char *part = argc > 2 ? argv[2] : NULL;
	struct scene sc = { 0 };
	bool root = geteuid() == 0;
	char path[256];

	t_deadline(60, "fork did not finish in 60 s");
	if (argc > 1 && !strcmp(argv[1], "inthread")) {
		sc.inthread = true;
		scene_run(&sc, SEGV);
		return 0;
	}
	sc.type = t_upager_memtype(argc, argv, true);
	if (part && !strcmp(part, "as-nobody") && argc > 3) {
		sc.file_fd = atoi(argv[3]);
		scene_run(&sc, SAME_SEGV);
		return 0;
	}
	if (sc.type == UPAGER_MEM_HUGETLB) {
		struct t_mem m; /* reserves the pages, restored at exit */

		/*
		 * 8 for the parent's regions (reserved at mmap), 4 more
		 * for each child's copies of the absent units (private
		 * hugetlb pages beyond the parent's reservation), slack.
		 */
		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, 20);
		t_mem_unmap(&m);
	}
	sc.file_fd = t_tmp_file(path, sizeof(path), 4 * HUGE, FILE_SEED);
	unlink(path);
	/* nobody opens it again, through /proc/self/fd. */
	CHECK(fchmod(sc.file_fd, 0644) == 0, "fchmod: %s", strerror(errno));
	/* As root EVENT_FORK is there: the children see every byte. */
	if (!part || !strcmp(part, "root"))
		scene_run(&sc, root ? SAME : SAME_SEGV);
	if (root && (!part || !strcmp(part, "nobody"))) {
		struct scene nb = { .type = sc.type, .file_fd = sc.file_fd };

		as_nobody(&nb, argv[1]);
	}
	close(sc.file_fd);
	t_deadline(0, NULL);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sysfs.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21 << 26)
#endif

enum upager_ll_memtype t_memtype(int argc, char **argv)
{
	if (argc < 2)
		return UPAGER_LL_MEM_ANON;
	for (int t = 0; t < UPAGER_LL_MEM_COUNT; t++)
		if (!strcmp(argv[1], upager_ll_memtype_name(t)))
			return (enum upager_ll_memtype)t;
	fprintf(stderr, "unknown memory type '%s' (anon, shmem, hugetlb)\n",
		argv[1]);
	exit(2);
}

/* Make sure @n unpromised 2 MiB pages exist (given back at exit). */
static void hugetlb_need(size_t n)
{
	int ret = hugetlb_reserve(n);

	if (ret == -ENOTSUP)
		SKIP("no 2 MiB hugetlb support");
	if (ret < 0)
		SKIP("cannot reserve %zu hugetlb pages (need root and memory)",
		     n);
}

void t_mem_map(struct t_mem *m, enum upager_ll_memtype type, size_t npages)
{
	int prot = PROT_READ | PROT_WRITE;

	memset(m, 0, sizeof(*m));
	m->type = type;
	m->fd = -1;
	m->page = type == UPAGER_LL_MEM_HUGETLB ? 2u << 20 : 4096;
	m->len = npages * m->page;
	if (type == UPAGER_LL_MEM_ANON) {
		m->addr = mmap(NULL, m->len, prot, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);
		CHECK(m->addr != MAP_FAILED, "mmap: %s", strerror(errno));
		return;
	}
	if (type == UPAGER_LL_MEM_HUGETLB) {
		/* The area and its alias share pages: npages is enough. */
		hugetlb_need(npages);
		m->fd = memfd_create("t-hugetlb",
				     MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	} else {
		m->fd = memfd_create("t-shmem", MFD_CLOEXEC);
	}
	CHECK(m->fd >= 0, "memfd_create: %s", strerror(errno));
	CHECK(ftruncate(m->fd, (off_t)m->len) == 0, "ftruncate: %s",
	      strerror(errno));
	m->addr = mmap(NULL, m->len, prot, MAP_SHARED, m->fd, 0);
	CHECK(m->addr != MAP_FAILED, "mmap: %s", strerror(errno));
	m->alias = mmap(NULL, m->len, prot, MAP_SHARED, m->fd, 0);
	CHECK(m->alias != MAP_FAILED, "mmap alias: %s", strerror(errno));
}

void t_mem_unmap(struct t_mem *m)
{
	if (m->addr)
		munmap(m->addr, m->len);
	if (m->alias)
		munmap(m->alias, m->len);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

int t_uffd(uint64_t features, unsigned int flags)
{
	struct upager_ll_api_info info;
	int fd = upager_ll_open(flags, NULL);
	int ret;

	if (fd < 0)
		SKIP("userfaultfd unavailable: %s", strerror(-fd));
	ret = upager_ll_api(fd, features, &info);
	if (ret == -EOPNOTSUPP) {
		char names[256];

		upager_ll_feature_list(info.missing, names, sizeof(names));
		SKIP("kernel lacks UFFD_FEATURE_%s", names);
	}
	CHECK_RET(ret, 0);
	return fd;
}

void t_need_ioctls(uint64_t granted, uint64_t need, const char *what)
{
	if ((granted & need) != need)
		SKIP("%s: the kernel does not grant the ioctls needed here",
		     what);
}

uint64_t t_features_missing(enum upager_ll_memtype type)
{
	switch (type) {
	case UPAGER_LL_MEM_SHMEM:
		return UFFD_FEATURE_MISSING_SHMEM;
	case UPAGER_LL_MEM_HUGETLB:
		return UFFD_FEATURE_MISSING_HUGETLBFS;
	default:
		return 0;
	}
}

uint64_t t_features_wp(enum upager_ll_memtype type)
{
	uint64_t f = UFFD_FEATURE_PAGEFAULT_FLAG_WP;

	if (type != UPAGER_LL_MEM_ANON)
		f |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	return f | t_features_missing(type);
}

uint64_t t_features_minor(enum upager_ll_memtype type)
{
	switch (type) {
	case UPAGER_LL_MEM_SHMEM:
		return UFFD_FEATURE_MINOR_SHMEM;
	case UPAGER_LL_MEM_HUGETLB:
		return UFFD_FEATURE_MINOR_HUGETLBFS;
	default:
		SKIP("MINOR faults need shmem or hugetlb memory");
	}
}

struct t_handler {
	int uffd;
	int stopfd;
	t_event_fn fn;
	void *arg;
	unsigned long events;
	pthread_t thread;
};

static void *handler_main(void *p)
{
	struct t_handler *h = p;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = h->uffd, .events = POLLIN },
					 { .fd = h->stopfd, .events = POLLIN } };
		struct upager_ll_event evs[16];
		int n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			FAIL("poll: %s", strerror(errno));
		}
		if (pfd[1].revents)
			return NULL;
		if (pfd[0].revents & (POLLERR | POLLHUP))
			FAIL("uffd poll: revents %#x", pfd[0].revents);
		n = upager_ll_read_events(h->uffd, evs, 16);
		if (n == -EAGAIN)
			continue;
		CHECK(n > 0, "read events: %s", strerror(-n));
		for (int i = 0; i < n; i++) {
			__atomic_add_fetch(&h->events, 1, __ATOMIC_RELAXED);
			h->fn(h, &evs[i]);
		}
	}
}

/*
 * A thread running @fn, which polls *@stopfd (an eventfd) and returns
 * once stoppable_stop() makes it readable: t_handler and t_watch.
 */
static void stoppable_start(pthread_t *t, void *(*fn)(void *), void *arg,
			    int *stopfd)
{
	*stopfd = eventfd(0, EFD_CLOEXEC);
	CHECK(*stopfd >= 0, "eventfd: %s", strerror(errno));
	CHECK(pthread_create(t, NULL, fn, arg) == 0, "pthread_create");
}

static void stoppable_stop(pthread_t t, int stopfd)
{
	uint64_t one = 1;

	CHECK(write(stopfd, &one, sizeof(one)) == sizeof(one), "eventfd");
	pthread_join(t, NULL);
	close(stopfd);
}

struct t_handler *t_handler_start(int uffd, t_event_fn fn, void *arg)
{
	struct t_handler *h = calloc(1, sizeof(*h));

	CHECK(h != NULL, "calloc");
	/* poll(2) on a blocking uffd reports POLLERR, by design. */
	CHECK(fcntl(uffd, F_SETFL, fcntl(uffd, F_GETFL) | O_NONBLOCK) == 0,
	      "fcntl: %s", strerror(errno));
	h->uffd = uffd;
	h->fn = fn;
	h->arg = arg;
	stoppable_start(&h->thread, handler_main, h, &h->stopfd);
	return h;
}

unsigned long t_handler_stop(struct t_handler *h)
{
	unsigned long n;

	stoppable_stop(h->thread, h->stopfd);
	n = h->events;
	free(h);
	return n;
}

void *t_handler_arg(struct t_handler *h)
{
	return h->arg;
}

int t_handler_uffd(struct t_handler *h)
{
	return h->uffd;
}

/* splitmix64: a cheap pattern that differs in every word of every page. */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void t_fill(void *dst, size_t len, uint64_t seed)
{
	uint64_t *w = dst;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = mix(seed * 0x100000001b3ull + i);
}

void t_shuffle(size_t *order, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;

	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n ? n - 1 : 0; i > 0; i--) {
		size_t j, tmp;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = (size_t)(x % (i + 1));
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
}

bool t_verify(const void *src, size_t len, uint64_t seed)
{
	const uint64_t *w = src;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != mix(seed * 0x100000001b3ull + i))
			return false;
	return true;
}

static __thread sigjmp_buf fault_jmp;

static void on_fault(int sig)
{
	(void)sig;
	siglongjmp(fault_jmp, 1);
}

/* Does the access to @p raise @sig?  Runs it under a handler. */
static bool access_signal(volatile char *p, bool write, int sig)
{
	struct sigaction sa = { .sa_handler = on_fault }, old;
	bool hit = false;

	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, &old);
	if (sigsetjmp(fault_jmp, 1) == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
	} else {
		hit = true;
	}
	sigaction(sig, &old, NULL);
	return hit;
}

bool t_wchan_is(pid_t tid, const char *fn)
{
	char path[64], wchan[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(wchan, sizeof(wchan), f))
		wchan[0] = '\0';
	fclose(f);
	return !strcmp(wchan, fn);
}

int t_threads_named(const char *name, pid_t *tid)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	CHECK(d, "/proc/self/task: %s", strerror(errno));
	if (tid)
		*tid = 0;
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* it ended since */
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
		if (strcmp(comm, name))
			continue;
		if (tid)
			*tid = (pid_t)atoi(e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

bool t_read_sigbus(const volatile char *p)
{
	return access_signal((volatile char *)p, false, SIGBUS);
}

bool t_write_sigbus(volatile char *p)
{
	return access_signal(p, true, SIGBUS);
}

bool t_read_sigsegv(const volatile char *p)
{
	return access_signal((volatile char *)p, false, SIGSEGV);
}

bool t_write_sigsegv(volatile char *p)
{
	return access_signal(p, true, SIGSEGV);
}

uint64_t t_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t t_pagemap_entry(int pm, const void *addr)
{
	uint64_t v;
	off_t off = (off_t)((uintptr_t)addr / 4096 * sizeof(v));

	CHECK(pread(pm, &v, sizeof(v), off) == sizeof(v), "pagemap: %s",
	      strerror(errno));
	return v;
}

int t_wait_child(pid_t pid, unsigned int ms, int *status)
{
	uint64_t end = t_now_ns() + (uint64_t)ms * 1000000;
	pid_t got;

	for (;;) {
		got = waitpid(pid, status, WNOHANG);
		CHECK(got >= 0, "waitpid: %s", strerror(errno));
		if (got == pid)
			return 0;
		if (t_now_ns() > end)
			break;
		usleep(5000);
	}
	kill(pid, SIGKILL);
	CHECK(waitpid(pid, status, 0) == pid, "waitpid: %s", strerror(errno));
	return -ETIMEDOUT;
}

void t_child_fail(const char *msg)
{
	char line[300];
	int n = snprintf(line, sizeof(line), "FAIL child: %s\n", msg);

	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	if (write(2, line, (size_t)n) < 0)
		_exit(1);
	_exit(1);
}

static void child_alarm(int sig)
{
	(void)sig;
	t_child_fail("no result in time: blocked in a fault?");
}

void t_child_alarm(unsigned int secs)
{
	signal(SIGALRM, child_alarm);
	alarm(secs);
}

struct t_watch {
	unsigned int nslots, limit_ms;
	const char *what;
	void (*diag)(void *);
	void *arg;
	pthread_t thread;
	int stopfd;
	_Atomic uint64_t *since; /* 0: idle */
};

static void *watch_main(void *p)
{
	struct t_watch *w = p;
	struct pollfd pfd = { .fd = w->stopfd, .events = POLLIN };

	/* Anything on stopfd, even an error, means stop. */
	while (poll(&pfd, 1, 10) <= 0) {
		uint64_t now = t_now_ns();

		for (unsigned int i = 0; i < w->nslots; i++) {
			uint64_t t = atomic_load(&w->since[i]);

			/* t > now: begun after now was read. */
			if (!t || t > now ||
			    now - t <= (uint64_t)w->limit_ms * 1000000)
				continue;
			fprintf(stderr, "FAIL watchdog: %s (slot %u busy %llu ms)\n",
				w->what, i,
				(unsigned long long)((now - t) / 1000000));
			if (w->diag)
				w->diag(w->arg);
			hugetlb_restore();
			_exit(1);
		}
	}
	return NULL;
}

struct t_watch *t_watch_new(unsigned int nslots, unsigned int limit_ms,
			    const char *what, void (*diag)(void *), void *arg)
{
	struct t_watch *w = calloc(1, sizeof(*w));

	CHECK(w, "calloc");
	w->since = calloc(nslots, sizeof(*w->since));
	CHECK(w->since, "calloc");
	w->nslots = nslots;
	w->limit_ms = limit_ms;
	w->what = what;
	w->diag = diag;
	w->arg = arg;
	stoppable_start(&w->thread, watch_main, w, &w->stopfd);
	return w;
}

void t_watch_begin(struct t_watch *w, unsigned int slot)
{
	atomic_store(&w->since[slot], t_now_ns());
}

void t_watch_end(struct t_watch *w, unsigned int slot)
{
	atomic_store(&w->since[slot], 0);
}

void t_watch_free(struct t_watch *w)
{
	stoppable_stop(w->thread, w->stopfd);
	free((void *)w->since);
	free(w);
}

void t_deadline(unsigned int secs, const char *what)
{
	static struct t_watch *dl;

	if (dl)
		t_watch_free(dl);
	dl = NULL;
	if (!secs)
		return;
	dl = t_watch_new(1, secs * 1000, what, NULL, NULL);
	t_watch_begin(dl, 0);
}

const char *t_tmpdir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && *dir ? dir : "/tmp";
}

/* Some filesystems take O_DIRECT at open and refuse the I/O: write. */
static bool direct_works(const char *dir)
{
	static char page[4096] __attribute__((aligned(4096)));
	char path[256];
	bool ok;
	int fd;

	snprintf(path, sizeof(path), "%s/upager-direct-XXXXXX", dir);
	fd = mkostemp(path, O_DIRECT);
	if (fd < 0)
		return false;
	unlink(path);
	ok = pwrite(fd, page, sizeof(page), 0) == (ssize_t)sizeof(page);
	close(fd);
	return ok;
}

const char *t_direct_dir(void)
{
	if (direct_works(t_tmpdir()))
		return t_tmpdir();
	return direct_works("/var/tmp") ? "/var/tmp" : NULL;
}

void t_fill_file(int fd, size_t len, uint64_t seed)
{
	static char page[4096];
	size_t n;

	for (size_t off = 0; off < len; off += n) {
		n = len - off < sizeof(page) ? len - off : sizeof(page);
		t_fill(page, sizeof(page), seed + off / sizeof(page));
		CHECK(pwrite(fd, page, n, (off_t)off) == (ssize_t)n,
		      "pwrite: %s", strerror(errno));
	}
}

int t_tmp_file(char *path, size_t size, size_t len, uint64_t seed)
{
	int fd;

	snprintf(path, size, "%s/upager-test-XXXXXX", t_tmpdir());
	fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	t_fill_file(fd, len, seed);
	return fd;
}

int t_tmp_unlinked(size_t len)
{
	char path[256];
	int fd = t_tmp_file(path, sizeof(path), len, 0);

	unlink(path);
	return fd;
}

static char not_checked[1024];

void t_not_checked(const char *fmt, ...)
{
	size_t n = strlen(not_checked);
	va_list ap;

	if (n && n < sizeof(not_checked) - 2) {
		strcpy(not_checked + n, "; ");
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(not_checked + n, sizeof(not_checked) - n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "not checked: %s\n", not_checked + n);
}

int t_end(void)
{
	if (*not_checked)
		SKIP("all else passed, but not checked: %s", not_checked);
	return 0;
}

int t_plain_parts(int argc, char **argv, const struct t_plain_part *parts,
		  size_t n)
{
	bool ran = false;

	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], parts[i].name))
			continue;
		parts[i].run();
		ran = true;
	}
	CHECK(ran, "no part named %s", argv[1]);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Non-cooperative events (kselftest "events"), with
 * UFFD_FEATURE_EVENT_FORK | EVENT_REMAP | EVENT_REMOVE | EVENT_UNMAP on an
 * area registered MISSING and served by a handler thread (the thread that
 * causes an event blocks until it is read, so events are read there):
 *   - fork() delivers FORK with a new uffd; the child's faults go to it
 *     and the handler serves them there (for shmem the page the child
 *     gets lands in the shared page cache, so the parent sees it with no
 *     fault; for anon the parent still faults);
 *   - mremap() of the area delivers REMAP with from / to / len, then
 *     UNMAP of the old range; the moved area stays registered;
 *   - MADV_DONTNEED (anon) or MADV_REMOVE (shmem: DONTNEED keeps the page
 *     cache, so nothing would fault again) delivers REMOVE with start /
 *     end, and the page faults again afterwards;
 *   - munmap() delivers UNMAP with start / end.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define MAXEV 16

struct ctx {
	struct t_mem *m;
	char *base; /* where the area is now (moves with mremap) */
	char *buf;
	pthread_mutex_t lock;
	struct upager_ll_event ev[MAXEV]; /* non-PAGEFAULT events */
	int nev;
	unsigned long faults;
	struct t_handler *child; /* serves the FORK event's uffd */
};

static void on_event(struct t_handler *h, const struct upager_ll_event *ev);

static void serve(struct t_handler *h, struct ctx *c, uint64_t addr)
{
	char *base = __atomic_load_n(&c->base, __ATOMIC_ACQUIRE);
	uint64_t off = (addr - (uintptr_t)base) & ~(uint64_t)(c->m->page - 1);
	size_t done;

	CHECK(off < c->m->len, "fault outside the area");
	/*
	 * buf is shared with the child's handler; count before the COPY
	 * wakes the faulting thread, so the count is right once it runs.
	 */
	pthread_mutex_lock(&c->lock);
	c->faults++;
	t_fill(c->buf, c->m->page, off / c->m->page);
	CHECK_RET(upager_ll_copy(t_handler_uffd(h), base + off, c->buf,
				 c->m->page, 0, &done), 0);
	pthread_mutex_unlock(&c->lock);
}

static void on_event(struct t_handler *h, const struct upager_ll_event *ev)
{
	struct ctx *c = t_handler_arg(h);

	if (ev->kind == UPAGER_LL_EVENT_PAGEFAULT) {
		serve(h, c, ev->pagefault.address);
		return;
	}
	pthread_mutex_lock(&c->lock);
	CHECK(c->nev < MAXEV, "too many events");
	c->ev[c->nev++] = *ev;
	if (ev->kind == UPAGER_LL_EVENT_FORK) {
		CHECK(ev->fork.uffd >= 0, "fork.uffd %d", ev->fork.uffd);
		CHECK(c->child == NULL, "second FORK");
		c->child = t_handler_start(ev->fork.uffd, on_event, c);
	}
	pthread_mutex_unlock(&c->lock);
}

/*
 * Wait (bounded) until @n events are recorded; return the @n-th.  One
 * call may cause several (mremap), so more may be there already; main()
 * checks the total at the end.
 */
static struct upager_ll_event wait_event(struct ctx *c, int n)
{
	struct upager_ll_event ev = { 0 };
	uint64_t deadline = t_now_ns() + 5000000000ull;
	int got;

	for (;;) {
		pthread_mutex_lock(&c->lock);
		got = c->nev;
		if (got >= n)
			ev = c->ev[n - 1];
		pthread_mutex_unlock(&c->lock);
		if (got >= n)
			break;
		CHECK(t_now_ns() < deadline, "event %d never recorded", n);
		usleep(1000);
	}
	return ev;
}

static unsigned long faults(struct ctx *c)
{
	unsigned long n;

	pthread_mutex_lock(&c->lock);
	n = c->faults;
	pthread_mutex_unlock(&c->lock);
	return n;
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	const size_t npages = 16;
	struct t_mem m;
	struct ctx c = { .m = &m, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct upager_ll_event ev;
	struct t_handler *h;
	char *old, *to;
	int fd, status, nev = 0;
	size_t pg;
	pid_t pid;

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	if (type == UPAGER_LL_MEM_HUGETLB)
		SKIP("events run on anon and shmem");
	fd = t_uffd(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
			    UFFD_FEATURE_EVENT_REMOVE |
			    UFFD_FEATURE_EVENT_UNMAP | t_features_missing(type),
		    0);
	t_mem_map(&m, type, npages);
	pg = m.page;
	c.base = m.addr;
	c.buf = aligned_alloc(pg, pg);
	CHECK(c.buf != NULL, "aligned_alloc");
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, NULL), 0);
	h = t_handler_start(fd, on_event, &c);

	for (size_t i = 0; i < 4; i++)
		CHECK(t_verify(m.addr + i * pg, pg, i), "page %zu", i);
	CHECK(faults(&c) == 4, "faults %lu", faults(&c));

	/* fork: the child's fault on page 4 is served on the new uffd. */
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(10);
		_exit(t_verify(m.addr, pg, 0) && t_verify(m.addr + 4 * pg, pg, 4)
			      ? 0 : 1);
	}
	CHECK(waitpid(pid, &status, 0) == pid && status == 0,
	      "child: status %#x", status);
	ev = wait_event(&c, ++nev);
	CHECK(ev.kind == UPAGER_LL_EVENT_FORK, "event %s",
	      upager_ll_event_name(ev.kind));
	CHECK(faults(&c) == 5, "child fault not served: %lu", faults(&c));
	CHECK(t_handler_stop(c.child) == 1, "child uffd events");
	close(ev.fork.uffd);
	/* shmem: the child's page is in the shared page cache. */
	CHECK(t_verify(m.addr + 4 * pg, pg, 4), "parent page 4");
	CHECK(faults(&c) == (type == UPAGER_LL_MEM_ANON ? 6u : 5u),
	      "parent fault on page 4: %lu", faults(&c));

	/* mremap to a new place: REMAP from / to / len, still registered. */
	to = mmap(NULL, m.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED, "mmap");
	old = m.addr;
	CHECK(mremap(old, m.len, m.len, MREMAP_MAYMOVE | MREMAP_FIXED, to) ==
		      to,
	      "mremap: %s", strerror(errno));
	ev = wait_event(&c, ++nev);
	CHECK(ev.kind == UPAGER_LL_EVENT_REMAP, "event %s",
	      upager_ll_event_name(ev.kind));
	CHECK(ev.remap.from == (uintptr_t)old && ev.remap.to == (uintptr_t)to &&
		      ev.remap.len == m.len,
	      "REMAP %#llx -> %#llx len %#llx",
	      (unsigned long long)ev.remap.from,
	      (unsigned long long)ev.remap.to,
	      (unsigned long long)ev.remap.len);
	/*
	 * Then, with EVENT_UNMAP, an UNMAP of the old range: move_vma()
	 * unmaps the source VMA, which still carries the ctx, in
	 * unmap_source_vma() through do_vmi_munmap() with the uf_unmap list
	 * that mremap(2) completes after the REMAP.  (The MREMAP_FIXED target was not registered, so
	 * clearing it raised nothing.)
	 */
	ev = wait_event(&c, ++nev);
	CHECK(ev.kind == UPAGER_LL_EVENT_UNMAP, "event %s",
	      upager_ll_event_name(ev.kind));
	CHECK(ev.range.start == (uintptr_t)old &&
		      ev.range.end == (uintptr_t)old + m.len,
	      "UNMAP [%#llx, %#llx)", (unsigned long long)ev.range.start,
	      (unsigned long long)ev.range.end);
	m.addr = to;
	__atomic_store_n(&c.base, to, __ATOMIC_RELEASE);
	for (size_t i = 0; i < 5; i++)
		CHECK(t_verify(m.addr + i * pg, pg, i), "moved page %zu", i);
	CHECK(t_verify(m.addr + 5 * pg, pg, 5), "page 5 after remap");
	CHECK(faults(&c) == (type == UPAGER_LL_MEM_ANON ? 7u : 6u),
	      "faults after remap: %lu", faults(&c));

	/* Drop pages 1-2: REMOVE, then they fault again. */
	CHECK(madvise(m.addr + pg, 2 * pg,
		      type == UPAGER_LL_MEM_ANON ? MADV_DONTNEED : MADV_REMOVE) ==
		      0,
	      "madvise: %s", strerror(errno));
	ev = wait_event(&c, ++nev);
	CHECK(ev.kind == UPAGER_LL_EVENT_REMOVE, "event %s",
	      upager_ll_event_name(ev.kind));
	CHECK(ev.range.start == (uintptr_t)m.addr + pg &&
		      ev.range.end == (uintptr_t)m.addr + 3 * pg,
	      "REMOVE [%#llx, %#llx)", (unsigned long long)ev.range.start,
	      (unsigned long long)ev.range.end);
	{
		unsigned long before = faults(&c);

		CHECK(t_verify(m.addr + pg, pg, 1) &&
			      t_verify(m.addr + 2 * pg, pg, 2),
		      "pages 1-2 after REMOVE");
		CHECK(faults(&c) == before + 2, "no refault after REMOVE");
	}

	/* munmap of the last four pages: UNMAP start / end. */
	CHECK(munmap(m.addr + 12 * pg, 4 * pg) == 0, "munmap");
	ev = wait_event(&c, ++nev);
	CHECK(ev.kind == UPAGER_LL_EVENT_UNMAP, "event %s",
	      upager_ll_event_name(ev.kind));
	CHECK(ev.range.start == (uintptr_t)m.addr + 12 * pg &&
		      ev.range.end == (uintptr_t)m.addr + 16 * pg,
	      "UNMAP [%#llx, %#llx)", (unsigned long long)ev.range.start,
	      (unsigned long long)ev.range.end);

	t_handler_stop(h);
	CHECK(c.nev == nev, "%d events, want %d", c.nev, nev);
	/* Closing the uffd unregisters: the final munmap raises nothing. */
	close(fd);
	free(c.buf);
	t_mem_unmap(&m);
	return 0;
}

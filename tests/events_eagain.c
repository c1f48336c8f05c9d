// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * While a non-cooperative event is queued and not yet read, resolution
 * ioctls fail with -EAGAIN: queueing REMOVE (madvise) or REMAP (mremap)
 * raises ctx->mmap_changing, which mfill_atomic() checks, and the thread
 * that caused the event, blocked until it is read, lowers it again when
 * it resumes.  Each event is triggered from a second thread and left
 * unread while UFFDIO_COPY into the registered range is tried (-EAGAIN,
 * nothing done); after reading the event and joining that thread, the
 * same COPY succeeds.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

struct trigger {
	enum upager_ll_event_kind kind;
	char *addr, *to;
	size_t len;
	int ret;
};

static void *trigger_main(void *p)
{
	struct trigger *t = p;

	if (t->kind == UPAGER_LL_EVENT_REMOVE)
		t->ret = madvise(t->addr, t->len, MADV_DONTNEED) ? -errno : 0;
	else
		t->ret = mremap(t->addr, t->len, t->len,
				MREMAP_MAYMOVE | MREMAP_FIXED,
				t->to) == t->to ? 0 : -errno;
	return NULL;
}

/* Wait up to 5 s for an unread message on @fd. */
static void wait_queued(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	CHECK(poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLIN),
	      "no event queued");
}

/*
 * Start @t, then check that COPY of @buf to @dst is -EAGAIN while its
 * event waits unread, and succeeds after it was read.
 */
static void check_eagain(int fd, struct trigger *t, char *dst, char *buf,
			 size_t page)
{
	struct upager_ll_event ev;
	pthread_t th;
	size_t done = 1;

	CHECK(pthread_create(&th, NULL, trigger_main, t) == 0, "thread");
	wait_queued(fd);
	CHECK_RET(upager_ll_copy(fd, dst, buf, page, 0, &done), -EAGAIN);
	CHECK(done == 0, "done %zu", done);
	/* Still pending: the event blocks its thread, not time. */
	usleep(20000);
	CHECK_RET(upager_ll_copy(fd, dst, buf, page, 0, &done), -EAGAIN);

	CHECK_RET(upager_ll_read_events(fd, &ev, 1), 1);
	CHECK(ev.kind == t->kind, "event %s, want %s",
	      upager_ll_event_name(ev.kind), upager_ll_event_name(t->kind));
	CHECK(pthread_join(th, NULL) == 0, "join");
	CHECK(t->ret == 0, "trigger: %s", strerror(-t->ret));
	CHECK_RET(upager_ll_copy(fd, dst, buf, page, 0, &done), 0);
	CHECK(done == page, "done %zu", done);
	CHECK(t_verify(dst, page, 1), "data");
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	const size_t npages = 8;
	struct upager_ll_event ev;
	struct trigger t;
	struct t_mem m;
	size_t done;
	char *buf, *to;
	int fd;

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	if (type == UPAGER_LL_MEM_HUGETLB)
		SKIP("events_eagain runs on anon and shmem");
	fd = t_uffd(UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
			    t_features_missing(type),
		    UPAGER_LL_NONBLOCK);
	t_mem_map(&m, type, npages);
	buf = aligned_alloc(m.page, m.page);
	CHECK(buf != NULL, "aligned_alloc");
	t_fill(buf, m.page, 1);
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, NULL), 0);
	CHECK_RET(upager_ll_copy(fd, m.addr, buf, m.page, 0, &done), 0);

	/* REMOVE pending (page 0 dropped): COPY into page 1. */
	t = (struct trigger){ .kind = UPAGER_LL_EVENT_REMOVE,
			      .addr = m.addr, .len = m.page };
	check_eagain(fd, &t, m.addr + m.page, buf, m.page);

	/* REMAP pending: COPY into page 2 of the area's new place. */
	to = mmap(NULL, m.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED, "mmap");
	t = (struct trigger){ .kind = UPAGER_LL_EVENT_REMAP,
			      .addr = m.addr, .to = to, .len = m.len };
	check_eagain(fd, &t, to + 2 * m.page, buf, m.page);
	m.addr = to;
	/* The area moved with its page 1, and stayed registered. */
	CHECK(t_verify(m.addr + m.page, m.page, 1), "moved page 1");
	CHECK_RET(upager_ll_copy(fd, m.addr + 3 * m.page, buf, m.page, 0,
				 &done), 0);
	/* Nothing else was queued (EVENT_UNMAP is off). */
	CHECK_RET(upager_ll_read_events(fd, &ev, 1), -EAGAIN);

	free(buf);
	t_mem_unmap(&m);
	close(fd);
	return 0;
}

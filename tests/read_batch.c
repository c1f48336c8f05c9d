// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Reading several fault messages at once.  Four threads fault on distinct
 * pages while nobody resolves; once all of them are blocked in the kernel
 * one upager_ll_read() of up to 16 messages returns more than one (the
 * kernel only blocks for the first message of a read).  Each message
 * decodes to the right page; with UFFD_FEATURE_THREAD_ID the tid is the
 * faulting thread's gettid() (0 without); with UFFD_FEATURE_EXACT_ADDRESS
 * the address is the exact byte touched, otherwise page aligned; the
 * write flag is set for write faults only.  A non-blocking read with
 * nothing queued is -EAGAIN.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "harness.h"

#define NTHREADS 4
#define ATTEMPTS 5

struct faulter {
	pthread_t thread;
	pthread_barrier_t *go;
	char *addr; /* the exact byte this thread touches */
	bool write;
	pid_t tid;
};

static void *faulter_main(void *p)
{
	struct faulter *f = p;

	__atomic_store_n(&f->tid, gettid(), __ATOMIC_RELEASE);
	pthread_barrier_wait(f->go);
	if (f->write)
		*(volatile char *)f->addr = 1;
	else
		(void)*(volatile char *)f->addr;
	return NULL;
}

/*
 * One experiment.  Returns the largest number of messages one read gave.
 */
static int experiment(uint64_t features)
{
	const bool exact = features & UFFD_FEATURE_EXACT_ADDRESS;
	const bool tids = features & UFFD_FEATURE_THREAD_ID;
	struct faulter f[NTHREADS];
	struct uffd_msg msgs[16];
	pthread_barrier_t go;
	bool seen[NTHREADS] = { false };
	int fd = t_uffd(features, UPAGER_LL_NONBLOCK);
	int total = 0, best = 0;
	struct t_mem m;
	char *src;
	uint64_t deadline;

	t_mem_map(&m, UPAGER_LL_MEM_ANON, NTHREADS);
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_MISSING, NULL),
		  0);
	CHECK_RET(upager_ll_read(fd, msgs, 16), -EAGAIN);

	pthread_barrier_init(&go, NULL, NTHREADS + 1);
	for (int i = 0; i < NTHREADS; i++) {
		f[i] = (struct faulter){
			.go = &go,
			.addr = m.addr + i * m.page + 0x123 + i * 8,
			.write = i % 2,
		};
		CHECK(pthread_create(&f[i].thread, NULL, faulter_main, &f[i]) ==
			      0,
		      "pthread_create");
	}
	pthread_barrier_wait(&go);

	/*
	 * Wait (bounded) until every faulter sleeps in handle_userfault();
	 * if wchan cannot tell, the reads below still collect everything.
	 */
	deadline = t_now_ns() + 2000000000ull;
	for (int i = 0; i < NTHREADS && t_now_ns() < deadline;) {
		if (t_wchan_is(f[i].tid, "handle_userfault"))
			i++;
		else
			usleep(1000);
	}

	while (total < NTHREADS) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int n;

		CHECK(poll(&pfd, 1, 5000) == 1, "no fault message within 5s");
		n = upager_ll_read(fd, msgs, 16);
		if (n == -EAGAIN)
			continue;
		CHECK(n > 0, "read: %s", strerror(-n));
		CHECK(total + n <= NTHREADS, "%d messages for %d faults",
		      total + n, NTHREADS);
		if (n > best)
			best = n;
		total += n;
		for (int j = 0; j < n; j++) {
			struct upager_ll_event ev;
			uint64_t want;
			size_t i;

			upager_ll_decode(&msgs[j], &ev);
			CHECK(ev.kind == UPAGER_LL_EVENT_PAGEFAULT, "event %s",
			      upager_ll_event_name(ev.kind));
			i = (ev.pagefault.address - (uintptr_t)m.addr) / m.page;
			CHECK(ev.pagefault.address >= (uintptr_t)m.addr &&
				      i < NTHREADS,
			      "fault at %#llx outside the area",
			      (unsigned long long)ev.pagefault.address);
			CHECK(!seen[i], "two messages for page %zu", i);
			seen[i] = true;
			want = (uintptr_t)f[i].addr;
			if (!exact)
				want &= ~(uint64_t)(m.page - 1);
			CHECK(ev.pagefault.address == want,
			      "page %zu: address %#llx, want %#llx", i,
			      (unsigned long long)ev.pagefault.address,
			      (unsigned long long)want);
			CHECK(ev.pagefault.tid ==
				      (tids ? (uint32_t)f[i].tid : 0),
			      "page %zu: tid %u, thread %d", i,
			      ev.pagefault.tid, (int)f[i].tid);
			CHECK(ev.pagefault.write == f[i].write,
			      "page %zu: write %d for a %s fault", i,
			      ev.pagefault.write,
			      f[i].write ? "write" : "read");
			CHECK(!ev.pagefault.wp && !ev.pagefault.minor,
			      "page %zu: flags %#llx", i,
			      (unsigned long long)ev.pagefault.flags);
		}
	}
	CHECK_RET(upager_ll_read(fd, msgs, 16), -EAGAIN);

	/* Resolve everything; every faulter finishes. */
	src = aligned_alloc(m.page, m.len);
	CHECK(src != NULL, "aligned_alloc");
	memset(src, 0, m.len);
	for (int i = 0; i < NTHREADS; i++) {
		size_t done;

		CHECK_RET(upager_ll_copy(fd, m.addr + i * m.page,
					 src + i * m.page, m.page, 0, &done),
			  0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(f[i].thread, NULL);
		CHECK(*f[i].addr == (char)f[i].write, "thread %d's access lost",
		      i);
	}
	CHECK_RET(upager_ll_read(fd, msgs, 16), -EAGAIN);

	pthread_barrier_destroy(&go);
	free(src);
	t_mem_unmap(&m);
	close(fd);
	return best;
}

static void run(uint64_t features)
{
	int best = 0;

	for (int i = 0; i < ATTEMPTS && best < 2; i++) {
		int n = experiment(features);

		if (n > best)
			best = n;
	}
	CHECK(best > 1, "%d attempts, no read returned more than one message",
	      ATTEMPTS);
	fprintf(stderr, "features %#llx: up to %d messages per read\n",
		(unsigned long long)features, best);
}

int main(void)
{
	run(UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS);
	run(0);
	return 0;
}

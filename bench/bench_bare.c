// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The bare handlers upager is measured against (bench.h): a handler
 * thread's loop and a SIGBUS handler, each the least that design does
 * per fault, with nothing of upager but the low-level calls.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <upager/upager.h>

#include "bench.h"

static void *bare_main(void *arg)
{
	static char page[PAGE] __attribute__((aligned(PAGE)));
	struct bare *b = arg;
	struct uffd_msg msgs[16];

	atomic_store(&b->tid, (int)gettid());
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = b->uffd, .events = POLLIN },
			{ .fd = b->stopfd, .events = POLLIN },
		};
		int n;

		b->polls++;
		n = poll(pfd, 2, -1);
		if (n < 0 && errno != EINTR)
			die("bare loop: poll: %s", strerror(errno));
		if (n <= 0)
			continue;
		if (pfd[1].revents)
			return NULL;
		b->reads++;
		n = upager_ll_read(b->uffd, msgs, ARRAY_SIZE(msgs));
		if (n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0)
			die("bare loop: read: %s", strerror(-n));
		for (int i = 0; i < n; i++) {
			uint64_t off;
			size_t done;
			int ret;

			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			off = (msgs[i].arg.pagefault.address &
			       ~(uint64_t)(PAGE - 1)) -
			      (uintptr_t)b->base;
			b->copies++;
			if (b->fill)
				b->fill(off / PAGE, page);
			ret = upager_ll_copy(b->uffd, b->base + off,
					     b->fill ? page : b->src + off,
					     PAGE, 0, &done);
			if (ret < 0 && ret != -EEXIST)
				die("bare loop: UFFDIO_COPY: %s",
				    strerror(-ret));
		}
	}
}

void bare_up(struct bare *b, const char *src,
	     void (*fill)(size_t pg, char *page), size_t len)
{
	int ret;

	memset(b, 0, sizeof(*b));
	b->uffd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL);
	if (b->uffd < 0)
		die("bare loop: cannot open a userfaultfd: %s",
		    strerror(-b->uffd));
	ret = upager_ll_api(b->uffd, 0, NULL);
	if (ret < 0)
		die("bare loop: UFFDIO_API: %s", strerror(-ret));
	b->base = anon_map("bare loop", len);
	b->len = len;
	b->src = src;
	b->fill = fill;
	ret = upager_ll_register(b->uffd, b->base, len,
				 UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret < 0)
		die("bare loop: UFFDIO_REGISTER: %s", strerror(-ret));
	b->stopfd = eventfd(0, EFD_CLOEXEC);
	if (b->stopfd < 0)
		die("bare loop: eventfd: %s", strerror(errno));
	ret = pthread_create(&b->thread, NULL, bare_main, b);
	if (ret)
		die("bare loop: pthread_create: %s", strerror(ret));
	while (!atomic_load(&b->tid))
		sched_yield();
	usleep(10000);
}

void bare_down(struct bare *b)
{
	uint64_t one = 1;

	if (write(b->stopfd, &one, sizeof(one)) != sizeof(one))
		die("bare loop: eventfd write: %s", strerror(errno));
	pthread_join(b->thread, NULL);
	upager_ll_unregister(b->uffd, b->base, b->len);
	munmap(b->base, b->len);
	close(b->stopfd);
	close(b->uffd);
}

/*
 * The floor of in-thread mode: a SIGBUS handler that copies the page in
 * with one UFFDIO_COPY and returns, with no lookup, claim or statistics.
 * One at a time (a signal handler has only globals to go by).  A SIGBUS
 * elsewhere goes to the handler before it: upager's own, when in-thread
 * regions run beside it.
 */
static struct {
	int uffd;
	char *base;
	size_t len;
	const char *src;
	void (*fill)(size_t pg, char *page);
	struct sigaction previous;
} bare_sig;

static void bare_sig_handler(int sig, siginfo_t *si, void *uc)
{
	static char page[PAGE] __attribute__((aligned(PAGE)));
	uintptr_t off = ((uintptr_t)si->si_addr & ~(uintptr_t)(PAGE - 1)) -
			(uintptr_t)bare_sig.base;
	const char *from = page;
	size_t done;

	if (off >= bare_sig.len) {
		if (bare_sig.previous.sa_flags & SA_SIGINFO)
			bare_sig.previous.sa_sigaction(sig, si, uc);
		else /* the access faults again: the default action */
			sigaction(sig, &bare_sig.previous, NULL);
		return;
	}
	if (bare_sig.fill)
		bare_sig.fill(off / PAGE, page);
	else
		from = bare_sig.src + off;
	upager_ll_copy(bare_sig.uffd, bare_sig.base + off, from, PAGE, 0,
		       &done);
}

char *bare_sig_up(const char *src, void (*fill)(size_t pg, char *page),
		  size_t len)
{
	struct sigaction sa = { .sa_sigaction = bare_sig_handler,
				.sa_flags = SA_SIGINFO };
	int ret;

	bare_sig.uffd = upager_ll_open(0, NULL);
	if (bare_sig.uffd < 0)
		die("bare SIGBUS handler: cannot open a userfaultfd: %s",
		    strerror(-bare_sig.uffd));
	ret = upager_ll_api(bare_sig.uffd, UFFD_FEATURE_SIGBUS, NULL);
	if (ret < 0)
		die("bare SIGBUS handler: UFFDIO_API: %s", strerror(-ret));
	bare_sig.base = anon_map("bare SIGBUS handler", len);
	bare_sig.len = len;
	bare_sig.src = src;
	bare_sig.fill = fill;
	ret = upager_ll_register(bare_sig.uffd, bare_sig.base, len,
				 UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret < 0)
		die("bare SIGBUS handler: UFFDIO_REGISTER: %s",
		    strerror(-ret));
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &bare_sig.previous))
		die("sigaction: %s", strerror(errno));
	return bare_sig.base;
}

void bare_sig_down(void)
{
	sigaction(SIGBUS, &bare_sig.previous, NULL);
	munmap(bare_sig.base, bare_sig.len);
	close(bare_sig.uffd);
}


// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The userfaultfd(2) man-page demo against upager's public low-level
 * header: N pages of demand-zero memory, a thread that resolves each
 * fault with a page of 'A', 'B', 'C'..., and a main thread reading every
 * 1024 bytes.  Build: cc demo.c $(pkg-config --cflags --libs upager)
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <upager/ll.h>

static long page_size;

static void die(const char *what, int err)
{
	fprintf(stderr, "%s: %s\n", what, strerror(-err));
	exit(EXIT_FAILURE);
}

static void *fault_handler_thread(void *arg)
{
	int uffd = (int)(intptr_t)arg;
	char *page = malloc((size_t)page_size);
	int fault_cnt = 0;

	if (!page)
		die("malloc", -ENOMEM);
	for (;;) {
		struct pollfd pfd = { .fd = uffd, .events = POLLIN };
		struct upager_ll_event ev;
		uint64_t dst;
		size_t done;
		int n;

		if (poll(&pfd, 1, -1) < 0)
			die("poll", -errno);
		n = upager_ll_read_events(uffd, &ev, 1);
		if (n == -EAGAIN)
			continue;
		if (n < 0)
			die("read", n);
		if (ev.kind != UPAGER_LL_EVENT_PAGEFAULT) {
			fprintf(stderr, "unexpected event %s\n",
				upager_ll_event_name(ev.kind));
			exit(EXIT_FAILURE);
		}
		printf("fault at %" PRIx64 "\n", ev.pagefault.address);
		fflush(stdout);

		memset(page, 'A' + fault_cnt++ % 20, (size_t)page_size);
		dst = ev.pagefault.address & ~(uint64_t)(page_size - 1);
		n = upager_ll_copy(uffd, (void *)(uintptr_t)dst, page,
				   (size_t)page_size, 0, &done);
		if (n < 0)
			die("UFFDIO_COPY", n);
	}
}

int main(int argc, char *argv[])
{
	unsigned long npages = argc > 1 ? strtoul(argv[1], NULL, 0) : 3;
	pthread_t thr;
	size_t len;
	char *addr;
	int uffd, ret;

	page_size = sysconf(_SC_PAGESIZE);
	len = npages * (size_t)page_size;

	uffd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL);
	if (uffd < 0)
		die("userfaultfd", uffd);
	ret = upager_ll_api(uffd, 0, NULL);
	if (ret < 0)
		die("UFFDIO_API", ret);

	addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr == MAP_FAILED)
		die("mmap", -errno);
	ret = upager_ll_register(uffd, addr, len, UFFDIO_REGISTER_MODE_MISSING,
				 NULL);
	if (ret < 0)
		die("UFFDIO_REGISTER", ret);

	ret = pthread_create(&thr, NULL, fault_handler_thread,
			     (void *)(intptr_t)uffd);
	if (ret)
		die("pthread_create", -ret);

	for (size_t l = 0xf; l < len; l += 1024)
		printf("Read address %p in main(): %c\n", (void *)(addr + l),
		       addr[l]);
	return 0;
}

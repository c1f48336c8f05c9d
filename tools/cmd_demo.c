// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager demo: the example program of the userfaultfd(2) man page, on the
 * low-level API.  N pages of demand-zero memory; a handler thread polls
 * the uffd, reads a PAGEFAULT, fills a page with 'A', 'B', 'C'... and
 * installs it with UFFDIO_COPY; the main thread reads every 1024 bytes.
 * The output lines are the man page's.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <upager/ll.h>

#include "cli.h"
#include "cmds.h"

struct demo {
	int uffd;
	long page_size;
	char *page; /* staging page copied into the faulting region */
	int err;    /* first error of the handler thread, -errno */
};

static void *fault_handler_thread(void *arg)
{
	struct demo *d = arg;
	unsigned int fault_cnt = 0;

	for (;;) {
		struct pollfd pfd = { .fd = d->uffd, .events = POLLIN };
		struct upager_ll_event ev;
		size_t done;
		int nready, n;
		uint64_t dst;

		nready = poll(&pfd, 1, -1);
		if (nready < 0) {
			d->err = -errno;
			return NULL;
		}
		printf("\nfault_handler_thread():\n");
		printf("    poll() returns: nready = %d; POLLIN = %d; "
		       "POLLERR = %d\n",
		       nready, (pfd.revents & POLLIN) != 0,
		       (pfd.revents & POLLERR) != 0);

		n = upager_ll_read_events(d->uffd, &ev, 1);
		if (n == -EAGAIN)
			continue;
		if (n <= 0) {
			d->err = n ? n : -EIO;
			fprintf(stderr, "upager demo: reading the uffd: %s\n",
				n ? strerror(-n) : "EOF");
			exit(1);
		}
		if (ev.kind != UPAGER_LL_EVENT_PAGEFAULT) {
			fprintf(stderr, "upager demo: unexpected %s event\n",
				upager_ll_event_name(ev.kind));
			exit(1);
		}
		printf("    UFFD_EVENT_PAGEFAULT event: ");
		printf("flags = %" PRIx64 "; ", ev.pagefault.flags);
		printf("address = %" PRIx64 "\n", ev.pagefault.address);

		/* Vary the contents so each fault is visibly separate. */
		memset(d->page, 'A' + fault_cnt % 20, (size_t)d->page_size);
		fault_cnt++;

		/*
		 * Faults are resolved in whole pages.  DONTWAKE, then WAKE
		 * once the line is out: the man page's output order, which
		 * its own program leaves to the scheduler.
		 */
		dst = ev.pagefault.address & ~(uint64_t)(d->page_size - 1);
		n = upager_ll_copy(d->uffd, (void *)(uintptr_t)dst, d->page,
				   (size_t)d->page_size,
				   UFFDIO_COPY_MODE_DONTWAKE, &done);
		if (n < 0) {
			fprintf(stderr, "upager demo: UFFDIO_COPY: %s\n",
				strerror(-n));
			exit(1);
		}
		printf("        (uffdio_copy.copy returned %zu)\n", done);
		fflush(stdout);
		n = upager_ll_wake(d->uffd, (void *)(uintptr_t)dst,
				   (size_t)d->page_size);
		if (n < 0) {
			fprintf(stderr, "upager demo: UFFDIO_WAKE: %s\n",
				strerror(-n));
			exit(1);
		}
	}
	return NULL;
}

static int usage(void)
{
	printf("usage: upager demo [--delay MS] [NUM_PAGES]\n\n"
	       "The userfaultfd(2) man-page example on upager's low-level API:"
	       "\nNUM_PAGES (default 3) pages of demand-zero memory whose faults"
	       " a\nhandler thread resolves with pages of 'A', 'B', 'C'...\n\n"
	       "  --delay MS   pause MS milliseconds between reads, as the man"
	       " page does\n               (100); default 0\n");
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "delay", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct upager_ll_api_info info;
	struct demo d = { .uffd = -1 };
	uint64_t npages = 3, delay_ms = 0, features = 0;
	struct upager_ll_probe probe = { .size = sizeof(probe) };
	pthread_t thr;
	size_t len;
	char *addr;
	int c, ret;

	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!cli_parse_u64("demo", "--delay", optarg, 0, 60000,
					   false, &delay_ms))
				return 2;
			break;
		case 'h':
			return usage();
		default:
			return cli_usage_error("demo", "unknown option");
		}
	}
	if (optind < argc &&
	    !cli_parse_u64("demo", "NUM_PAGES", argv[optind++], 1, 1u << 20,
			   false, &npages))
		return 2;
	if (optind < argc)
		return cli_usage_error("demo", "unexpected argument '%s'",
				       argv[optind]);

	d.page_size = sysconf(_SC_PAGESIZE);
	len = (size_t)npages * (size_t)d.page_size;

	d.uffd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL);
	if (d.uffd < 0)
		return cli_error("demo", "userfaultfd: %s", strerror(-d.uffd));
	/*
	 * Since Linux 5.x fault addresses are page-aligned unless
	 * EXACT_ADDRESS is asked for; the man page prints the exact byte.
	 */
	if (upager_ll_probe(&probe) == 0)
		features = probe.available & UFFD_FEATURE_EXACT_ADDRESS;
	ret = upager_ll_api(d.uffd, features, &info);
	if (ret < 0)
		return cli_error("demo", "UFFDIO_API: %s", strerror(-ret));

	addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	d.page = mmap(NULL, (size_t)d.page_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (addr == MAP_FAILED || d.page == MAP_FAILED)
		return cli_error("demo", "mmap: %s", strerror(errno));
	printf("Address returned by mmap() = %p\n", (void *)addr);

	ret = upager_ll_register(d.uffd, addr, len,
				 UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (ret < 0)
		return cli_error("demo", "UFFDIO_REGISTER: %s", strerror(-ret));

	ret = pthread_create(&thr, NULL, fault_handler_thread, &d);
	if (ret)
		return cli_error("demo", "pthread_create: %s", strerror(ret));

	/* Off a page boundary, to show faults resolve whole pages. */
	for (size_t l = 0xf; l < len; l += 1024) {
		char ch = addr[l];

		printf("Read address %p in main(): ", (void *)(addr + l));
		printf("%c\n", ch);
		fflush(stdout);
		if (delay_ms)
			usleep((useconds_t)delay_ms * 1000);
	}
	fflush(stdout);
	/* The handler thread blocks in poll(); exiting ends it. */
	exit(EXIT_SUCCESS);
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Stray faults: messages for an address in no region.
 *
 * race   a thread faults on region R while no worker runs, and R is
 *        unmapped before a worker reads the message.  unmap closes and
 *        unregisters the range, which takes the message back and wakes
 *        the thread into EFAULT (its write(2) from R raced unmap: the
 *        caller's bug), never into the zero page an unregistered range
 *        would give it.  Nothing is left for a worker to find, nothing
 *        is reported; region Q, on the same handler, is served as usual.
 * lost   a region moved and grown by mremap (MREMAP_MAYMOVE|FIXED to a
 *        larger size): the region follows to the new address (REMAP),
 *        and its pages read the store there; the grown tail is
 *        registered with the handler's uffd but is no region's.  A read
 *        of it faults again and again: once it has kept faulting across
 *        reads that emptied the queue, the page is poisoned and the read
 *        ends in SIGBUS, with on_error naming the address; never zeros,
 *        never a thread spinning for good.
 */
#include <poll.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096

static struct upager_handler *handler(struct t_errors *e)
{
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 2,
					    .on_error = t_on_error,
					    .error_arg = e };
	struct upager_handler *h;
	int err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	return h;
}

static char *map(struct upager_handler *h, struct upager_store *s,
		 size_t len, struct upager_region **r)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	int err;
	char *p = upager_map(h, s, len, &mp, r, &err);

	CHECK(p, "map: %s", strerror(-err));
	return p;
}

static struct upager_store *patterned(size_t npages)
{
	int err;
	struct upager_store *s = upager_store_mem_new(npages * PG, &err);

	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < npages; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	return s;
}

static void race(void)
{
	struct t_errors e = { 0 };
	struct upager_handler *h = handler(&e);
	struct upager_store *mem = patterned(16);
	struct upager_region *q, *r;
	struct upager_stats st;
	struct toucher tr;
	char *pq, *pr;
	int fd[2];

	pq = map(h, mem, 16 * PG, &q);
	pr = map(h, mem, 16 * PG, &r);
	CHECK(pipe(fd) == 0, "pipe: %s", strerror(errno));
	toucher_start(&tr, pr + 5 * PG, fd[1]);
	toucher_wait_blocked(&tr);
	/*
	 * Asleep is not enough: under TSan the thread may sleep in the
	 * runtime before its write(2); its fault is queued once the
	 * handler's uffd is readable (no worker runs to read it).
	 */
	CHECK(poll(&(struct pollfd){ .fd = upager_handler_fd(h),
				     .events = POLLIN },
		   1, 5000) == 1,
	      "the thread's fault never came");
	CHECK_RET(upager_unmap(r), 0);
	pthread_join(tr.t, NULL);
	CHECK(tr.ret < 0 && tr.err == EFAULT,
	      "the thread racing unmap: write(2) %zd: %s", tr.ret,
	      strerror(tr.err));

	CHECK_RET(upager_handler_start(h), 0);
	CHECK(t_verify(pq + 3 * PG, PG, 3), "region Q's page");
	CHECK_RET(upager_handler_stop(h), 0);
	upager_handler_stats(h, &st);
	CHECK(st.faults_stray == 0, "faults_stray %llu",
	      (unsigned long long)st.faults_stray);
	CHECK(atomic_load(&e.calls) == 0, "on_error called %u times",
	      atomic_load(&e.calls));
	CHECK(st.pages_filled == 1, "pages_filled %llu",
	      (unsigned long long)st.pages_filled);
	close(fd[0]);
	close(fd[1]);
	upager_handler_free(h);
	upager_store_close(mem);
}

static void lost(void)
{
	struct t_errors e = { 0 };
	struct upager_handler *h = handler(&e);
	struct upager_store *mem = patterned(16);
	struct upager_region *r;
	struct upager_stats st;
	char *p, *q, *to;

	p = map(h, mem, 16 * PG, &r);
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(t_verify(p, PG, 0), "page 0 before the move");
	/* A place for 32 pages: the region moves there and doubles. */
	to = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		  0);
	CHECK(to != MAP_FAILED, "mmap: %s", strerror(errno));
	q = mremap(p, 16 * PG, 32 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(q == to, "mremap: %s", strerror(errno));
	/* mremap() returns once a worker read the event, maybe before it
	 * moved the region: a fault there meanwhile comes again. */
	for (int ms = 0; upager_region_addr(r) != q; ms++) {
		CHECK(ms < 5000, "the region did not follow");
		t_sleep_ms(1);
	}
	CHECK(t_verify(q, PG, 0), "page 0 after the move");
	CHECK(t_verify(q + 9 * PG, PG, 9), "page 9, first read after it");
	CHECK(t_read_sigbus(q + 20 * PG), "the tail read without SIGBUS");
	CHECK(atomic_load(&e.calls) == 1 && atomic_load(&e.r) == NULL &&
		      atomic_load(&e.addr) == (uintptr_t)q + 20 * PG,
	      "on_error: %u calls, last at %#llx", atomic_load(&e.calls),
	      (unsigned long long)atomic_load(&e.addr));
	/*
	 * The tail is the test's to unmap (upager_unmap() leaves it), and
	 * still registered: munmap() waits for a worker to read its UNMAP.
	 */
	CHECK(munmap(q + 16 * PG, 16 * PG) == 0, "munmap: %s",
	      strerror(errno));
	CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(r, &st);
	CHECK(st.remaps == 1, "remaps %llu", (unsigned long long)st.remaps);
	upager_handler_stats(h, &st);
	CHECK(st.faults_stray >= 2, "faults_stray %llu",
	      (unsigned long long)st.faults_stray);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(mem);
}

int main(void)
{
	race();
	lost();
	return 0;
}

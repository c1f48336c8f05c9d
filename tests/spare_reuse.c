// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A store that sleeps on every miss must not cost a thread per miss.
 * The worker that goes into a slow fetch gives up its seat and a spare
 * takes it; before the fix the spare left as soon as the worker was
 * back, so the next miss started another: a random read over an
 * O_DIRECT file started ~300 threads a second (strace: clone3,
 * epoll_create1 per miss) and spent more on them than on the reads.
 *
 * A handler with one worker serves region A, over a store whose every
 * fetch sleeps 2 ms, and region B, over a mem store; read-ahead and
 * fault-around are off.  One thread reads A's pages one after another
 * (each miss a slow fetch) while another touches fresh pages of B; B's
 * first touches are told (on_touch) by whichever server takes them: the
 * worker, or a spare while the worker is in A's store.  Across
 * A_PAGES slow fetches those must be a handful of threads, not one per
 * fetch.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define A_PAGES 200
#define B_PAGES 16384
#define MAX_SERVERS 8

static struct {
	char *a, *b;
	atomic_bool a_done;
	pthread_mutex_t lock;
	pid_t tids[B_PAGES];
	unsigned int ntids;
	atomic_uint touches;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void on_touch(void *arg, struct upager_region *r, size_t off)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	unsigned int i;

	(void)arg;
	(void)r;
	(void)off;
	atomic_fetch_add(&g.touches, 1);
	pthread_mutex_lock(&g.lock);
	for (i = 0; i < g.ntids && g.tids[i] != tid; i++)
		;
	if (i == g.ntids && g.ntids < B_PAGES)
		g.tids[g.ntids++] = tid;
	pthread_mutex_unlock(&g.lock);
}

static void *a_main(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < A_PAGES; i++)
		CHECK(t_verify(g.a + i * PG, PG, i), "A page %zu: wrong data",
		      i);
	atomic_store(&g.a_done, true);
	return NULL;
}

static void *b_main(void *arg)
{
	(void)arg;
	for (size_t i = 0; i < B_PAGES && !atomic_load(&g.a_done); i++) {
		volatile char c = g.b[i * PG];

		(void)c;
		t_sleep_ms(0); /* a yield: B's faults come between A's */
	}
	return NULL;
}

int main(void)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct upager_handler *h = t_upager_handler(1, NULL, NULL);
	struct tstore *a = tstore_open(A_PAGES);
	struct upager_store *b = upager_store_mem_new(B_PAGES * PG, NULL);
	struct upager_region *ra, *rb;
	pthread_t ta, tb;
	int err;

	CHECK(b, "mem store");
	a->delay_ms = 2;
	g.a = upager_map(h, &a->s, A_PAGES * PG, &mp, &ra, &err);
	CHECK(g.a, "map A: %s", strerror(-err));
	mp.on_touch = on_touch;
	g.b = upager_map(h, b, B_PAGES * PG, &mp, &rb, &err);
	CHECK(g.b, "map B: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	CHECK(!pthread_create(&tb, NULL, b_main, NULL), "thread");
	CHECK(!pthread_create(&ta, NULL, a_main, NULL), "thread");
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	printf("%u slow fetches, %u first touches of B served by %u "
	       "threads\n",
	       atomic_load(&a->fetches), atomic_load(&g.touches), g.ntids);
	CHECK(atomic_load(&a->fetches) == A_PAGES, "one fetch per page of A");
	CHECK(g.ntids <= MAX_SERVERS,
	      "B's faults were served by %u threads across %u slow fetches "
	      "(a spare started per fetch?); at most %d expected",
	      g.ntids, A_PAGES, MAX_SERVERS);
	CHECK_RET(upager_unmap(ra), 0);
	CHECK_RET(upager_unmap(rb), 0);
	upager_handler_free(h);
	upager_store_close(&a->s);
	upager_store_close(b);
	return 0;
}

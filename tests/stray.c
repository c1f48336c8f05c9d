// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A stray fault: a message for an address in no region.  Only a region
 * being unmapped produces one, when a worker read the message before the
 * region left the table and looks it up after.  Built here on purpose:
 *
 *   worker A serves a slow fetch on region Q, holding the table's read
 *   lock for 300 ms;
 *   a thread calls upager_unmap(R) and waits for the write lock (the lock
 *   prefers writers, so new readers now wait too);
 *   a thread faults on R; worker B reads the message and waits for the
 *   read lock;
 *   A finishes, unmap takes R out of the table, and B finds no region.
 *
 * B must not touch the freed region: it reports the fault to on_error
 * with no region, the address and -EFAULT, counts it in faults_stray,
 * and wakes the thread, which ends with EFAULT or a page of zeros (its
 * access raced unmap, the caller's bug).  Q's fault is served as usual.
 * The 300 ms leave B ample time to read the message before A is done.
 */
#include "tstore.h"

#define PG 4096

struct unmapper {
	struct upager_region *r;
	pthread_t t;
	_Atomic pid_t tid;
	atomic_int ret;
};

static void *unmapper_main(void *arg)
{
	struct unmapper *u = arg;

	atomic_store(&u->tid, gettid());
	atomic_store(&u->ret, upager_unmap(u->r));
	return NULL;
}

int main(void)
{
	struct t_errors e = { .err = 1 };
	struct upager_handler_params hp = { .size = sizeof(hp), .threads = 2,
					    .on_error = t_on_error,
					    .error_arg = &e };
	struct upager_map_params mp = { .size = sizeof(mp),
					.readahead_max = (size_t)-1 };
	struct unmapper um = { .ret = 1 };
	struct toucher tq, tr;
	struct upager_handler *h;
	struct upager_region *q;
	struct upager_stats st;
	struct tstore *slow;
	struct upager_store *mem;
	char *pq, *pr;
	int fd[2], err;

	h = upager_handler_new(&hp, &err);
	CHECK(h, "handler: %s", strerror(-err));
	slow = tstore_open(16);
	slow->delay_ms = 300;
	mem = upager_store_mem_new(16 * PG, &err);
	CHECK(mem, "mem store: %s", strerror(-err));
	pq = upager_map(h, &slow->s, 16 * PG, &mp, &q, &err);
	CHECK(pq, "map Q: %s", strerror(-err));
	pr = upager_map(h, mem, 16 * PG, &mp, &um.r, &err);
	CHECK(pr, "map R: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	toucher_start(&tq, pq + 3 * PG, -1);
	for (int ms = 0; !atomic_load(&slow->busy); ms++) {
		CHECK(ms < 5000, "no fetch started");
		t_sleep_ms(1);
	}
	CHECK(pthread_create(&um.t, NULL, unmapper_main, &um) == 0,
	      "pthread_create");
	while (!atomic_load(&um.tid))
		t_sleep_ms(1);
	t_wait_blocked(um.tid);
	CHECK(atomic_load(&slow->busy), "the slow fetch ended too early");

	CHECK(pipe(fd) == 0, "pipe: %s", strerror(errno));
	toucher_start(&tr, pr + 5 * PG, fd[1]);

	pthread_join(um.t, NULL);
	CHECK_RET(atomic_load(&um.ret), 0);
	pthread_join(tr.t, NULL);
	pthread_join(tq.t, NULL);
	CHECK(tq.byte == *(pq + 3 * PG) && t_verify(pq + 3 * PG, PG, 3),
	      "region Q's page");
	CHECK(tr.ret == PG || (tr.ret < 0 && tr.err == EFAULT),
	      "the stray thread: write(2) %zd: %s", tr.ret,
	      strerror(tr.err));
	close(fd[0]);
	close(fd[1]);

	CHECK_RET(upager_handler_stop(h), 0);
	upager_handler_stats(h, &st);
	CHECK(st.faults_stray == 1, "faults_stray %llu",
	      (unsigned long long)st.faults_stray);
	CHECK(atomic_load(&e.calls) == 1, "on_error called %u times",
	      atomic_load(&e.calls));
	CHECK(atomic_load(&e.r) == NULL && atomic_load(&e.err) == -EFAULT &&
		      atomic_load(&e.addr) >= (uintptr_t)pr + 5 * PG &&
		      atomic_load(&e.addr) < (uintptr_t)pr + 6 * PG,
	      "on_error(%p, %#llx, %d)", (void *)atomic_load(&e.r),
	      (unsigned long long)atomic_load(&e.addr), atomic_load(&e.err));
	CHECK(st.pages_filled == 1, "pages_filled %llu",
	      (unsigned long long)st.pages_filled);
	CHECK_RET(upager_unmap(q), 0);
	upager_handler_free(h);
	upager_store_close(&slow->s);
	upager_store_close(mem);
	return 0;
}

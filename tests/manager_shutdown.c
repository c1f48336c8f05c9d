// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager_manager_stop() (what upagerd does at SIGTERM) while a client
 * is in the middle of a fault: its fetch is held at a gate when the stop
 * begins.  The stop waits for that fill; the client gets its page, the
 * right data; once the stop returned, a page the client never had
 * raises SIGBUS (poisoned), never zeros, never a hang.  A second client,
 * attached and idle, is let go the same way.  A stopped manager does
 * not start again: its sockets are closed.
 */
#include "tmanager.h"

#define NPAGES 64

static char sock[108];

struct stopper {
	struct upager_manager *m;
	atomic_bool done;
	int ret;
};

static void *stop_main(void *arg)
{
	struct stopper *s = arg;

	s->ret = upager_manager_stop(s->m);
	atomic_store(&s->done, true);
	return NULL;
}

/* Mid-fault at the stop: page 0 comes (data), page 50 is SIGBUS. */
static int client_busy(struct tm_client *c, void *arg)
{
	char *p = tm_map(NPAGES);

	(void)arg;
	tm_attach(sock, "gated", p, NPAGES * TM_PG);
	tm_wait_go(c);
	CHECK(t_verify(p, TM_PG, 0), "the page in flight at the stop");
	tm_wait_go(c); /* the stop returned */
	CHECK(t_read_sigbus(p + 50 * TM_PG),
	      "a page never filled did not raise SIGBUS after the stop");
	return 0;
}

/* Idle at the stop: one page before, SIGBUS after. */
static int client_idle(struct tm_client *c, void *arg)
{
	char *p = tm_map(NPAGES);

	(void)arg;
	tm_attach(sock, "plain", p, NPAGES * TM_PG);
	CHECK(t_verify(p + 7 * TM_PG, TM_PG, 7), "page 7");
	tm_wait_go(c);
	CHECK(t_read_sigbus(p + 40 * TM_PG), "page 40 after the stop");
	return 0;
}

int main(void)
{
	static const char *const names[] = { "gated", "plain" };
	struct tm_client busy, idle;
	struct stopper s = { 0 };
	struct tstore *st[2];
	pthread_t t;

	snprintf(sock, sizeof(sock), "%s/upager-shutdown-%d.sock", t_tmpdir(),
		 (int)getpid());
	tm_fork(&busy, client_busy, NULL);
	tm_fork(&idle, client_idle, NULL);
	t_deadline(60, "manager_shutdown did not finish in 60 s");
	st[0] = tstore_open(NPAGES);
	st[1] = tstore_open(NPAGES);
	atomic_store(&st[0]->hold_at, 1);
	s.m = tm_manager(sock, names, st, 2);

	tm_go(&busy);
	tstore_wait_held(st[0], "the busy client's fetch");
	for (int ms = 0;; ms++) {
		struct upager_manager_stats mst = { .size = sizeof(mst) };

		upager_manager_stats(s.m, &mst);
		if (mst.clients == 2)
			break;
		CHECK(ms < 5000, "the idle client never attached");
		t_sleep_ms(1);
	}
	CHECK(pthread_create(&t, NULL, stop_main, &s) == 0, "pthread_create");
	t_sleep_ms(200);
	CHECK(!atomic_load(&s.done),
	      "the stop returned while a fill was in flight");
	tstore_release(st[0]);
	pthread_join(t, NULL);
	CHECK_RET(s.ret, 0);
	tm_go(&busy);
	tm_go(&idle);
	tm_wait_ok(&busy, "the client mid-fault");
	tm_wait_ok(&idle, "the idle client");
	CHECK_RET(upager_manager_start(s.m), -EINVAL);
	upager_manager_free(s.m);
	upager_store_close(&st[0]->s);
	upager_store_close(&st[1]->s);
	t_deadline(0, NULL);
	return 0;
}

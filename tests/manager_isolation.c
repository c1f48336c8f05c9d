// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Isolation between a manager's clients (upager_manager_*, in this
 * process, with tstore.h's stores): while client A waits on a store that
 * sleeps 300 ms a fetch and then fails one (it gets SIGBUS there), client
 * C is killed in the middle of a fault whose fetch is held at a gate,
 * and client D sends garbage, client B reads 256 scattered pages of a
 * store of its own: each of its faults is served in well under A's
 * fetch time (the engine's spare workers), every page right.  The
 * manager then counts one refusal (D) and notices C's death.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include "tmanager.h"

#define NPAGES 256
#define SLOW_MS 300
#define BAD_PAGE 100

static char sock[108];

static int client_slow(struct tm_client *c, void *arg)
{
	char *p = tm_map(NPAGES);
	static const size_t pages[] = { 3, 40, 77, 150, 201, 9, 120, 230 };

	(void)arg;
	tm_attach(sock, "slow", p, NPAGES * TM_PG);
	tm_wait_go(c);
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		CHECK(t_verify(p + pages[i] * TM_PG, TM_PG, pages[i]),
		      "slow page %zu", pages[i]);
	CHECK(t_read_sigbus(p + BAD_PAGE * TM_PG),
	      "a failed fetch did not raise SIGBUS");
	return 0;
}

static int client_gated(struct tm_client *c, void *arg)
{
	char *p = tm_map(NPAGES);

	(void)arg;
	tm_attach(sock, "gated", p, NPAGES * TM_PG);
	tm_wait_go(c);
	(void)*(volatile char *)p; /* held at the gate; killed here */
	return 3;
}

static int client_fast(struct tm_client *c, void *arg)
{
	char *p = tm_map(NPAGES);
	uint64_t worst = 0, sum = 0;

	(void)arg;
	tm_attach(sock, "fast", p, NPAGES * TM_PG);
	tm_wait_go(c);
	for (size_t i = 0; i < NPAGES; i++) {
		size_t pg = i * 97 % NPAGES;
		uint64_t t0 = t_now_ns(), dt;

		CHECK(t_verify(p + pg * TM_PG, TM_PG, pg), "fast page %zu", pg);
		dt = t_now_ns() - t0;
		sum += dt;
		if (dt > worst)
			worst = dt;
	}
	fprintf(stderr, "fast client: %d faults, mean %.0f us, worst %.1f ms "
	       "(the slow store takes %d ms a fetch)\n",
	       NPAGES, (double)sum / NPAGES / 1000, (double)worst / 1e6,
	       SLOW_MS);
	/* Generous for sanitizers and a shared machine; the point is
	 * that no fault waits for a slow fetch. */
	CHECK(worst < SLOW_MS * 1000000ull * 2 / 3,
	      "a fault waited %.1f ms: behind the slow store?",
	      (double)worst / 1e6);
	return 0;
}

static int client_garbage(struct tm_client *c, void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char junk[64];
	int fd;

	(void)arg;
	tm_wait_go(c);
	memset(junk, 0x5a, sizeof(junk));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	      "connect");
	CHECK(write(fd, junk, sizeof(junk)) == sizeof(junk), "write");
	/* Refused: the manager answers and closes. */
	while (read(fd, junk, sizeof(junk)) > 0)
		;
	return 0;
}

int main(void)
{
	static const char *const names[] = { "slow", "fast", "gated" };
	struct tm_client a, b, cl, d;
	struct upager_manager_stats mst = { .size = sizeof(mst) };
	struct upager_manager *m;
	struct tstore *st[3];
	int status;

	snprintf(sock, sizeof(sock), "%s/upager-isolation-%d.sock", t_tmpdir(),
		 (int)getpid());
	/* Clients first: no thread exists yet in this process. */
	tm_fork(&a, client_slow, NULL);
	tm_fork(&b, client_fast, NULL);
	tm_fork(&cl, client_gated, NULL);
	tm_fork(&d, client_garbage, NULL);
	t_deadline(60, "manager_isolation did not finish in 60 s");
	for (int i = 0; i < 3; i++)
		st[i] = tstore_open(NPAGES);
	st[0]->delay_ms = SLOW_MS;
	st[0]->bad = BAD_PAGE;
	atomic_store(&st[2]->hold_at, 1);
	m = tm_manager(sock, names, st, 3);

	/* A in its slow fetches, C held in its fault, then B and D. */
	tm_go(&a);
	tm_go(&cl);
	tstore_wait_held(st[2], "the gated client's fetch");
	for (int ms = 0; !atomic_load(&st[0]->busy); ms++) {
		CHECK(ms < 5000, "the slow client never fetched");
		t_sleep_ms(1);
	}
	kill(cl.pid, SIGKILL);
	CHECK(t_wait_child(cl.pid, 5000, &status) == 0 && WIFSIGNALED(status),
	      "the gated client did not die");
	tm_go(&b);
	tm_go(&d);
	tm_wait_ok(&b, "the fast client");
	tm_wait_ok(&d, "the garbage client");
	tm_wait_ok(&a, "the slow client");
	tstore_release(st[2]);

	/* Every client's end is seen: C's too, killed mid-fault. */
	for (int ms = 0;; ms++) {
		CHECK_RET(upager_manager_stats(m, &mst), 0);
		if (mst.gone == 3 && !mst.clients)
			break;
		CHECK(ms < 10000, "clients still held: gone %llu, attached now "
		      "%llu", (unsigned long long)mst.gone,
		      (unsigned long long)mst.clients);
		t_sleep_ms(1);
	}
	CHECK(mst.attached == 3 && mst.refused == 1 && mst.connections == 4,
	      "attached %llu refused %llu connections %llu",
	      (unsigned long long)mst.attached,
	      (unsigned long long)mst.refused,
	      (unsigned long long)mst.connections);
	CHECK(mst.total.store_errors >= 1, "the failed fetch is not counted");
	CHECK_RET(upager_manager_stop(m), 0);
	upager_manager_free(m);
	for (int i = 0; i < 3; i++)
		upager_store_close(&st[i]->s);
	t_deadline(0, NULL);
	return 0;
}

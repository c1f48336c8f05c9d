// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region over the memcached store (argv[1]: anon, shmem, or inthread:
 * anon in in-thread mode, where the faulting thread fetches from its
 * SIGBUS handler through the store's fetch_signal()), three
 * servers on loopback, one killed in the middle of a run (issue 11):
 * two threads read the region page by page (one from the start, one from
 * the middle, read-ahead on) and a server is killed once they are a
 * quarter of the way.  Every page either reads its data (zero pages
 * zeros) or, only if the dead server held it, raises SIGBUS at that page:
 * nothing reads wrong, nothing reads as zeros.  Afterwards every page of
 * the two live servers reads right, every page of the dead one that was
 * not read before the kill raises SIGBUS, on_error was told, and stderr
 * names the dead server's address.  In-thread, the faults were the
 * faulting threads' own.
 */
#include <pthread.h>
#include <setjmp.h>

#include "tstore.h"
#include "tmemcached.h"

#define NPAGES 2048
#define LEN    ((size_t)NPAGES * TMC_PAGE)
#define NS     "t-region"
#define DEAD   2

static char *data, *p;
static int holder[NPAGES];
static struct tmc t;
static atomic_uint progress;
static atomic_bool killed;
/* Per page: 1 read right, 2 SIGBUS. */
static _Atomic unsigned char seen[NPAGES];

static __thread sigjmp_buf jmp;
static __thread void *volatile bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_addr = si->si_addr;
	siglongjmp(jmp, 1);
}

/* Read page @pg: 1 (its data), 2 (SIGBUS at it); fails on anything else. */
static int read_page(uint64_t pg)
{
	static __thread char copy[TMC_PAGE];
	const volatile char *at = p + pg * TMC_PAGE;

	bus_addr = NULL;
	if (sigsetjmp(jmp, 1)) {
		CHECK((char *)bus_addr >= p + pg * TMC_PAGE &&
			  (char *)bus_addr < p + (pg + 1) * TMC_PAGE,
		      "SIGBUS at %p, not page %llu", bus_addr,
		      (unsigned long long)pg);
		return 2;
	}
	for (size_t i = 0; i < TMC_PAGE; i++)
		copy[i] = at[i];
	CHECK(!memcmp(copy, data + pg * TMC_PAGE, TMC_PAGE),
	      "page %llu reads wrong (server %d, %s the kill)",
	      (unsigned long long)pg, holder[pg],
	      atomic_load(&killed) ? "after" : "before");
	return 1;
}

static void *reader(void *arg)
{
	uint64_t from = (uint64_t)(uintptr_t)arg;

	for (uint64_t i = 0; i < NPAGES / 2; i++) {
		uint64_t pg = from + i;
		int r = read_page(pg);

		CHECK(r == 1 || holder[pg] == DEAD,
		      "page %llu of live server %d: SIGBUS",
		      (unsigned long long)pg, holder[pg]);
		seen[pg] = (unsigned char)r;
		atomic_fetch_add(&progress, 1);
		/* Slow enough that the kill falls inside the run. */
		if (i % 64 == 0)
			usleep(2000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	bool inthread = argc > 1 && !strcmp(argv[1], "inthread");
	struct upager_map_params mp = {
	    .size = sizeof(mp),
	    .memtype = inthread ? UPAGER_MEM_ANON
				: t_upager_memtype(argc, argv, false),
	    .flags = inthread ? UPAGER_MAP_IN_THREAD : 0};
	struct upager_stats st;
	struct sigaction sa = {.sa_sigaction = on_sigbus,
			       .sa_flags = SA_SIGINFO};
	char spec[512], want[128], *out;
	unsigned int nbus = 0, ndead = 0;
	struct t_errors e = {0};
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	pthread_t th[2];
	int err;

	t_deadline(100, "memcached_region");
	data = malloc(LEN);
	CHECK(data, "malloc");
	tmc_data(data, NPAGES);
	tmc_start(&t, 3);
	tmc_push(&t, NS, "", data, NPAGES);
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		holder[pg] = tmc_holder(&t, NS, pg);
		CHECK(holder[pg] >= 0, "page %llu on no server",
		      (unsigned long long)pg);
		ndead += holder[pg] == DEAD;
	}
	CHECK(ndead > NPAGES / 10, "the dead server holds %u pages", ndead);

	tmc_capture_begin();

	snprintf(spec, sizeof(spec), "memcached:%s/%s,timeout=500", t.servers,
		 NS);
	s = upager_store_open(spec, &err);
	CHECK(s, "open %s: %s", spec, strerror(-err));
	/* Before the map: in-thread, upager's handler passes ours on. */
	sigemptyset(&sa.sa_mask);
	CHECK(!sigaction(SIGBUS, &sa, NULL), "sigaction");
	h = t_upager_handler(2, t_on_error, &e);
	p = upager_map(h, s, LEN, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	CHECK(!pthread_create(&th[0], NULL, reader, (void *)0) &&
		  !pthread_create(&th[1], NULL, reader,
				  (void *)(uintptr_t)(NPAGES / 2)),
	      "pthread_create");
	while (atomic_load(&progress) < NPAGES / 4)
		usleep(500);
	tmc_kill(&t, DEAD);
	atomic_store(&killed, true);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);

	/* Again, every page: live ones read, dead ones SIGBUS or were in. */
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		int got = read_page(pg);

		if (holder[pg] != DEAD)
			CHECK(got == 1, "live page %llu: SIGBUS",
			      (unsigned long long)pg);
		else if (seen[pg] == 1)
			CHECK(got == 1, "page %llu read, then SIGBUS",
			      (unsigned long long)pg);
		nbus += got == 2;
	}
	CHECK(nbus > 0, "no page of the dead server raised SIGBUS");
	CHECK(atomic_load(&e.calls) >= 1 && atomic_load(&e.r) == r,
	      "on_error: %u calls", atomic_load(&e.calls));
	upager_region_stats(r, &st);
	CHECK(!inthread || st.faults_inthread > 0,
	      "in-thread: no fault was the faulting thread's own");

	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	tmc_stop(&t);

	out = tmc_capture_end();
	snprintf(want, sizeof(want), "on 127.0.0.1:%u: server error",
		 t.port[DEAD]);
	CHECK(strstr(out, want), "stderr \"%s\", want \"%s\"", out, want);
	printf("%u pages of the dead server raised SIGBUS, on_error %u calls\n",
	       nbus, atomic_load(&e.calls));
	free(data);
	return 0;
}

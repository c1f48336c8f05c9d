// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The library names its threads, so that top, perf and gdb tell them
 * from the program's and from each other: a handler's workers upager-w0
 * and upager-w1, its evictor upager-evict0 (a region with a budget), a
 * page server's listener upager-srv-lstn and, once a client said which
 * connection is which, upager-srv-strm and upager-srv-urg; a remote:
 * store's upager-rmt-conn, upager-rmt-strm and upager-rmt-urg.  The
 * program's own thread keeps its name.
 */
#include <sys/prctl.h>

#include "tremote.h"
#include "tstore.h"

#define NPAGES	  256u
#define IMG_PAGES 4096u

/* @n threads called @name, within 5 s (connections name themselves). */
static void expect(const char *name, int n)
{
	uint64_t end = t_now_ns() + 5000000000ull;

	while (t_threads_named(name, NULL) != n && t_now_ns() < end)
		usleep(1000);
	CHECK(t_threads_named(name, NULL) == n, "%d threads called %s, want %d", t_threads_named(name, NULL),
	      name, n);
}

int main(void)
{
	struct upager_map_params mp = {.size = sizeof(mp),
				       .budget = 64 * PG};
	struct upager_handler *h = t_upager_handler(2, NULL, NULL), *rh;
	struct upager_store *mem, *img, *rs;
	struct upager_region *r, *rr;
	struct upager_server *srv;
	char self[16] = "", spec[128];
	volatile char *p;
	int err;

	t_tls = false; /* the names do not depend on it */
	CHECK(prctl(PR_GET_NAME, self) == 0, "PR_GET_NAME");
	mem = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(mem, "mem store: %s", strerror(-err));
	p = upager_map(h, mem, NPAGES * PG, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP) {
		/* No budget here: no evictor to name. */
		mp.budget = 0;
		p = upager_map(h, mem, NPAGES * PG, &mp, &r, &err);
	}
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	(void)p[0];
	expect("upager-w0", 1);
	expect("upager-w1", 1);
	expect("upager-w2", 0);
	expect("upager-evict0", mp.budget ? 1 : 0);

	img = upager_store_mem_new(IMG_PAGES * PG, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	/*
	 * A slow stream (the first 1 MiB run, then 64 pages a second): the
	 * connections stay up while they are looked at.
	 */
	srv = t_serve(img, 0, 64 * PG);
	expect("upager-srv-lstn", 1);
	rh = t_handler();
	p = t_map_remote(rh, t_spec(spec, sizeof(spec), upager_server_port(srv),
				    "/img"),
			 &rs, &rr);
	(void)p[5 * PG];
	expect("upager-srv-strm", 1);
	expect("upager-srv-urg", 1);
	expect("upager-rmt-conn", 1);
	expect("upager-rmt-strm", 1);
	expect("upager-rmt-urg", 1);
	expect("upager-w0", 2); /* the second handler's */
	expect(self, 1);

	t_remote_done(rr, rh, rs, srv);
	upager_store_close(img);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(mem);
	expect("upager-w0", 0);
	expect("upager-srv-lstn", 0);
	return 0;
}

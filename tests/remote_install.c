// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A page the remote: store receives but cannot install is not received.
 *
 * A 512-page image streams at 4 KiB/s from a first server: its first
 * message brings pages 0-255 and then the stream sleeps for minutes.
 * Meanwhile the application takes page LOST out of the region's
 * userfaultfd, as munmap() or an unregister does: the kernel then
 * answers the install there with -ENOENT.  A second server on the same
 * port streams the rest at full speed.  Every other page arrives and is
 * installed; LOST is not counted as received, and
 * upager_remote_wait_complete() returns the install's error as soon as
 * nothing else can arrive, instead of waiting (or spinning) to its
 * timeout.  The page stays wanted: once registered again, a touch asks
 * the server for it, reads it right, and the store completes.
 */
#include <inttypes.h>
#include <unistd.h>

#include "tremote.h"

#define NPAGES 512u
#define LOST 400u /* past the first server's first message */

int main(void)
{
	struct upager_remote_stats rst = { .size = sizeof(rst) };
	struct upager_server *srv;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *img, *s;
	unsigned int port;
	uint64_t t0, ms;
	char spec[200];
	uint8_t *p, *data;
	int err, ret;

	img = upager_store_mem_new((uint64_t)NPAGES * PG, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	data = upager_store_mem_data(img);
	for (uint64_t i = 0; i < NPAGES; i++)
		t_fill(data + i * PG, PG, i);

	srv = t_serve(img, 0, 4096);
	port = upager_server_port(srv);
	h = t_handler();
	t_spec(spec, sizeof(spec), port, "/img");
	p = t_map_remote(h, spec, &s, &r);

	CHECK_RET(upager_ll_unregister(upager_handler_fd(h), p + LOST * PG, PG),
		  0);
	upager_server_free(srv);
	srv = t_serve(img, port, 0);

	t0 = t_now_ns();
	ret = upager_remote_wait_complete(s, 10000);
	ms = (t_now_ns() - t0) / 1000000;
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	printf("wait_complete: %s after %" PRIu64 " ms; received %" PRIu64
	       " of %" PRIu64 ", reconnects %" PRIu64 "\n",
	       ret ? strerror(-ret) : "ok", ms, rst.pages_received,
	       rst.npages, rst.reconnects);
	CHECK(ret == -ENOENT, "wait_complete: %s, want the install's ENOENT",
	      strerror(-ret));
	CHECK(ms < 5000, "wait_complete took %" PRIu64 " ms", ms);
	CHECK(rst.pages_received == NPAGES - 1, "received %" PRIu64 ", want %u",
	      rst.pages_received, NPAGES - 1);
	CHECK(rst.install_errors >= 1, "install_errors %" PRIu64,
	      rst.install_errors);
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(i == LOST || upager_region_present(r, i * PG),
		      "page %" PRIu64 " not present", i);
	CHECK(!upager_region_present(r, LOST * PG), "the lost page is present");

	/* Registered again, the page is asked for by its fault. */
	CHECK_RET(upager_ll_register(upager_handler_fd(h), p + LOST * PG, PG,
				     UFFDIO_REGISTER_MODE_MISSING, NULL),
		  0);
	CHECK(t_verify(p + LOST * PG, PG, LOST), "page %u differs", LOST);
	CHECK_RET(upager_remote_wait_complete(s, 10000), 0);
	CHECK_RET(upager_remote_stats(s, &rst), 0);
	CHECK(rst.pages_received == NPAGES, "received %" PRIu64 ", want %u",
	      rst.pages_received, NPAGES);
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %" PRIu64 " differs", i);
	CHECK(atomic_load(&t_errors) == 0 && atomic_load(&t_timeouts) == 0,
	      "on_error was called");

	t_remote_done(r, h, s, srv);
	upager_store_close(img);
	return 0;
}

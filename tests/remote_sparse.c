// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A page server exporting a sparse file (the file store, whose zero_run()
 * finds its holes): the file starts with a hole, has holes in the middle
 * (one inside a 256-page stream run, one across the border of two runs)
 * and one to its end, so the server's runs begin in a hole and go on in
 * data, and end in one.  Every byte the client gets is checked.
 *
 * First the stream alone (nothing touched): every page travels once,
 * the holes as ZERO runs (streamed == pages, zero == the holes' pages, no
 * duplicate).  Then a second client, with checksums, whose thread
 * touches pages in and around the holes from the top down while the
 * stream is rate-limited, so that most are urgent answers.
 */
#include <unistd.h>

#include "tremote.h"

#define NPAGES 1024u

/* The holes, [first, end) in pages. */
static const struct {
	uint64_t first, end;
} holes[] = { { 0, 3 }, { 300, 310 }, { 500, 530 }, { 1000, NPAGES } };

#define NHOLES (sizeof(holes) / sizeof(holes[0]))

static bool in_hole(uint64_t i)
{
	for (size_t k = 0; k < NHOLES; k++)
		if (i >= holes[k].first && i < holes[k].end)
			return true;
	return false;
}

static uint64_t hole_pages(void)
{
	uint64_t n = 0;

	for (size_t k = 0; k < NHOLES; k++)
		n += holes[k].end - holes[k].first;
	return n;
}

static bool page_ok(const uint8_t *p, uint64_t i)
{
	static const uint8_t zero[PG];

	return in_hole(i) ? !memcmp(p + i * PG, zero, PG)
			  : t_verify(p + i * PG, PG, i);
}

/* A file of NPAGES pages, the pattern written only outside the holes. */
static int sparse_file(void)
{
	int fd = t_tmp_unlinked(0);
	char page[PG];

	CHECK(!ftruncate(fd, NPAGES * PG), "ftruncate: %s", strerror(errno));
	for (uint64_t i = 0; i < NPAGES; i++) {
		if (in_hole(i))
			continue;
		t_fill(page, PG, i);
		CHECK(pwrite(fd, page, PG, (off_t)(i * PG)) == PG, "pwrite: %s",
		      strerror(errno));
	}
	if (lseek(fd, 0, SEEK_HOLE) != 0)
		SKIP("%s does not keep holes in files", t_tmpdir());
	return fd;
}

/* Map the export, @touch pages first (from the top down), check it all. */
static void client(struct upager_server *srv, const char *opts,
		   const uint64_t *touch, size_t ntouch,
		   struct upager_remote_stats *rst)
{
	struct upager_handler *h = t_handler();
	struct upager_region *r;
	struct upager_store *s;
	char spec[200], tail[64];
	uint8_t *p;

	snprintf(tail, sizeof(tail), "/img%s", opts);
	t_spec(spec, sizeof(spec), upager_server_port(srv), tail);
	p = t_map_remote(h, spec, &s, &r);
	for (size_t k = 0; k < ntouch; k++)
		CHECK(page_ok(p, touch[k]), "touched page %llu",
		      (unsigned long long)touch[k]);
	CHECK_RET(upager_remote_wait_complete(s, 30000), 0);
	for (uint64_t i = 0; i < NPAGES; i++)
		CHECK(page_ok(p, i), "page %llu (%s) differs",
		      (unsigned long long)i, in_hole(i) ? "hole" : "data");
	CHECK_RET(upager_remote_stats(s, rst), 0);
	CHECK(rst->pages_received == NPAGES && rst->protocol_errors == 0 &&
		      rst->reconnects == 0 && atomic_load(&t_errors) == 0,
	      "received %llu, protocol errors %llu, reconnects %llu",
	      (unsigned long long)rst->pages_received,
	      (unsigned long long)rst->protocol_errors,
	      (unsigned long long)rst->reconnects);
	CHECK(rst->pages_zero == hole_pages(),
	      "%llu pages arrived as ZERO runs, the holes have %llu",
	      (unsigned long long)rst->pages_zero,
	      (unsigned long long)hole_pages());
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(void)
{
	/* In and around the holes, from the top down. */
	static const uint64_t touch[] = { 1023, 1000, 999, 530, 529,
					  500,	310,  305, 3,	1 };
	struct upager_server_stats ss = { .size = sizeof(ss) };
	struct upager_remote_stats rst = { .size = sizeof(rst) };
	struct upager_server *srv;
	struct upager_store *img;
	char spec[64];
	int fd, err;

	fd = sparse_file();
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d", fd);
	img = upager_store_open(spec, &err);
	CHECK(img, "%s: %s", spec, strerror(-err));
	CHECK(img->ops->zero_run(img, 0, 8) == 3, "the file store sees no "
	      "hole at the start");

	srv = t_serve(img, 0, 0);
	client(srv, "", NULL, 0, &rst);
	CHECK_RET(upager_server_stats(srv, &ss), 0);
	t_print_counts("stream alone", &ss, &rst);
	CHECK(ss.pages_streamed == NPAGES && ss.pages_urgent == 0 &&
		      ss.pages_zero == hole_pages() && rst.duplicates == 0,
	      "every page once, the holes as ZERO runs");
	upager_server_free(srv);

	/* The stream takes ~0.5 s: most touches are urgent answers. */
	srv = t_serve(img, 0, 8u << 20);
	client(srv, ",csum", touch, sizeof(touch) / sizeof(touch[0]), &rst);
	CHECK_RET(upager_server_stats(srv, &ss), 0);
	t_print_counts("touched", &ss, &rst);
	CHECK(ss.protocol_errors == 0, "server protocol errors %llu",
	      (unsigned long long)ss.protocol_errors);
	upager_server_free(srv);
	upager_store_close(img);
	close(fd);
	return 0;
}

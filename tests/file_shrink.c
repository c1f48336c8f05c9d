// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region over a file whose hole runs to its end, and the file shrinks
 * after the store opened it, before the pages are read: pages before the
 * new end read as the file (data, then the hole's zeros), and every page
 * past it raises SIGBUS, never zeros, with on_error told -EIO and
 * store_errors counting the failures.  Read-ahead is on, so windows that
 * cross the new end fail as a whole and each faulting page is answered
 * alone.  On anon the engine asks the store's zero_run() first, the path
 * where a shrunk hole could pass for zeros; on shmem it fetches into the
 * page cache.
 */
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define DATA 40	 /* pages of the pattern, then a hole */
#define KEPT 48	 /* pages the file keeps: the hole's first 8 */
#define PAGES 64 /* the file's size when the store opens it */

int main(int argc, char **argv)
{
	enum upager_ll_memtype t = t_memtype(argc, argv);
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = (enum upager_memtype)t };
	static const char zero[PG];
	struct t_errors e = { 0 };
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	struct upager_stats st;
	char spec[64], *p;
	int fd, err;

	if (t == UPAGER_LL_MEM_HUGETLB)
		SKIP("2 MiB units would cover the whole file");
	fd = t_tmp_unlinked(DATA * PG);
	CHECK(!ftruncate(fd, PAGES * PG), "ftruncate: %s", strerror(errno));
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d", fd);
	s = upager_store_open(spec, &err);
	CHECK(s, "%s: %s", spec, strerror(-err));
	CHECK(s->npages == PAGES, "npages %llu", (unsigned long long)s->npages);
	if (s->ops->zero_run(s, DATA, PAGES - DATA) != PAGES - DATA)
		SKIP("%s left no hole at the end of a file", t_tmpdir());
	CHECK(!ftruncate(fd, KEPT * PG), "ftruncate: %s", strerror(errno));

	h = t_upager_handler(0, t_on_error, &e);
	p = upager_map(h, s, PAGES * PG, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);

	for (size_t i = 0; i < DATA; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
	for (size_t i = DATA; i < KEPT; i++)
		CHECK(!memcmp(p + i * PG, zero, PG), "hole page %zu", i);
	for (size_t i = KEPT; i < PAGES; i++)
		CHECK(t_read_sigbus(p + i * PG), "page %zu past the new end "
		      "read without SIGBUS", i);

	CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(r, &st);
	CHECK(st.store_errors >= 1 && atomic_load(&e.calls) >= 1 &&
		      atomic_load(&e.err) == -EIO,
	      "store_errors %llu, on_error called %u times, last with %d",
	      (unsigned long long)st.store_errors, atomic_load(&e.calls),
	      atomic_load(&e.err));
	CHECK(st.pages_filled == KEPT, "pages filled %llu, want %d",
	      (unsigned long long)st.pages_filled, KEPT);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	close(fd);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The application unmaps a region, or part of one, itself, not with
 * upager_unmap(): here by mapping memory of its own over it (mmap with
 * MAP_FIXED unmaps what was there, as munmap() does, and leaves no gap
 * another thread's mmap could take meanwhile).  EVENT_UNMAP makes those
 * units gone: nothing is installed there any more, and what is left of
 * the region is served as before.  A region over a mem store, 16 pages
 * of 4 KiB units.
 *
 * part   pages 0 and 1 read, then memory of the application's mapped
 *        over pages 4-7, and written.  pages_unmapped counts the four
 *        pages; the other
 *        pages read the store's data; upager_region_prefault() over the
 *        whole region returns 0 and fills every page but the hole's;
 *        upager_region_install() over the hole installs nothing and
 *        returns 0, over the pages left it counts them as present
 *        (eexist); upager_region_present() is false in the hole; the
 *        application's memory there keeps what it wrote.
 * whole  a region with memory of the application's mapped over all of
 *        it is gone (prefault says -ENOENT): upager_unmap() then returns
 *        0 and leaves that memory alone.
 *
 * The mmap() returns once a worker read its event, which the worker may
 * not have handled yet: each part waits for the handling to show.
 */
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 16
#define MINE 0x5a

static char *map(struct upager_handler *h, struct upager_store *s,
		 enum upager_memtype type, struct upager_region **r)
{
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type };
	int err;
	char *p = upager_map(h, s, NPAGES * PG, &mp, r, &err);

	CHECK(p, "map: %s", strerror(-err));
	return p;
}

/* Memory of the application's over [@at, @at+@len), written with MINE. */
static char *mine(char *at, size_t len)
{
	char *q = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	CHECK(q == at, "mmap at %p: %s", (void *)at,
	      q == MAP_FAILED ? strerror(errno) : "elsewhere");
	memset(q, MINE, len);
	return q;
}

static bool still_mine(const char *q, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (q[i] != MINE)
			return false;
	return true;
}

static void part(struct upager_handler *h, struct upager_store *s,
		 enum upager_memtype type)
{
	struct upager_region *r;
	struct upager_stats st;
	char *p = map(h, s, type, &r), *q;
	uint64_t eexist;
	long n;

	CHECK(t_verify(p, PG, 0) && t_verify(p + PG, PG, 1), "pages 0-1");
	q = mine(p + 4 * PG, 4 * PG);
	/* The count comes after the units are gone. */
	for (int ms = 0;; ms++) {
		upager_region_stats(r, &st);
		if (st.pages_unmapped)
			break;
		CHECK(ms < 5000, "no page counted unmapped");
		t_sleep_ms(1);
	}
	CHECK(st.pages_unmapped == 4, "%llu pages unmapped, 4 were",
	      (unsigned long long)st.pages_unmapped);

	CHECK_RET(upager_region_prefault(r, 0, NPAGES * PG), 0);
	for (size_t i = 0; i < NPAGES; i++) {
		bool hole = i >= 4 && i < 8;

		CHECK(upager_region_present(r, i * PG) == !hole,
		      "page %zu %s present after prefault", i,
		      hole ? "in the hole is" : "is not");
	}
	upager_region_stats(r, &st);
	eexist = st.eexist;
	n = upager_region_install(r, 2 * PG, (char *)upager_store_mem_data(s) +
						  2 * PG,
				  8 * PG);
	upager_region_stats(r, &st);
	CHECK(n == 0 && st.eexist == eexist + 4,
	      "install over pages 2-9: %ld, %llu found present (want 0, 4)",
	      n, (unsigned long long)(st.eexist - eexist));
	CHECK(still_mine(q, 4 * PG),
	      "the application's memory in the hole was written");
	for (size_t i = 0; i < NPAGES; i++)
		if (i < 4 || i >= 8)
			CHECK(t_verify(p + i * PG, PG, i), "page %zu", i);
	/* upager_unmap() would unmap the hole too: give it back first. */
	CHECK(munmap(q, 4 * PG) == 0, "munmap: %s", strerror(errno));
	CHECK_RET(upager_unmap(r), 0);
}

static void whole(struct upager_handler *h, struct upager_store *s,
		  enum upager_memtype type)
{
	struct upager_region *r;
	char *p = map(h, s, type, &r), *q;

	CHECK(t_verify(p + 3 * PG, PG, 3), "page 3");
	q = mine(p, NPAGES * PG);
	/* Gone once the event is handled: prefault then says -ENOENT. */
	for (int ms = 0; upager_region_prefault(r, 0, PG) != -ENOENT; ms++) {
		CHECK(ms < 5000, "the region unmapped whole is not gone");
		t_sleep_ms(1);
	}
	CHECK_RET(upager_unmap(r), 0);
	CHECK(!t_read_sigsegv(q) && still_mine(q, NPAGES * PG),
	      "upager_unmap() touched the memory mapped where its region "
	      "was");
	munmap(q, NPAGES * PG);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s;
	int err;

	t_deadline(20, "munmap did not finish in 20 s");
	s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	CHECK_RET(upager_handler_start(h), 0);
	part(h, s, type);
	whole(h, s, type);
	upager_handler_free(h);
	upager_store_close(s);
	t_deadline(0, NULL);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * What the application unmapped of a region is no longer upager's to
 * touch (upager_unmap()'s contract, upager.h), even when the
 * application has mapped memory of its own there since: upager_unmap()
 * must leave that memory mapped and as it was.  A region over a mem
 * store, 16 pages of 4 KiB units; the application's memory is mapped
 * with MAP_FIXED (which unmaps what was there, as munmap() does: an
 * EVENT_UNMAP) and written.
 *
 * hole    pages 4-7 replaced, and the handling of their UNMAP seen
 *         (pages_unmapped); then upager_unmap().  The engine mprotect()s
 *         and munmap()s the region's whole original range: the memory
 *         in the hole is gone (SIGSEGV).
 * pieces  pages 0-7, then pages 8-15 replaced, each handling seen: all
 *         of the region is the application's, though no one event
 *         covered all of it; then upager_unmap().  The engine takes a
 *         region for gone only when one event covers it whole: the
 *         new memory is unmapped.
 * race    the whole region replaced in one call, then upager_unmap() at
 *         once (as a program would): the mmap() returned once a worker
 *         read the event, not once it handled it, and an upager_unmap()
 *         that comes first takes the region for still mapped; 500
 *         rounds (it hits about 1 in 40).
 */
#include <sys/mman.h>

#include "tstore.h"

#define PG 4096
#define NPAGES 16
#define MINE 0x5a
#define ROUNDS 500

static struct upager_handler *h;
static struct upager_store *s;

static char *map(struct upager_region **r)
{
	int err;
	char *p = upager_map(h, s, NPAGES * PG, NULL, r, &err);

	CHECK(p, "map: %s", strerror(-err));
	CHECK(t_verify(p + 2 * PG, PG, 2) && t_verify(p + 9 * PG, PG, 9),
	      "pages 2 and 9");
	return p;
}

/* Memory of the application's over [@at, @at+@len), written. */
static void mine(char *at, size_t len)
{
	char *q = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	CHECK(q == at, "mmap at %p: %s", (void *)at,
	      q == MAP_FAILED ? strerror(errno) : "elsewhere");
	memset(q, MINE, len);
}

/* Wait until @n pages of the region were seen unmapped. */
static void unmapped(struct upager_region *r, uint64_t n)
{
	struct upager_stats st;

	for (int ms = 0;; ms++) {
		upager_region_stats(r, &st);
		if (st.pages_unmapped >= n)
			return;
		CHECK(ms < 5000, "%llu pages seen unmapped, want %llu",
		      (unsigned long long)st.pages_unmapped,
		      (unsigned long long)n);
		t_sleep_ms(1);
	}
}

/* Is [@q, @q+@len) still the application's, as written? */
static const char *intact(const char *q, size_t len)
{
	if (t_read_sigsegv(q))
		return "unmapped (SIGSEGV)";
	for (size_t i = 0; i < len; i++)
		if (q[i] != MINE)
			return "changed";
	return NULL;
}

static void hole(void)
{
	struct upager_region *r;
	char *p = map(&r);
	const char *why;

	mine(p + 4 * PG, 4 * PG);
	unmapped(r, 4);
	CHECK_RET(upager_unmap(r), 0);
	why = intact(p + 4 * PG, 4 * PG);
	CHECK(!why, "hole: after upager_unmap() the application's memory "
		    "in the hole is %s", why);
	munmap(p + 4 * PG, 4 * PG);
}

static void pieces(void)
{
	struct upager_region *r;
	char *p = map(&r);
	const char *why;

	mine(p, 8 * PG);
	unmapped(r, 8);
	mine(p + 8 * PG, 8 * PG);
	unmapped(r, 16);
	CHECK_RET(upager_unmap(r), 0);
	why = intact(p, NPAGES * PG);
	CHECK(!why, "pieces: after upager_unmap() the application's memory "
		    "where the region was is %s", why);
	munmap(p, NPAGES * PG);
}

static void race(void)
{
	for (unsigned int i = 0; i < ROUNDS; i++) {
		struct upager_region *r;
		char *p = map(&r);
		const char *why;

		mine(p, NPAGES * PG);
		CHECK_RET(upager_unmap(r), 0);
		why = intact(p, NPAGES * PG);
		CHECK(!why, "race, round %u: after upager_unmap() the "
			    "application's memory where the region was is %s",
		      i, why);
		munmap(p, NPAGES * PG);
	}
}

int main(int argc, char **argv)
{
	const char *part = argc > 1 ? argv[1] : NULL;
	int err;

	t_deadline(30, "munmap_reuse did not finish in 30 s");
	h = t_upager_handler(2, NULL, NULL);
	s = upager_store_mem_new(NPAGES * PG, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NPAGES; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i);
	CHECK_RET(upager_handler_start(h), 0);
	if (!part || !strcmp(part, "hole"))
		hole();
	if (!part || !strcmp(part, "pieces"))
		pieces();
	if (!part || !strcmp(part, "race"))
		race();
	upager_handler_free(h);
	upager_store_close(s);
	t_deadline(0, NULL);
	return 0;
}

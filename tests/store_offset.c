// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region that starts inside its store (upager_map_params.store_offset
 * > 0) reads the store from there: region page i holds store page
 * OFF + i, every byte of it, on each memory type, from
 *
 * - the mem store (the engine installs from its direct() pointer),
 * - the file store, buffered (direct() into the page cache, zero_run()
 *   over a hole in the file, which reads as zeros at its own place),
 * - a store with fetch() alone (tests/tstore.h: the staging buffer),
 *
 * with the memory type's page as the fill unit and a unit four times
 * larger (OFF is no multiple of either), read-ahead on.  The units are
 * first touched from the last down, one in three (faults of their own),
 * then every page in order (read-ahead windows).  In-thread regions (anon,
 * hugetlb) read through the offset too.  An engine that ignored the
 * offset would read store page i: every check would see another page.
 */
#include <fcntl.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define OFF 5	/* store pages before the region's first */
#define TAIL 3	/* store pages after its last */
#define HOLE 64 /* file store: region pages [HOLE, 2 * HOLE) are a hole */

enum kind { MEM, FILE_STORE, FETCH_ONLY, NKINDS };

static const char *const kind_name[] = { "mem", "file", "fetch-only" };

/* Store pages 0 .. @npages - 1, page j the pattern t_fill(seed j). */
static struct upager_store *open_store(enum kind k, size_t npages, int *fd)
{
	struct upager_store *s;
	char spec[64];
	int err;

	*fd = -1;
	switch (k) {
	case MEM:
		s = upager_store_mem_new(npages * PG, &err);
		CHECK(s, "mem store: %s", strerror(-err));
		for (size_t j = 0; j < npages; j++)
			t_fill((char *)upager_store_mem_data(s) + j * PG, PG,
			       j);
		return s;
	case FILE_STORE:
		*fd = t_tmp_unlinked(npages * PG);
		/* Where holes cannot be punched, zeros read the same. */
		if (fallocate(*fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (OFF + HOLE) * PG, HOLE * PG)) {
			static const char zeros[HOLE * PG];

			CHECK(pwrite(*fd, zeros, sizeof(zeros),
				     (OFF + HOLE) * PG) == sizeof(zeros),
			      "pwrite: %s", strerror(errno));
		}
		snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d", *fd);
		s = upager_store_open(spec, &err);
		CHECK(s, "%s: %s", spec, strerror(-err));
		return s;
	default:
		return &tstore_open(npages)->s;
	}
}

static bool page_ok(const char *p, size_t i, enum kind k)
{
	static const char zeros[PG];

	if (k == FILE_STORE && i >= HOLE && i < 2 * HOLE)
		return !memcmp(p + i * PG, zeros, PG);
	return t_verify(p + i * PG, PG, OFF + i);
}

static void run(enum upager_memtype type, enum kind k, size_t fill,
		unsigned int flags)
{
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type,
					.fill = fill, .flags = flags,
					.store_offset = OFF * PG };
	size_t len = type == UPAGER_MEM_HUGETLB ? 8u << 20 : 2u << 20;
	size_t units = len / fill, pages = len / PG, per = fill / PG;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	struct upager_stats st;
	int fd, err;
	char *p;

	fprintf(stderr, "%s store, %zu KiB units%s\n", kind_name[k],
		fill >> 10, flags ? ", in-thread" : "");
	s = open_store(k, OFF + pages + TAIL, &fd);
	h = upager_handler_new(NULL, &err);
	CHECK(h, "handler: %s", strerror(-err));
	p = upager_map(h, s, len, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	if (!flags)
		CHECK_RET(upager_handler_start(h), 0);

	for (size_t u = 0; u < units; u += 3)
		CHECK(page_ok(p, (units - 1 - u) * per, k),
		      "%s: unit %zu, its first page", kind_name[k],
		      units - 1 - u);
	for (size_t i = 0; i < pages; i++)
		CHECK(page_ok(p, i, k),
		      "%s, %zu KiB units: page %zu is not store page %zu",
		      kind_name[k], fill >> 10, i, OFF + i);

	if (!flags)
		CHECK_RET(upager_handler_stop(h), 0);
	upager_region_stats(r, &st);
	CHECK(st.pages_filled == pages && st.store_errors == 0,
	      "%llu pages filled of %zu, %llu store errors",
	      (unsigned long long)st.pages_filled, pages,
	      (unsigned long long)st.store_errors);
	/* anon maps what zero_run() calls a hole with ZEROPAGE. */
	if (k == FILE_STORE && type == UPAGER_MEM_ANON)
		CHECK(st.zero_pages > 0 && st.zero_pages <= HOLE,
		      "%llu pages ZEROPAGEd, the hole has %d",
		      (unsigned long long)st.zero_pages, HOLE);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype t = t_memtype(argc, argv);
	enum upager_memtype type = (enum upager_memtype)t;
	size_t page = PG;

	if (t == UPAGER_LL_MEM_HUGETLB) {
		struct t_mem m; /* reserves the pages, restored at exit */

		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, 4);
		t_mem_unmap(&m);
		page = 2u << 20;
	}
	for (int k = 0; k < NKINDS; k++) {
		run(type, (enum kind)k, page, 0);
		run(type, (enum kind)k, 4 * page, 0);
	}
	if (t != UPAGER_LL_MEM_SHMEM) {
		/* Skipped only where the kernel lacks in-thread faults. */
		close(t_uffd(UFFD_FEATURE_SIGBUS | t_features_missing(t), 0));
		run(type, MEM, page, UPAGER_MAP_IN_THREAD);
	}
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * UFFD_FEATURE_WP_ASYNC with PAGEMAP_SCAN (the kselftest pagemap_ioctl
 * pattern): on a range registered WP and write-protected, writes are
 * resolved by the kernel itself with no message (a non-blocking read is
 * -EAGAIN).  upager_ll_scan_written() without reset reports exactly the
 * written pages, adjacent ones merged into one region, and changes
 * nothing; with reset it reports them and re-protects atomically, so a
 * second scan with no new write reports none and a new write shows only
 * that page.  Reading a protected page does not make it written.  A raw
 * PAGEMAP_SCAN with an unknown flag is -EINVAL.
 *
 * Resumption: thousands of written pages, every other page (each its own
 * region), scanned with vectors too small for them (7, the kernel's own
 * 512, 1024, and one call of 4097) in a loop that starts each call where
 * the last one said: every written page reported exactly once, none
 * missed, and with reset each one protected again (a second scan finds
 * nothing).  1024 and 4097 cross the kernel's 512-entry buffer, after
 * which its walk_end is stale.  A scan with no room for a report (@nvec
 * 0) is -EINVAL, not a reset that reports nothing.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define NPAGES 32
#define RESUME_PAGES 8192 /* every other page written: 4096 regions */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static void check_regions(const struct t_mem *m, const struct page_region *v,
			  int n, const size_t (*want)[2], int nwant,
			  const char *what)
{
	CHECK(n == nwant, "%s: %d regions, want %d", what, n, nwant);
	for (int i = 0; i < n; i++) {
		uint64_t s = (uintptr_t)m->addr + want[i][0] * m->page;
		uint64_t e = (uintptr_t)m->addr + want[i][1] * m->page;

		CHECK(v[i].start == s && v[i].end == e,
		      "%s: region %d is pages [%lld, %lld), want [%zu, %zu)",
		      what, i,
		      (long long)(v[i].start - (uintptr_t)m->addr) /
			      (long long)m->page,
		      (long long)(v[i].end - (uintptr_t)m->addr) /
			      (long long)m->page,
		      want[i][0], want[i][1]);
		CHECK(v[i].categories == PAGE_IS_WRITTEN, "%s: categories %#llx",
		      what, (unsigned long long)v[i].categories);
	}
}

/* The page of @m at @addr, as a number for messages. */
static long long pg(const struct t_mem *m, uint64_t addr)
{
	return ((long long)addr - (long long)(uintptr_t)m->addr) /
	       (long long)m->page;
}

/*
 * Scan all of @m, @nvec regions a call, each call from where the last one
 * said the next starts; count in @seen how often each page is reported.
 */
static void scan_resumed(int pm, const struct t_mem *m,
			 struct page_region *vec, size_t nvec, bool reset,
			 unsigned char *seen)
{
	uint64_t at = (uintptr_t)m->addr, end = at + m->len, next;
	size_t npages = m->len / m->page;

	memset(seen, 0, npages);
	for (size_t calls = 0; at < end; calls++, at = next) {
		int n = upager_ll_scan_written(pm, (void *)(uintptr_t)at,
					       end - at, vec, nvec, reset,
					       &next);

		CHECK(n >= 0 && (size_t)n <= nvec,
		      "vector of %zu, reset %d: scan from page %lld: %d", nvec,
		      reset, pg(m, at), n);
		CHECK(next > at && next <= end && calls < npages,
		      "vector of %zu, reset %d: the scan from page %lld says "
		      "the next starts at page %lld",
		      nvec, reset, pg(m, at), pg(m, next));
		for (int i = 0; i < n; i++) {
			CHECK(vec[i].start >= at && vec[i].end <= next,
			      "vector of %zu, reset %d: region [%lld, %lld) is "
			      "outside [%lld, %lld), what the call covered: "
			      "the next call reports it again",
			      nvec, reset, pg(m, vec[i].start),
			      pg(m, vec[i].end), pg(m, at), pg(m, next));
			for (uint64_t a = vec[i].start; a < vec[i].end;
			     a += m->page)
				seen[pg(m, a)]++;
		}
	}
}

/* Each odd page reported once (@written) or none at all. */
static void check_seen(const struct t_mem *m, const unsigned char *seen,
		       bool written, size_t nvec, const char *what)
{
	for (size_t p = 0; p < m->len / m->page; p++) {
		unsigned int want = written && p % 2;

		CHECK(seen[p] == want,
		      "vector of %zu, %s: page %zu reported %u times, want %u",
		      nvec, what, p, seen[p], want);
	}
}

static void resume(enum upager_ll_memtype type, int fd, int pm)
{
	static const size_t nvecs[] = { 7, 512, 1024, RESUME_PAGES / 2 + 1 };
	struct page_region *vec = calloc(RESUME_PAGES / 2 + 1, sizeof(*vec));
	unsigned char *seen = malloc(RESUME_PAGES);
	struct t_mem m;

	CHECK(vec && seen, "malloc");
	t_mem_map(&m, type, RESUME_PAGES);
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_WP, NULL), 0);
	memset(m.addr, 0, m.len);
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.len,
					 UFFDIO_WRITEPROTECT_MODE_WP), 0);
	for (size_t k = 0; k < ARRAY_SIZE(nvecs); k++) {
		size_t nvec = nvecs[k];

		for (size_t p = 1; p < RESUME_PAGES; p += 2)
			m.addr[p * m.page] = (char)(p + k);
		/* No room for a report: refused, nothing protected. */
		CHECK_RET(upager_ll_scan_written(pm, m.addr, m.len, vec, 0,
						 true, NULL),
			  -EINVAL);
		CHECK_RET(upager_ll_scan_written(pm, m.addr, m.len, NULL, nvec,
						 true, NULL),
			  -EINVAL);
		scan_resumed(pm, &m, vec, nvec, false, seen);
		check_seen(&m, seen, true, nvec, "scan");
		scan_resumed(pm, &m, vec, nvec, true, seen);
		check_seen(&m, seen, true, nvec, "reset scan");
		scan_resumed(pm, &m, vec, nvec, false, seen);
		check_seen(&m, seen, false, nvec, "scan after the reset");
		scan_resumed(pm, &m, vec, nvec, true, seen);
		check_seen(&m, seen, false, nvec, "reset scan after the reset");
		for (size_t p = 0; p < RESUME_PAGES; p++)
			CHECK(m.addr[p * m.page] == (p % 2 ? (char)(p + k) : 0),
			      "page %zu's data", p);
	}
	t_mem_unmap(&m);
	free(seen);
	free(vec);
}

int main(int argc, char **argv)
{
	enum upager_ll_memtype type = t_memtype(argc, argv);
	static const size_t first[][2] = { { 1, 3 }, { 5, 6 }, { 31, 32 } };
	static const size_t later[][2] = { { 9, 10 } };
	struct page_region vec[NPAGES];
	struct uffd_msg msg;
	struct t_mem m;
	uint64_t end;
	int pm, fd, n;

	/* A fault nobody serves would hang: fail instead. */
	alarm(20);
	if (type == UPAGER_LL_MEM_HUGETLB)
		SKIP("wp_async runs on anon and shmem");
	fd = t_uffd(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED |
			    UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
		    UPAGER_LL_NONBLOCK);
	t_mem_map(&m, type, NPAGES);
	pm = upager_ll_pagemap_open();
	CHECK(pm >= 0, "pagemap: %s", strerror(-pm));
	CHECK_RET(upager_ll_register(fd, m.addr, m.len,
				     UFFDIO_REGISTER_MODE_WP, NULL), 0);
	/* Half the pages populated before protecting, half never touched. */
	memset(m.addr, 0x5a, m.len / 2);
	CHECK_RET(upager_ll_writeprotect(fd, m.addr, m.len,
					 UFFDIO_WRITEPROTECT_MODE_WP), 0);
	CHECK_RET(upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, false,
					 &end), 0);
	CHECK(end == (uintptr_t)m.addr + m.len, "walk_end");

	/* Writes: no message, no blocking; reads change nothing. */
	for (size_t i = 0; i < ARRAY_SIZE(first); i++)
		for (size_t p = first[i][0]; p < first[i][1]; p++)
			m.addr[p * m.page + 100] = (char)p;
	CHECK(m.addr[20 * m.page] == 0 && m.addr[10 * m.page] == 0x5a,
	      "reads");
	CHECK_RET(upager_ll_read(fd, &msg, 1), -EAGAIN);

	n = upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, false,
				   &end);
	check_regions(&m, vec, n, first, ARRAY_SIZE(first), "scan");
	CHECK(end == (uintptr_t)m.addr + m.len, "walk_end");
	/* Without reset nothing was re-protected. */
	n = upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, false,
				   NULL);
	check_regions(&m, vec, n, first, ARRAY_SIZE(first), "rescan");

	/* With reset: the same report, then the pages are clean again. */
	n = upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, true, NULL);
	check_regions(&m, vec, n, first, ARRAY_SIZE(first), "reset scan");
	CHECK_RET(upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, true,
					 NULL), 0);
	CHECK_RET(upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, false,
					 NULL), 0);

	/* A new write shows only that page; the old data is intact. */
	m.addr[9 * m.page] = 9;
	CHECK_RET(upager_ll_read(fd, &msg, 1), -EAGAIN);
	n = upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, true, NULL);
	check_regions(&m, vec, n, later, ARRAY_SIZE(later), "after write");
	CHECK_RET(upager_ll_scan_written(pm, m.addr, m.len, vec, NPAGES, false,
					 NULL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(first); i++)
		for (size_t p = first[i][0]; p < first[i][1]; p++)
			CHECK(m.addr[p * m.page + 100] == (char)p, "page %zu", p);
	CHECK(m.addr[9 * m.page] == 9, "page 9");

	/* A raw scan with a flag the kernel does not know. */
	{
		struct pm_scan_arg arg = {
			.flags = 1ull << 7,
			.start = (uintptr_t)m.addr,
			.end = (uintptr_t)m.addr + m.len,
			.vec = (uintptr_t)vec,
			.vec_len = NPAGES,
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};

		CHECK_RET(upager_ll_pagemap_scan(pm, &arg), -EINVAL);
		/* The same arguments with no flags are fine. */
		arg.flags = 0;
		CHECK_RET(upager_ll_pagemap_scan(pm, &arg), 0);
	}

	resume(type, fd, pm);
	close(pm);
	t_mem_unmap(&m);
	close(fd);
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region over a file in memory (mapped mode: faults resolved with
 * UFFDIO_CONTINUE) over a memfd with holes: pages the file never had,
 * which CONTINUE cannot map (-EFAULT).  A hole is no failed fetch: the
 * kernel answers a touch there as in any private mapping of the file.
 *
 * The file, 64 pages: data but pages 5 and 6, 16-31 and 40-47.  A plain
 * MAP_PRIVATE mmap of it is the reference: the region must read what it
 * reads.
 * - fill 64K, a unit half hole: its data, no SIGBUS, no error;
 * - upager_region_prefault() over the holes: 0, the data, zeros where
 *   the file has a hole, the holes left unmapped.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "tstore.h"

#define PG     4096
#define NPAGES 64
#define SEED   7000

#define PM_PRESENT (1ull << 63)

static bool hole(size_t i)
{
	return i == 5 || i == 6 || (i >= 16 && i < 32) || (i >= 40 && i < 48);
}

/* A memfd holding the layout above, and a store over it. */
static int make_file(struct upager_store **s, bool writable)
{
	char spec[64];
	int fd = memfd_create("upager-mapped-around", MFD_CLOEXEC), err;

	CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	for (size_t i = 0; i < NPAGES; i++) {
		char pg[PG];

		if (hole(i))
			continue;
		t_fill(pg, PG, SEED + i);
		CHECK(pwrite(fd, pg, PG, (off_t)(i * PG)) == PG, "pwrite");
	}
	CHECK(ftruncate(fd, NPAGES * PG) == 0, "ftruncate");
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d%s", fd,
		 writable ? ",writable" : "");
	*s = upager_store_open(spec, &err);
	CHECK(*s, "%s: %s", spec, strerror(-err));
	return fd;
}

static char *ref_map(int fd)
{
	char *m = mmap(NULL, NPAGES * PG, PROT_READ, MAP_PRIVATE, fd, 0);

	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	return m;
}

/* Page @i of the region reads what the file's own mapping reads. */
static void check_page(const char *p, const char *ref, size_t i,
		       const char *when)
{
	CHECK(!t_read_sigbus(p + i * PG), "%s: page %zu: SIGBUS", when, i);
	CHECK(!memcmp(p + i * PG, ref + i * PG, PG),
	      "%s: page %zu reads other than the file's mmap", when, i);
}

static bool mapped(const char *p, size_t i)
{
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t e;

	CHECK(pm >= 0, "pagemap: %s", strerror(errno));
	e = t_pagemap_entry(pm, p + i * PG);
	close(pm);
	return e & PM_PRESENT;
}

static atomic_uint touches[NPAGES];

static void on_touch(void *arg, struct upager_region *r, size_t off)
{
	(void)arg;
	(void)r;
	atomic_fetch_add(&touches[off / PG], 1);
}

struct setup {
	struct t_errors errors;
	struct upager_handler *h;
	struct upager_region *r;
	struct upager_store *s;
	int fd;
	char *p, *ref;
};

static void up(struct setup *t, struct upager_map_params *mp)
{
	int err;

	for (size_t i = 0; i < NPAGES; i++)
		atomic_store(&touches[i], 0);
	memset(&t->errors, 0, sizeof(t->errors));
	t->fd = make_file(&t->s, mp->flags & UPAGER_MAP_TRACK_WRITES);
	t->ref = ref_map(t->fd);
	t->h = t_upager_handler(2, t_on_error, &t->errors);
	mp->size = sizeof(*mp);
	mp->on_touch = on_touch;
	t->p = upager_map(t->h, t->s, NPAGES * PG, mp, &t->r, &err);
	CHECK(t->p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(t->h), 0);
}

/* No error was reported: a hole is no failed fetch. */
static void down(struct setup *t)
{
	CHECK_RET(upager_unmap(t->r), 0);
	CHECK(!atomic_load(&t->errors.calls),
	      "%u errors reported, the last "
	      "%s at offset %#llx",
	      atomic_load(&t->errors.calls),
	      strerror(-atomic_load(&t->errors.err)),
	      (unsigned long long)(atomic_load(&t->errors.addr) -
				   (uintptr_t)t->p));
	upager_handler_free(t->h);
	upager_store_close(t->s);
	munmap(t->ref, NPAGES * PG);
	close(t->fd);
}

static void unit_half_hole(void)
{
	struct upager_map_params mp = {.fill = 64 << 10};
	struct setup t;

	up(&t, &mp);
	check_page(t.p, t.ref, 33, "fill 64K, unit 2");
	for (size_t i = 0; i < NPAGES; i++)
		check_page(t.p, t.ref, i, "fill 64K");
	down(&t);
}

static void prefault_holes(void)
{
	struct upager_map_params mp = {0};
	struct setup t;

	up(&t, &mp);
	CHECK_RET(upager_region_prefault(t.r, 0, NPAGES * PG), 0);
	for (size_t i = 0; i < NPAGES; i++)
		CHECK(mapped(t.p, i) == !hole(i),
		      "prefaulted: page %zu is %smapped", i,
		      hole(i) ? "" : "not ");
	for (size_t i = 0; i < NPAGES; i++)
		check_page(t.p, t.ref, i, "prefaulted");
	down(&t);
}

int main(void)
{
	unit_half_hole();
	prefault_holes();
	return 0;
}

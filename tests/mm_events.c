// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The engine follows what the program does to a region's memory, on
 * each memory type (argv[1]), through the uffd's events:
 *
 * refetch   MADV_DONTNEED under the default REMOVE policy: anon and
 *           hugetlb read the store's data again (what the program wrote
 *           is gone, as in a private file mapping), fetched once more;
 *           shmem keeps the data, written or not (a shared mapping), with
 *           no fetch; MADV_REMOVE drops shmem's, and the store's comes
 *           back.  pages_removed counts the pages.
 * zero      the same under UPAGER_REMOVE_ZERO: what was dropped reads
 *           zeros, also a unit never touched before its DONTNEED (a
 *           balloon's semantics), with no fetch; shmem keeps its data
 *           through MADV_DONTNEED and reads zeros after MADV_REMOVE.
 *           On anon a child forked after the drops reads them so too.
 * remap     mremap() moving the whole region: it follows (its address,
 *           remaps), installed pages moved with it, the others fault and
 *           fill at the new address.
 * unmap     munmap() of two units in the middle: they are gone (SIGSEGV,
 *           pages_unmapped; upager_region_install() leaves them alone),
 *           the units around them are served.  Then the program maps
 *           memory of its own over the rest (MAP_FIXED): the region is
 *           gone, and upager_unmap() frees it without touching that
 *           memory.
 * dontfork  UPAGER_FORK_DONTFORK: a child has no such mapping (SIGSEGV),
 *           while the parent reads on.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include "tstore.h"

#define UNITS 16u

struct rig {
	enum upager_memtype type;
	size_t unit;
	struct upager_handler *h;
	struct upager_store *s;
	struct upager_region *r;
	char *p;
};

static void rig_open(struct rig *g, enum upager_memtype type,
		     enum upager_remove_policy remove,
		     enum upager_fork_policy fork)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1,
					.remove = remove,
					.fork = fork };
	char *img;
	int err;

	g->type = type;
	g->unit = type == UPAGER_MEM_HUGETLB ? 2u << 20 : 4096;
	g->h = t_upager_handler(2, NULL, NULL);
	g->s = upager_store_mem_new(UNITS * g->unit, &err);
	CHECK(g->s, "mem store: %s", strerror(-err));
	img = upager_store_mem_data(g->s);
	for (size_t i = 0; i < UNITS * g->unit / 4096; i++)
		t_fill(img + i * 4096, 4096, i);
	g->p = upager_map(g->h, g->s, UNITS * g->unit, &mp, &g->r, &err);
	CHECK(g->p, "map: %s", strerror(-err));
	/* The events wait for a worker to read them. */
	CHECK_RET(upager_handler_start(g->h), 0);
}

static void rig_close(struct rig *g)
{
	CHECK_RET(upager_unmap(g->r), 0);
	upager_handler_free(g->h);
	upager_store_close(g->s);
}

static char *unit(struct rig *g, size_t u)
{
	return (char *)upager_region_addr(g->r) + u * g->unit;
}

/* Does unit @u hold the store's data (checked page by page)? */
static bool store_data(struct rig *g, size_t u)
{
	size_t per = g->unit / 4096;

	for (size_t i = 0; i < per; i++)
		if (!t_verify(unit(g, u) + i * 4096, 4096, u * per + i))
			return false;
	return true;
}

static bool all_bytes(const char *p, size_t len, char c)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != c)
			return false;
	return true;
}

static struct upager_stats stats(struct rig *g)
{
	struct upager_stats st;

	upager_region_stats(g->r, &st);
	return st;
}

/*
 * madvise() and munmap() return once a worker has read their event,
 * perhaps before it has counted it: wait for @field to reach @want.
 */
#define WAIT_STAT(g, field, want)                                         \
	do {                                                              \
		for (int ms_ = 0; stats(g).field != (want); ms_++) {      \
			CHECK(ms_ < 5000, #field " %llu, want %llu",      \
			      (unsigned long long)stats(g).field,         \
			      (unsigned long long)(want));                \
			t_sleep_ms(1);                                    \
		}                                                         \
	} while (0)

static void drop(struct rig *g, size_t u, size_t n, int advice)
{
	CHECK(madvise(unit(g, u), n * g->unit, advice) == 0, "madvise: %s",
	      strerror(errno));
}

/*
 * A child forked after the drops reads unit 8 (dropped, never touched)
 * by the policy too: its copy of the region keeps the parent's states.
 */
static void child_reads_dropped(struct rig *g, bool zero)
{
	int status;
	pid_t pid;

	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(zero ? !all_bytes(unit(g, 8), g->unit, 0)
			   : !store_data(g, 8));
	CHECK(t_wait_child(pid, 5000, &status) == 0 && WIFEXITED(status) &&
		      !WEXITSTATUS(status),
	      "the child's unit 8 after the drop: not %s (status %#x)",
	      zero ? "zeros" : "the store's data", status);
}

static void remove_policy(enum upager_memtype type, bool zero)
{
	struct rig g;
	uint64_t fetched;
	bool shmem = type == UPAGER_MEM_SHMEM;

	rig_open(&g, type, zero ? UPAGER_REMOVE_ZERO : UPAGER_REMOVE_REFETCH,
		 UPAGER_FORK_AUTO);
	CHECK(store_data(&g, 3), "unit 3");
	memset(unit(&g, 4), 'X', g.unit);
	fetched = stats(&g).bytes_fetched;
	CHECK(fetched == 2 * g.unit, "fetched %llu", (unsigned long long)fetched);

	drop(&g, 3, 2, MADV_DONTNEED);
	drop(&g, 8, 1, MADV_DONTNEED); /* never touched */
	WAIT_STAT(&g, pages_removed, 3 * g.unit / 4096);
	if (type == UPAGER_MEM_ANON && geteuid() == 0) { /* EVENT_FORK */
		child_reads_dropped(&g, zero);
		/* A child's copy counts in its root's statistics. */
		fetched = stats(&g).bytes_fetched;
	}
	if (shmem) {
		/* A shared mapping keeps its data through DONTNEED. */
		CHECK(store_data(&g, 3), "shmem unit 3 after DONTNEED");
		CHECK(all_bytes(unit(&g, 4), g.unit, 'X'),
		      "shmem unit 4 lost what was written");
		CHECK(stats(&g).bytes_fetched == fetched, "shmem refetched");
		drop(&g, 4, 1, MADV_REMOVE);
		fetched = stats(&g).bytes_fetched;
	}
	if (zero) {
		CHECK(all_bytes(unit(&g, 4), g.unit, 0),
		      "unit 4 after the drop: not zeros");
		if (!shmem)
			CHECK(all_bytes(unit(&g, 3), g.unit, 0),
			      "unit 3 after DONTNEED: not zeros");
		CHECK(all_bytes(unit(&g, 8), g.unit, 0),
		      "unit 8, dropped untouched: not zeros");
		CHECK(stats(&g).bytes_fetched == fetched,
		      "zeros were fetched");
	} else {
		CHECK(store_data(&g, 4), "unit 4 after the drop");
		CHECK(store_data(&g, 3), "unit 3 after the drop");
		CHECK(store_data(&g, 8), "unit 8 after the drop");
		CHECK(stats(&g).bytes_fetched ==
			      fetched + (shmem ? 2 : 3) * g.unit,
		      "fetched %llu, want %llu",
		      (unsigned long long)stats(&g).bytes_fetched,
		      (unsigned long long)(fetched +
					   (shmem ? 2 : 3) * g.unit));
	}
	CHECK(store_data(&g, 9), "unit 9, never dropped");
	rig_close(&g);
}

static void remap(enum upager_memtype type)
{
	size_t len;
	struct rig g;
	char *to, *q;

	rig_open(&g, type, UPAGER_REMOVE_REFETCH, UPAGER_FORK_AUTO);
	len = UNITS * g.unit;
	CHECK(store_data(&g, 0), "unit 0");
	memset(unit(&g, 1), 'Y', g.unit);
	/* A place of the same size, aligned for hugetlb. */
	to = mmap(NULL, len + g.unit, PROT_NONE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(to != MAP_FAILED, "mmap: %s", strerror(errno));
	to = (char *)(((uintptr_t)to + g.unit - 1) & ~(uintptr_t)(g.unit - 1));
	q = mremap(g.p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(q == to, "mremap: %s", strerror(errno));
	/* mremap() returns once the event was read, perhaps not handled. */
	for (int ms = 0; upager_region_addr(g.r) != q; ms++) {
		CHECK(ms < 5000, "the region did not follow");
		t_sleep_ms(1);
	}
	CHECK(store_data(&g, 0), "unit 0 after the move");
	CHECK(all_bytes(unit(&g, 1), g.unit, 'Y'), "unit 1 after the move");
	CHECK(store_data(&g, 5), "unit 5, first read after the move");
	CHECK(stats(&g).remaps == 1, "remaps %llu",
	      (unsigned long long)stats(&g).remaps);
	rig_close(&g);
}

static void unmap(enum upager_memtype type)
{
	struct rig g;
	char *base, *other, buf[4096];

	rig_open(&g, type, UPAGER_REMOVE_REFETCH, UPAGER_FORK_AUTO);
	base = g.p;
	CHECK(store_data(&g, 5), "unit 5");
	CHECK(munmap(unit(&g, 6), 2 * g.unit) == 0, "munmap: %s",
	      strerror(errno));
	WAIT_STAT(&g, pages_unmapped, 2 * g.unit / 4096);
	CHECK(t_read_sigsegv(unit(&g, 6)), "unit 6 is still mapped");
	memset(buf, 'Z', sizeof(buf));
	CHECK_RET(upager_region_install(g.r, 6 * g.unit, NULL, g.unit), 0);
	CHECK(!upager_region_present(g.r, 6 * g.unit), "unit 6 present");
	CHECK(store_data(&g, 8), "unit 8, after the hole");
	CHECK(store_data(&g, 2), "unit 2, before it");

	/*
	 * The rest, by the program: memory of its own mapped over all of
	 * it (MAP_FIXED unmaps what was there, in one call: a munmap() and
	 * a later mmap() could see another thread's mapping take the gap),
	 * and the region goes.
	 */
	other = mmap(base, UNITS * g.unit, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(other == base, "mmap over the old range: %s", strerror(errno));
	memset(other, 'W', 2 * 4096);
	WAIT_STAT(&g, pages_unmapped, UNITS * g.unit / 4096);
	CHECK_RET(upager_region_install(g.r, 0, NULL, g.unit), -ENOENT);
	CHECK_RET(upager_unmap(g.r), 0);
	CHECK(all_bytes(other, 2 * 4096, 'W'),
	      "upager_unmap() touched memory that is no longer the region's");
	other[0] = 'V'; /* still mapped and writable */
	munmap(other, UNITS * g.unit);
	upager_handler_free(g.h);
	upager_store_close(g.s);
}

static void dontfork(enum upager_memtype type)
{
	struct rig g;
	int status;
	pid_t pid;

	rig_open(&g, type, UPAGER_REMOVE_REFETCH, UPAGER_FORK_DONTFORK);
	CHECK(store_data(&g, 1), "unit 1");
	fflush(stderr);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		_exit(t_read_sigsegv(unit(&g, 1)) &&
				      t_read_sigsegv(unit(&g, 2))
			      ? 0
			      : 1);
	CHECK(t_wait_child(pid, 5000, &status) == 0 && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "the child could read a DONTFORK region");
	CHECK(store_data(&g, 2), "the parent's unit 2");
	rig_close(&g);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, true);

	t_deadline(60, "mm_events did not finish in 60 s");
	if (type == UPAGER_MEM_HUGETLB) {
		struct t_mem m; /* reserves the pages, restored at exit */

		t_mem_map(&m, UPAGER_LL_MEM_HUGETLB, UNITS + 2);
		t_mem_unmap(&m);
	}
	remove_policy(type, false);
	remove_policy(type, true);
	remap(type);
	unmap(type);
	dontfork(type);
	t_deadline(0, NULL);
	return 0;
}

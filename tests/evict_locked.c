// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Part "part": an evictor's drop of a read-only unit that fails part way: the
 * program mlock()ed the unit's last two pages, so MADV_DONTNEED zaps the
 * first two (their REMOVE read by a worker) and then refuses the locked
 * mapping (EINVAL).  The unit stays resident, the drop told through
 * on_error; the two zapped pages must read the store's data again.
 * Under REMOVE_ZERO they read zeros: the evictor stopped announcing its
 * range as soon as madvise() failed, before a worker had handled the
 * REMOVE it had read, which then counted as the program's drop; and the
 * unit stayed installed with pages missing, which under ZERO are the
 * program's drops.  Now the unit goes as a whole.
 *
 * Part "whole": all four pages locked, nothing is zapped and the unit
 * stays, counted resident; unlocked, it is evicted as any other.  Let go
 * with its pages in memory (the first version of the fix), it was never
 * counted nor evicted again.  anon.
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tstore.h"

#define PG     4096ul
#define UNIT   (4 * PG)
#define NUNITS 16
#define BUDGET 4

static atomic_uint told;

static void on_error(void *arg, struct upager_region *r, uint64_t addr,
		     int err, const char *what)
{
	(void)arg, (void)r, (void)addr, (void)err, (void)what;
	atomic_fetch_add(&told, 1);
}

/*
 * The other units through the budget, unit 0 first out (FIFO), each read
 * once the evictor is done with the one before: workers help evict only
 * over the whole budget, and they leave read-only units to the evictor.
 */
static void cycle(struct upager_region *r, const char *p)
{
	for (int round = 0; round < 4; round++) {
		for (size_t u = 1; u < NUNITS; u++) {
			CHECK(t_verify(p + u * UNIT, PG, u * 4 + 1),
			      "unit %zu", u);
			t_wait_resident(r, 0, (BUDGET - 1) * UNIT, 5000);
		}
	}
}

/* Unit 0 with its last @locked pages mlock()ed. */
static void one(size_t locked)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = UPAGER_MEM_ANON,
					.fill = UNIT,
					.budget = BUDGET * UNIT,
					.evict = UPAGER_EVICT_FIFO,
					.remove = UPAGER_REMOVE_ZERO,
					.readahead_max = (size_t)-1,
					.fault_around = (size_t)-1 };
	struct upager_handler *h = t_upager_handler(2, on_error, NULL);
	char *p, *lock_at;
	struct upager_region *r;
	struct upager_store *s;
	unsigned char vec[4];
	size_t in = 0;
	int err;

	atomic_store(&told, 0);
	s = upager_store_mem_new(NUNITS * UNIT, &err);
	CHECK(s, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < NUNITS * UNIT / PG; i++)
		t_fill((char *)upager_store_mem_data(s) + i * PG, PG, i + 1);
	p = upager_map(h, s, NUNITS * UNIT, &mp, &r, &err);
	if (!p && err == -EOPNOTSUPP)
		SKIP("a budget on anon: %s", strerror(-err));
	CHECK(p, "map: %s", strerror(-err));
	CHECK(!mprotect(p, NUNITS * UNIT, PROT_READ), "mprotect");
	CHECK_RET(upager_handler_start(h), 0);
	/* The system call itself: sanitizers make mlock() do nothing. */
	lock_at = p + (4 - locked) * PG;
	if (syscall(SYS_mlock, lock_at, locked * PG))
		SKIP("mlock: %s", strerror(errno));
	cycle(r, p);
	CHECK(atomic_load(&told), "the failed drop was not told");
	for (size_t i = 0; i < 4; i++)
		CHECK(t_verify(p + i * PG, PG, i + 1),
		      "page %zu of unit 0 (%s) does not read the store's data",
		      i, i < 4 - locked ? "zapped" : "locked");
	CHECK(!syscall(SYS_munlock, lock_at, locked * PG), "munlock");
	if (locked == 4) {
		cycle(r, p);
		CHECK(!mincore(p, UNIT, vec), "mincore");
		for (size_t i = 0; i < 4; i++)
			in += vec[i] & 1;
		CHECK(upager_region_present(r, 0) || !in,
		      "unit 0 counted gone with %zu pages in memory", in);
	}
	CHECK_RET(upager_unmap(r), 0);
	upager_store_close(s);
	upager_handler_free(h);
}

static void part(void)
{
	one(2);
	fprintf(stderr, "part: ok\n");
}

static void whole(void)
{
	one(4);
	fprintf(stderr, "whole: ok\n");
}

int main(int argc, char **argv)
{
	static const struct t_plain_part parts[] = {
		{ "part", part },
		{ "whole", whole },
	};

	return t_plain_parts(argc, argv, parts,
			     sizeof(parts) / sizeof(parts[0]));
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Live snapshots (upager_region_snapshot()) of a region being written.
 *
 * live         writer threads keep writing units (each owns the units
 *              u % NT == id; a write stamps every 512 bytes of the unit
 *              with the thread's write number, in order, and is logged
 *              with its start and end times) while a full snapshot of
 *              the region is taken into a mem store.  The snapshot must
 *              be the region at one instant: for each thread, exactly
 *              the writes up to some number K (the write K itself may
 *              be cut, its stamps a prefix of the unit: the instant fell
 *              inside it; any other unit torn fails), K begun before the
 *              protection ended, and write K + 1 not ended before the
 *              snapshot was called.  The last thread keeps to its 16
 *              highest units (copied last): it opens them again as soon
 *              as any pass protects them, so only the pass at the
 *              instant can catch them.
 * drops        live, while two threads drop pages (MADV_DONTNEED) until
 *              100 drops each past the snapshot call: a pending REMOVE
 *              event fails a protection before the instant (-EAGAIN:
 *              those passes give up), so the pass at the instant is the
 *              one that protects (at 1 GiB always: a pass there is 256
 *              protections; at 8 MiB it is 2, and both may fall between
 *              events).  They drop the units of the last thread that it
 *              never writes: a fault waits out the events (a fill or a
 *              lifted protection is -EAGAIN while one is pending), so a
 *              writer that met a dropped unit, or any fault, would wait
 *              as long as the drops go on, and write nothing.  So the
 *              whole region is written once first (open: written again
 *              without a fault).  A dropped unit reads zeros in the
 *              snapshot, as the model has it: zeros were written there,
 *              and a drop keeps them (shmem) or gives what the REMOVE
 *              policy reads, the store's data (anon), zeros too: nothing
 *              is written back to the store.  8 MiB when T_SNAP_MB is
 *              below 1024 (the sanitizer runs: a second there, under
 *              TSan too).
 * incremental  quiet region: a full snapshot, then one thread writes a
 *              known set of units, then an incremental snapshot into a
 *              store filled with a marker: exactly those units are
 *              written there, with what the region holds.
 * failed       a snapshot whose destination fails (-EIO) after the
 *              instant: the next incremental one is whole, so it holds
 *              the units written before the failed one too.
 * busy         a second snapshot while one runs is -EBUSY; parameters.
 * hole         the program unmapped the middle of the region and mapped
 *              memory of its own there: the snapshot copies the rest,
 *              leaves the hole's units out, and never touches the new
 *              mapping (not upager's: protecting it is -ENOENT).
 *
 * T_SNAP_MB sets the region's size in MiB (default 1024: the issue's
 * 1 GiB; CI's sanitizer runs take less).  argv[1]: anon or
 * shmem; argv[2] may name one part.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tstore.h"

#define PG 4096
#define NT 3
#define SLOT 512

struct rec {
	uint32_t u;
	uint64_t t0, t1;
};

struct writer {
	char *p;
	size_t nunits;
	unsigned int id;
	atomic_bool *stop;
	struct rec *log; /* log[k - 1]: write number k */
	size_t n, cap;
	size_t span; /* its highest units it writes; 0: all of its own */
};

static uint64_t stamp(unsigned int id, uint64_t k)
{
	return (uint64_t)(id + 1) << 48 | k;
}

/* xorshift64 */
static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	uint64_t x = 0x2545f4914f6cdd1dull * (w->id + 1);

	while (!atomic_load(w->stop) && w->n < w->cap) {
		size_t u = (size_t)next(&x);
		uint64_t s = stamp(w->id, w->n + 1);
		struct rec *r = &w->log[w->n];

		u = w->span ? w->nunits / NT - 1 - u % w->span
			    : u % (w->nunits / NT);
		u = u * NT + w->id;
		r->u = (uint32_t)u;
		r->t0 = t_now_ns();
		for (size_t o = 0; o < PG; o += SLOT)
			__atomic_store_n((uint64_t *)(void *)(w->p + u * PG + o),
					 s, __ATOMIC_RELEASE);
		r->t1 = t_now_ns();
		w->n++;
		/*
		 * The hot thread's units are writable most of the time: paced,
		 * its log lasts the whole snapshot (unpaced it filled in under
		 * a second, before the instant, and then proved nothing).
		 */
		while (w->span && t_now_ns() - r->t1 < 2000)
			;
	}
	return NULL;
}

static struct upager_region *map(struct upager_handler *h,
				 struct upager_store *s, size_t len,
				 enum upager_memtype type, char **p)
{
	struct upager_map_params mp = { .size = sizeof(mp),
					.memtype = type,
					.flags = UPAGER_MAP_TRACK_WRITES };
	struct upager_region *r;
	int err;

	*p = upager_map(h, s, len, &mp, &r, &err);
	if (!*p && err == -EOPNOTSUPP)
		SKIP("write tracking needs write-protect faults");
	CHECK(*p, "map: %s", strerror(-err));
	return r;
}

/* Check the snapshot @img against thread @w's log (see live). */
static void check_thread(const char *img, struct writer *w, uint64_t t_call,
			 uint64_t t_prot)
{
	size_t per = w->nunits / NT;
	uint64_t *last = calloc(per, sizeof(*last)), k = 0;

	CHECK(last, "memory");
	/* K: the highest write number of this thread in the snapshot. */
	for (size_t i = 0; i < per; i++)
		for (size_t o = 0; o < PG; o += SLOT) {
			uint64_t v;

			memcpy(&v, img + (i * NT + w->id) * PG + o, 8);
			if (v >> 48 == w->id + 1 && (v & 0xffffffffffffull) > k)
				k = v & 0xffffffffffffull;
		}
	for (uint64_t j = 1; j < k; j++)
		last[w->log[j - 1].u / NT] = stamp(w->id, j);
	for (size_t i = 0; i < per; i++) {
		size_t u = i * NT + w->id;
		bool cut = k && w->log[k - 1].u == u, prefix = true;

		for (size_t o = 0; o < PG; o += SLOT) {
			uint64_t v;

			memcpy(&v, img + u * PG + o, 8);
			if (cut && prefix && v == stamp(w->id, k))
				continue;
			if (cut && o == 0)
				FAIL("thread %u: write %llu (unit %zu) has no "
				     "stamp at the start of its unit",
				     w->id, (unsigned long long)k, u);
			prefix = false;
			CHECK(v == last[i],
			      "thread %u unit %zu slot %zu: %llx, want %llx "
			      "(the writes up to %llu, and no other)",
			      w->id, u, o / SLOT, (unsigned long long)v,
			      (unsigned long long)last[i],
			      (unsigned long long)k);
		}
	}
	CHECK(!k || w->log[k - 1].t0 <= t_prot,
	      "thread %u: write %llu began after the protection ended", w->id,
	      (unsigned long long)k);
	CHECK(k >= w->n || w->log[k].t1 >= t_call,
	      "thread %u: write %llu ended before the snapshot was called "
	      "but is not in it",
	      w->id, (unsigned long long)k + 1);
	free(last);
}

static size_t region_mb(void)
{
	const char *mb = getenv("T_SNAP_MB");

	return mb ? strtoull(mb, NULL, 10) : 1024;
}

#define HOT 16 /* the last thread's units */
#define ND 2
#define DROPS_PAST 100

struct dropper {
	char *p;
	size_t nunits;
	unsigned int id;
	atomic_bool *called; /* the snapshot was called */
	size_t n;
};

/* Drop units of the last thread below its HOT (see drops). */
static void *drop_loop(void *arg)
{
	struct dropper *d = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull * (d->id + 1);
	unsigned int past = 0;

	while (past < DROPS_PAST) {
		size_t u = (size_t)(next(&x) % (d->nunits / NT - HOT)) * NT +
			   NT - 1;

		CHECK(!madvise(d->p + u * PG, PG, MADV_DONTNEED),
		      "madvise(DONTNEED): %s", strerror(errno));
		d->n++;
		past += atomic_load(d->called);
	}
	return NULL;
}

/* live, with @nd droppers (drops) or none. */
static void snap_live(enum upager_memtype type, size_t len, unsigned int nd)
{
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s = upager_store_mem_new(len, NULL);
	struct upager_store *d = upager_store_mem_new(len, NULL);
	struct upager_snapshot_info info = { .size = sizeof(info) };
	struct upager_region *r;
	struct writer w[NT];
	struct dropper dr[ND];
	pthread_t t[NT], td[ND];
	atomic_bool stop = false, called = false;
	uint64_t t_call, t_prot;
	size_t drops = 0;
	char *p;

	CHECK(s && d, "mem stores");
	r = map(h, s, len, type, &p);
	CHECK_RET(upager_handler_start(h), 0);
	/* Half of it resident and dirty, half never touched (drops: all). */
	for (size_t off = 0; off < (nd ? len : len / 2); off += PG)
		p[off] = 0;
	for (unsigned int i = 0; i < NT; i++) {
		w[i] = (struct writer){ p, len / PG, i, &stop, NULL, 0,
					8u << 20, i == NT - 1 ? HOT : 0 };
		w[i].log = malloc(w[i].cap * sizeof(*w[i].log));
		CHECK(w[i].log, "memory");
		CHECK(!pthread_create(&t[i], NULL, write_loop, &w[i]), "thread");
	}
	for (unsigned int i = 0; i < nd; i++) {
		dr[i] = (struct dropper){ p, len / PG, i, &called, 0 };
		CHECK(!pthread_create(&td[i], NULL, drop_loop, &dr[i]),
		      "thread");
	}
	t_sleep_ms(100);
	atomic_store(&called, true);
	t_call = t_now_ns();
	CHECK_RET(upager_region_snapshot(r, d, 0, &info), 0);
	/* The protection ended @info.ns - protect_ns before the copy did. */
	t_prot = t_now_ns() - (info.ns - info.protect_ns);
	t_sleep_ms(50);
	atomic_store(&stop, true);
	for (unsigned int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	for (unsigned int i = 0; i < nd; i++) {
		pthread_join(td[i], NULL);
		drops += dr[i].n;
	}
	printf("%s %s %zu MiB: %llu units in %.1f ms (protect %.2f ms, "
	       "held %.2f ms), "
	       "%llu saved by a write first; writes %zu %zu %zu; %zu drops\n",
	       nd ? "drops" : "live",
	       type == UPAGER_MEM_ANON ? "anon" : "shmem", len >> 20,
	       (unsigned long long)info.units, info.ns / 1e6,
	       info.protect_ns / 1e6, info.held_ns / 1e6,
	       (unsigned long long)info.units_early,
	       w[0].n, w[1].n, w[2].n, drops);
	CHECK(info.units == len / PG, "every unit copied");
	for (unsigned int i = 0; i < NT; i++) {
		check_thread(upager_store_mem_data(d), &w[i], t_call, t_prot);
		free(w[i].log);
	}
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_store_close(d);
}

static void live(enum upager_memtype type)
{
	snap_live(type, region_mb() << 20, 0);
}

static void drops(enum upager_memtype type)
{
	snap_live(type, (region_mb() < 1024 ? 8 : region_mb()) << 20, ND);
}

static void incremental(enum upager_memtype type)
{
	size_t len = 64 << 20, nunits = len / PG;
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s = upager_store_mem_new(len, NULL);
	struct upager_store *d = upager_store_mem_new(len, NULL);
	struct upager_store *inc = upager_store_mem_new(len, NULL);
	struct upager_snapshot_info info = { .size = sizeof(info) };
	struct upager_region *r;
	bool *wrote = calloc(nunits, 1);
	char *p, *img;
	size_t n = 0;

	CHECK(s && d && inc && wrote, "memory");
	r = map(h, s, len, type, &p);
	CHECK_RET(upager_handler_start(h), 0);
	for (size_t off = 0; off < len; off += 3 * PG)
		p[off] = 1;
	CHECK_RET(upager_region_snapshot(r, d, 0, NULL), 0);
	for (size_t u = 5; u < nunits; u += 97) {
		p[u * PG + 100] = 7; /* some were resident, some not */
		wrote[u] = true;
		n++;
	}
	img = upager_store_mem_data(inc);
	memset(img, 0xee, len);
	CHECK_RET(upager_region_snapshot(r, inc, UPAGER_SNAP_INCREMENTAL,
					 &info),
		  0);
	CHECK(info.units == n, "incremental: %llu units, want %zu",
	      (unsigned long long)info.units, n);
	for (size_t u = 0; u < nunits; u++) {
		if (wrote[u])
			CHECK(!memcmp(img + u * PG, p + u * PG, PG),
			      "unit %zu: what the region holds", u);
		else
			CHECK((unsigned char)img[u * PG] == 0xee &&
				      (unsigned char)img[u * PG + PG - 1] ==
					      0xee,
			      "unit %zu was not written: not in it", u);
	}
	/* Nothing written since: the next incremental is empty. */
	CHECK_RET(upager_region_snapshot(r, inc, UPAGER_SNAP_INCREMENTAL,
					 &info),
		  0);
	CHECK(info.units == 0, "an empty increment: %llu",
	      (unsigned long long)info.units);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_store_close(d);
	upager_store_close(inc);
	free(wrote);
}

/*
 * A snapshot that fails (its destination's writeback() -EIO) took the
 * written bits at its instant: the next incremental snapshot must still
 * hold every unit written since the last one that succeeded.
 */
static void failed(enum upager_memtype type)
{
	size_t len = 4 << 20, nunits = len / PG;
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s = upager_store_mem_new(len, NULL);
	struct upager_store *d = upager_store_mem_new(len, NULL);
	struct upager_store *inc = upager_store_mem_new(len, NULL);
	struct upager_snapshot_info info = { .size = sizeof(info) };
	struct upager_region *r;
	struct wbstore bad;
	char *p, *img;

	CHECK(s && d && inc, "memory");
	wbstore_init(&bad, nunits);
	atomic_store(&bad.fail, true);
	r = map(h, s, len, type, &p);
	CHECK_RET(upager_handler_start(h), 0);
	memset(p, 1, len);
	CHECK_RET(upager_region_snapshot(r, d, 0, NULL), 0);
	p[3 * PG] = 2; /* written before the failed one: its bit taken */
	CHECK_RET(upager_region_snapshot(r, &bad.s, UPAGER_SNAP_INCREMENTAL,
					 NULL),
		  -EIO);
	p[7 * PG] = 3; /* and after it */
	img = upager_store_mem_data(inc);
	memset(img, 0xee, len);
	CHECK_RET(upager_region_snapshot(r, inc, UPAGER_SNAP_INCREMENTAL,
					 &info),
		  0);
	CHECK(img[3 * PG] == 2,
	      "unit 3, written before a snapshot that failed, is not in the "
	      "next incremental one (%#x): its write is lost to the chain",
	      (unsigned char)img[3 * PG]);
	CHECK(img[7 * PG] == 3, "unit 7: %#x", (unsigned char)img[7 * PG]);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_store_close(d);
	upager_store_close(inc);
	wbstore_free(&bad);
}

struct bg {
	struct upager_region *r;
	struct upager_store *d;
	int ret;
	atomic_bool done;
};

static void *snap_thread(void *arg)
{
	struct bg *b = arg;

	b->ret = upager_region_snapshot(b->r, b->d, 0, NULL);
	atomic_store(&b->done, true);
	return NULL;
}

static void busy(enum upager_memtype type)
{
	size_t len = 256 << 20;
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s = upager_store_mem_new(len, NULL);
	struct upager_store *d = upager_store_mem_new(len, NULL);
	struct upager_store *small = upager_store_mem_new(len / 2, NULL);
	struct upager_store *z = upager_store_open("zero:256M", NULL);
	struct upager_map_params plain = { .size = sizeof(plain) };
	struct upager_region *r, *r2;
	struct bg b;
	pthread_t t;
	char *p;
	int got = 0;

	CHECK(s && d && small && z, "stores");
	r = map(h, s, len, type, &p);
	CHECK_RET(upager_handler_start(h), 0);
	CHECK_RET(upager_region_snapshot(r, small, 0, NULL), -ERANGE);
	CHECK_RET(upager_region_snapshot(r, z, 0, NULL), -EOPNOTSUPP);
	CHECK_RET(upager_region_snapshot(r, d, 4, NULL), -EINVAL);
	CHECK(upager_map(h, s, len, &plain, &r2, NULL), "untracked region");
	CHECK_RET(upager_region_snapshot(r2, d, 0, NULL), -EINVAL);
	CHECK_RET(upager_unmap(r2), 0);
	b = (struct bg){ r, d, 1, false };
	CHECK(!pthread_create(&t, NULL, snap_thread, &b), "thread");
	/* A second one while it runs: one of the two is refused. */
	while (!got && !atomic_load(&b.done)) {
		int ret = upager_region_snapshot(r, d, 0, NULL);

		CHECK(ret == 0 || ret == -EBUSY, "a second snapshot: %d", ret);
		got = ret == -EBUSY;
	}
	pthread_join(t, NULL);
	CHECK(b.ret == 0 || b.ret == -EBUSY, "the first: %d", b.ret);
	got |= b.ret == -EBUSY;
	printf("busy: a second snapshot %s\n",
	       got ? "was refused while the first ran"
		   : "came only after the first");
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	upager_store_close(d);
	upager_store_close(small);
	upager_store_close(z);
}

static void hole(enum upager_memtype type)
{
	size_t len = 16 << 20, lo = 4 << 20, hi = 5 << 20;
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s = upager_store_mem_new(len, NULL);
	struct upager_store *d = upager_store_mem_new(len, NULL);
	struct upager_snapshot_info info = { .size = sizeof(info) };
	struct upager_region *r;
	char *p, *img;

	CHECK(s && d, "stores");
	r = map(h, s, len, type, &p);
	CHECK_RET(upager_handler_start(h), 0);
	for (size_t off = 0; off < len; off += PG)
		p[off] = (char)(off / PG + 1);
	CHECK_RET(munmap(p + lo, hi - lo), 0);
	CHECK(mmap(p + lo, hi - lo, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
		   0) == p + lo,
	      "a mapping of the program's own in the hole");
	memset(p + lo, 0x55, hi - lo);
	img = upager_store_mem_data(d);
	memset(img, 0xee, len);
	CHECK_RET(upager_region_snapshot(r, d, 0, &info), 0);
	CHECK(info.units == (len - (hi - lo)) / PG, "%llu units copied",
	      (unsigned long long)info.units);
	for (size_t off = 0; off < len; off += PG) {
		bool gone = off >= lo && off < hi;

		CHECK(gone ? (unsigned char)img[off] == 0xee
			   : img[off] == (char)(off / PG + 1),
		      "offset %zu (%s)", off, gone ? "unmapped" : "mapped");
	}
	p[lo] = 1; /* still writable: never protected */
	CHECK_RET(upager_unmap(r), 0);
	CHECK((unsigned char)p[lo + 1] == 0x55, "unmap left it alone");
	munmap(p + lo, hi - lo);
	upager_handler_free(h);
	upager_store_close(s);
	upager_store_close(d);
}

struct poke {
	char *at;
	atomic_bool done;
};

static void *poke_main(void *arg)
{
	struct poke *k = arg;

	*k->at = 2;
	atomic_store(&k->done, true);
	return NULL;
}

/*
 * A write to a unit the copier is writing out waits for the copy of its
 * memory, not for the destination's write: a file's write may sleep in
 * the kernel's dirty throttling for a long time.  The destination holds
 * its first writeback() (unit 0's) at a gate; the program writes unit 0
 * meanwhile.
 */
static void slow_dst(enum upager_memtype type)
{
	size_t len = 1 << 20, nunits = len / PG;
	struct upager_handler *h = t_upager_handler(2, NULL, NULL);
	struct upager_store *s = upager_store_mem_new(len, NULL);
	struct poke k = { .done = false };
	struct upager_region *r;
	struct wbstore d;
	pthread_t t, tk;
	struct bg b;
	char *p;

	CHECK(s, "memory");
	wbstore_init(&d, nunits);
	r = map(h, s, len, type, &p);
	CHECK_RET(upager_handler_start(h), 0);
	memset(p, 1, len);
	atomic_store(&d.hold, true);
	b = (struct bg){ r, &d.s, 1, false };
	CHECK(!pthread_create(&t, NULL, snap_thread, &b), "thread");
	t_wait_set(&d.held, "the snapshot's write of unit 0");
	k.at = p;
	CHECK(!pthread_create(&tk, NULL, poke_main, &k), "thread");
	for (int ms = 0; ms < 10000 && !atomic_load(&k.done); ms++)
		t_sleep_ms(1);
	CHECK(atomic_load(&k.done),
	      "a write to unit 0 still waits after 10 s for the "
	      "destination's write of it");
	atomic_store(&d.release, true);
	pthread_join(tk, NULL);
	pthread_join(t, NULL);
	CHECK_RET(b.ret, 0);
	for (size_t i = 0; i < nunits; i++)
		CHECK(d.img[i * PG] == 1, "the image's unit %zu: %#x", i,
		      (unsigned char)d.img[i * PG]);
	CHECK(p[0] == 2, "unit 0 after the write: %#x", (unsigned char)p[0]);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
	wbstore_free(&d);
}

int main(int argc, char **argv)
{
	static const struct t_part parts[] = {
		{ "live", live },
		{ "drops", drops },
		{ "incremental", incremental },
		{ "failed", failed },
		{ "busy", busy },
		{ "hole", hole },
		{ "slow_dst", slow_dst },
		{ 0 },
	};

	return t_parts(argc, argv, parts);
}

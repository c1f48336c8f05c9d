// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager-bench section C: file reads (every word of each page read and
 * checked, and a byte-summing reader as a row of its own), sequential
 * and random, warm and cold page cache, through a file: region against
 * a plain mmap of the same file, beside the floor (fresh private memory
 * populated and read into) and a copy of the file in tmpfs; each row in
 * a process of its own, with its peak RSS.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <upager/upager.h>

#include "bench.h"
#include "sysfs.h"

const struct c_case c_seq[] = {
	{ "mmap_private", "mmap MAP_PRIVATE, PROT_READ", C_MMAP_PRIVATE,
	  .umap = true },
	{ "mmap_shared", "mmap MAP_SHARED, PROT_READ", C_MMAP_SHARED },
	{ "region_4k_1", "region fill 4K, ra 1M, 1 worker", C_REGION, 0, 0, 1 },
	{ "region_4k_2", "region fill 4K, ra 1M, 2 workers", C_REGION, 0, 0, 2,
	  .umap = true },
	{ "region_64k_1", "region fill 64K, ra 1M, 1 worker", C_REGION,
	  64 << 10, 0, 1 },
	{ "region_64k_2", "region fill 64K, ra 1M, 2 workers", C_REGION,
	  64 << 10, 0, 2, .umap = true },
	{ "region_2m_1", "region fill 2M, ra 8M, 1 worker", C_REGION, 2 << 20,
	  8 << 20, 1 },
	{ "region_2m_2", "region fill 2M, ra 8M, 2 workers", C_REGION,
	  2 << 20, 8 << 20, 2 },
	{ "region_huge_1", "region hugetlb 2M, ra 8M, 1 worker", C_REGION,
	  2 << 20, 8 << 20, 1, UPAGER_MEM_HUGETLB },
	{ "region_huge_2", "region hugetlb 2M, ra 8M, 2 workers", C_REGION,
	  2 << 20, 8 << 20, 2, UPAGER_MEM_HUGETLB },
	{ "mmap_private_bytesum", "mmap MAP_PRIVATE, byte-summing reader",
	  C_MMAP_PRIVATE, .bytesum = true },
	{ "region_4k_2_bytesum", "region 4K, 2 workers, byte-summing reader",
	  C_REGION, 0, 0, 2, .bytesum = true, .base = 10 },
	{ "floor_populate", "floor: POPULATE_WRITE 4K pages + pread",
	  C_FLOOR, .umap = true },
	{ "floor_populate_thp", "floor: POPULATE_WRITE THP + pread", C_FLOOR,
	  .thp = true, .umap = true },
	{ "shm_mmap", "tmpfs file: mmap MAP_PRIVATE", C_MMAP_PRIVATE,
	  .shm = true, .base = C_SEQ_SHM },
	{ "shm_region", "tmpfs file: region (CONTINUE), 2 workers", C_REGION,
	  0, 0, 2, .shm = true, .base = C_SEQ_SHM },
	{ "shm_region_fa64k", "tmpfs file: region, fault-around 64K",
	  C_REGION, 0, 0, 2, .fa = 64 << 10, .shm = true,
	  .base = C_SEQ_SHM },
	{ "shm_region_fa256k", "tmpfs file: region, fault-around 256K",
	  C_REGION, 0, 0, 2, .fa = 256 << 10, .shm = true,
	  .base = C_SEQ_SHM },
};
_Static_assert(ARRAY_SIZE(c_seq) == C_SEQ_N, "C_SEQ_N");

const struct c_case c_rand[] = {
	{ "mmap_private", "mmap MAP_PRIVATE, PROT_READ", C_MMAP_PRIVATE,
	  .umap = true },
	{ "mmap_shared", "mmap MAP_SHARED, PROT_READ", C_MMAP_SHARED },
	{ "region_4k", "region fill 4K, 2 workers", C_REGION, 0, 0, 2,
	  .umap = true },
	{ "region_64k", "region fill 64K, 2 workers", C_REGION, 64 << 10, 0,
	  2, .umap = true },
	{ "region_4k_inthread", "region fill 4K, in-thread (SIGBUS)",
	  C_REGION, 0, 0, 0, .umap = true },
	{ "shm_mmap", "tmpfs file: mmap MAP_PRIVATE", C_MMAP_PRIVATE,
	  .shm = true, .base = C_RAND_SHM },
	{ "shm_region", "tmpfs file: region (CONTINUE), 2 workers", C_REGION,
	  0, 0, 2, .shm = true, .base = C_RAND_SHM },
	{ "shm_region_fa64k", "tmpfs file: region, fault-around 64K",
	  C_REGION, 0, 0, 2, .fa = 64 << 10, .shm = true,
	  .base = C_RAND_SHM },
	{ "shm_region_fa256k", "tmpfs file: region, fault-around 256K",
	  C_REGION, 0, 0, 2, .fa = 256 << 10, .shm = true,
	  .base = C_RAND_SHM },
};
_Static_assert(ARRAY_SIZE(c_rand) == C_RAND_N, "C_RAND_N");

#define C_SEQ_HUGE_1 8 /* region_huge_1 */

/* ---- C: file reads -------------------------------------------------------- */

struct cfile {
	int fd;
	uint64_t size;
	size_t npages;
	struct upager_store *store;
	char *view;	    /* MAP_SHARED, never touched: for mincore() */
	unsigned char *vec; /* mincore() output */
};

/*
 * A file of @size bytes in @dir whose word k of page pg is pattern(pg) + k,
 * opened as a store.  It is unlinked at once: the store's descriptor and
 * ours keep it alive, and nothing is left behind however the run ends.
 */
static void cfile_create(struct cfile *f, const char *dir, uint64_t size)
{
	size_t chunk = 1 << 20;
	uint64_t *buf = xmalloc(chunk);
	char path[PATH_MAX], spec[PATH_MAX + 8];
	int err;

	if (snprintf(path, sizeof(path), "%s/upager-bench.XXXXXX", dir) >=
	    (int)sizeof(path))
		die("--dir '%s': path too long", dir);
	f->fd = mkstemp(path);
	if (f->fd < 0)
		die("--dir '%s': cannot create a file there: %s", dir,
		    strerror(errno));
	f->size = size;
	f->npages = size / PAGE;
	for (uint64_t off = 0; off < size; off += chunk) {
		size_t len = size - off < chunk ? size - off : chunk, done = 0;

		for (size_t i = 0; i < len / 8; i++)
			buf[i] = pattern((off + i * 8) / PAGE) + i % (PAGE / 8);
		while (done < len) {
			ssize_t w = pwrite(f->fd, (char *)buf + done,
					   len - done, (off_t)(off + done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				unlink(path);
				die("writing %s: %s", path,
				    w < 0 ? strerror(errno) : "short write");
			}
			done += (size_t)w;
		}
	}
	free(buf);
	if (fdatasync(f->fd)) {
		unlink(path);
		die("fdatasync %s: %s", path, strerror(errno));
	}
	snprintf(spec, sizeof(spec), "file:%s", path);
	f->store = upager_store_open(spec, &err);
	unlink(path);
	if (!f->store)
		die("upager_store_open(%s): %s", spec, strerror(-err));
	f->view = mmap(NULL, size, PROT_READ, MAP_SHARED, f->fd, 0);
	if (f->view == MAP_FAILED)
		die("mmap of the file: %s", strerror(errno));
	f->vec = xmalloc(f->npages);
}

static void cfile_close(struct cfile *f)
{
	munmap(f->view, f->size);
	free(f->vec);
	upager_store_close(f->store);
	close(f->fd);
}

/* The fraction of the file in the page cache. */
static double cfile_resident(struct cfile *f)
{
	size_t in = 0;

	if (mincore(f->view, f->size, f->vec))
		die("mincore: %s", strerror(errno));
	for (size_t i = 0; i < f->npages; i++)
		in += f->vec[i] & 1;
	return (double)in / (double)f->npages;
}

/*
 * Cold: write back, then drop the file's pages (no root needed).  The
 * store is opened again first: pages its mapping still maps (a block a
 * random reader touched in part) cannot be dropped.
 */
static void cfile_cold(struct bench *b, struct cfile *f)
{
	char spec[64];
	double left;
	int err;

	upager_store_close(f->store);
	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d", f->fd);
	f->store = upager_store_open(spec, &err);
	if (!f->store)
		die("upager_store_open(%s): %s", spec, strerror(-err));
	if (fdatasync(f->fd))
		die("fdatasync: %s", strerror(errno));
	err = posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED);
	if (err)
		die("posix_fadvise(DONTNEED): %s", strerror(err));
	left = cfile_resident(f);
	if (left > b->cold_resident_max)
		b->cold_resident_max = left;
	if (left >= 0.01)
		b->cold_dropped = false;
}

/* Warm: the whole file in the page cache (read it if any page is not). */
static void cfile_warm(struct cfile *f)
{
	size_t chunk = 1 << 20;
	char *buf;

	if (cfile_resident(f) >= 1.0)
		return;
	buf = xmalloc(chunk);
	for (uint64_t off = 0; off < f->size; off += chunk)
		if (pread(f->fd, buf, chunk, (off_t)off) < 0)
			die("reading the file: %s", strerror(errno));
	free(buf);
}

/* What a row's process hands back (a shared page). */
struct c_out {
	double rate;
	uint64_t faults, rss;
};

/*
 * The floor: the fastest the kernel gives fresh private memory holding
 * the file's bytes.  All of it populated in one call (4 KiB pages, or
 * THP where it can: 2 MiB aligned), the file pread() in, then read by
 * the same checking reader as every other row.  The time of all three.
 */
static uint64_t c_floor(const char *what, struct cfile *f, bool thp,
			enum touch how)
{
	size_t len = f->size, map = len + (2 << 20), chunk = 64 << 20;
	char *raw, *p;
	uint64_t start;

	raw = mmap(NULL, map, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		die("%s: mmap of %zu bytes: %s", what, map, strerror(errno));
	p = (char *)(((uintptr_t)raw + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1));
	if (madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		die("%s: madvise: %s", what, strerror(errno));
	start = clock_ns();
	if (madvise(p, len, MADV_POPULATE_WRITE))
		die("%s: MADV_POPULATE_WRITE: %s", what, strerror(errno));
	for (size_t off = 0; off < len;) {
		ssize_t n = pread(f->fd, p + off,
				  len - off < chunk ? len - off : chunk,
				  (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("%s: reading the file: %s", what,
			    n < 0 ? strerror(errno) : "short read");
		off += (size_t)n;
	}
	sweep(what, p, NULL, f->npages, how, false, NULL);
	return clock_ns() - start;
}

/* One row, measured in the process of its own that c_run() starts. */
static void c_measure(struct cfile *f, const struct c_case *c,
		      const uint32_t *idx, size_t n, const char *what,
		      struct c_out *out)
{
	enum touch how = c->bytesum ? TOUCH_PAGE : TOUCH_WORDS;
	uint64_t rss0 = rss_peak_reset(), wall;
	struct upager_stats st = { 0 };
	struct engine e;
	char *base;

	if (c->kind == C_FLOOR) {
		wall = c_floor(what, f, c->thp, how);
		out->rss = rss_peak_since(rss0);
	} else if (c->kind == C_REGION) {
		engine_up(&e, what, f->store, f->size, c->threads, NULL, c->fill,
			  c->ra, c->fa, c->threads ? 0 : UPAGER_MAP_IN_THREAD,
			  c->memtype);
		wall = sweep(what, e.addr, idx, n, how, false, NULL);
		out->rss = rss_peak_since(rss0);
		engine_down(&e, &st);
	} else {
		base = mmap(NULL, f->size, PROT_READ,
			    c->kind == C_MMAP_SHARED ? MAP_SHARED : MAP_PRIVATE,
			    f->fd, 0);
		if (base == MAP_FAILED)
			die("%s: mmap: %s", what, strerror(errno));
		wall = sweep(what, base, idx, n, how, false, NULL);
		out->rss = rss_peak_since(rss0);
		munmap(base, f->size);
	}
	out->rate = idx ? (double)n * 1e9 / (double)wall
			: (double)f->size / GIB * 1e9 / (double)wall;
	out->faults = st.faults;
}

/*
 * Each row runs in a child process, so that its peak RSS is its own: no
 * mapping, staging buffer or page table of an earlier row is counted,
 * and nothing a row leaves behind (a store's mapping, a heap grown by a
 * region) reaches the next one.  The page cache is made warm or cold
 * here first; the child inherits the open store and the file.
 */
static void c_run(struct bench *b, struct cfile *f, const struct c_case *c,
		  struct c_result *res, const uint32_t *idx, bool cold,
		  int round)
{
	size_t n = !idx ? f->npages : cold ? b->o.c_cold_reads : b->o.c_reads;
	struct c_out *out;
	char what[64];
	int status;
	pid_t pid;

	snprintf(what, sizeof(what), "C %s %s %s", idx ? "random" : "seq",
		 cold ? "cold" : "warm", c->id);
	if (c->memtype == UPAGER_MEM_HUGETLB && !b->huge_ok)
		return; /* no pages: the row is left out (rate 0) */
	if (cold)
		cfile_cold(b, f);
	else
		cfile_warm(f);
	out = mmap(NULL, sizeof(*out), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (out == MAP_FAILED)
		die("%s: mmap: %s", what, strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("%s: fork: %s", what, strerror(errno));
	if (!pid) {
		c_measure(f, c, idx, n, what, out);
		_exit(0); /* not exit(): the parent's atexit() work is its own */
	}
	if (waitpid(pid, &status, 0) != pid)
		die("%s: waitpid: %s", what, strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		die("%s: the row's process failed (%s %d)", what,
		    WIFEXITED(status) ? "exit" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	if (round >= 0) {
		res->rate[round] = out->rate;
		res->rss[round] = (double)out->rss;
		res->faults += out->faults;
	}
	munmap(out, sizeof(*out));
}

/* ---- C's hugetlb pages ---------------------------------------------------- */

/*
 * Reserve the 2 MiB pages the hugetlb rows map (the file's size, and a
 * few for the staging of a fill), and put nr_hugepages back at exit
 * however the run ends.  False, with a note, when that is not possible
 * (not root, or memory too fragmented): the rows are then left out.
 */
static bool huge_reserve(uint64_t bytes)
{
	size_t need = (size_t)(bytes >> 21) + 8;
	int ret = hugetlb_reserve(need);

	if (ret < 0)
		progress("[C] cannot reserve %zu hugetlb pages (%s): the "
			 "hugetlb rows are left out",
			 need, ret == -EPERM ? "not root" : strerror(-ret));
	return ret == 0;
}

/* Whether row @c runs in this pass. */
static bool c_wanted(struct bench *b, const struct c_case *c, int cold)
{
	if (b->o.umap)
		return c->umap && !cold;
	return !(c->shm && cold); /* tmpfs is never cold */
}

static void c_pass(struct bench *b, struct cfile *f, struct cfile *shm,
		   const uint32_t *idx, int cold)
{
	for (unsigned int r = 0; r < b->o.rounds; r++) {
		for (size_t k = 0; k < C_SEQ_N; k++) {
			size_t i = (k + r) % C_SEQ_N;

			if (c_wanted(b, &c_seq[i], cold))
				c_run(b, c_seq[i].shm ? shm : f, &c_seq[i],
				      &b->cseq[cold][i], NULL, cold, (int)r);
		}
		for (size_t k = 0; k < C_RAND_N; k++) {
			size_t i = (k + r) % C_RAND_N;

			if (c_wanted(b, &c_rand[i], cold))
				c_run(b, c_rand[i].shm ? shm : f, &c_rand[i],
				      &b->crand[cold][i], idx, cold, (int)r);
		}
	}
}

void section_c(struct bench *b)
{
	struct cfile f, shm;
	uint32_t *idx;
	uint64_t x = 0x2545f4914f6cdd1dull;

	progress("[C] file reads: writing a %" PRIu64 " MiB file in %s%s",
		 b->o.size / MIB, b->o.dir,
		 b->o.umap ? "" : " and a copy in /dev/shm");
	cfile_create(&f, b->o.dir, b->o.size);
	if (!b->o.umap)
		cfile_create(&shm, "/dev/shm", b->o.size);
	/* The same uniform random pages for every case (xorshift64). */
	idx = xmalloc(b->o.c_reads * sizeof(*idx));
	for (size_t i = 0; i < b->o.c_reads; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		idx[i] = (uint32_t)(x % f.npages);
	}
	b->cold_dropped = true;
	b->huge_ok = !b->o.umap && huge_reserve(b->o.size);
	if (b->huge_ok) {
		/*
		 * Untimed, once: the pool's pages get their first touch,
		 * which in a VM is the host backing them, as they would be
		 * in a pool that has served before.
		 */
		c_run(b, &f, &c_seq[C_SEQ_HUGE_1], NULL, NULL, false, -1);
	}
	for (int cold = 0; cold < (b->o.umap ? 1 : 2); cold++) {
		progress("[C] %s page cache: %zu sequential + %zu random cases "
			 "x %u round(s)%s",
			 cold ? "cold" : "warm", C_SEQ_N, C_RAND_N,
			 b->o.rounds, b->o.umap ? ", the --umap rows only" : "");
		c_pass(b, &f, &shm, idx, cold);
	}
	if (!b->cold_dropped)
		progress("[C] warning: up to %.0f%% of the file stayed cached "
			 "after a drop (tmpfs?): the cold rows are not cold",
			 b->cold_resident_max * 100);
	free(idx);
	cfile_close(&f);
	if (!b->o.umap)
		cfile_close(&shm);
	hugetlb_restore();
}

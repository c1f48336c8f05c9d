// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libupager-umap's calls beyond the main path (tests/umap_style.c has
 * that): umap_has_write_support(); umap() refusing what it can't take
 * with the errno its header names (length, prot, flags, offset, a
 * read-only descriptor for PROT_WRITE, a bad descriptor, a file shorter
 * than the mapping), uunmap() of what is no mapping, umap_flush() with
 * none; then on the kernel, with a buffer of 8 pages: a read-only mapping
 * from an offset of the file, where a write is SIGSEGV (not its eviction:
 * the engine can't evict a read-only region yet, see docs/UMAP.md); UMAP_FIXED at an address of ours;
 * umap_fetch_and_pin() keeping its pages resident while the rest of the
 * mapping turns over; umap_prefetch() bringing pages in; two mappings
 * flushed by one umap_flush(); uunmap() with a wrong length refused and
 * the mapping left working.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <upager/umap.h>

#include "harness.h"

#define PAGE   4096u
#define NPAGES 64

static void check_fails(void *addr, size_t len, int prot, int flags, int fd,
			off_t off, int want, const char *what)
{
	void *p;

	errno = 0;
	p = umap(addr, len, prot, flags, fd, off);
	CHECK(p == UMAP_FAILED && errno == want, "%s: %p, errno %s, want %s",
	      what, p, strerrorname_np(errno), strerrorname_np(want));
}

static void check_refusals(int fd)
{
	int ro, rw = PROT_READ | PROT_WRITE;
	char path[256];

	CHECK(umap_has_write_support() == 1, "no write support");
	check_fails(NULL, 0, rw, UMAP_PRIVATE, fd, 0, EINVAL, "length 0");
	check_fails(NULL, PAGE + 1, rw, UMAP_PRIVATE, fd, 0, EINVAL,
		    "length not whole pages");
	check_fails(NULL, PAGE, PROT_READ | PROT_EXEC, UMAP_PRIVATE, fd, 0,
		    EINVAL, "PROT_EXEC");
	check_fails(NULL, PAGE, PROT_WRITE, UMAP_PRIVATE, fd, 0, EINVAL,
		    "PROT_WRITE alone");
	check_fails(NULL, PAGE, rw, MAP_SHARED, fd, 0, EINVAL, "MAP_SHARED");
	check_fails(NULL, PAGE, rw, UMAP_PRIVATE | MAP_POPULATE, fd, 0, EINVAL,
		    "MAP_POPULATE");
	check_fails((void *)(uintptr_t)PAGE + 100, PAGE, rw,
		    UMAP_PRIVATE | UMAP_FIXED, fd, 0, EINVAL,
		    "UMAP_FIXED misaligned");
	check_fails(NULL, PAGE, rw, UMAP_PRIVATE, fd, 100, EINVAL,
		    "offset misaligned");
	check_fails(NULL, PAGE, rw, UMAP_PRIVATE, fd, -(off_t)PAGE, EINVAL,
		    "offset negative");
	check_fails(NULL, PAGE, rw, UMAP_PRIVATE, -1, 0, EBADF, "fd -1");
	ro = t_tmp_file(path, sizeof(path), PAGE, 0);
	close(ro);
	ro = open(path, O_RDONLY);
	unlink(path);
	check_fails(NULL, PAGE, rw, UMAP_PRIVATE, ro, 0, EACCES,
		    "PROT_WRITE over O_RDONLY");
	close(ro);
	errno = 0;
	CHECK(uunmap((void *)(uintptr_t)0x10000, PAGE) == -1 && errno == EINVAL,
	      "uunmap of no mapping: errno %s", strerrorname_np(errno));
	CHECK_RET(umap_flush(), 0);
}

/* Pages of [@p, @p + @n pages) resident now. */
static size_t resident(const char *p, size_t n)
{
	unsigned char vec[NPAGES];
	size_t count = 0;

	CHECK(n <= NPAGES && !mincore((void *)p, n * PAGE, vec), "mincore");
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}

/*
 * Eviction runs beside the faults: give it up to 10 s to bring [@p, @p +
 * @n pages) down to the buffer (8 pages).
 */
static void check_evicted(const char *p, size_t n)
{
	for (int i = 0; i < 1000 && resident(p, n) > 8; i++)
		usleep(10000);
	CHECK(resident(p, n) <= 8, "%zu pages resident after 10 s",
	      resident(p, n));
}

static char *map_ok(void *addr, size_t len, int prot, int flags, int fd,
		    off_t off)
{
	char *p = umap(addr, len, prot, flags, fd, off);

	CHECK(p != UMAP_FAILED, "umap(%p, %zu, %#x, %#x, fd, %lld): %s", addr,
	      len, prot, flags, (long long)off, strerror(errno));
	return p;
}

static void check_read_only(int fd)
{
	char *p =
	    map_ok(NULL, 16 * PAGE, PROT_READ, UMAP_PRIVATE, fd, 8 * PAGE);

	for (size_t i = 0; i < 16; i++)
		CHECK(t_verify(p + i * PAGE, PAGE, 8 + i), "page %zu", i);
	CHECK(t_write_sigsegv(p), "a write to a PROT_READ mapping");
	CHECK_RET(uunmap(p, 16 * PAGE), 0);
	check_fails(NULL, (NPAGES + 1) * PAGE, PROT_READ, UMAP_PRIVATE, fd, 0,
		    EINVAL, "past the end of the file");
}

static void check_fixed(int fd)
{
	char *want = mmap(NULL, 8 * PAGE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
	     *p;

	CHECK(want != MAP_FAILED, "mmap");
	p = map_ok(want, 8 * PAGE, PROT_READ | PROT_WRITE,
		   UMAP_PRIVATE | UMAP_FIXED, fd, 0);
	CHECK(p == want, "UMAP_FIXED at %p gave %p", (void *)want, (void *)p);
	for (size_t i = 0; i < 8; i++)
		CHECK(t_verify(p + i * PAGE, PAGE, i), "page %zu", i);
	CHECK_RET(uunmap(p, 8 * PAGE), 0);
}

static void check_pin_prefetch(int fd)
{
	char *p = map_ok(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE,
			 UMAP_PRIVATE, fd, 0);
	struct umap_prefetch_item items[2];

	umap_fetch_and_pin(p + 2 * PAGE + 10, 2 * PAGE);
	CHECK(resident(p + 2 * PAGE, 3) == 3, "pinned pages 2-4 not in");
	/* The rest turns over through a buffer of 8 pages, twice. */
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < NPAGES; i++)
			CHECK(t_verify(p + i * PAGE, PAGE, i), "page %zu", i);
	check_evicted(p, NPAGES);
	CHECK(resident(p + 2 * PAGE, 3) == 3, "pinned pages were evicted");
	CHECK_RET(uunmap(p, NPAGES * PAGE), 0);

	p = map_ok(NULL, NPAGES * PAGE, PROT_READ | PROT_WRITE, UMAP_PRIVATE,
		   fd, 0);
	items[0].page_base_addr = p + 40 * PAGE;
	items[1].page_base_addr = p + 50 * PAGE + 123;
	umap_prefetch(2, items);
	CHECK(resident(p + 40 * PAGE, 1) == 1 && resident(p + 50 * PAGE, 1),
	      "prefetched pages not in");
	CHECK(t_verify(p + 50 * PAGE, PAGE, 50), "page 50");
	CHECK_RET(uunmap(p, NPAGES * PAGE), 0);
}

static void check_two_flushed(int fd)
{
	char *a =
	    map_ok(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, UMAP_PRIVATE, fd, 0);
	char *b = map_ok(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, UMAP_PRIVATE,
			 fd, 32 * PAGE);
	char page[PAGE];

	memset(a + 3 * PAGE, 0x5a, PAGE);
	memset(b + 5 * PAGE, 0xa5, PAGE);
	CHECK_RET(umap_flush(), 0);
	CHECK(pread(fd, page, PAGE, 3 * PAGE) == PAGE && page[0] == 0x5a &&
		  page[PAGE - 1] == 0x5a,
	      "mapping a's page not in the file");
	CHECK(pread(fd, page, PAGE, 37 * PAGE) == PAGE && page[0] == (char)0xa5,
	      "mapping b's page not in the file");
	/* A wrong length is refused and the mapping stays. */
	errno = 0;
	CHECK(uunmap(a, 4 * PAGE) == -1 && errno == EINVAL,
	      "uunmap with a wrong length: errno %s", strerrorname_np(errno));
	CHECK(a[3 * PAGE] == 0x5a && t_verify(a + 4 * PAGE, PAGE, 4),
	      "the mapping after a refused uunmap");
	CHECK_RET(uunmap(a, 8 * PAGE), 0);
	CHECK_RET(uunmap(b, 8 * PAGE), 0);
}

int main(void)
{
	char path[256];
	int fd;

	setenv("UMAP_BUFSIZE", "8", 1);
	setenv("UMAP_PAGESIZE", "4096", 1);
	fd = t_tmp_file(path, sizeof(path), NPAGES * PAGE, 0);
	unlink(path);
	check_refusals(fd);
	check_read_only(fd);
	check_fixed(fd);
	check_pin_prefetch(fd);
	check_two_flushed(fd);
	close(fd);
	return t_end();
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A region over a file holds the file's data once: reading a file
 * through a file: region (page cache warm, default parameters, two
 * workers), sequentially and in a random order, peaks at most 1.1x the
 * RSS of reading it the same way through mmap(MAP_PRIVATE) in the same
 * run.  Each reader runs in a child of its own so that its peak is its
 * own (clear_refs 5 then VmHWM); every page read is checked.  A ratio,
 * never an absolute size: what mmap maps (its fault-around) is the
 * kernel's business, holding it twice is ours.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <upager/upager.h>

#include "harness.h"

#define PAGE	     4096u
#define NPAGES	     32768u /* 128 MiB */
#define RANDOM	     4096u  /* random page reads: an eighth of the file */
#define TMPFS_MAGIC_ 0x01021994

static uint64_t status_kib(const char *key)
{
	char buf[4096], *s;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	CHECK(fd >= 0, "/proc/self/status: %s", strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0, "/proc/self/status: %s", strerror(errno));
	buf[n] = 0;
	s = strstr(buf, key);
	CHECK(s, "/proc/self/status: no %s", key);
	return strtoull(s + strlen(key), NULL, 10);
}

/* VmHWM back to the current RSS; that RSS, KiB. */
static uint64_t peak_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	CHECK(fd >= 0 && write(fd, "5", 1) == 1, "clear_refs: %s",
	      strerror(errno));
	close(fd);
	return status_kib("VmRSS:");
}

static void read_pages(const char *base, const uint32_t *order, size_t n,
		       const char *what)
{
	for (size_t i = 0; i < n; i++) {
		size_t pg = order ? order[i] : i;

		if (!t_verify(base + pg * PAGE, PAGE, pg))
			t_child_fail(what);
	}
}

/*
 * In a child: read the file (@order, or all of it in order) through a
 * region or a mapping; its peak RSS above what it started with, KiB.
 */
static uint64_t peak_of(int fd, bool region, const uint32_t *order, size_t n)
{
	uint64_t *out = mmap(NULL, sizeof(*out), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0),
		 kib;
	int status;
	pid_t pid;

	CHECK(out != MAP_FAILED, "mmap: %s", strerror(errno));
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (!pid) {
		struct upager_handler_params hp = {.size = sizeof(hp),
						   .threads = 2};
		struct upager_handler *h = NULL;
		struct upager_region *r = NULL;
		struct upager_store *s = NULL;
		uint64_t start;
		char spec[64];
		char *base;
		int err;

		t_child_alarm(60);
		start = peak_reset();
		if (region) {
			snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d",
				 fd);
			s = upager_store_open(spec, &err);
			h = s ? upager_handler_new(&hp, &err) : NULL;
			if (!h || upager_handler_start(h))
				t_child_fail("store or handler");
			base = upager_map(h, s, (size_t)NPAGES * PAGE, NULL, &r,
					  &err);
		} else {
			base = mmap(NULL, (size_t)NPAGES * PAGE, PROT_READ,
				    MAP_PRIVATE, fd, 0);
			base = base == MAP_FAILED ? NULL : base;
		}
		if (!base)
			t_child_fail("map");
		read_pages(base, order, n, region ? "region" : "mmap");
		*out = status_kib("VmHWM:") - start;
		if (region) {
			upager_handler_stop(h);
			upager_unmap(r);
			upager_handler_free(h);
			upager_store_close(s);
		}
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(status) && !WEXITSTATUS(status), "the %s reader failed",
	      region ? "region" : "mmap");
	kib = *out;
	munmap(out, sizeof(*out));
	return kib;
}

/*
 * The file, written 1 MiB at a time as a program writes a file it
 * makes: the page cache then holds large folios, which a fault on a
 * mapping of the file maps whole (the case tests/store_file's small
 * writes do not make).
 */
static int make_file(void)
{
	static char buf[1 << 20];
	int fd = t_tmp_unlinked(0);

	for (size_t off = 0; off < (size_t)NPAGES * PAGE; off += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf) / PAGE; i++)
			t_fill(buf + i * PAGE, PAGE, off / PAGE + i);
		CHECK(pwrite(fd, buf, sizeof(buf), (off_t)off) == sizeof(buf),
		      "pwrite: %s", strerror(errno));
	}
	return fd;
}

static void warm(int fd)
{
	static char buf[1 << 20];

	for (off_t off = 0; off < (off_t)NPAGES * PAGE; off += sizeof(buf))
		CHECK(pread(fd, buf, sizeof(buf), off) == sizeof(buf),
		      "pread: %s", strerror(errno));
}

int main(void)
{
	static uint32_t order[RANDOM];
	uint64_t x = 0x2545f4914f6cdd1dull;
	struct statfs sf;
	int fd = make_file();

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	SKIP("a sanitizer's shadow memory and allocator are RSS of their own");
#endif
	/* On tmpfs a region maps the file itself: nothing to hold twice. */
	CHECK(!fstatfs(fd, &sf), "fstatfs: %s", strerror(errno));
	if (sf.f_type == TMPFS_MAGIC_)
		SKIP("%s is tmpfs: a region there maps the file", t_tmpdir());
	for (size_t i = 0; i < RANDOM; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		order[i] = (uint32_t)(x % NPAGES);
	}
	for (int rnd = 0; rnd < 2; rnd++) {
		const uint32_t *o = rnd ? order : NULL;
		size_t n = rnd ? RANDOM : NPAGES;
		uint64_t m, r;

		warm(fd);
		m = peak_of(fd, false, o, n);
		warm(fd);
		r = peak_of(fd, true, o, n);
		fprintf(stderr, "%s: peak RSS mmap %llu KiB, region %llu KiB\n",
			rnd ? "random" : "sequential", (unsigned long long)m,
			(unsigned long long)r);
		CHECK(m > 0 && r * 10 <= m * 11,
		      "%s: region peak %llu KiB > 1.1x mmap's %llu KiB",
		      rnd ? "random" : "sequential", (unsigned long long)r,
		      (unsigned long long)m);
	}
	close(fd);
	return t_end();
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The file store, buffered or (argv[1] "direct") with O_DIRECT, skipped
 * when the filesystem refuses it: single and multi-page fetches return the
 * file's bytes, into an aligned buffer or not; a size that is not whole
 * pages reads its last page's tail as zeros; the range is checked;
 * zero_run() finds a punched hole and a hole left by ftruncate(), and 0 on
 * data; ",writable" writes back without growing the file and a read-only
 * store has no writeback; a file truncated after open fails with -EIO,
 * never zeros, also where its hole ran to the old end; missing files,
 * directories, FIFOs and empty paths are refused; a path may hold commas.
 * Buffered, direct() gives the file's pages in place and release() unmaps
 * whole 2 MiB blocks once every page of them was released, and of the
 * blocks released in part keeps four at most: the page cache can then be
 * dropped, which it cannot while the store maps it.  A check
 * the filesystem of $TMPDIR cannot support (holes, dropping the cache of
 * tmpfs) makes the test a skip naming it, never a pass.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>
#include <upager/store.h>

#include "harness.h"

#define PAGE UPAGER_STORE_PAGE

/* The options of the variant: "" or ",direct". */
static const char *variant = "";

/* Open the store of @fd with the variant's options and then @opts. */
static struct upager_store *open_fd(int fd, const char *opts, int *err)
{
	char spec[64];

	snprintf(spec, sizeof(spec), "file:/proc/self/fd/%d%s%s", fd,
		 variant, opts);
	return upager_store_open(spec, err);
}

static struct upager_store *open_ok(int fd, const char *opts)
{
	struct upager_store *s;
	int err = 1;

	s = open_fd(fd, opts, &err);
	CHECK(s && !err, "open fd %d%s%s: %s", fd, variant, opts,
	      strerror(-err));
	return s;
}

static void check_open_err(const char *spec, int want)
{
	int err = 0;

	CHECK(!upager_store_open(spec, &err) && err == want,
	      "%s: err %d (%s), want %d", spec, err, strerror(-err), want);
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* What a case starts from: a file of the pattern, its store, a buffer. */
struct fixture {
	int fd;
	struct upager_store *s;
	unsigned char *buf; /* BUF_PAGES pages, page aligned, 0xaa */
};

#define BUF_PAGES 17

static void setup(struct fixture *fx, size_t len, const char *opts)
{
	void *p;

	fx->fd = t_tmp_unlinked(len);
	fx->s = open_ok(fx->fd, opts);
	CHECK(!posix_memalign(&p, PAGE, BUF_PAGES * PAGE), "posix_memalign");
	fx->buf = p;
	memset(fx->buf, 0xaa, BUF_PAGES * PAGE);
}

static void teardown(struct fixture *fx)
{
	upager_store_close(fx->s);
	close(fx->fd);
	free(fx->buf);
}

static void check_read(void)
{
	struct fixture fx;
	struct upager_store *s;
	unsigned char *buf;

	setup(&fx, 16 * PAGE, "");
	s = fx.s;
	buf = fx.buf;
	CHECK(s->npages == 16, "npages %llu", (unsigned long long)s->npages);
	CHECK(s->flags & UPAGER_STORE_SIGNAL_SAFE, "not signal-safe");
	CHECK(s->ops == upager_store_find("file"), "wrong ops");
	CHECK_RET(upager_store_fetch(s, 5, buf, 1), 0);
	CHECK(t_verify(buf, PAGE, 5), "page 5");
	CHECK(buf[PAGE] == 0xaa, "fetch wrote past its page");
	CHECK_RET(upager_store_fetch(s, 0, buf, 16), 0);
	for (uint64_t i = 0; i < 16; i++)
		CHECK(t_verify(buf + i * PAGE, PAGE, i), "page %llu of 16",
		      (unsigned long long)i);
	/* A buffer that is not page aligned (O_DIRECT bounces it). */
	CHECK_RET(upager_store_fetch(s, 13, buf + 8, 3), 0);
	for (uint64_t i = 0; i < 3; i++)
		CHECK(t_verify(buf + 8 + i * PAGE, PAGE, 13 + i),
		      "unaligned page %llu", (unsigned long long)i);

	CHECK_RET(upager_store_fetch(s, 15, buf, 2), -ERANGE);
	CHECK_RET(upager_store_fetch(s, 16, buf, 1), -ERANGE);
	CHECK_RET(upager_store_fetch(s, UINT64_MAX, buf, 2), -ERANGE);
	CHECK_RET(upager_store_fetch(s, 2, buf, SIZE_MAX), -ERANGE);
	CHECK(s->ops->zero_run(s, 0, 16) == 0, "zero_run on data");
	CHECK_RET(upager_store_writeback(s, 0, buf, 1), -EOPNOTSUPP);
	teardown(&fx);
}

static void check_tail(void)
{
	unsigned char ref[PAGE], *buf;
	struct fixture fx;

	setup(&fx, 2 * PAGE + 100, "");
	buf = fx.buf;
	CHECK(fx.s->npages == 3, "npages %llu",
	      (unsigned long long)fx.s->npages);
	CHECK_RET(upager_store_fetch(fx.s, 0, buf, 3), 0);
	CHECK(t_verify(buf, PAGE, 0) && t_verify(buf + PAGE, PAGE, 1),
	      "whole pages");
	t_fill(ref, PAGE, 2);
	CHECK(!memcmp(buf + 2 * PAGE, ref, 100), "the last page's data");
	CHECK(all_zero(buf + 2 * PAGE + 100, PAGE - 100),
	      "the last page's tail is not zeros");
	CHECK_RET(upager_store_fetch(fx.s, 3, buf, 1), -ERANGE);
	teardown(&fx);

	/* An empty file is an empty store. */
	setup(&fx, 0, "");
	CHECK(fx.s->npages == 0, "npages %llu",
	      (unsigned long long)fx.s->npages);
	CHECK_RET(upager_store_fetch(fx.s, 0, fx.buf, 1), -ERANGE);
	CHECK_RET(upager_store_fetch(fx.s, 0, fx.buf, 0), 0);
	teardown(&fx);
}

static bool punch(int fd, uint64_t pgoff, uint64_t npages)
{
	if (!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		       (off_t)(pgoff * PAGE), (off_t)(npages * PAGE)))
		return true;
	CHECK(errno == EOPNOTSUPP, "punch: %s", strerror(errno));
	t_not_checked("punched holes (%s cannot punch them)", t_tmpdir());
	return false;
}

static void check_sparse(void)
{
	size_t (*zero_run)(struct upager_store *, uint64_t, size_t);
	struct upager_store *s;
	struct fixture fx;

	/* Pages 4-7 a hole between data, 16-23 a hole to the end. */
	setup(&fx, 24 * PAGE, "");
	if (!punch(fx.fd, 4, 4) || !punch(fx.fd, 16, 8)) {
		teardown(&fx);
		return;
	}
	/* The store learns whether the file has holes when it opens it. */
	upager_store_close(fx.s);
	fx.s = open_ok(fx.fd, "");
	s = fx.s;
	zero_run = s->ops->zero_run;
	CHECK(zero_run(s, 4, 8) == 4, "punched: %zu", zero_run(s, 4, 8));
	CHECK(zero_run(s, 5, 2) == 2, "inside: %zu", zero_run(s, 5, 2));
	CHECK(zero_run(s, 6, 10) == 2, "to data: %zu", zero_run(s, 6, 10));
	CHECK(zero_run(s, 0, 4) == 0, "data: %zu", zero_run(s, 0, 4));
	CHECK(zero_run(s, 3, 5) == 0, "data first: %zu", zero_run(s, 3, 5));
	CHECK(zero_run(s, 12, 4) == 0, "data: %zu", zero_run(s, 12, 4));
	CHECK(zero_run(s, 16, 8) == 8, "end: %zu", zero_run(s, 16, 8));
	CHECK(zero_run(s, 18, 3) == 3, "end: %zu", zero_run(s, 18, 3));
	CHECK_RET(upager_store_fetch(s, 4, fx.buf, 4), 0);
	CHECK(all_zero(fx.buf, 4 * PAGE), "punched pages are not zeros");
	memset(fx.buf, 0xaa, 8 * PAGE);
	CHECK_RET(upager_store_fetch(s, 16, fx.buf, 8), 0);
	CHECK(all_zero(fx.buf, 8 * PAGE), "the hole at the end is not zeros");
	teardown(&fx);
}

static void check_writable(void)
{
	unsigned char ref[PAGE], *buf;
	struct upager_store *s;
	struct fixture fx;
	struct stat st;
	int fd, err = 0;

	setup(&fx, 16 * PAGE, ",writable");
	s = fx.s;
	buf = fx.buf;
	t_fill(buf, PAGE, 1000);
	CHECK_RET(upager_store_writeback(s, 3, buf, 1), 0);
	CHECK(pread(fx.fd, ref, PAGE, 3 * PAGE) == PAGE &&
		      t_verify(ref, PAGE, 1000),
	      "writeback not in the file");
	memset(buf, 0, PAGE);
	CHECK_RET(upager_store_fetch(s, 2, buf, 2), 0);
	CHECK(t_verify(buf, PAGE, 2) && t_verify(buf + PAGE, PAGE, 1000),
	      "fetch after writeback");

	/* Several pages from an unaligned buffer (O_DIRECT bounces it). */
	t_fill(buf + 8, PAGE, 2000);
	t_fill(buf + 8 + PAGE, PAGE, 2001);
	CHECK_RET(upager_store_writeback(s, 14, buf + 8, 2), 0);
	CHECK_RET(upager_store_fetch(s, 14, buf, 2), 0);
	CHECK(t_verify(buf, PAGE, 2000) && t_verify(buf + PAGE, PAGE, 2001),
	      "unaligned writeback");
	CHECK_RET(upager_store_writeback(s, 15, buf, 2), -ERANGE);
	CHECK(!fstat(fx.fd, &st) && st.st_size == 16 * PAGE, "size changed");
	teardown(&fx);

	/*
	 * The last page of a file with a partial page: only the bytes
	 * inside the file are written.  O_DIRECT can't write part of a
	 * block, so it refuses such a file for writing.
	 */
	if (*variant) {
		fd = t_tmp_unlinked(2 * PAGE + 100);
		CHECK(!open_fd(fd, ",writable", &err) && err == -EINVAL,
		      "direct,writable with a partial page: err %d", err);
		close(fd);
		return;
	}
	setup(&fx, 2 * PAGE + 100, ",writable");
	t_fill(fx.buf, PAGE, 3000);
	CHECK_RET(upager_store_writeback(fx.s, 2, fx.buf, 1), 0);
	CHECK(!fstat(fx.fd, &st) && st.st_size == 2 * PAGE + 100,
	      "writeback changed the size to %lld", (long long)st.st_size);
	CHECK(pread(fx.fd, ref, PAGE, 2 * PAGE) == 100 &&
		      !memcmp(ref, fx.buf, 100),
	      "the last page's data not written");
	teardown(&fx);
}

static void check_truncated(void)
{
	struct upager_store *s;
	struct fixture fx;

	setup(&fx, 16 * PAGE, "");
	s = fx.s;
	CHECK(!ftruncate(fx.fd, 8 * PAGE + 100), "ftruncate: %s",
	      strerror(errno));
	CHECK_RET(upager_store_fetch(s, 0, fx.buf, 8), 0);
	CHECK(t_verify(fx.buf + 7 * PAGE, PAGE, 7), "data before the cut");
	CHECK_RET(upager_store_fetch(s, 8, fx.buf, 1), -EIO);
	CHECK_RET(upager_store_fetch(s, 10, fx.buf, 1), -EIO);
	CHECK_RET(upager_store_fetch(s, 6, fx.buf, 4), -EIO);
	CHECK_RET(upager_store_fetch(s, 15, fx.buf, 1), -EIO);
	/* Not a hole: fetch fails there. */
	CHECK(s->ops->zero_run(s, 10, 2) == 0, "zero_run past the cut");
	teardown(&fx);
}

/*
 * A file whose hole runs to its end, shrunk after open: zero_run() may
 * call the hole zeros only up to the new end, and past it fetch() fails
 * with -EIO, as for a dense file (check_truncated()).  Zeros there would
 * be data the file does not have; this is the one way to the check in
 * zero_run() that the file did not shrink under the run.
 */
static void check_shrunk_hole(void)
{
	size_t (*zero_run)(struct upager_store *, uint64_t, size_t);
	struct upager_store *s;
	struct fixture fx;

	/* Pages 0-15 data, 16-23 a hole to the end left by ftruncate(). */
	setup(&fx, 16 * PAGE, "");
	CHECK(!ftruncate(fx.fd, 24 * PAGE), "ftruncate: %s", strerror(errno));
	upager_store_close(fx.s);
	fx.s = open_ok(fx.fd, "");
	s = fx.s;
	zero_run = s->ops->zero_run;
	if (zero_run(s, 16, 8) != 8) {
		t_not_checked("a hole at the end (%s left none)", t_tmpdir());
		teardown(&fx);
		return;
	}
	CHECK(!ftruncate(fx.fd, 18 * PAGE), "ftruncate: %s", strerror(errno));
	CHECK(zero_run(s, 16, 2) == 2, "the hole before the new end: %zu",
	      zero_run(s, 16, 2));
	CHECK(zero_run(s, 16, 8) == 0, "a hole past the new end: %zu",
	      zero_run(s, 16, 8));
	CHECK(zero_run(s, 20, 4) == 0, "past the new end: %zu",
	      zero_run(s, 20, 4));
	CHECK_RET(upager_store_fetch(s, 16, fx.buf, 2), 0);
	CHECK(all_zero(fx.buf, 2 * PAGE), "the hole before the new end");
	CHECK_RET(upager_store_fetch(s, 18, fx.buf, 1), -EIO);
	CHECK_RET(upager_store_fetch(s, 23, fx.buf, 1), -EIO);
	CHECK_RET(upager_store_fetch(s, 16, fx.buf, 8), -EIO);
	teardown(&fx);
}

static void check_open_errors(void)
{
	char path[256], spec[300];
	struct upager_store *s;
	int fd, err;

	snprintf(spec, sizeof(spec), "file:/nonexistent-upager/img%s", variant);
	check_open_err(spec, -ENOENT);
	check_open_err("file:", -EINVAL);
	check_open_err("file:,direct", -EINVAL);
	check_open_err("file:,writable,direct", -EINVAL);
	/* O_DIRECT on a directory is EINVAL on some filesystems. */
	snprintf(spec, sizeof(spec), "file:%s%s", t_tmpdir(), variant);
	s = upager_store_open(spec, &err);
	CHECK(!s && (err == -EISDIR || (*variant && err == -EINVAL)),
	      "%s: err %d", spec, err);
	snprintf(spec, sizeof(spec), "file:%s%s,writable", t_tmpdir(), variant);
	check_open_err(spec, -EISDIR);

	/* A FIFO is refused without waiting for a writer. */
	snprintf(path, sizeof(path), "%s/upager-fifo-%d", t_tmpdir(), getpid());
	CHECK(!mkfifo(path, 0600), "mkfifo %s: %s", path, strerror(errno));
	snprintf(spec, sizeof(spec), "file:%s", path);
	s = upager_store_open(spec, &err);
	unlink(path);
	CHECK(!s && err == -EINVAL, "FIFO: err %d", err);

	/* Options are taken from the end only. */
	snprintf(path, sizeof(path), "%s/upager,direct,x-XXXXXX", t_tmpdir());
	fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	t_fill_file(fd, 3 * PAGE, 0);
	snprintf(spec, sizeof(spec), "file:%s%s", path, variant);
	s = upager_store_open(spec, &err);
	unlink(path);
	CHECK(s && s->npages == 3, "%s: err %d", spec, err);
	upager_store_close(s);
	close(fd);
}

/* Pages of @fd's first @len bytes in the page cache. */
static size_t cached(int fd, size_t len)
{
	size_t n = 0, pages = (len + PAGE - 1) / PAGE;
	unsigned char *vec = malloc(pages);
	void *view = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

	CHECK(vec && view != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(mincore(view, len, vec) == 0, "mincore: %s", strerror(errno));
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	munmap(view, len);
	free(vec);
	return n;
}

static size_t drop_cache(int fd, size_t len)
{
	CHECK(fdatasync(fd) == 0, "fdatasync: %s", strerror(errno));
	CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0,
	      "posix_fadvise");
	return cached(fd, len);
}

static void check_release(void)
{
	/* Two whole 2 MiB blocks and a short one. */
	const size_t pages = 2 * 512 + 40, len = pages * PAGE, chunk = 16;
	struct statfs sfs;
	struct fixture fx;

	setup(&fx, len, "");
	CHECK(fx.s->ops->direct && fx.s->ops->release,
	      "a buffered file store has direct() and release()");
	CHECK(fstatfs(fx.fd, &sfs) == 0, "fstatfs: %s", strerror(errno));
	if (sfs.f_type == TMPFS_MAGIC) {
		t_not_checked("release() (%s is tmpfs: its pages cannot be "
			      "dropped)", t_tmpdir());
		teardown(&fx);
		return;
	}
	for (size_t pg = 0; pg < pages; pg += chunk) {
		size_t n = pages - pg < chunk ? pages - pg : chunk;
		const char *p = fx.s->ops->direct(fx.s, pg, n);

		CHECK(p, "direct(%zu, %zu)", pg, n);
		for (size_t i = 0; i < n; i++)
			CHECK(t_verify(p + i * PAGE, PAGE, pg + i), "page %zu",
			      pg + i);
	}
	/* Mapped by the store: the cache stays. */
	CHECK(drop_cache(fx.fd, len) == pages, "%zu of %zu pages cached",
	      cached(fx.fd, len), pages);
	/*
	 * A stream of releases, all but the last page: the whole blocks go,
	 * the short one stays mapped (its cache too) until it is whole.
	 */
	for (size_t pg = 0; pg < pages - 1; pg += chunk)
		fx.s->ops->release(fx.s, pg,
				   pages - 1 - pg < chunk ? pages - 1 - pg
							  : chunk);
	CHECK(drop_cache(fx.fd, len) == pages - 1024, "%zu pages cached, "
	      "want the short block's %zu", cached(fx.fd, len), pages - 1024);
	fx.s->ops->release(fx.s, pages - 1, 1);
	CHECK(drop_cache(fx.fd, len) == 0, "%zu pages cached after release",
	      cached(fx.fd, len));
	/* Released pages still read right: the mapping faults them back. */
	CHECK(t_verify(fx.s->ops->direct(fx.s, 512, 16), PAGE, 512),
	      "page 512 after release");
	teardown(&fx);
}

/*
 * Blocks released in part (random reads) stay mapped four at most: each
 * one that starts being released drops the one it displaces.
 */
static void check_release_part(void)
{
	const size_t blocks = 7, len = blocks * 512 * PAGE;
	size_t first;
	struct statfs sfs;
	struct fixture fx;

	setup(&fx, len, "");
	CHECK(fstatfs(fx.fd, &sfs) == 0, "fstatfs: %s", strerror(errno));
	if (sfs.f_type == TMPFS_MAGIC) {
		teardown(&fx); /* check_release() said why */
		return;
	}
	CHECK(drop_cache(fx.fd, len) == 0, "cache left before");
	for (size_t b = 0; b < blocks; b++) {
		CHECK(fx.s->ops->direct(fx.s, b * 512 + 100, 4), "direct()");
		fx.s->ops->release(fx.s, b * 512 + 100, 4);
	}
	first = cached(fx.fd, 3 * 512 * PAGE);
	CHECK(drop_cache(fx.fd, len) >= 4 * 4, "the last 4 blocks stay mapped");
	CHECK(cached(fx.fd, 3 * 512 * PAGE) == 0,
	      "%zu pages of the first 3 blocks cached after 7 partial "
	      "releases (%zu before the drop)",
	      cached(fx.fd, 3 * 512 * PAGE), first);
	teardown(&fx);
}

int main(int argc, char **argv)
{
	struct upager_store *s;
	int fd, err;

	if (argc > 1 && !strcmp(argv[1], "direct")) {
		variant = ",direct";
		fd = t_tmp_unlinked(PAGE);
		s = open_fd(fd, "", &err);
		if (!s && err == -EINVAL)
			SKIP("%s refuses O_DIRECT", t_tmpdir());
		upager_store_close(s);
		close(fd);
	}
	check_read();
	check_tail();
	check_sparse();
	check_writable();
	check_truncated();
	check_shrunk_hole();
	check_open_errors();
	if (!*variant) {
		check_release();
		check_release_part();
	}
	return t_end();
}

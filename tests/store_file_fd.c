// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager_store_file_fd(), the file store over a descriptor, buffered and
 * (argv[1] "direct") over one opened with O_DIRECT in a directory where
 * that works (t_direct_dir()): pages read from an offset of the file,
 * into an aligned buffer or not; written back when the descriptor is
 * O_RDWR (and read back through another descriptor), not when it is
 * O_RDONLY or UPAGER_FILE_READONLY asks so; the caller's descriptor may
 * be closed after open, and its file position never moves; a file that
 * shrinks after open fails with -EIO, never zeros; bad descriptors,
 * offsets and flags are refused with the errno the header names.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <upager/store.h>

#include "harness.h"

#define PAGE   UPAGER_STORE_PAGE
#define NPAGES 32

static bool direct;
static const char *dir;

/* A file of NPAGES pages of the pattern, opened with @flags. */
static int make_file(int flags, char *path, size_t size)
{
	int fd, setup;

	snprintf(path, size, "%s/upager-fd-XXXXXX", dir);
	setup = mkstemp(path);
	CHECK(setup >= 0, "mkstemp %s: %s", path, strerror(errno));
	t_fill_file(setup, NPAGES * PAGE, 0);
	close(setup);
	fd = open(path, flags | (direct ? O_DIRECT : 0));
	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

/* The same, unlinked at once (nothing left behind by a failure). */
static int make_unlinked(int flags)
{
	char path[256];
	int fd = make_file(flags, path, sizeof(path));

	unlink(path);
	return fd;
}

static struct upager_store *open_ok(int fd, uint64_t off, unsigned int fl)
{
	struct upager_store *s;
	int err = 1;

	s = upager_store_file_fd(fd, off, fl, &err);
	CHECK(s, "upager_store_file_fd(off %llu, flags %u): %s",
	      (unsigned long long)off, fl, strerror(-err));
	return s;
}

static void *aligned(size_t len)
{
	void *p;

	CHECK(!posix_memalign(&p, PAGE, len), "posix_memalign");
	return p;
}

static void check_read(void)
{
	unsigned char *buf = aligned(9 * PAGE);
	struct upager_store *s;
	int fd = make_unlinked(O_RDONLY);

	CHECK(lseek(fd, 123, SEEK_SET) == 123, "lseek");
	s = open_ok(fd, 4 * PAGE, 0);
	/* The store keeps its own descriptor. */
	close(fd);
	CHECK(s->npages == NPAGES - 4, "npages %llu",
	      (unsigned long long)s->npages);
	CHECK(s->ops == upager_store_find("file"), "not the file store");
	CHECK(s->flags & UPAGER_STORE_SIGNAL_SAFE, "not signal-safe");
	CHECK_RET(upager_store_fetch(s, 0, buf, 8), 0);
	for (uint64_t i = 0; i < 8; i++)
		CHECK(t_verify(buf + i * PAGE, PAGE, 4 + i), "page %llu",
		      (unsigned long long)i);
	/* Not page aligned: O_DIRECT bounces it through an aligned page. */
	CHECK_RET(upager_store_fetch(s, 20, buf + 8, 3), 0);
	for (uint64_t i = 0; i < 3; i++)
		CHECK(t_verify(buf + 8 + i * PAGE, PAGE, 24 + i),
		      "unaligned page %llu", (unsigned long long)i);
	CHECK_RET(upager_store_fetch(s, NPAGES - 4, buf, 1), -ERANGE);
	CHECK_RET(upager_store_writeback(s, 0, buf, 1), -EOPNOTSUPP);
	upager_store_close(s);
	free(buf);
}

/* The file position is the caller's: the store never moves it. */
static void check_position(void)
{
	unsigned char *buf = aligned(PAGE);
	struct upager_store *s;
	int fd = make_unlinked(O_RDWR);

	/* A hole, where a store that looked for holes would lseek(). */
	CHECK(!ftruncate(fd, (NPAGES + 8) * PAGE), "ftruncate");
	CHECK(lseek(fd, 3 * PAGE, SEEK_SET) == 3 * PAGE, "lseek");
	s = open_ok(fd, 0, 0);
	CHECK_RET(upager_store_fetch(s, NPAGES + 2, buf, 1), 0);
	for (size_t i = 0; i < PAGE; i++)
		CHECK(!buf[i], "the hole reads %#x at %zu", buf[i], i);
	CHECK_RET(upager_store_fetch(s, 1, buf, 1), 0);
	CHECK(t_verify(buf, PAGE, 1), "page 1");
	CHECK(lseek(fd, 0, SEEK_CUR) == 3 * PAGE,
	      "the caller's position moved to %lld",
	      (long long)lseek(fd, 0, SEEK_CUR));
	upager_store_close(s);
	close(fd);
	free(buf);
}

static void check_writable(void)
{
	unsigned char *buf = aligned(2 * PAGE), *back = aligned(2 * PAGE);
	struct upager_store *s;
	char path[256];
	int fd = make_file(O_RDWR, path, sizeof(path)), check;

	s = open_ok(fd, 8 * PAGE, 0);
	t_fill(buf, 2 * PAGE, 1000);
	CHECK_RET(upager_store_writeback(s, 2, buf, 2), 0);
	/* Unaligned source: bounced too. */
	t_fill(back, PAGE, 2000);
	memcpy(buf + 16, back, PAGE);
	CHECK_RET(upager_store_writeback(s, 5, buf + 16, 1), 0);
	upager_store_close(s);
	/* Read back past the store, through the page cache. */
	check = open(path, O_RDONLY);
	CHECK(check >= 0, "open %s", path);
	CHECK(pread(check, back, 2 * PAGE, 10 * PAGE) == 2 * PAGE, "pread");
	CHECK(t_verify(back, 2 * PAGE, 1000), "written pages 10-11");
	CHECK(pread(check, back, PAGE, 13 * PAGE) == PAGE, "pread");
	CHECK(t_verify(back, PAGE, 2000), "written page 13");
	CHECK(pread(check, back, PAGE, 9 * PAGE) == PAGE, "pread");
	CHECK(t_verify(back, PAGE, 9), "page 9 changed");
	close(check);

	s = open_ok(fd, 0, UPAGER_FILE_READONLY);
	CHECK_RET(upager_store_writeback(s, 0, buf, 1), -EOPNOTSUPP);
	upager_store_close(s);
	close(fd);
	unlink(path);
	free(buf);
	free(back);
}

static void check_shrunk(void)
{
	unsigned char *buf = aligned(4 * PAGE);
	struct upager_store *s;
	int fd = make_unlinked(O_RDWR);

	s = open_ok(fd, 0, 0);
	CHECK(!ftruncate(fd, 10 * PAGE + 100), "ftruncate");
	memset(buf, 0xaa, 4 * PAGE);
	CHECK_RET(upager_store_fetch(s, 12, buf, 1), -EIO);
	/* Short in the middle of the fetch: the part after it is missing. */
	CHECK_RET(upager_store_fetch(s, 8, buf, 4), -EIO);
	CHECK_RET(upager_store_fetch(s, 9, buf, 1), 0);
	CHECK(t_verify(buf, PAGE, 9), "page 9");
	upager_store_close(s);
	close(fd);
	free(buf);
}

static void check_err(int fd, uint64_t off, unsigned int flags, int want,
		      const char *what)
{
	int err = 0;

	CHECK(!upager_store_file_fd(fd, off, flags, &err) && err == want,
	      "%s: err %d (%s), want %d (%s)", what, err, strerror(-err), want,
	      strerror(-want));
}

static void check_errors(void)
{
	char path[256];
	int fd = make_file(O_RDWR, path, sizeof(path)), wr, pipefd[2], d;

	check_err(fd, 100, 0, -EINVAL, "a misaligned offset");
	check_err(fd, (NPAGES + 1) * PAGE, 0, -EINVAL, "past the end");
	check_err(fd, 0, 1u << 5, -EINVAL, "unknown flags");
	check_err(-1, 0, 0, -EBADF, "fd -1");
	wr = open(path, O_WRONLY);
	CHECK(wr >= 0, "open O_WRONLY");
	check_err(wr, 0, 0, -EBADF, "write-only");
	close(wr);
	CHECK(!pipe(pipefd), "pipe");
	check_err(pipefd[0], 0, 0, -EINVAL, "a pipe");
	close(pipefd[0]);
	close(pipefd[1]);
	d = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(d >= 0, "open %s", dir);
	check_err(d, 0, 0, -EISDIR, "a directory");
	close(d);
	if (direct) {
		/* O_DIRECT writes whole pages: the file would grow. */
		CHECK(!ftruncate(fd, NPAGES * PAGE - 100), "ftruncate");
		check_err(fd, 0, 0, -EINVAL, "O_DIRECT|O_RDWR, partial page");
		upager_store_close(open_ok(fd, 0, UPAGER_FILE_READONLY));
	}
	close(fd);
	unlink(path);
}

int main(int argc, char **argv)
{
	direct = argc > 1 && !strcmp(argv[1], "direct");
	dir = direct ? t_direct_dir() : t_tmpdir();
	if (!dir)
		SKIP("neither %s nor /var/tmp takes O_DIRECT", t_tmpdir());
	check_read();
	check_position();
	check_writable();
	check_shrunk();
	check_errors();
	return t_end();
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A corrupt page image is an error, never zeros (issue 11), with both
 * codecs:
 *
 * store    a byte flipped in chunk 3's bytes fails fetch() with -EIO and
 *          one line on stderr naming the file, chunk 3, its pages and
 *          "checksum mismatch", once however often it is read; chunk 11
 *          overwritten with its checksum set to match fails to
 *          decompress, likewise named; ranges across a bad chunk fail;
 *          upager_image_check() says the same without writing to stderr;
 *          every other chunk reads right.  A file cut after open fails
 *          the chunks past the cut with -EIO ("the file ends inside").
 *          Cut before open, at the end or in the index, the image is
 *          refused at open, the reason saying "truncated".
 * region   the same image mapped (argv[1]: anon or shmem) with read-ahead
 *          and fault-around on: reading a page of either bad chunk raises
 *          SIGBUS at that page and writes the line naming the chunk,
 *          on_error is called with -EIO, and every page of the good
 *          chunks reads its data.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "tstore.h"
#include "timage.h"
#include "base/le.h"
#include "store/image_fmt.h"

#define NPAGES 256
#define LEN (NPAGES * TI_PAGE)
#define CHUNK (64u << 10)
#define CPAGES (CHUNK / TI_PAGE)
#define BAD_SUM 3     /* a byte flipped: the checksum fails */
#define BAD_CODEC 11  /* garbage with a right checksum: decompression */

static char *data;
static char good[256], bad[256];

static void read_file(const char *path, uint8_t **b, size_t *len)
{
	int fd = open(path, O_RDONLY);
	off_t n = lseek(fd, 0, SEEK_END);

	CHECK(fd >= 0 && n > 0, "%s", path);
	*len = (size_t)n;
	*b = malloc(*len);
	CHECK(*b && pread(fd, *b, *len, 0) == n, "read %s", path);
	close(fd);
}

static void write_file(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0 && write(fd, b, len) == (ssize_t)len, "write %s", path);
	close(fd);
}

/* @bad: @good with chunks BAD_SUM and BAD_CODEC spoilt. */
static void make_bad(void)
{
	struct upager_store *s = ti_open(good);
	struct upager_image_chunk c1, c2;
	uint8_t *b, *e;
	size_t len;

	CHECK_RET(upager_image_chunk(s, BAD_SUM, &c1), 0);
	CHECK_RET(upager_image_chunk(s, BAD_CODEC, &c2), 0);
	CHECK(!c1.flags && !c2.flags, "chunks %d and %d are not compressed",
	      BAD_SUM, BAD_CODEC);
	upager_store_close(s);
	read_file(good, &b, &len);
	b[c1.offset + c1.stored_len / 2] ^= 0x20;
	/* Bytes no codec reads as a chunk, with a checksum that matches. */
	memset(b + c2.offset, 0xff, c2.stored_len);
	e = b + IMG_HDR_LEN + BAD_CODEC * IMG_ENTRY_LEN;
	wr64(e + 8, XXH3_64bits(b + c2.offset, c2.stored_len));
	wr64(b + IMG_SUM_OFF, img_header_sum(b, rd64(b + 48)));
	write_file(bad, b, len);
	free(b);
}

/* stderr goes to a file while @fn runs; what was written is returned. */
static char *capture_stderr(void (*fn)(struct upager_store *),
			    struct upager_store *s)
{
	char path[256], *out = calloc(1, 4096);
	int fd, saved = dup(2);

	snprintf(path, sizeof(path), "%s/upager-stderr-%d", t_tmpdir(),
		 (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && saved >= 0 && out, "%s", path);
	unlink(path);
	dup2(fd, 2);
	fn(s);
	dup2(saved, 2);
	close(saved);
	CHECK(pread(fd, out, 4095, 0) >= 0, "pread");
	close(fd);
	return out;
}

static char buf[CHUNK * 3];

static void fetch_bad_sum(struct upager_store *s)
{
	CHECK_RET(upager_store_fetch(s, BAD_SUM * CPAGES + 2, buf, 1), -EIO);
	CHECK_RET(upager_store_fetch(s, BAD_SUM * CPAGES, buf, CPAGES), -EIO);
	CHECK_RET(upager_store_fetch(s, BAD_SUM * CPAGES - 1, buf, 3), -EIO);
}

static void fetch_bad_codec(struct upager_store *s)
{
	CHECK_RET(upager_store_fetch(s, BAD_CODEC * CPAGES + 15, buf, 1),
		  -EIO);
	CHECK_RET(upager_store_fetch(s, BAD_CODEC * CPAGES, buf, CPAGES),
		  -EIO);
}

static void fetch_none(struct upager_store *s)
{
	char why[256];

	CHECK_RET(upager_image_check(s, BAD_SUM, why, sizeof(why)), -EIO);
	CHECK(strstr(why, "checksum mismatch"), "check: %s", why);
	CHECK_RET(upager_image_check(s, BAD_CODEC, why, sizeof(why)), -EIO);
	CHECK(strstr(why, "decompress"), "check: %s", why);
}

static bool is_bad(uint64_t pg)
{
	return pg / CPAGES == BAD_SUM || pg / CPAGES == BAD_CODEC;
}

static void check_store(void)
{
	struct upager_store *s = ti_open(bad);
	char want[512], *out;

	out = capture_stderr(fetch_bad_sum, s);
	snprintf(want, sizeof(want), "upager: image:%s: chunk %d (pages %d-%d",
		 bad, BAD_SUM, BAD_SUM * CPAGES, BAD_SUM * CPAGES + 15);
	CHECK(strstr(out, want) && strstr(out, "checksum mismatch"),
	      "stderr \"%s\", want \"%s...checksum mismatch\"", out, want);
	CHECK(strstr(out, "\n") == out + strlen(out) - 1,
	      "more than one line for a chunk read three times: \"%s\"", out);
	free(out);

	out = capture_stderr(fetch_bad_codec, s);
	snprintf(want, sizeof(want), "chunk %d (pages %d-%d", BAD_CODEC,
		 BAD_CODEC * CPAGES, BAD_CODEC * CPAGES + 15);
	CHECK(strstr(out, want) && strstr(out, "cannot decompress"),
	      "stderr \"%s\", want \"%s...cannot decompress\"", out, want);
	free(out);

	out = capture_stderr(fetch_none, s);
	CHECK(!*out, "upager_image_check() wrote \"%s\"", out);
	free(out);

	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		if (is_bad(pg))
			continue;
		CHECK_RET(upager_store_fetch(s, pg, buf, 1), 0);
		CHECK(!memcmp(buf, data + pg * TI_PAGE, TI_PAGE), "page %llu",
		      (unsigned long long)pg);
	}
	upager_store_close(s);
}

static void check_truncated(void)
{
	struct upager_store *s = ti_open(good);
	struct upager_image_chunk last;
	uint8_t *b;
	size_t len;
	char why[256];
	int err;

	/* Cut after open: the chunks past the cut fail, never zeros. */
	CHECK_RET(upager_image_chunk(s, NPAGES / CPAGES - 1, &last), 0);
	CHECK(!truncate(good, (off_t)last.offset + 1), "truncate");
	CHECK_RET(upager_store_fetch(s, NPAGES - 1, buf, 1), -EIO);
	CHECK_RET(upager_image_check(s, NPAGES / CPAGES - 1, why, sizeof(why)),
		  -EIO);
	CHECK(strstr(why, "the file ends inside"), "why: %s", why);
	CHECK_RET(upager_store_fetch(s, 0, buf, 1), 0);
	upager_store_close(s);

	/* Cut before open: refused, whether data or index is missing. */
	CHECK(!upager_image_open(good, why, sizeof(why), &err) &&
		      err == -EBADMSG && strstr(why, "truncated"),
	      "cut in the data: err %d: %s", err, why);
	read_file(bad, &b, &len);
	write_file(good, b, IMG_HDR_LEN + 5 * IMG_ENTRY_LEN);
	CHECK(!upager_image_open(good, why, sizeof(why), &err) &&
		      err == -EBADMSG && strstr(why, "truncated"),
	      "cut in the index: err %d: %s", err, why);
	free(b);
}

static sigjmp_buf jmp;
static void *volatile sigbus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	sigbus_addr = si->si_addr;
	siglongjmp(jmp, 1);
}

/* Read page @pg of @p: it must raise SIGBUS there. */
static void read_sigbus(const volatile char *p, uint64_t pg)
{
	const volatile char *at = p + pg * TI_PAGE + 123;

	sigbus_addr = NULL;
	if (!sigsetjmp(jmp, 1)) {
		char c = *at;

		FAIL("page %llu of a bad chunk read (byte 0x%02x%s)",
		     (unsigned long long)pg, c & 0xff,
		     c ? "" : ": zeros");
	}
	CHECK((const char *)sigbus_addr >= (const char *)p + pg * TI_PAGE &&
		      (const char *)sigbus_addr <
			      (const char *)p + (pg + 1) * TI_PAGE,
	      "SIGBUS at %p, not in page %llu (%p)", sigbus_addr,
	      (unsigned long long)pg, (void *)(p + pg * TI_PAGE));
}

static char *region_p;

/* A page of each bad chunk through the region (the store is unused). */
static void read_bad_pages(struct upager_store *s)
{
	(void)s;
	read_sigbus(region_p, BAD_SUM * CPAGES + 5);
	read_sigbus(region_p, BAD_CODEC * CPAGES);
}

static void check_region(enum upager_memtype type)
{
	struct upager_map_params mp = { .size = sizeof(mp), .memtype = type };
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO }, old;
	struct upager_store *s = ti_open(bad);
	struct t_errors e = { 0 };
	struct upager_handler *h;
	struct upager_region *r;
	char want[512], *p, *out;
	int err;

	h = t_upager_handler(2, t_on_error, &e);
	p = upager_map(h, s, LEN, &mp, &r, &err);
	CHECK(p, "map: %s", strerror(-err));
	CHECK_RET(upager_handler_start(h), 0);
	sigemptyset(&sa.sa_mask);
	CHECK(!sigaction(SIGBUS, &sa, &old), "sigaction");
	region_p = p;
	out = capture_stderr(read_bad_pages, s);
	snprintf(want, sizeof(want), "upager: image:%s: chunk %d (pages %d-%d",
		 bad, BAD_SUM, BAD_SUM * CPAGES, BAD_SUM * CPAGES + 15);
	CHECK(strstr(out, want) && strstr(out, "checksum mismatch"),
	      "SIGBUS without the line \"%s...checksum mismatch\": \"%s\"",
	      want, out);
	snprintf(want, sizeof(want), "chunk %d (pages %d-%d", BAD_CODEC,
		 BAD_CODEC * CPAGES, BAD_CODEC * CPAGES + 15);
	CHECK(strstr(out, want) && strstr(out, "cannot decompress"),
	      "SIGBUS without the line \"%s...cannot decompress\": \"%s\"",
	      want, out);
	free(out);
	CHECK(atomic_load(&e.calls) >= 1 && atomic_load(&e.err) == -EIO &&
		      atomic_load(&e.r) == r,
	      "on_error: %u calls, err %d", atomic_load(&e.calls),
	      atomic_load(&e.err));
	read_sigbus(p, BAD_SUM * CPAGES + 5); /* again: SIGBUS again */
	for (uint64_t pg = 0; pg < NPAGES; pg++) {
		if (is_bad(pg))
			continue;
		CHECK(!memcmp(p + pg * TI_PAGE, data + pg * TI_PAGE, TI_PAGE),
		      "page %llu through the region", (unsigned long long)pg);
	}
	read_sigbus(p, BAD_CODEC * CPAGES + 15);
	sigaction(SIGBUS, &old, NULL);
	CHECK_RET(upager_unmap(r), 0);
	upager_handler_free(h);
	upager_store_close(s);
}

int main(int argc, char **argv)
{
	enum upager_memtype type = t_upager_memtype(argc, argv, false);

	data = malloc(LEN);
	CHECK(data, "malloc");
	ti_data(data, LEN, 3);
	ti_path(good, sizeof(good), "corrupt-good");
	ti_path(bad, sizeof(bad), "corrupt-bad");
	for (int c = UPAGER_IMAGE_ZSTD; c <= UPAGER_IMAGE_LZ4; c++) {
		ti_write(good, data, LEN, (enum upager_image_codec)c, CHUNK);
		make_bad();
		check_store();
		check_region(type);
		check_truncated();
	}
	unlink(good);
	unlink(bad);
	free(data);
	return 0;
}

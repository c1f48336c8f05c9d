// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Malformed page images are refused at open (docs/IMAGE.md, "What a
 * reader checks at open"): each case of the table changes one field of a
 * good image, or cuts or extends the file, and open must fail with the
 * errno image.h promises and a reason that names the field.  Cases that
 * test a field past the header checksum set header_sum right again, so
 * that the field's own check is what refuses them; the checksum has its
 * cases of its own.  The good image opens, and so does each case undone.
 */
#include <fcntl.h>
#include <unistd.h>

#include "timage.h"
#include "base/le.h"
#include "store/image_fmt.h"

#define LEN (20u * TI_PAGE + 100) /* 6 chunks of 16 KiB, the last short */
#define CHUNK (16u << 10)
#define NCHUNKS 6u
#define ENTRY(i) (IMG_HDR_LEN + (i) * IMG_ENTRY_LEN)

struct image {
	uint8_t *b;
	size_t len;
};

static struct image good;
static char path[256];

/* Fix header_sum after a change of the header or the index. */
static void resum(struct image *im)
{
	uint64_t data_off = rd64(im->b + 48);

	if (data_off > im->len)
		return;
	wr64(im->b + IMG_SUM_OFF, img_header_sum(im->b, data_off));
}

static void load(struct image *im)
{
	int fd = open(path, O_RDONLY);
	off_t n = lseek(fd, 0, SEEK_END);

	CHECK(fd >= 0 && n > 0, "%s: %s", path, strerror(errno));
	im->len = (size_t)n;
	im->b = malloc(im->len + 64);
	CHECK(im->b, "malloc");
	CHECK(pread(fd, im->b, im->len, 0) == n, "pread");
	close(fd);
}

static void save(const struct image *im)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	CHECK(write(fd, im->b, im->len) == (ssize_t)im->len, "write");
	close(fd);
}

/* The first entry of a compressed chunk (neither zero nor raw). */
static unsigned int compressed(const struct image *im)
{
	for (unsigned int i = 0; i < NCHUNKS; i++)
		if (!(im->b[ENTRY(i) + 23] & 3))
			return i;
	FAIL("no compressed chunk");
}

static unsigned int zero(const struct image *im)
{
	for (unsigned int i = 0; i < NCHUNKS; i++)
		if (im->b[ENTRY(i) + 23] & UPAGER_IMAGE_CHUNK_ZERO)
			return i;
	FAIL("no zero chunk");
}

/*
 * Each case: its name, the errno and a part of the reason open must
 * give, and the change to a good image; the change returns whether
 * header_sum must be set right again afterwards.
 */
#define CASES(X) \
	X(magic, -EBADMSG, "magic", { im->b[0] = 'X'; return false; }) \
	X(version2, -EPROTONOSUPPORT, "version 2", { wr16(im->b + 8, 2); return true; }) \
	X(version0, -EPROTONOSUPPORT, "version 0", { wr16(im->b + 8, 0); return true; }) \
	X(header_len, -EBADMSG, "header_len 96", { wr16(im->b + 10, 96); return true; }) \
	X(page_size, -EBADMSG, "page_size 8192", { wr32(im->b + 12, 8192); return true; }) \
	X(chunk_small, -EBADMSG, "chunk_size 2048", { wr32(im->b + 24, 2048); return true; }) \
	X(chunk_big, -EBADMSG, "chunk_size 524288", { wr32(im->b + 24, 512 << 10); return true; }) \
	X(chunk_odd, -EBADMSG, "chunk_size 20480", { wr32(im->b + 24, 20480); return true; }) \
	X(chunk_zero, -EBADMSG, "chunk_size 0", { wr32(im->b + 24, 0); return true; }) \
	X(codec0, -EBADMSG, "codec 0", { im->b[28] = 0; return true; }) \
	X(codec3, -EBADMSG, "codec 3", { im->b[28] = 3; return true; }) \
	X(checksum, -EBADMSG, "checksum kind 2", { im->b[29] = 2; return true; }) \
	X(flags, -EBADMSG, "flags 0x1", { wr16(im->b + 30, 1); return true; }) \
	X(reserved, -EBADMSG, "reserved", { wr32(im->b + 68, 7); return true; }) \
	X(level, -EBADMSG, "level 99", { wr32(im->b + 64, 99); return true; }) \
	X(level0, -EBADMSG, "level 0", { wr32(im->b + 64, 0); return true; }) \
	X(nchunks_more, -EBADMSG, "nchunks 7", { wr64(im->b + 32, NCHUNKS + 1); return true; }) \
	X(nchunks_less, -EBADMSG, "nchunks 5", { wr64(im->b + 32, NCHUNKS - 1); return true; }) \
	X(image_len, -EBADMSG, "nchunks 6, but image_len", { \
		wr64(im->b + 16, (uint64_t)NCHUNKS * CHUNK + 1); return true; }) \
	/* An image_len of 2^64 - 1: an index of 2^52 entries, whose data_off \
	 * (computed without overflow) is not the header's. */ \
	X(image_huge, -EBADMSG, "after 4503599627370496 index entries", { \
		wr64(im->b + 16, UINT64_MAX); \
		wr32(im->b + 24, 4096); \
		wr64(im->b + 32, UINT64_MAX / 4096 + 1); return true; }) \
	X(index_off, -EBADMSG, "index_off 88", { wr64(im->b + 40, 88); return true; }) \
	X(data_off, -EBADMSG, "data_off", { wr64(im->b + 48, rd64(im->b + 48) + 24); return true; }) \
	X(file_len_more, -EBADMSG, "truncated", { wr64(im->b + 56, im->len + 1); return true; }) \
	X(file_len_less, -EBADMSG, "extended", { wr64(im->b + 56, im->len - 1); return true; }) \
	X(sum_header, -EBADMSG, "checksum", { im->b[IMG_SUM_OFF] ^= 1; return false; }) \
	X(sum_field, -EBADMSG, "checksum", { im->b[64] ^= 7; return false; }) \
	X(sum_index, -EBADMSG, "checksum", { im->b[ENTRY(2) + 9] ^= 0x80; return false; }) \
	X(raw_len, -EBADMSG, "chunk 1: raw_len", { wr32(im->b + ENTRY(1) + 20, rd32(im->b + ENTRY(1) + 20) - 1); return true; }) \
	X(raw_len_last, -EBADMSG, "chunk 5: raw_len", { wr32(im->b + ENTRY(5) + 20, CHUNK); return true; }) \
	X(flag_unknown, -EBADMSG, "bad flags 0x04", { im->b[ENTRY(0) + 23] |= 4; return true; }) \
	X(flag_both, -EBADMSG, "bad flags 0x03", { im->b[ENTRY(zero(im)) + 23] |= 2; return true; }) \
	X(zero_offset, -EBADMSG, "a zero chunk", { wr64(im->b + ENTRY(zero(im)), 100); return true; }) \
	X(zero_sum, -EBADMSG, "a zero chunk", { wr64(im->b + ENTRY(zero(im)) + 8, 1); return true; }) \
	X(zero_stored, -EBADMSG, "a zero chunk", { wr32(im->b + ENTRY(zero(im)) + 16, 1); return true; }) \
	X(comp_empty, -EBADMSG, "stored_len 0", { wr32(im->b + ENTRY(compressed(im)) + 16, 0); return true; }) \
	X(comp_big, -EBADMSG, "(compressed)", { wr32(im->b + ENTRY(compressed(im)) + 16, CHUNK); return true; }) \
	X(raw_stored, -EBADMSG, "(stored raw)", { \
		unsigned int c = compressed(im); \
		im->b[ENTRY(c) + 23] |= UPAGER_IMAGE_CHUNK_RAW; return true; }) \
	X(gap, -EBADMSG, "offset", { \
		unsigned int c = compressed(im); \
		wr64(im->b + ENTRY(c), rd64(im->b + ENTRY(c)) + 1); return true; }) \
	X(overlap, -EBADMSG, "offset", { \
		unsigned int c = compressed(im); \
		wr64(im->b + ENTRY(c), rd64(im->b + ENTRY(c)) - 1); return true; }) \
	X(past_end, -EBADMSG, "past the end", { \
		unsigned int c = compressed(im); \
		wr64(im->b + 56, rd64(im->b + ENTRY(c)) + 10); \
		im->len = rd64(im->b + ENTRY(c)) + 10; return true; }) \
	X(short_end, -EBADMSG, "the chunks end at", { \
		wr64(im->b + 56, im->len + 10); \
		im->len += 10; return true; }) \
	X(cut_1, -EBADMSG, "truncated", { im->len -= 1; return false; }) \
	X(cut_data, -EBADMSG, "truncated", { im->len = rd64(im->b + 48) + 5; return false; }) \
	X(cut_index, -EBADMSG, "truncated", { im->len = ENTRY(3) + 7; return false; }) \
	X(cut_header, -EBADMSG, "too short", { im->len = IMG_HDR_LEN - 1; return false; }) \
	X(cut_10, -EBADMSG, "too short", { im->len = 10; return false; }) \
	X(empty, -EBADMSG, "too short", { im->len = 0; return false; }) \
	X(extended, -EBADMSG, "extended", { im->b[im->len] = 0; im->len += 1; return false; }) \
	/* end */

#define CHANGE(name, err, why, body) \
	static bool name(struct image *im) \
	body
CASES(CHANGE)

static const struct {
	const char *name;
	bool (*change)(struct image *im);
	int err;
	const char *why;
} cases[] = {
#define ROW(name, err, why, body) { #name, name, err, why },
	CASES(ROW)
};

static void check_case(size_t i)
{
	struct image im = { .b = malloc(good.len + 64), .len = good.len };
	struct upager_store *s;
	char why[256];
	int err = 0;

	CHECK(im.b, "malloc");
	memcpy(im.b, good.b, good.len);
	if (cases[i].change(&im))
		resum(&im);
	save(&im);
	s = upager_image_open(path, why, sizeof(why), &err);
	if (s || err != cases[i].err || !strstr(why, cases[i].why))
		FAIL("%s: open gave %s, err %d (%s), why \"%s\"; want err %d "
		     "and \"%s\"",
		     cases[i].name, s ? "a store" : "NULL", err,
		     strerror(-err), why, cases[i].err, cases[i].why);
	/* Undone, the image opens again. */
	save(&good);
	s = upager_image_open(path, why, sizeof(why), &err);
	CHECK(s, "%s undone: %s", cases[i].name, why);
	upager_store_close(s);
	free(im.b);
}

int main(void)
{
	char *data = malloc(LEN);
	int fd, err;

	CHECK(data, "malloc");
	/* Page 5 zero: with 16 KiB chunks, chunk 1 holds it and compresses. */
	ti_data(data, LEN, 7);
	memset(data + 8 * TI_PAGE, 0, 4 * TI_PAGE); /* chunk 2: zeros */
	ti_path(path, sizeof(path), "format");
	ti_write(path, data, LEN, UPAGER_IMAGE_ZSTD, CHUNK);
	load(&good);
	CHECK(rd64(good.b + 32) == NCHUNKS, "nchunks %llu",
	      (unsigned long long)rd64(good.b + 32));
	upager_store_close(ti_open(path));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(i);
	printf("%zu malformed images refused\n",
	       sizeof(cases) / sizeof(cases[0]));

	/* By spec the reason goes to stderr; here it is only the errno. */
	fd = open(path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && write(fd, good.b, 40) == 40, "write");
	close(fd);
	{
		char spec[300];

		snprintf(spec, sizeof(spec), "image:%s", path);
		CHECK(!upager_store_open(spec, &err) && err == -EBADMSG,
		      "by spec: err %d", err);
	}
	unlink(path);
	free(good.b);
	free(data);
	return 0;
}

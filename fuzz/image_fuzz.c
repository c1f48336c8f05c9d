// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer harness for the compressed page image reader (`make fuzz`):
 * src/store/image.c and image_fmt.c over a file a user may be handed
 * (docs/IMAGE.md).  Byte 0 is the mode, the rest is the file, which the
 * reader opens through a memfd.  Mode bit 0 clear, the harness first sets
 * right what a checksum covers: each chunk's sum, where its index entry
 * places it inside the file, then header_sum (with bit 1, file_len to the
 * input's length too); else a checksum would refuse almost every input,
 * and the index, decompression and bounds behind it would go unfuzzed.
 * Bit 0 set, the bytes are the file as they are.  Bit 2 opens it as
 * "image:PATH" is, else by upager_image_open().
 *
 * Open succeeds, or fails with an errno image.h names and a reason.  An
 * image that opens has an index that places every chunk inside the file,
 * back to back, and each chunk is read every way the store reads it (one
 * fetch() of the whole chunk, page by page through a slot, check()),
 * each of which must agree with the harness's own reading: checksum,
 * then decompression to exactly raw_len bytes.  A good chunk gives those
 * bytes, a bad one -EIO, never zeros nor anything else.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticDCtx() */
#include <lz4.h>
#include <xxhash.h>
#include <zstd.h>

#include "base/le.h"
#include "store/builtin.h"
#include "store/image_fmt.h"

#define PAGE UPAGER_STORE_PAGE
/*
 * Bounds on the harness's own work, not the reader's: an index entry of
 * 24 bytes stands for up to 256 KiB of data, so an input of 64 KiB can
 * describe an image of hundreds of MiB.  Chunks are read until BUDGET
 * bytes of data, and the image in one fetch when it fits in IMAGE_MAX.
 */
#define BUDGET	  (32u << 20)
#define IMAGE_MAX (4u << 20)

#define MODE_AS_IS   0x01 /* the checksums as they are */
#define MODE_FIX_LEN 0x02 /* file_len too */
#define MODE_SPEC    0x04 /* opened as "image:PATH" is */

#define BUG(...)                                                               \
	do {                                                                   \
		dprintf(out_fd, "image_fuzz: " __VA_ARGS__);                   \
		dprintf(out_fd, "\n");                                         \
		abort();                                                       \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd, out_fd;
static char path[64];
static ZSTD_DCtx *dctx;
/* The image as it must read, and as it reads; a chunk of it, twice. */
static char *image, *image_got, *chunk_want, *chunk_got;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t dsize = ZSTD_estimateDCtxSize();
	void *dmem = malloc(dsize);

	(void)argc;
	(void)argv;
	/*
	 * Our own stderr: -close_fd_mask=2 silences the line image.c writes
	 * for each bad chunk, and would silence ours with it.
	 */
	out_fd = dup(STDERR_FILENO);
	memfd = memfd_create("image_fuzz", MFD_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	/*
	 * A static context, as the store's, so that the same frames decode:
	 * a static one refuses zstd's legacy formats.
	 */
	dctx = dmem ? ZSTD_initStaticDCtx(dmem, dsize) : NULL;
	image = malloc(IMAGE_MAX);
	image_got = malloc(IMAGE_MAX);
	chunk_want = malloc(UPAGER_IMAGE_CHUNK_MAX);
	chunk_got = malloc(UPAGER_IMAGE_CHUNK_MAX);
	if (out_fd < 0 || memfd < 0 || !dctx || !image || !image_got ||
	    !chunk_want || !chunk_got)
		abort();
	return 0;
}

/* Set the checksums of @b (@len bytes) right, where its header says. */
static void fix_sums(uint8_t *b, size_t len, bool fix_len)
{
	uint64_t data_off;

	if (len < IMG_HDR_LEN)
		return;
	if (fix_len)
		wr64(b + 56, len);
	data_off = rd64(b + 48);
	if (data_off < IMG_HDR_LEN || data_off > len)
		return;
	for (uint8_t *e = b + IMG_HDR_LEN; e + IMG_ENTRY_LEN <= b + data_off;
	     e += IMG_ENTRY_LEN) {
		uint64_t off = rd64(e);
		uint32_t stored = rd32(e + 16);

		if (stored && off <= len && stored <= len - off)
			wr64(e + 8, XXH3_64bits(b + off, stored));
	}
	wr64(b + IMG_SUM_OFF, img_header_sum(b, data_off));
}

/* Does @got hold @n bytes of @want, then zeros up to @len? */
static bool same(const char *got, const char *want, size_t n, size_t len)
{
	if (memcmp(got, want, n))
		return false;
	for (size_t i = n; i < len; i++)
		if (got[i])
			return false;
	return true;
}

/* What chunk @e of file @b reads as, into @w: 0, or -EIO when bad. */
static int expect(enum upager_image_codec codec,
		  const struct upager_image_chunk *e, const uint8_t *b, char *w)
{
	const char *src = (const char *)b + e->offset;
	size_t n;

	if (e->flags & UPAGER_IMAGE_CHUNK_ZERO) {
		memset(w, 0, e->raw_len);
		return 0;
	}
	if (XXH3_64bits(src, e->stored_len) != e->checksum)
		return -EIO;
	if (e->flags & UPAGER_IMAGE_CHUNK_RAW) {
		memcpy(w, src, e->raw_len);
		return 0;
	}
	if (codec == UPAGER_IMAGE_ZSTD) {
		n = ZSTD_decompressDCtx(dctx, w, e->raw_len, src,
					e->stored_len);
	} else {
		int k = LZ4_decompress_safe(src, w, (int)e->stored_len,
					    (int)e->raw_len);

		n = k < 0 ? 0 : (size_t)k;
	}
	/* raw_len is never 0; a zstd error is a huge count. */
	return n == e->raw_len ? 0 : -EIO;
}

/*
 * Read chunk @c (entry @e) of the store @s over file @b: a fetch() of the
 * whole chunk (decompressed straight into our buffer), page by page (the
 * first one decompressed into a slot, the others from it), and check();
 * the results must be expect()'s.  Its data is left in @w.
 */
static int check_chunk(struct upager_store *s, enum upager_image_codec codec,
		       uint32_t cs, uint64_t c,
		       const struct upager_image_chunk *e, const uint8_t *b,
		       char *w)
{
	uint64_t first = c * cs / PAGE;
	size_t npages = (e->raw_len + PAGE - 1) / PAGE, n;
	char why[256];
	int want, ret;

	want = expect(codec, e, b, w);
	ret = s->ops->fetch(s, first, chunk_got, npages);
	if (ret != want ||
	    (!ret && !same(chunk_got, w, e->raw_len, npages * PAGE)))
		BUG("chunk %" PRIu64
		    ": fetch() of it whole gives %d, want %d%s",
		    c, ret, want, ret ? "" : ", and other bytes");
	for (size_t i = 0; i < npages; i++) {
		n = e->raw_len - i * PAGE < PAGE ? e->raw_len - i * PAGE : PAGE;
		ret = s->ops->fetch(s, first + i, chunk_got, 1);
		if (ret != want ||
		    (!ret && !same(chunk_got, w + i * PAGE, n, PAGE)))
			BUG("chunk %" PRIu64 ": fetch() of its page %zu gives "
			    "%d, want %d%s",
			    c, i, ret, want, ret ? "" : ", and other bytes");
	}
	ret = upager_image_check(s, c, why, sizeof(why));
	if (ret != want || (ret && !*why))
		BUG("chunk %" PRIu64 ": check gives %d (%s), want %d", c, ret,
		    why, want);
	n = s->ops->zero_run(s, first, npages);
	if (n != (e->flags & UPAGER_IMAGE_CHUNK_ZERO ? npages : 0))
		BUG("chunk %" PRIu64 ": zero_run() %zu of its %zu pages, flags "
		    "0x%x",
		    c, n, npages, e->flags);
	return want;
}

/*
 * Entry @e of chunk @c: where a reader that accepted the index must have
 * found it (@pos: the end of the chunk before) in a file of @len bytes.
 */
static bool entry_ok(const struct upager_image_chunk *e, uint32_t raw,
		     uint64_t pos, size_t len)
{
	if (e->raw_len != raw)
		return false;
	switch (e->flags) {
	case UPAGER_IMAGE_CHUNK_ZERO:
		return !e->offset && !e->stored_len && !e->checksum;
	case UPAGER_IMAGE_CHUNK_RAW:
		if (e->stored_len != raw)
			return false;
		break;
	case 0:
		if (!e->stored_len || e->stored_len >= raw)
			return false;
		break;
	default:
		return false;
	}
	return e->offset == pos && pos <= len && e->stored_len <= len - pos;
}

/*
 * The whole image in one fetch(), and from its second page on (from
 * inside chunk 0 when chunks are larger than a page, across chunks):
 * -EIO when a chunk covered is bad, else the data, zeros after it.
 * Chunks below @bad_end are bad or good, above it all good.
 */
static void check_whole(struct upager_store *s, uint64_t len, uint32_t cs,
			uint64_t bad_end)
{
	size_t npages = (size_t)s->npages;
	int ret;

	if (!npages)
		return;
	ret = s->ops->fetch(s, 0, image_got, npages);
	if (ret != (bad_end ? -EIO : 0) ||
	    (!ret && !same(image_got, image, len, npages * PAGE)))
		BUG("fetch() of all %zu pages gives %d%s", npages, ret,
		    ret ? "" : ", and other bytes");
	if (npages < 2)
		return;
	ret = s->ops->fetch(s, 1, image_got, npages - 1);
	if (ret != (bad_end > PAGE / cs ? -EIO : 0) ||
	    (!ret &&
	     !same(image_got, image + PAGE, len - PAGE, (npages - 1) * PAGE)))
		BUG("fetch() of pages 1-%zu gives %d%s", npages - 1, ret,
		    ret ? "" : ", and other bytes");
}

static void check_image(struct upager_store *s, const uint8_t *b, size_t len)
{
	struct upager_image_info info = {.size = sizeof(info)};
	struct upager_image_chunk e;
	uint64_t pos, budget = 0, bad_end = 0, c;

	if (upager_image_info(s, &info))
		BUG("upager_image_info() fails");
	if (info.file_len != len ||
	    info.nchunks != img_nchunks(info.image_len, info.chunk_size) ||
	    s->npages != info.image_len / PAGE + !!(info.image_len % PAGE))
		BUG("info: file_len %" PRIu64 " of %zu, %" PRIu64
		    " chunks, %" PRIu64 " pages, for %" PRIu64
		    " bytes in chunks of %u",
		    info.file_len, len, info.nchunks, s->npages, info.image_len,
		    info.chunk_size);
	pos = IMG_HDR_LEN + info.nchunks * IMG_ENTRY_LEN;
	for (c = 0; c < info.nchunks; c++) {
		if (upager_image_chunk(s, c, &e) ||
		    !entry_ok(&e,
			      img_raw_len(info.image_len, info.chunk_size, c),
			      pos, len))
			BUG("chunk %" PRIu64 ": %u bytes at %" PRIu64
			    " (want %" PRIu64 "), raw_len %u, flags 0x%x, in "
			    "%zu bytes",
			    c, e.stored_len, e.offset, pos, e.raw_len, e.flags,
			    len);
		pos += e.stored_len;
	}
	if (pos != len)
		BUG("the chunks end at %" PRIu64 ", the file at %zu", pos, len);
	if (upager_image_chunk(s, c, &e) != -ERANGE ||
	    upager_image_check(s, c, NULL, 0) != -ERANGE)
		BUG("chunk %" PRIu64 " of %" PRIu64 " is not -ERANGE", c, c);

	for (c = 0; c < info.nchunks && budget < BUDGET; c++) {
		uint64_t at = c * info.chunk_size;
		char *w;

		upager_image_chunk(s, c, &e);
		w = at + e.raw_len <= IMAGE_MAX ? image + at : chunk_want;
		if (check_chunk(s, info.codec, info.chunk_size, c, &e, b, w))
			bad_end = c + 1;
		budget += e.raw_len;
	}
	if (c == info.nchunks && info.image_len <= IMAGE_MAX)
		check_whole(s, info.image_len, info.chunk_size, bad_end);
}

/*
 * Open the memfd as an image: by upager_image_open(), or (MODE_SPEC) by
 * the ops table's open(), what upager_store_open("image:PATH") calls
 * once the registry has found it; that one tells the reason on stderr.
 */
static struct upager_store *open_image(uint8_t mode, char *why, size_t len,
				       int *err)
{
	struct upager_store *s = NULL;

	if (!(mode & MODE_SPEC))
		return upager_image_open(path, why, len, err);
	*err = store_image_ops.open(path, &s);
	snprintf(why, len, "(told on stderr)");
	if (!*err != !!s)
		BUG("open() gives %d and %s store", *err, s ? "a" : "no");
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct upager_store *s;
	size_t len = size ? size - 1 : 0;
	uint8_t *b = malloc(len + 1);
	char why[256];
	int err;

	if (!size || !b) {
		free(b);
		return 0;
	}
	memcpy(b, data + 1, len);
	if (!(data[0] & MODE_AS_IS))
		fix_sums(b, len, data[0] & MODE_FIX_LEN);
	if (ftruncate(memfd, 0) ||
	    (len && pwrite(memfd, b, len, 0) != (ssize_t)len))
		abort();
	s = open_image(data[0], why, sizeof(why), &err);
	if (!s) {
		if (err != -EBADMSG && err != -EPROTONOSUPPORT)
			BUG("open gives %d (%s)", err, why);
		if (!*why)
			BUG("open refuses with %d and no reason", err);
	} else {
		check_image(s, b, len);
		s->ops->close(s);
	}
	free(b);
	return 0;
}

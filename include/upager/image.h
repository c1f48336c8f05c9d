/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Compressed page images (docs/IMAGE.md): writing one, and reading one
 * as a page store with what a tool needs beyond fetch(): its header, its
 * index, and a check of each chunk.
 *
 * An image is also opened by spec as "image:PATH" (upager_store_open()).
 * Its store decompresses the chunks a fetch() covers, straight into the
 * caller's buffer when it asks for whole chunks, reports zero chunks
 * through zero_run(), and fails a chunk whose checksum or decompression
 * is wrong with -EIO.  It is UPAGER_STORE_SIGNAL_SAFE (no allocation but
 * mmap(), no lock) and UPAGER_STORE_CHEAP.
 */
#ifndef UPAGER_IMAGE_H
#define UPAGER_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <upager/store.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* The version of the format this library writes and reads. */
#define UPAGER_IMAGE_VERSION 1

#define UPAGER_IMAGE_CHUNK_MIN	   (4u << 10)
#define UPAGER_IMAGE_CHUNK_MAX	   (256u << 10)
#define UPAGER_IMAGE_CHUNK_DEFAULT (64u << 10)

enum upager_image_codec {
	UPAGER_IMAGE_ZSTD = 1,
	UPAGER_IMAGE_LZ4 = 2,
};

/* Index entry flags (struct upager_image_chunk.flags). */
#define UPAGER_IMAGE_CHUNK_ZERO 0x01u /* all zeros, stored as nothing */
#define UPAGER_IMAGE_CHUNK_RAW	0x02u /* stored uncompressed */

/* ---- writing ----------------------------------------------------------- */

struct upager_image_params {
	uint32_t size;		       /* sizeof(struct upager_image_params) */
	enum upager_image_codec codec; /* 0: zstd */
	/*
	 * 0: the codec's default (zstd 3, LZ4 1).  zstd: ZSTD_minCLevel()
	 * to ZSTD_maxCLevel() (negative: faster); LZ4: 1 (fast) to 12, 2
	 * and up with LZ4 HC (slower to write, as fast to read).
	 */
	int level;
	uint32_t chunk_size; /* 0: UPAGER_IMAGE_CHUNK_DEFAULT; else a power
				of two from CHUNK_MIN to CHUNK_MAX */
};

struct upager_image_writer;

/*
 * Start writing an image of @len bytes to @path.  The image goes to a
 * temporary file beside @path, which upager_image_commit() renames over
 * @path once complete: a failed or abandoned create leaves @path as it
 * was.  @p may be NULL for defaults.  NULL with *@err = -EINVAL (a
 * parameter out of range: codec, level, chunk size), -E2BIG (see
 * upager_handler_params), -ENOMEM, or the -errno of creating the file.
 * One thread at a time uses a writer.
 */
struct upager_image_writer *
upager_image_create(const char *path, uint64_t len,
		    const struct upager_image_params *p, int *err);
/*
 * Append @len bytes of data (any amount: the writer cuts chunks itself).
 * 0, -EFBIG (more than the @len given at create), -ENOMEM, or the -errno
 * of writing the file (-ENOSPC...); after an error every later call
 * fails with it.
 */
int upager_image_write(struct upager_image_writer *w, const void *buf,
		       size_t len);
/*
 * Write the index and the header, flush the file to disk and rename it
 * into place.  0, -EINVAL (fewer bytes written than announced), or the
 * -errno of the write, fsync() or rename().  Free the writer after.
 */
int upager_image_commit(struct upager_image_writer *w);
/* Free @w; an image not committed is removed.  NULL is ignored. */
void upager_image_writer_free(struct upager_image_writer *w);

/* ---- reading ----------------------------------------------------------- */

/* The header of an open image and what its index adds up to. */
struct upager_image_info {
	uint32_t size; /* set by the caller: sizeof(struct upager_image_info) */
	uint32_t version;
	enum upager_image_codec codec;
	int level;
	uint32_t chunk_size;
	uint64_t image_len; /* bytes of data */
	uint64_t file_len;  /* bytes of the file */
	uint64_t nchunks;
	uint64_t zero_chunks;  /* all zeros: no bytes stored */
	uint64_t raw_chunks;   /* stored uncompressed */
	uint64_t stored_bytes; /* bytes of the chunks as stored */
};

/* One entry of the index. */
struct upager_image_chunk {
	uint64_t offset;     /* in the file; 0 for a zero chunk */
	uint64_t checksum;   /* XXH3-64 of the stored bytes */
	uint32_t stored_len; /* bytes in the file */
	uint32_t raw_len;    /* bytes of data */
	unsigned int flags;  /* UPAGER_IMAGE_CHUNK_* */
};

/*
 * Open the image at @path as a store (the same as "image:PATH"), after
 * checking its header and its whole index (docs/IMAGE.md).  On failure
 * NULL, *@err = -errno and, when @why is not NULL, one line in @why
 * (@whylen bytes with its NUL) saying what was wrong and where: -EBADMSG
 * (not an image, malformed or truncated), -EPROTONOSUPPORT (a version
 * this library does not read), -ENOMEM, or the -errno of open() or
 * read().  (Opened by spec, the store writes that line to stderr.)  Any
 * thread.
 */
struct upager_store *upager_image_open(const char *path, char *why,
				       size_t whylen, int *err);
/*
 * The header of image store @s, and its index's sums.  0, or -EINVAL
 * (@s is not an image store, or info->size is smaller than the size
 * field); a caller built with a smaller struct gets its part of it (see
 * upager_handler_params).  Any thread.
 */
int upager_image_info(struct upager_store *s, struct upager_image_info *info);
/* Entry @idx of the index.  0, -EINVAL (not an image), -ERANGE. */
int upager_image_chunk(struct upager_store *s, uint64_t idx,
		       struct upager_image_chunk *c);
/*
 * Read chunk @idx and check it as a fetch() would: its checksum, its
 * decompression and length.  0; -EIO for a bad chunk, with the reason in
 * @why (may be NULL; nothing is written to stderr); -EINVAL (not an
 * image), -ERANGE, or the -errno of reading the file.  Thread-safe, as
 * fetch() is.
 */
int upager_image_check(struct upager_store *s, uint64_t idx, char *why,
		       size_t whylen);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif

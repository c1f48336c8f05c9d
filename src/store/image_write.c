// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Writing a page image (docs/IMAGE.md): the data comes in pieces of any
 * size, is cut into chunks, and each chunk is stored as nothing (all
 * zeros), compressed, or as it is when compression would not make it
 * smaller.  The index has a fixed place after the header, known from the
 * image's length, so chunks are written in one pass behind it and the
 * index and header last; all of it into a temporary file beside the
 * image, renamed into place once it is complete and on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lz4.h>
#include <lz4hc.h>
#include <xxhash.h>
#include <zstd.h>

#include "base/util.h"
#include "store/image_fmt.h"

#define OUT_BUF	   (1u << 20) /* stored bytes gathered per write(2) */
#define ZSTD_LEVEL 3
#define LZ4_LEVEL  1

struct upager_image_writer {
	int fd;
	char *path, *tmp;
	struct img_header h;
	uint8_t *index; /* encoded entries, filled as chunks are made */
	uint64_t next;	/* the next chunk */
	uint64_t taken; /* bytes of data taken */
	char *in;	/* a chunk gathered from pieces */
	size_t fill;
	char *comp; /* a compressed chunk */
	char *out;  /* stored bytes not yet written */
	size_t out_fill;
	uint64_t pos; /* where out's first byte goes */
	ZSTD_CCtx *cctx;
	int err; /* the first write error: every later call's */
	bool committed;
};

static int write_at(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pwrite(fd, (const char *)buf + done, len - done,
			   (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
	}
	return 0;
}

static int flush_out(struct upager_image_writer *w)
{
	int ret = write_at(w->fd, w->out, w->out_fill, w->pos);

	if (ret)
		return ret;
	w->pos += w->out_fill;
	w->out_fill = 0;
	return 0;
}

static bool all_zero(const char *p, size_t len)
{
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t v;

		memcpy(&v, p + i, 8);
		if (v)
			return false;
	}
	for (; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Compress @src (@raw bytes) into w->comp, into fewer than @raw bytes:
 * their count, or 0 when it does not get smaller.
 */
static size_t compress_chunk(struct upager_image_writer *w, const char *src,
			     uint32_t raw)
{
	size_t n;
	int k;

	if (w->h.codec == UPAGER_IMAGE_ZSTD) {
		n = ZSTD_compressCCtx(w->cctx, w->comp, raw - 1, src, raw,
				      w->h.level);
		return ZSTD_isError(n) ? 0 : n;
	}
	if (w->h.level > 1)
		k = LZ4_compress_HC(src, w->comp, (int)raw, (int)raw - 1,
				    w->h.level);
	else
		k = LZ4_compress_default(src, w->comp, (int)raw, (int)raw - 1);
	return k > 0 ? (size_t)k : 0;
}

/* Store the next chunk, @src. */
static int put_chunk(struct upager_image_writer *w, const char *src)
{
	uint32_t raw = img_raw_len(w->h.image_len, w->h.chunk_size, w->next);
	struct img_chunk c = {0};
	const char *bytes = w->comp;
	int ret;

	if (all_zero(src, raw)) {
		c.flags = UPAGER_IMAGE_CHUNK_ZERO;
	} else {
		c.stored = (uint32_t)compress_chunk(w, src, raw);
		if (!c.stored) {
			c.flags = UPAGER_IMAGE_CHUNK_RAW;
			c.stored = raw;
			bytes = src;
		}
		if (w->out_fill + c.stored > OUT_BUF) {
			ret = flush_out(w);
			if (ret)
				return ret;
		}
		c.offset = w->pos + w->out_fill;
		c.sum = XXH3_64bits(bytes, c.stored);
		memcpy(w->out + w->out_fill, bytes, c.stored);
		w->out_fill += c.stored;
	}
	img_entry_encode(&c, raw, w->index + w->next * IMG_ENTRY_LEN);
	w->next++;
	return 0;
}

static int check_params(struct upager_image_params *p)
{
	uint32_t cs;

	if (!p->codec)
		p->codec = UPAGER_IMAGE_ZSTD;
	if (p->codec != UPAGER_IMAGE_ZSTD && p->codec != UPAGER_IMAGE_LZ4)
		return -EINVAL;
	if (!p->level)
		p->level =
		    p->codec == UPAGER_IMAGE_ZSTD ? ZSTD_LEVEL : LZ4_LEVEL;
	if (!img_level_ok(p->codec, p->level))
		return -EINVAL;
	if (!p->chunk_size)
		p->chunk_size = UPAGER_IMAGE_CHUNK_DEFAULT;
	cs = p->chunk_size;
	if (cs < UPAGER_IMAGE_CHUNK_MIN || cs > UPAGER_IMAGE_CHUNK_MAX ||
	    (cs & (cs - 1)))
		return -EINVAL;
	return 0;
}

/* A name beside @path no other writer in this process or another uses. */
static char *tmp_name(const char *path)
{
	static atomic_uint seq;
	size_t len = strlen(path) + 48;
	char *tmp = malloc(len);

	if (tmp)
		snprintf(tmp, len, "%s.%d.%u.tmp", path, (int)getpid(),
			 atomic_fetch_add(&seq, 1));
	return tmp;
}

struct upager_image_writer *
upager_image_create(const char *path, uint64_t len,
		    const struct upager_image_params *params, int *err)
{
	struct upager_image_params p = {.size = sizeof(p)};
	struct upager_image_writer *w = NULL;
	uint64_t nchunks;
	int ret;

	ret = path && *path ? params_copy(&p, sizeof(p), params) : -EINVAL;
	if (!ret)
		ret = check_params(&p);
	if (ret)
		goto out;
	nchunks = img_nchunks(len, p.chunk_size);
	ret = -EFBIG;
	if (nchunks > (SIZE_MAX - IMG_HDR_LEN) / IMG_ENTRY_LEN)
		goto out;
	ret = -ENOMEM;
	w = calloc(1, sizeof(*w));
	if (!w)
		goto out;
	w->fd = -1;
	w->h = (struct img_header){
	    .version = UPAGER_IMAGE_VERSION,
	    .header_len = IMG_HDR_LEN,
	    .page_size = IMG_PAGE,
	    .image_len = len,
	    .chunk_size = p.chunk_size,
	    .codec = (uint8_t)p.codec,
	    .checksum = IMG_SUM_XXH3,
	    .nchunks = nchunks,
	    .index_off = IMG_HDR_LEN,
	    .data_off = IMG_HDR_LEN + nchunks * IMG_ENTRY_LEN,
	    .level = p.level,
	};
	w->pos = w->h.data_off;
	w->path = strdup(path);
	w->tmp = tmp_name(path);
	w->index = malloc(nchunks * IMG_ENTRY_LEN + 1);
	w->in = malloc(p.chunk_size);
	w->comp = malloc(p.chunk_size);
	w->out = malloc(OUT_BUF);
	if (p.codec == UPAGER_IMAGE_ZSTD)
		w->cctx = ZSTD_createCCtx();
	if (!w->path || !w->tmp || !w->index || !w->in || !w->comp || !w->out ||
	    (p.codec == UPAGER_IMAGE_ZSTD && !w->cctx))
		goto out;
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	ret = w->fd < 0 ? -errno : 0;
out:
	if (ret) {
		upager_image_writer_free(w);
		w = NULL;
	}
	if (err)
		*err = ret;
	return w;
}

int upager_image_write(struct upager_image_writer *w, const void *buf,
		       size_t len)
{
	const char *p = buf;
	int ret;

	if (w->err)
		return w->err;
	if (len > w->h.image_len - w->taken)
		return -EFBIG;
	w->taken += len;
	while (len) {
		uint32_t raw =
		    img_raw_len(w->h.image_len, w->h.chunk_size, w->next);
		size_t k = raw - w->fill;

		/* A whole chunk in the caller's buffer is not copied. */
		if (!w->fill && len >= raw) {
			ret = put_chunk(w, p);
			k = raw;
		} else {
			if (k > len)
				k = len;
			memcpy(w->in + w->fill, p, k);
			w->fill += k;
			ret = 0;
			if (w->fill == raw) {
				ret = put_chunk(w, w->in);
				w->fill = 0;
			}
		}
		if (ret)
			return w->err = ret;
		p += k;
		len -= k;
	}
	return 0;
}

int upager_image_commit(struct upager_image_writer *w)
{
	uint8_t hdr[IMG_HDR_LEN];
	XXH3_state_t *st;
	int ret;

	if (w->err)
		return w->err;
	if (w->committed || w->taken != w->h.image_len)
		return -EINVAL;
	ret = flush_out(w);
	if (ret)
		return w->err = ret;
	w->h.file_len = w->pos;
	w->h.header_sum = 0;
	img_header_encode(&w->h, hdr);
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, hdr, sizeof(hdr));
	XXH3_64bits_update(st, w->index, w->h.nchunks * IMG_ENTRY_LEN);
	w->h.header_sum = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	img_header_encode(&w->h, hdr);
	ret = write_at(w->fd, w->index, w->h.nchunks * IMG_ENTRY_LEN,
		       IMG_HDR_LEN);
	if (!ret)
		ret = write_at(w->fd, hdr, sizeof(hdr), 0);
	/* On disk before the name points to it. */
	if (!ret && fsync(w->fd))
		ret = -errno;
	if (!ret && rename(w->tmp, w->path))
		ret = -errno;
	if (ret)
		return w->err = ret;
	w->committed = true;
	return 0;
}

void upager_image_writer_free(struct upager_image_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		if (!w->committed)
			unlink(w->tmp);
	}
	ZSTD_freeCCtx(w->cctx);
	free(w->out);
	free(w->comp);
	free(w->in);
	free(w->index);
	free(w->tmp);
	free(w->path);
	free(w);
}

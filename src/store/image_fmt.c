// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The page image's header and index: encoding, and the checks a reader
 * makes before it trusts a single offset (docs/IMAGE.md, "What a reader
 * checks at open").  Every sum is checked for overflow before it is
 * made, so a hostile file can make the reader refuse it and nothing else.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <lz4hc.h>
#include <xxhash.h>
#include <zstd.h>

#include "base/le.h"
#include "base/util.h"
#include "store/image_fmt.h"

void img_header_encode(const struct img_header *h, uint8_t *buf)
{
	memcpy(buf, IMG_MAGIC, 8);
	wr16(buf + 8, h->version);
	wr16(buf + 10, h->header_len);
	wr32(buf + 12, h->page_size);
	wr64(buf + 16, h->image_len);
	wr32(buf + 24, h->chunk_size);
	buf[28] = h->codec;
	buf[29] = h->checksum;
	wr16(buf + 30, h->flags);
	wr64(buf + 32, h->nchunks);
	wr64(buf + 40, h->index_off);
	wr64(buf + 48, h->data_off);
	wr64(buf + 56, h->file_len);
	wr32(buf + 64, (uint32_t)h->level);
	wr32(buf + 68, h->reserved);
	wr64(buf + IMG_SUM_OFF, h->header_sum);
}

void img_header_decode(const uint8_t *buf, struct img_header *h)
{
	h->version = rd16(buf + 8);
	h->header_len = rd16(buf + 10);
	h->page_size = rd32(buf + 12);
	h->image_len = rd64(buf + 16);
	h->chunk_size = rd32(buf + 24);
	h->codec = buf[28];
	h->checksum = buf[29];
	h->flags = rd16(buf + 30);
	h->nchunks = rd64(buf + 32);
	h->index_off = rd64(buf + 40);
	h->data_off = rd64(buf + 48);
	h->file_len = rd64(buf + 56);
	h->level = (int32_t)rd32(buf + 64);
	h->reserved = rd32(buf + 68);
	h->header_sum = rd64(buf + IMG_SUM_OFF);
}

void img_entry_encode(const struct img_chunk *c, uint32_t raw_len, uint8_t *buf)
{
	wr64(buf, c->offset);
	wr64(buf + 8, c->sum);
	wr32(buf + 16, c->stored);
	wr32(buf + 20, raw_len | (uint32_t)c->flags << IMG_FLAG_SHIFT);
}

uint64_t img_header_sum(uint8_t *buf, uint64_t data_off)
{
	/* The sum covers the header with its own field as zeros. */
	memset(buf + IMG_SUM_OFF, 0, 8);
	return XXH3_64bits(buf, (size_t)data_off);
}

bool img_level_ok(unsigned int codec, int level)
{
	if (codec == UPAGER_IMAGE_ZSTD)
		return level >= ZSTD_minCLevel() && level <= ZSTD_maxCLevel() &&
		       level != 0;
	if (codec == UPAGER_IMAGE_LZ4)
		return level >= 1 && level <= LZ4HC_CLEVEL_MAX;
	return false;
}

int img_header_check(const uint8_t *buf, uint64_t file_len,
		     struct img_header *h, char *why, size_t whylen)
{
	const int e = -EBADMSG;
	uint64_t want;

	if (file_len < IMG_HDR_LEN)
		return why_fmt(e, why, whylen,
			       "%" PRIu64 " bytes: too short for a header (%u)",
			       file_len, IMG_HDR_LEN);
	if (memcmp(buf, IMG_MAGIC, 8))
		return why_fmt(e, why, whylen,
			       "not a page image (no magic \"" IMG_MAGIC "\")");
	img_header_decode(buf, h);
	if (h->version != UPAGER_IMAGE_VERSION)
		return why_fmt(
		    -EPROTONOSUPPORT, why, whylen,
		    "format version %u; this library reads version %u",
		    h->version, UPAGER_IMAGE_VERSION);
	if (h->header_len != IMG_HDR_LEN)
		return why_fmt(e, why, whylen, "header_len %u, want %u",
			       h->header_len, IMG_HDR_LEN);
	if (h->page_size != IMG_PAGE)
		return why_fmt(e, why, whylen, "page_size %u, want %u",
			       h->page_size, IMG_PAGE);
	if (h->chunk_size < UPAGER_IMAGE_CHUNK_MIN ||
	    h->chunk_size > UPAGER_IMAGE_CHUNK_MAX ||
	    (h->chunk_size & (h->chunk_size - 1)))
		return why_fmt(
		    e, why, whylen,
		    "chunk_size %u is not a power of two from %u to %u",
		    h->chunk_size, UPAGER_IMAGE_CHUNK_MIN,
		    UPAGER_IMAGE_CHUNK_MAX);
	if (h->codec != UPAGER_IMAGE_ZSTD && h->codec != UPAGER_IMAGE_LZ4)
		return why_fmt(e, why, whylen, "unknown codec %u", h->codec);
	if (h->checksum != IMG_SUM_XXH3)
		return why_fmt(e, why, whylen, "unknown checksum kind %u",
			       h->checksum);
	if (h->flags)
		return why_fmt(e, why, whylen, "unknown flags 0x%x", h->flags);
	if (h->reserved)
		return why_fmt(e, why, whylen, "reserved field 0x%x, want 0",
			       h->reserved);
	if (!img_level_ok(h->codec, h->level))
		return why_fmt(e, why, whylen, "level %d out of the %s range",
			       h->level,
			       h->codec == UPAGER_IMAGE_ZSTD ? "zstd" : "lz4");
	want = img_nchunks(h->image_len, h->chunk_size);
	if (h->nchunks != want)
		return why_fmt(e, why, whylen,
			       "nchunks %" PRIu64 ", but image_len %" PRIu64
			       " in chunks of %u makes %" PRIu64,
			       h->nchunks, h->image_len, h->chunk_size, want);
	if (h->index_off != IMG_HDR_LEN)
		return why_fmt(e, why, whylen, "index_off %" PRIu64 ", want %u",
			       h->index_off, IMG_HDR_LEN);
	if (h->nchunks > (UINT64_MAX - IMG_HDR_LEN) / IMG_ENTRY_LEN)
		return why_fmt(e, why, whylen,
			       "an index of %" PRIu64 " entries overflows",
			       h->nchunks);
	want = IMG_HDR_LEN + h->nchunks * IMG_ENTRY_LEN;
	if (h->data_off != want)
		return why_fmt(e, why, whylen,
			       "data_off %" PRIu64 ", want %" PRIu64
			       " (after %" PRIu64 " index entries)",
			       h->data_off, want, h->nchunks);
	if (h->file_len != file_len)
		return why_fmt(e, why, whylen,
			       "the file is %" PRIu64
			       " bytes, its header says %" PRIu64 " (%s)",
			       file_len, h->file_len,
			       file_len < h->file_len ? "truncated"
						      : "extended");
	if (h->data_off > file_len)
		return why_fmt(e, why, whylen,
			       "the index ends at %" PRIu64
			       ", past the end of the file (%" PRIu64 ")",
			       h->data_off, file_len);
	return 0;
}

int img_index_check(const struct img_header *h, uint8_t *buf,
		    struct img_chunk *index, char *why, size_t whylen)
{
	const int e = -EBADMSG;
	uint64_t pos = h->data_off, sum;

	sum = img_header_sum(buf, h->data_off);
	if (sum != h->header_sum)
		return why_fmt(e, why, whylen,
			       "header and index checksum 0x%016" PRIx64
			       ", computed 0x%016" PRIx64,
			       h->header_sum, sum);

	for (uint64_t i = 0; i < h->nchunks; i++) {
		const uint8_t *p = buf + IMG_HDR_LEN + i * IMG_ENTRY_LEN;
		uint32_t word = rd32(p + 20), raw = word & IMG_RAW_MASK;
		uint32_t want = img_raw_len(h->image_len, h->chunk_size, i);
		struct img_chunk *c = &index[i];

		c->offset = rd64(p);
		c->sum = rd64(p + 8);
		c->stored = rd32(p + 16);
		c->flags = (uint8_t)(word >> IMG_FLAG_SHIFT);
		if (raw != want)
			return why_fmt(e, why, whylen,
				       "chunk %" PRIu64 ": raw_len %u, want %u",
				       i, raw, want);
		if (c->flags &
			~(UPAGER_IMAGE_CHUNK_ZERO | UPAGER_IMAGE_CHUNK_RAW) ||
		    c->flags ==
			(UPAGER_IMAGE_CHUNK_ZERO | UPAGER_IMAGE_CHUNK_RAW))
			return why_fmt(e, why, whylen,
				       "chunk %" PRIu64 ": bad flags 0x%02x", i,
				       c->flags);
		if (c->flags & UPAGER_IMAGE_CHUNK_ZERO) {
			if (c->offset || c->sum || c->stored)
				return why_fmt(e, why, whylen,
					       "chunk %" PRIu64
					       ": a zero chunk with offset, "
					       "checksum or stored_len set",
					       i);
			continue;
		}
		if (c->flags & UPAGER_IMAGE_CHUNK_RAW
			? c->stored != raw
			: !c->stored || c->stored >= raw)
			return why_fmt(e, why, whylen,
				       "chunk %" PRIu64
				       ": stored_len %u for raw_len %u (%s)",
				       i, c->stored, raw,
				       c->flags & UPAGER_IMAGE_CHUNK_RAW
					   ? "stored raw"
					   : "compressed");
		if (c->offset != pos)
			return why_fmt(e, why, whylen,
				       "chunk %" PRIu64 ": offset %" PRIu64
				       ", want %" PRIu64
				       " (the end of the chunk before)",
				       i, c->offset, pos);
		if (c->stored > h->file_len - pos)
			return why_fmt(e, why, whylen,
				       "chunk %" PRIu64 ": %u bytes at %" PRIu64
				       " run past the end of the file (%" PRIu64
				       ")",
				       i, c->stored, pos, h->file_len);
		pos += c->stored;
	}
	if (pos != h->file_len)
		return why_fmt(e, why, whylen,
			       "the chunks end at %" PRIu64
			       ", the file at %" PRIu64,
			       pos, h->file_len);
	return 0;
}

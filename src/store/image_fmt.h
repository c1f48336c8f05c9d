/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The on-disk layout of a page image (docs/IMAGE.md), shared by its
 * reader (image.c) and its writer (image_write.c): the header and index
 * entries in host form, their encoding, and the checks a reader makes
 * before it trusts them.
 */
#ifndef UPAGER_STORE_IMAGE_FMT_H
#define UPAGER_STORE_IMAGE_FMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upager/image.h"

#define IMG_MAGIC      "UPAGEIMG"
#define IMG_HDR_LEN    80u
#define IMG_ENTRY_LEN  24u
#define IMG_PAGE       4096u
#define IMG_SUM_XXH3   1u
#define IMG_SUM_OFF    72u /* header_sum's place in the header */
#define IMG_RAW_MASK   0xffffffu
#define IMG_FLAG_SHIFT 24

struct img_header {
	uint16_t version;
	uint16_t header_len;
	uint32_t page_size;
	uint64_t image_len;
	uint32_t chunk_size;
	uint8_t codec;
	uint8_t checksum;
	uint16_t flags;
	uint64_t nchunks;
	uint64_t index_off;
	uint64_t data_off;
	uint64_t file_len;
	int32_t level;
	uint32_t reserved;
	uint64_t header_sum;
};

/* An index entry; raw_len is not kept: img_raw_len() gives it. */
struct img_chunk {
	uint64_t offset;
	uint64_t sum;
	uint32_t stored;
	uint8_t flags;
};

/* The chunks of @len bytes cut in @chunk_size pieces. */
static inline uint64_t img_nchunks(uint64_t len, uint32_t chunk_size)
{
	return len / chunk_size + !!(len % chunk_size);
}

/* Raw bytes of chunk @c of an image of @len bytes. */
static inline uint32_t img_raw_len(uint64_t len, uint32_t chunk_size,
				   uint64_t c)
{
	uint64_t left = len - c * chunk_size;

	return left < chunk_size ? (uint32_t)left : chunk_size;
}

void img_header_encode(const struct img_header *h, uint8_t *buf);
void img_header_decode(const uint8_t *buf, struct img_header *h);
void img_entry_encode(const struct img_chunk *c, uint32_t raw_len,
		      uint8_t *buf);
/* header_sum of @buf (from 0 to data_off; its sum field is ignored). */
uint64_t img_header_sum(uint8_t *buf, uint64_t data_off);

/*
 * Is @level inside @codec's range?  (Also false for an unknown codec.)
 */
bool img_level_ok(unsigned int codec, int level);

/*
 * Check the header @buf (IMG_HDR_LEN bytes) of a file of @file_len bytes,
 * and decode it into @h.  0, -EBADMSG or -EPROTONOSUPPORT with a line in
 * @why (may be NULL).
 */
int img_header_check(const uint8_t *buf, uint64_t file_len,
		     struct img_header *h, char *why, size_t whylen);
/*
 * Check header_sum over @buf (the file from 0 to data_off, whose
 * header_sum field this zeroes) and decode and check the index in it
 * into @index (nchunks entries).  0, or -EBADMSG with a line in @why
 * naming the entry and field.
 */
int img_index_check(const struct img_header *h, uint8_t *buf,
		    struct img_chunk *index, char *why, size_t whylen);

#endif

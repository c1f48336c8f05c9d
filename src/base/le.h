/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fields at fixed offsets of a byte buffer, for the formats that cross a
 * socket or a file: little-endian integers, NUL-padded names; not
 * installed.
 */
#ifndef UPAGER_BASE_LE_H
#define UPAGER_BASE_LE_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return le16toh(v);
}

static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static inline void wr64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

/* A name field of @size bytes: 1 to @size - 1 bytes, then NULs. */
static inline bool name_field_ok(const uint8_t *p, size_t size)
{
	size_t n = strnlen((const char *)p, size);

	if (!n || n == size)
		return false;
	for (size_t i = n; i < size; i++)
		if (p[i])
			return false;
	return true;
}

#endif

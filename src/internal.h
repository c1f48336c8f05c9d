/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the library's own files; not installed. */
#ifndef UPAGER_INTERNAL_H
#define UPAGER_INTERNAL_H

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* -- page stores: src/store.c and one file a store in stores/ */
#include <stddef.h>
#include <stdint.h>

#include "upager/store.h"

/* The built-in stores, found before any a user registers. */
extern const struct upager_store_ops store_zero_ops;
extern const struct upager_store_ops store_file_ops;
extern const struct upager_store_ops store_mem_ops;
extern const struct upager_store_ops store_remote_ops;

/*
 * Does @ops have the optional slot @slot set?  A table built against an
 * older header is shorter (ops->size) and must not be read past its end.
 */
#define STORE_HAS(ops, slot)                                               \
	((ops)->size >= offsetof(struct upager_store_ops, slot) +          \
				sizeof((ops)->slot) &&                     \
	 (ops)->slot)

/* Pages that hold @bytes, the last one perhaps in part. */
static inline uint64_t store_pages(uint64_t bytes)
{
	return bytes / UPAGER_STORE_PAGE + !!(bytes % UPAGER_STORE_PAGE);
}

/*
 * A byte count in decimal with an optional K, M, G or T suffix (powers of
 * 1024, either case).  0, -EINVAL (not such a number) or -ERANGE (does not
 * fit in 64 bits).
 */
int parse_size(const char *str, uint64_t *out);

#endif

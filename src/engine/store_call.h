/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Calling a store: the engine's side of include/upager/store.h, shared
 * with the stores themselves (src/store/, src/net/remote.c).
 */
#ifndef UPAGER_ENGINE_STORE_CALL_H
#define UPAGER_ENGINE_STORE_CALL_H

#include <stddef.h>
#include <stdint.h>

#include "upager/store.h"

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

#endif

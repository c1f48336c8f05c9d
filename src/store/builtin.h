/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The stores built into libupager.  Each is defined in its own layer
 * (zero, file, mem, image and memcached here in src/store/, remote in
 * src/net/); the table that lists them all is src/builtin.c, the top of
 * the library, so that the registry never includes a higher layer's
 * header.
 */
#ifndef UPAGER_STORE_BUILTIN_H
#define UPAGER_STORE_BUILTIN_H

#include <stddef.h>

#include "upager/store.h"

extern const struct upager_store_ops store_zero_ops;
extern const struct upager_store_ops store_file_ops;
extern const struct upager_store_ops store_mem_ops;
extern const struct upager_store_ops store_image_ops;
extern const struct upager_store_ops store_memcached_ops;

/* src/builtin.c: every built-in kind, found before any a user registers. */
extern const struct upager_store_ops *const store_builtins[];
extern const size_t store_nbuiltins;

#endif

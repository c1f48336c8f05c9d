// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The top of libupager: the list of stores built in, from every layer
 * that defines one.  The registry (src/store/registry.c) reads it through
 * src/store/builtin.h and never sees the network layer's headers.
 */
#include "base/util.h"
#include "net/remote_store.h"
#include "store/builtin.h"

const struct upager_store_ops *const store_builtins[] = {
	&store_zero_ops,
	&store_file_ops,
	&store_mem_ops,
	&store_image_ops,
	&store_memcached_ops,
	&store_remote_ops,
};
const size_t store_nbuiltins = ARRAY_SIZE(store_builtins);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The remote: store's ops table (src/net/remote.c), for src/builtin.c. */
#ifndef UPAGER_NET_REMOTE_STORE_H
#define UPAGER_NET_REMOTE_STORE_H

#include "upager/store.h"

extern const struct upager_store_ops store_remote_ops;

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The memcached store: pages kept in a cluster of memcached servers
 * (docs/MEMCACHED.md), through Debian's libmemcached.
 *
 * Spec: "memcached:HOST:PORT[,HOST:PORT...]/NAMESPACE[,OPTION...]", with
 * the options timeout=MS, mget=N and conns=N.  Page P of a namespace is
 * the key "NAMESPACE/" followed by P in 16 hex digits, on the server that
 * ketama consistent hashing picks for that key; "NAMESPACE/meta" holds
 * the size and the generation of the last push.  Every page of a pushed
 * namespace has a key, zero pages too (an empty value): a key that is
 * not there was evicted or never pushed, and its page fails (SIGBUS in a
 * region), never reads as zeros.
 *
 * Opened by spec ("memcached:..." through upager_store_open()) the store
 * reads the namespace a push made; fetch() may sleep on the network, so
 * the store is not UPAGER_STORE_CHEAP and a region over it gets no
 * fault-around.  Its fetch() errors: -ENODATA (a key not in the cache),
 * -EBADMSG (a value that is not a page of this push), -ETIMEDOUT (no
 * answer within timeout=), -EHOSTDOWN (the server is down or refused
 * us), -EIO (another error from libmemcached); each is told on stderr
 * with the page, the key and the server (a bounded number of lines).
 */
#ifndef UPAGER_MEMCACHED_H
#define UPAGER_MEMCACHED_H

#include <stddef.h>
#include <stdint.h>

#include "upager/store.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/*
 * Open the namespace of @arg (the spec without "memcached:") as a store.
 * NULL with *@err = -errno and, when @why is not NULL, one line in @why
 * (@whylen bytes with its NUL) saying what was wrong: -EINVAL (the spec:
 * a server, the namespace or an option, named), -ENODATA (no meta record:
 * never pushed, or evicted), -EBADMSG (a meta record this library does
 * not read), -ETIMEDOUT, -EHOSTDOWN, -EIO (reading the meta record),
 * -ENOMEM.  Any thread.
 */
struct upager_store *upager_memcached_open(const char *arg, char *why,
					   size_t whylen, int *err);
/*
 * A new push of @npages pages into the namespace of @arg: a store of a
 * fresh generation whose pages are written with upager_store_writeback()
 * and become readable by others at upager_memcached_commit().  Readers of
 * the generation before see the pages already overwritten fail
 * (-EBADMSG), never a mix of two pushes.  Errors as
 * upager_memcached_open(), but nothing is read.  Any thread.
 */
struct upager_store *upager_memcached_create(const char *arg, uint64_t npages,
					     char *why, size_t whylen,
					     int *err);
/*
 * Write the meta record of a store from upager_memcached_create(): the
 * push is done.  0, -EINVAL (not such a store), or the error of the set
 * (-ETIMEDOUT, -EHOSTDOWN, -EIO), told on stderr.  Any thread.
 */
int upager_memcached_commit(struct upager_store *s);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif

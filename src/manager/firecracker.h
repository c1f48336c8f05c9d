/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Firecracker's snapshot-restore handshake, read (json-c): one message
 * whose body is a JSON array of guest memory regions,
 *   [{"base_host_virt_addr": A, "size": S, "offset": O, "page_size": P,
 *     "page_size_kib": P}, ...]
 * where "page_size_kib" is the deprecated name of "page_size" (its value
 * is in bytes all the same), either or both present, and neither in the
 * oldest versions (4 KiB pages then).
 */
#ifndef UPAGER_MANAGER_FIRECRACKER_H
#define UPAGER_MANAGER_FIRECRACKER_H

#include <stddef.h>
#include <stdint.h>

/* What one message may hold: a body larger than this is refused unread. */
#define FC_MAX_BODY (64u << 10)
#define FC_MAX_REGIONS 64

struct fc_region {
	uint64_t addr, size, offset, page;
};

/*
 * Parse the body @buf[0..len).  0 with the regions in @out[0..*n); or
 * -EAGAIN: not a whole JSON value yet (more may come); or -EBADMSG
 * (not JSON, or bytes after it), -EINVAL (JSON, but not what Firecracker
 * sends) with *@field the key ("size"; "body" for the whole), *@region
 * the entry (-1: none) and *@why the rule (strings valid until the next
 * call in the thread).  Keys it
 * does not know are not refused (a newer Firecracker may add some): the
 * first one is named in *@unknown (valid until the next call), else
 * *@unknown is NULL.
 */
int fc_parse(const char *buf, size_t len, struct fc_region *out,
	     unsigned int *n, int *region, const char **field,
	     const char **why, const char **unknown);

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers every layer of the library shares (the lowest layer: it
 * includes no header of the library); not installed.
 */
#ifndef UPAGER_BASE_UTIL_H
#define UPAGER_BASE_UTIL_H

#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A byte count in decimal with an optional K, M, G or T suffix (powers of
 * 1024, either case).  0, -EINVAL (not such a number) or -ERANGE (does not
 * fit in 64 bits).
 */
int parse_size(const char *str, uint64_t *out);

#endif

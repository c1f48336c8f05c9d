/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the library's own files; not installed. */
#ifndef UPAGER_INTERNAL_H
#define UPAGER_INTERNAL_H

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif

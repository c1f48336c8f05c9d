/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The engine's counters as JSON, one shape for every program that
 * prints them (upager stat, upagerd). */
#ifndef UPAGER_COMMON_STATS_JSON_H
#define UPAGER_COMMON_STATS_JSON_H

#include <upager/upager.h>

#include "cli.h"

/* @s as the object @key of @j: every counter, p50/p99, the histogram. */
void json_stats(struct json *j, const char *key, const struct upager_stats *s);

#endif

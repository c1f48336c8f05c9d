/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the upager subcommands share: the dispatch signature, argument
 * parsing with errors that name the argument, and a small JSON writer. */
#ifndef UPAGER_CLI_H
#define UPAGER_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_features(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* Print "upager CMD: message" to stderr; returns 2 (usage) or 1. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cli_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Parse an unsigned integer argument in [min, max] with an optional
 * K/M/G suffix when @suffix; on error print which argument was wrong and
 * why, and return false.
 */
bool cli_parse_u64(const char *cmd, const char *what, const char *s,
		   uint64_t min, uint64_t max, bool suffix, uint64_t *out);

/* A JSON writer that tracks commas; strings are escaped. */
struct json {
	FILE *f;
	int depth;
	bool need_comma[16];
};
void json_begin(struct json *j, FILE *f);
void json_obj_open(struct json *j, const char *key);
void json_obj_close(struct json *j);
void json_arr_open(struct json *j, const char *key);
void json_arr_close(struct json *j);
void json_str(struct json *j, const char *key, const char *v);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_i64(struct json *j, const char *key, int64_t v);
void json_f64(struct json *j, const char *key, double v);
void json_bool(struct json *j, const char *key, bool v);
void json_end(struct json *j);

#endif

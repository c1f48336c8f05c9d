/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the programs beside the library share (the upager command in
 * tools/, upager-bench in bench/): messages that name the command and the
 * argument that was wrong, number arguments, and a small JSON writer.
 * Built once as an object set both link; it uses no header of theirs and
 * no private one of the library.
 */
#ifndef UPAGER_COMMON_CLI_H
#define UPAGER_COMMON_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Messages name "upager CMD" by default; a program of its own calls this
 * once with "NAME" and an empty CMD ("upagerd", "") for "NAME: message".
 */
void cli_set_program(const char *name);
/*
 * Print "upager CMD: message" to stderr, and for a usage error (@code 2)
 * a line pointing to 'upager CMD --help'.  Returns @code: 2 (usage) or 1.
 */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cli_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cli_verror(int code, const char *cmd, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/*
 * Parse an unsigned integer argument in [min, max] with an optional
 * K/M/G suffix when @suffix; on error print which argument was wrong and
 * why, and return false.
 */
bool cli_parse_u64(const char *cmd, const char *what, const char *s,
		   uint64_t min, uint64_t max, bool suffix, uint64_t *out);
/*
 * Parse a CPU number this process may run on (its affinity, as taskset
 * sets it); on error print which argument was wrong and why, and return
 * false.
 */
bool cli_parse_cpu(const char *cmd, const char *what, const char *s,
		   unsigned int *cpu);

/*
 * A progress bar on one line of stderr, redrawn in place (@what, a bar,
 * the percentage, MiB done of @total bytes, the rate and the time left);
 * @last ends the line.  Draw it only when stderr is a terminal.
 */
void cli_progress(const char *what, uint64_t done, uint64_t total,
		  double secs, bool last);
/* Seconds on the monotonic clock. */
double cli_now(void);

/* A JSON writer that tracks commas; strings are escaped. */
struct json {
	FILE *f;
	int depth;
	bool need_comma[16];
	bool compact; /* one line (json_begin_line()) */
};
void json_begin(struct json *j, FILE *f);
/* The same on one line, e.g. a log record: json_end() ends the line. */
void json_begin_line(struct json *j, FILE *f);
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

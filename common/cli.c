// SPDX-License-Identifier: LGPL-2.1-or-later
/* Messages, number arguments and JSON for the programs (see cli.h). */
#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* "upager" and a subcommand, or a program of its own (upagerd). */
static const char *program = "upager ";

void cli_set_program(const char *name)
{
	program = name;
}

int cli_verror(int code, const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s%s: ", program, cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	if (code == 2)
		fprintf(stderr, "Try '%s%s --help'.\n", program, cmd);
	return code;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cli_verror(2, cmd, fmt, ap);
	va_end(ap);
	return r;
}

int cli_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cli_verror(1, cmd, fmt, ap);
	va_end(ap);
	return r;
}

bool cli_parse_u64(const char *cmd, const char *what, const char *s,
		   uint64_t min, uint64_t max, bool suffix, uint64_t *out)
{
	unsigned long long v;
	uint64_t mul = 1;
	char *end;

	errno = 0;
	if (!s || !*s || *s == '-' || *s == '+' ||
	    (v = strtoull(s, &end, 0), errno) || end == s) {
		cli_usage_error(cmd, "%s '%s' is not a number", what,
				s ? s : "");
		return false;
	}
	if (suffix && *end) {
		switch (*end) {
		case 'k': case 'K': mul = 1ull << 10; end++; break;
		case 'm': case 'M': mul = 1ull << 20; end++; break;
		case 'g': case 'G': mul = 1ull << 30; end++; break;
		}
		if (*end == 'i' && end[1] == 'B')
			end += 2;
		else if (*end == 'B')
			end++;
	}
	if (*end) {
		cli_usage_error(cmd, "%s '%s' has trailing characters '%s'",
				what, s, end);
		return false;
	}
	if (v > max / mul || v * mul < min || v * mul > max) {
		cli_usage_error(cmd,
				"%s '%s' is out of range [%" PRIu64 ", %" PRIu64
				"]",
				what, s, min, max);
		return false;
	}
	*out = v * mul;
	return true;
}

bool cli_parse_cpu(const char *cmd, const char *what, const char *s,
		   unsigned int *cpu)
{
	cpu_set_t allowed;
	uint64_t v;

	if (!cli_parse_u64(cmd, what, s, 0, CPU_SETSIZE - 1, false, &v))
		return false;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) ||
	    !CPU_ISSET((int)v, &allowed)) {
		cli_usage_error(cmd, "%s %s: this process may not run on "
				"that CPU (see 'taskset -cp %d')", what, s,
				(int)getpid());
		return false;
	}
	*cpu = (unsigned int)v;
	return true;
}

double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress(const char *what, uint64_t done, uint64_t total,
		  double secs, bool last)
{
	static const char bar[] = "##############################";
	double frac = total ? (double)done / (double)total : 1;
	double rate = secs > 0 ? (double)done / secs : 0;
	double eta = rate > 0 ? (double)(total - done) / rate : 0;

	fprintf(stderr, "\r%s [%-30.*s] %5.1f%% %.1f/%.1f MiB %6.1f MB/s "
		"ETA %.0fs ", what, (int)(frac * 30), bar, frac * 100,
		(double)done / (1 << 20), (double)total / (1 << 20), rate / 1e6,
		eta);
	if (last)
		fputc('\n', stderr);
}

static void json_key(struct json *j, const char *key)
{
	if (j->need_comma[j->depth])
		fputc(',', j->f);
	j->need_comma[j->depth] = true;
	if (!j->compact)
		fprintf(j->f, "\n%*s", 2 * j->depth, "");
	if (key)
		fprintf(j->f, "\"%s\": ", key);
}

static void json_escaped(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

void json_begin(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	fputc('{', f);
	j->depth = 1;
}

void json_begin_line(struct json *j, FILE *f)
{
	json_begin(j, f);
	j->compact = true;
}

static void json_open(struct json *j, const char *key, char c)
{
	json_key(j, key);
	fputc(c, j->f);
	j->depth++;
	j->need_comma[j->depth] = false;
}

static void json_close(struct json *j, char c)
{
	j->depth--;
	if (j->compact)
		fputc(c, j->f);
	else
		fprintf(j->f, "\n%*s%c", 2 * j->depth, "", c);
}

void json_obj_open(struct json *j, const char *key) { json_open(j, key, '{'); }
void json_obj_close(struct json *j) { json_close(j, '}'); }
void json_arr_open(struct json *j, const char *key) { json_open(j, key, '['); }
void json_arr_close(struct json *j) { json_close(j, ']'); }

void json_str(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	json_escaped(j->f, v);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
	json_key(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void json_f64(struct json *j, const char *key, double v)
{
	json_key(j, key);
	fprintf(j->f, "%.6g", v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_end(struct json *j)
{
	json_close(j, '}');
	fputc('\n', j->f);
}

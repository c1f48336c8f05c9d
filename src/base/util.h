/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers every layer of the library shares (the lowest layer: it
 * includes no header of the library); not installed.
 */
#ifndef UPAGER_BASE_UTIL_H
#define UPAGER_BASE_UTIL_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * A byte count in decimal with an optional K, M, G or T suffix (powers of
 * 1024, either case).  0, -EINVAL (not such a number) or -ERANGE (does not
 * fit in 64 bits).
 */
int parse_size(const char *str, uint64_t *out);

/*
 * Copy a caller's parameter struct that starts with its own size (a
 * uint32_t, sizeof as the caller was built), the way the kernel's
 * copy_struct_from_user() does: a smaller struct from an older caller
 * leaves the fields it lacks as @dst had them (the defaults); a larger
 * one from a newer caller is taken if the part this library does not
 * know is all zeros.  @src NULL leaves @dst alone.  0, -EINVAL (@usize
 * smaller than the size field itself), -E2BIG (a non-zero unknown tail).
 */
int params_copy(void *dst, size_t dsize, const void *src);

/*
 * The other way: fill a caller's output struct that starts with its own
 * size (set by the caller, sizeof as it was built) from this library's
 * @src of @ksize bytes, the way the kernel's copy_struct_to_user() and
 * sched_getattr() do: an older caller gets the part it knows of, a newer
 * one gets zeros where this library has no field, and the size field
 * says how many bytes were filled (the smaller of the two sizes).
 * 0, or -EINVAL (the caller's size is smaller than the size field).
 */
int output_copy(void *dst, const void *src, size_t ksize);

/*
 * Zeroed memory straight from the kernel (mmap), never through malloc:
 * for what the engine allocates while it handles a uffd event.  A
 * fork() in progress holds every malloc arena lock (glibc takes them
 * across clone()), and it waits for a worker to read its FORK event: a
 * worker that mallocs then may wait for it in turn.  NULL on failure.
 */
void *mem_alloc(size_t len);
void mem_free(void *p, size_t len);

/*
 * Format one line saying what was wrong into @why (@whylen bytes with its
 * NUL; @why NULL or @whylen 0: nothing) and return @err: for the calls
 * that explain an -errno in words.
 */
int why_fmt(int err, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * One line for stderr built without stdio or allocation, so that a store
 * can tell what failed from a SIGBUS handler (in-thread regions): parts
 * are appended (cut at 511 bytes), then the line is written with one
 * write(2), whole, so lines of several threads do not mix.
 */
struct line {
	char buf[512];
	size_t n;
};
void line_str(struct line *l, const char *s);
void line_u64(struct line *l, uint64_t v);
void line_tell(struct line *l);

/* May this process run on any of @cpus (its affinity)? */
bool cpus_usable(const cpu_set_t *cpus);
/*
 * Run thread @t on those of @cpus this process may run on, only (a
 * background thread kept off the CPUs that latency-bound ones need): 0,
 * or -EINVAL when there are none.
 */
int thread_pin(pthread_t t, const cpu_set_t *cpus);

/*
 * Name thread @t "upager-" and the rest (cut to the kernel's 15 bytes),
 * so that top, perf and gdb tell the library's threads from the
 * program's and from each other.  A name is a label: a failure to set it
 * is ignored.
 */
void thread_name(pthread_t t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Working-set traces: which pages of an export a client touched first,
 * in what order and when, as upagerd records them and replays them as
 * prefetch on a later attach (docs/TRACE.md has the file format).
 *
 * A trace is data from a file, read like any untrusted input: every
 * field is checked before it is used, and a refusal says what was wrong
 * and where, in a sentence the caller can print.
 */
#ifndef UPAGER_TRACE_H
#define UPAGER_TRACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

#define UPAGER_TRACE_VERSION 1
/* Entries a trace may hold: the pages of a 1 TiB export. */
#define UPAGER_TRACE_MAX_ENTRIES (1ull << 28)

/* One first touch: a 4 KiB page of the export, ns after the attach. */
struct upager_trace_entry {
	uint64_t page;
	uint64_t ns;
};

struct upager_trace {
	char export_name[64];  /* the export it was recorded on (NUL-ended) */
	uint64_t export_pages; /* that export's size, in 4 KiB pages */
	uint64_t count;
	/* Each page at most once, times not decreasing, pages below
	 * export_pages (upager_trace_read() checks; write keeps it so). */
	struct upager_trace_entry *entries;
};

/*
 * Read and check the trace file @path.  Returns it (free with
 * upager_trace_free()), or NULL with *err = -errno and a sentence in
 * @why (@whylen bytes, may be 0) naming the field and its byte offset:
 * -EBADMSG (not a trace, or a field breaks its rule), -EPROTONOSUPPORT
 * (another version), -EFBIG (more than UPAGER_TRACE_MAX_ENTRIES), -ENOMEM,
 * or open(2)/read(2)'s errors.  Any thread.
 */
struct upager_trace *upager_trace_read(const char *path, char *why,
				       size_t whylen, int *err);

/*
 * Sort @t's entries by time (at the same ns, by page) and keep each
 * page's first touch only: what upager_trace_write() wants.  Any
 * thread.  0 or -ENOMEM.
 */
int upager_trace_normalize(struct upager_trace *t);

/*
 * Write @t (normalized: see upager_trace_normalize()) to @path, through
 * a temporary file renamed over it, so a reader never sees half a
 * trace.  0, -EINVAL (@t breaks a rule above: a page past export_pages,
 * a page twice, time going back, an empty or unterminated name), or
 * open(2)/write(2)/rename(2)'s errors.  Any thread.
 */
int upager_trace_write(const char *path, const struct upager_trace *t);

/*
 * One trace from @n traces of the same export (equal export_pages):
 * every page any of them touched, once, at the earliest time any of them
 * touched it, in that order.  NULL with *err = -EINVAL (@n is 0, or
 * the exports differ: @why says which) or -ENOMEM.  Any thread.
 */
struct upager_trace *upager_trace_merge(struct upager_trace *const *in,
					size_t n, char *why, size_t whylen,
					int *err);

void upager_trace_free(struct upager_trace *t);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif

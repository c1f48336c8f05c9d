/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The page-server wire protocol (docs/PROTOCOL.md), version 1: encoding
 * and a decoder that trusts nothing.  Pure functions over buffers, so the
 * decoder can be fuzzed and tested without sockets.
 */
#ifndef UPAGER_WIRE_H
#define UPAGER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_MAGIC 0x52475055u /* "UPGR" little-endian */
#define WIRE_VERSION 1
#define WIRE_HDR 16
#define WIRE_PAGE 4096u
#define WIRE_MAX_PAGES 256u  /* per PAGES or REQUEST message */
#define WIRE_MAX_NAME 255u
#define WIRE_MAX_HAVE (1u << 18) /* pages of bitmap per HAVE message */
#define WIRE_MAX_PAYLOAD (WIRE_MAX_PAGES * WIRE_PAGE + 64)

enum wire_type {
	WIRE_HELLO = 1, /* C->S: open a channel */
	WIRE_WELCOME,	/* S->C: image description */
	WIRE_HAVE,	/* C->S: pages the client already holds */
	WIRE_START,	/* C->S: begin the background stream */
	WIRE_REQUEST,	/* C->S: urgent page request */
	WIRE_PAGES,	/* S->C: page data or a zero run */
	WIRE_END,	/* S->C: every page has been sent */
	WIRE_ERROR,	/* either way: fatal error, then close */
	WIRE_TYPE_MAX,
};

/* Header flags. */
#define WIRE_F_CSUM (1u << 0) /* csum holds the payload's FNV-1a 32 */

/* HELLO roles. */
enum wire_role { WIRE_ROLE_STREAM = 0, WIRE_ROLE_URGENT = 1 };

/* PAGES flags. */
#define WIRE_PAGES_ZERO (1u << 0) /* a run of zero pages, no payload */
#define WIRE_PAGES_URGENT (1u << 1) /* the answer to a REQUEST */

/* Capabilities (HELLO / WELCOME). */
#define WIRE_CAP_CSUM (1u << 0)

struct wire_msg {
	enum wire_type type;
	uint16_t flags;
	union {
		struct {
			uint32_t caps;
			uint32_t role;
			uint64_t session;
			uint16_t name_len;
			char name[WIRE_MAX_NAME + 1];
		} hello;
		struct {
			uint32_t caps;
			uint32_t page_size;
			uint64_t image_bytes;
			uint64_t session;
		} welcome;
		struct {
			uint64_t first;
			uint32_t npages;
			const uint8_t *bitmap; /* into the decoded buffer */
		} have;
		struct {
			uint32_t flags;
		} start;
		struct {
			uint64_t page;
			uint32_t count;
		} request;
		struct {
			uint64_t page;
			uint32_t count;
			uint32_t flags;
			const uint8_t *data; /* NULL for a zero run */
		} pages;
		struct {
			uint64_t pages_sent;
		} end;
		struct {
			uint32_t code; /* an errno value */
			uint16_t len;
			char text[256];
		} error;
	};
};

/*
 * Decode the header at @buf (WIRE_HDR bytes): its type, flags and payload
 * length.  0, or -EPROTO (bad magic, version, type, reserved bits),
 * -EMSGSIZE (payload over WIRE_MAX_PAYLOAD).  @why names the problem.
 */
int wire_header(const uint8_t *buf, enum wire_type *type, uint16_t *flags,
		uint32_t *len, uint32_t *csum, const char **why);

/*
 * Decode a whole message (header + @len payload bytes at buf+WIRE_HDR)
 * and check it against an image of @image_pages pages (0 before WELCOME:
 * range checks are then skipped for HELLO/WELCOME only; range-bearing
 * messages are refused).  Pointers in @m point into @buf.  0, or -EPROTO /
 * -EMSGSIZE / -ERANGE / -EBADMSG (checksum) with @why set to a static
 * string naming the field.
 */
int wire_decode(const uint8_t *buf, size_t buflen, uint64_t image_pages,
		struct wire_msg *m, const char **why);

/*
 * Encode into @buf (room for WIRE_HDR + payload); returns the total bytes
 * written.  For PAGES the payload follows the header and is the caller's
 * to write (wire_pages_header() writes only the header and fixed part:
 * the data can then be sent straight from where it lives).
 */
size_t wire_hello(uint8_t *buf, uint32_t caps, enum wire_role role,
		  uint64_t session, const char *name);
size_t wire_welcome(uint8_t *buf, uint32_t caps, uint64_t image_bytes,
		    uint64_t session);
size_t wire_have(uint8_t *buf, uint64_t first, uint32_t npages,
		 const uint8_t *bitmap);
size_t wire_start(uint8_t *buf, uint32_t flags);
size_t wire_request(uint8_t *buf, uint64_t page, uint32_t count);
/* Header + fixed fields of PAGES; @data NULL means a zero run.  When
 * @csum is set the checksum of @data goes in the header. */
size_t wire_pages_header(uint8_t *buf, uint64_t page, uint32_t count,
			 uint32_t flags, const void *data, bool csum);
size_t wire_end(uint8_t *buf, uint64_t pages_sent);
size_t wire_error(uint8_t *buf, uint32_t code, const char *text);

/* Size of the fixed part that precedes PAGES data. */
#define WIRE_PAGES_FIXED 16
#define WIRE_HAVE_FIXED 12

uint32_t wire_csum(const void *data, size_t len);
const char *wire_type_name(enum wire_type t);

#endif

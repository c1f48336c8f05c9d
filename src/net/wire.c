// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Wire protocol codec.  Every field is little-endian and read through
 * get*() at an explicit offset after the length was checked, so no
 * message can make the decoder read past what it was given, and no
 * length or offset reaches a caller unchecked.
 */
#include <errno.h>
#include <string.h>

#include "base/le.h"
#include "net/wire.h"

/* FNV-1a 32, which streams: a checksum can span two buffers. */
static uint32_t fnv(uint32_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

uint32_t wire_csum(const void *data, size_t len)
{
	return fnv(2166136261u, data, len);
}

const char *wire_type_name(enum wire_type t)
{
	static const char *const names[] = {
		[WIRE_HELLO] = "HELLO", [WIRE_WELCOME] = "WELCOME",
		[WIRE_HAVE] = "HAVE",	[WIRE_START] = "START",
		[WIRE_REQUEST] = "REQUEST", [WIRE_PAGES] = "PAGES",
		[WIRE_END] = "END",	[WIRE_ERROR] = "ERROR",
	};

	return t > 0 && t < WIRE_TYPE_MAX ? names[t] : "unknown";
}

static size_t header(uint8_t *buf, enum wire_type type, uint16_t flags,
		     uint32_t len, uint32_t csum)
{
	wr32(buf, WIRE_MAGIC);
	buf[4] = WIRE_VERSION;
	buf[5] = (uint8_t)type;
	wr16(buf + 6, flags);
	wr32(buf + 8, len);
	wr32(buf + 12, csum);
	return WIRE_HDR;
}

int wire_header(const uint8_t *buf, enum wire_type *type, uint16_t *flags,
		uint32_t *len, uint32_t *csum, const char **why)
{
	if (rd32(buf) != WIRE_MAGIC) {
		*why = "bad magic (not an upager peer)";
		return -EPROTO;
	}
	if (buf[4] != WIRE_VERSION) {
		*why = "unsupported protocol version";
		return -EPROTO;
	}
	if (buf[5] == 0 || buf[5] >= WIRE_TYPE_MAX) {
		*why = "unknown message type";
		return -EPROTO;
	}
	*type = (enum wire_type)buf[5];
	*flags = rd16(buf + 6);
	if (*flags & ~WIRE_F_CSUM) {
		*why = "reserved header flags set";
		return -EPROTO;
	}
	*len = rd32(buf + 8);
	*csum = rd32(buf + 12);
	if (*len > WIRE_MAX_PAYLOAD) {
		*why = "payload longer than the protocol allows";
		return -EMSGSIZE;
	}
	return 0;
}

/* [first, first+count) inside an image of @pages pages, without overflow. */
static bool in_image(uint64_t first, uint64_t count, uint64_t pages)
{
	return count && first < pages && count <= pages - first;
}

#define NEED(cond, err, text)         \
	do {                          \
		if (!(cond)) {        \
			*why = (text); \
			return (err); \
		}                     \
	} while (0)

int wire_decode(const uint8_t *buf, size_t buflen, uint64_t image_pages,
		struct wire_msg *m, const char **why)
{
	const uint8_t *p = buf + WIRE_HDR;
	uint32_t len, csum;
	int ret;

	*why = NULL;
	NEED(buflen >= WIRE_HDR, -EPROTO, "truncated header");
	ret = wire_header(buf, &m->type, &m->flags, &len, &csum, why);
	if (ret < 0)
		return ret;
	NEED(buflen - WIRE_HDR >= len, -EPROTO, "truncated payload");
	NEED(buflen - WIRE_HDR == len, -EPROTO, "bytes after the payload");
	if (m->flags & WIRE_F_CSUM)
		NEED(wire_csum(p, len) == csum, -EBADMSG,
		     "payload checksum mismatch");
	else
		NEED(csum == 0, -EPROTO, "checksum without the checksum flag");

	switch (m->type) {
	case WIRE_HELLO:
		NEED(len >= 18, -EPROTO, "HELLO shorter than its fixed part");
		m->hello.caps = rd32(p);
		m->hello.role = rd32(p + 4);
		m->hello.session = rd64(p + 8);
		m->hello.name_len = rd16(p + 16);
		NEED(m->hello.role <= WIRE_ROLE_URGENT, -EPROTO,
		     "HELLO role unknown");
		NEED(m->hello.name_len <= WIRE_MAX_NAME, -EPROTO,
		     "HELLO name longer than 255 bytes");
		NEED(len == 18u + m->hello.name_len, -EPROTO,
		     "HELLO length disagrees with its name length");
		memcpy(m->hello.name, p + 18, m->hello.name_len);
		m->hello.name[m->hello.name_len] = '\0';
		NEED(strlen(m->hello.name) == m->hello.name_len, -EPROTO,
		     "HELLO name contains a NUL byte");
		return 0;
	case WIRE_WELCOME:
		NEED(len == 24, -EPROTO, "WELCOME length is not 24");
		m->welcome.caps = rd32(p);
		m->welcome.page_size = rd32(p + 4);
		m->welcome.image_bytes = rd64(p + 8);
		m->welcome.session = rd64(p + 16);
		NEED(m->welcome.page_size == WIRE_PAGE, -EPROTO,
		     "WELCOME page size is not 4096");
		NEED(m->welcome.image_bytes &&
			     m->welcome.image_bytes % WIRE_PAGE == 0 &&
			     m->welcome.image_bytes <= (1ull << 46),
		     -ERANGE, "WELCOME image size is 0, unaligned or over 64 TiB");
		return 0;
	case WIRE_HAVE:
		NEED(len >= WIRE_HAVE_FIXED, -EPROTO,
		     "HAVE shorter than its fixed part");
		m->have.first = rd64(p);
		m->have.npages = rd32(p + 8);
		NEED(m->have.npages <= WIRE_MAX_HAVE, -EMSGSIZE,
		     "HAVE covers too many pages");
		NEED(in_image(m->have.first, m->have.npages, image_pages),
		     -ERANGE, "HAVE range outside the image");
		NEED(len == WIRE_HAVE_FIXED + (m->have.npages + 7) / 8, -EPROTO,
		     "HAVE length disagrees with its page count");
		m->have.bitmap = p + WIRE_HAVE_FIXED;
		return 0;
	case WIRE_START:
		NEED(len == 4, -EPROTO, "START length is not 4");
		m->start.flags = rd32(p);
		NEED(m->start.flags == 0, -EPROTO, "START flags unknown");
		return 0;
	case WIRE_REQUEST:
		NEED(len == 12, -EPROTO, "REQUEST length is not 12");
		m->request.page = rd64(p);
		m->request.count = rd32(p + 8);
		NEED(m->request.count <= WIRE_MAX_PAGES, -EMSGSIZE,
		     "REQUEST for more than 256 pages");
		NEED(in_image(m->request.page, m->request.count, image_pages),
		     -ERANGE, "REQUEST range outside the image");
		return 0;
	case WIRE_PAGES:
		NEED(len >= WIRE_PAGES_FIXED, -EPROTO,
		     "PAGES shorter than its fixed part");
		m->pages.page = rd64(p);
		m->pages.count = rd32(p + 8);
		m->pages.flags = rd32(p + 12);
		NEED(!(m->pages.flags & ~(WIRE_PAGES_ZERO | WIRE_PAGES_URGENT)),
		     -EPROTO, "PAGES flags unknown");
		NEED(m->pages.count <= WIRE_MAX_PAGES, -EMSGSIZE,
		     "PAGES carries more than 256 pages");
		NEED(in_image(m->pages.page, m->pages.count, image_pages),
		     -ERANGE, "PAGES range outside the image");
		if (m->pages.flags & WIRE_PAGES_ZERO) {
			NEED(len == WIRE_PAGES_FIXED, -EPROTO,
			     "zero-run PAGES with a payload");
			m->pages.data = NULL;
		} else {
			NEED(len == WIRE_PAGES_FIXED +
					    (uint64_t)m->pages.count * WIRE_PAGE,
			     -EPROTO, "PAGES length disagrees with its count");
			m->pages.data = p + WIRE_PAGES_FIXED;
		}
		return 0;
	case WIRE_END:
		NEED(len == 8, -EPROTO, "END length is not 8");
		m->end.pages_sent = rd64(p);
		return 0;
	case WIRE_ERROR:
		NEED(len >= 6, -EPROTO, "ERROR shorter than its fixed part");
		m->error.code = rd32(p);
		m->error.len = rd16(p + 4);
		NEED(m->error.len < sizeof(m->error.text) &&
			     len == 6u + m->error.len,
		     -EPROTO, "ERROR length disagrees with its text");
		memcpy(m->error.text, p + 6, m->error.len);
		m->error.text[m->error.len] = '\0';
		NEED(strlen(m->error.text) == m->error.len, -EPROTO,
		     "ERROR text contains a NUL byte");
		return 0;
	default:
		break;
	}
	*why = "unknown message type";
	return -EPROTO;
}

size_t wire_hello(uint8_t *buf, uint32_t caps, enum wire_role role,
		  uint64_t session, const char *name)
{
	size_t n = strnlen(name, WIRE_MAX_NAME);
	uint8_t *p = buf + WIRE_HDR;

	wr32(p, caps);
	wr32(p + 4, role);
	wr64(p + 8, session);
	wr16(p + 16, (uint16_t)n);
	memcpy(p + 18, name, n);
	return header(buf, WIRE_HELLO, 0, (uint32_t)(18 + n), 0) + 18 + n;
}

size_t wire_welcome(uint8_t *buf, uint32_t caps, uint64_t image_bytes,
		    uint64_t session)
{
	uint8_t *p = buf + WIRE_HDR;

	wr32(p, caps);
	wr32(p + 4, WIRE_PAGE);
	wr64(p + 8, image_bytes);
	wr64(p + 16, session);
	return header(buf, WIRE_WELCOME, 0, 24, 0) + 24;
}

size_t wire_have(uint8_t *buf, uint64_t first, uint32_t npages,
		 const uint8_t *bitmap)
{
	uint8_t *p = buf + WIRE_HDR;
	size_t bytes = (npages + 7) / 8;

	wr64(p, first);
	wr32(p + 8, npages);
	memcpy(p + WIRE_HAVE_FIXED, bitmap, bytes);
	return header(buf, WIRE_HAVE, 0, (uint32_t)(WIRE_HAVE_FIXED + bytes),
		      0) +
	       WIRE_HAVE_FIXED + bytes;
}

size_t wire_start(uint8_t *buf, uint32_t flags)
{
	wr32(buf + WIRE_HDR, flags);
	return header(buf, WIRE_START, 0, 4, 0) + 4;
}

size_t wire_request(uint8_t *buf, uint64_t page, uint32_t count)
{
	wr64(buf + WIRE_HDR, page);
	wr32(buf + WIRE_HDR + 8, count);
	return header(buf, WIRE_REQUEST, 0, 12, 0) + 12;
}

size_t wire_pages_header(uint8_t *buf, uint64_t page, uint32_t count,
			 uint32_t flags, const void *data, bool csum)
{
	uint8_t *p = buf + WIRE_HDR;
	uint32_t len = WIRE_PAGES_FIXED;
	uint32_t sum = 0;

	wr64(p, page);
	wr32(p + 8, count);
	wr32(p + 12, flags | (data ? 0 : WIRE_PAGES_ZERO));
	if (data)
		len += count * WIRE_PAGE;
	if (csum) {
		/* The checksum covers the fixed part and the data. */
		sum = wire_csum(p, WIRE_PAGES_FIXED);
		if (data)
			sum = fnv(sum, data, (size_t)count * WIRE_PAGE);
	}
	return header(buf, WIRE_PAGES, csum ? WIRE_F_CSUM : 0, len, sum) +
	       WIRE_PAGES_FIXED;
}

size_t wire_end(uint8_t *buf, uint64_t pages_sent)
{
	wr64(buf + WIRE_HDR, pages_sent);
	return header(buf, WIRE_END, 0, 8, 0) + 8;
}

size_t wire_error(uint8_t *buf, uint32_t code, const char *text)
{
	size_t n = strnlen(text, 255);
	uint8_t *p = buf + WIRE_HDR;

	wr32(p, code);
	wr16(p + 4, (uint16_t)n);
	memcpy(p + 6, text, n);
	return header(buf, WIRE_ERROR, 0, (uint32_t)(6 + n), 0) + 6 + n;
}

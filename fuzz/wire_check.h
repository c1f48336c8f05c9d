/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared by the codec's unit test (tests/wire_codec.c) and its fuzz
 * harness (fuzz/wire_fuzz.c): encode a message again with the wire_*
 * encoders, and compare two messages field by field.  Static functions in
 * a header, so the harness links src/net/wire.c and nothing else.
 */
#ifndef UPAGER_WIRE_CHECK_H
#define UPAGER_WIRE_CHECK_H

#include <string.h>

#include "net/wire.h"

/*
 * Encode @m into @buf (room for WIRE_HDR + WIRE_MAX_PAYLOAD) with the
 * wire_* encoders; the total length.  The CSUM header flag is kept for
 * PAGES only: no other encoder can set it.  0 for an ERROR whose text holds
 * a NUL byte, which the decoder accepts but wire_error(), taking a C
 * string, cannot write.
 */
static inline size_t wire_check_encode(uint8_t *buf, const struct wire_msg *m)
{
	uint8_t *data = buf + WIRE_HDR + WIRE_PAGES_FIXED;
	size_t bytes;

	switch (m->type) {
	case WIRE_HELLO:
		return wire_hello(buf, m->hello.caps,
				  (enum wire_role)m->hello.role,
				  m->hello.session, m->hello.name);
	case WIRE_WELCOME:
		return wire_welcome(buf, m->welcome.caps,
				    m->welcome.image_bytes, m->welcome.session);
	case WIRE_HAVE:
		return wire_have(buf, m->have.first, m->have.npages,
				 m->have.bitmap);
	case WIRE_START:
		return wire_start(buf, m->start.flags);
	case WIRE_REQUEST:
		return wire_request(buf, m->request.page, m->request.count);
	case WIRE_PAGES:
		bytes = m->pages.data ? (size_t)m->pages.count * WIRE_PAGE : 0;
		if (bytes)
			memcpy(data, m->pages.data, bytes);
		return wire_pages_header(buf, m->pages.page, m->pages.count,
					 m->pages.flags, bytes ? data : NULL,
					 m->flags & WIRE_F_CSUM) +
		       bytes;
	case WIRE_END:
		return wire_end(buf, m->end.pages_sent);
	case WIRE_ERROR:
		return wire_error(buf, m->error.code, m->error.text);
	default:
		return 0;
	}
}

/* The name of the first field in which @a and @b differ, or NULL. */
static inline const char *wire_check_diff(const struct wire_msg *a,
					  const struct wire_msg *b)
{
#define SAME(f)                                                                \
	do {                                                                   \
		if (a->f != b->f)                                              \
			return #f;                                             \
	} while (0)
	SAME(type);
	SAME(flags);
	switch (a->type) {
	case WIRE_HELLO:
		SAME(hello.caps);
		SAME(hello.role);
		SAME(hello.session);
		SAME(hello.name_len);
		if (memcmp(a->hello.name, b->hello.name, a->hello.name_len + 1))
			return "hello.name";
		break;
	case WIRE_WELCOME:
		SAME(welcome.caps);
		SAME(welcome.page_size);
		SAME(welcome.image_bytes);
		SAME(welcome.session);
		break;
	case WIRE_HAVE:
		SAME(have.first);
		SAME(have.npages);
		if (memcmp(a->have.bitmap, b->have.bitmap,
			   (a->have.npages + 7) / 8))
			return "have.bitmap";
		break;
	case WIRE_START:
		SAME(start.flags);
		break;
	case WIRE_REQUEST:
		SAME(request.page);
		SAME(request.count);
		break;
	case WIRE_PAGES:
		SAME(pages.page);
		SAME(pages.count);
		SAME(pages.flags);
		if (!a->pages.data != !b->pages.data ||
		    (a->pages.data &&
		     memcmp(a->pages.data, b->pages.data,
			    (size_t)a->pages.count * WIRE_PAGE)))
			return "pages.data";
		break;
	case WIRE_END:
		SAME(end.pages_sent);
		break;
	case WIRE_ERROR:
		SAME(error.code);
		SAME(error.len);
		if (memcmp(a->error.text, b->error.text, a->error.len))
			return "error.text";
		break;
	default:
		break;
	}
	return NULL;
#undef SAME
}

#endif

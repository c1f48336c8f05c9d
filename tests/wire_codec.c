// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The wire codec (src/net/wire.c, docs/PROTOCOL.md).  Every message type
 * survives encode and decode with its fields equal, and encodes back to
 * the same bytes; cut short or followed by a byte, it is refused.  Every
 * malformed message is refused with the errno wire.h promises and a reason
 * naming the field.  No message, whole or cut short, makes the decoder read
 * past the length it was given: every decode here runs on bytes placed
 * flush against a PROT_NONE guard page.
 */
#include <endian.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"
#include "net/wire.h"
#include "../fuzz/wire_check.h"

#define IMAGE 1000u /* pages in the image most cases check against */
#define BIG   (WIRE_HDR + WIRE_MAX_PAYLOAD + 2 * WIRE_PAGE)

struct t {
	uint8_t *msg;	/* where a case builds its message: BIG bytes */
	uint8_t *pay;	/* its payload */
	uint8_t *guard; /* a PROT_NONE page; decoding runs just below it */
	uint8_t *again; /* BIG bytes to encode a decoded message again */
	unsigned int good, bad;
};

/* The case being decoded, for the SIGSEGV handler, which sees no more. */
static const char *volatile current;

static void on_segv(int sig)
{
	static char head[] = "FAIL: the decoder read past its buffer: ";
	const char *c = current;
	struct iovec iov[] = {
	    {head, sizeof(head) - 1},
	    {(void *)c, strlen(c)},
	    {"\n", 1},
	};

	(void)sig;
	(void)!writev(2, iov, 3);
	_exit(1);
}

static void setup(struct t *t)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (BIG + page - 1) / page * page;
	struct sigaction sa = {.sa_handler = on_segv};
	uint8_t *a;

	a = mmap(NULL, len + page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(a != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(!mprotect(a + len, page, PROT_NONE), "%s", strerror(errno));
	t->guard = a + len;
	t->msg = calloc(1, BIG);
	t->again = calloc(1, BIG);
	CHECK(t->msg && t->again, "out of memory");
	t->pay = t->msg + WIRE_HDR;
	CHECK(!sigaction(SIGSEGV, &sa, NULL), "%s", strerror(errno));
}

static void le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, sizeof(v));
}

static void le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

/* Give the message in t->msg a payload length of @len; the new total. */
static size_t relen(struct t *t, uint32_t len)
{
	le32(t->msg + 8, len);
	return WIRE_HDR + len;
}

/* Decode the first @len bytes of t->msg, moved flush against the guard. */
static int decode(struct t *t, const char *name, size_t len, uint64_t image,
		  struct wire_msg *m, const char **why)
{
	uint8_t *at = t->guard - len;

	memmove(at, t->msg, len);
	current = name;
	*why = "(left unset)";
	return wire_decode(at, len, image, m, why);
}

/* @len bytes of t->msg decode against @image into @m. */
static void good(struct t *t, const char *name, size_t len, uint64_t image,
		 struct wire_msg *m)
{
	const char *why;
	int ret = decode(t, name, len, image, m, &why);

	if (ret || why)
		FAIL("%s: %d (%s), want 0", name, ret, why ? why : "why NULL");
	t->good++;
}

/* @len bytes of t->msg are refused: @err, and a reason containing @what. */
static void bad(struct t *t, const char *name, size_t len, uint64_t image,
		int err, const char *what)
{
	struct wire_msg m;
	const char *why;
	int ret = decode(t, name, len, image, &m, &why);

	if (ret != err || !why || !strstr(why, what))
		FAIL("%s: %d (%s), want %d (%s) with a reason naming \"%s\"",
		     name, ret, why ? why : "why NULL", err, strerror(-err),
		     what);
	t->bad++;
}

/* Each prefix of the @len-byte message in t->msg, and it with one more
 * byte, is refused (only the ends of a long one: its middle is alike). */
static void cut_short(struct t *t, const char *name, size_t len, uint64_t image)
{
	char label[128];

	for (size_t cut = 0; cut < len; cut++) {
		if (cut == 64 && len > 4096)
			cut = len - 64;
		snprintf(label, sizeof(label), "%s cut to %zu bytes", name,
			 cut);
		bad(t, label, cut, image, -EPROTO,
		    cut < WIRE_HDR ? "truncated header" : "truncated payload");
	}
	t->msg[len] = 0;
	snprintf(label, sizeof(label), "%s and a byte after it", name);
	bad(t, label, len + 1, image, -EPROTO, "after the payload");
}

/*
 * The @len-byte message the encoders wrote in t->msg decodes against
 * @image to @want, field by field, and encodes back to the same bytes.
 */
static void round_trip(struct t *t, const char *name, size_t len,
		       uint64_t image, const struct wire_msg *want)
{
	struct wire_msg got;
	const char *diff;

	good(t, name, len, image, &got);
	diff = wire_check_diff(want, &got);
	CHECK(!diff, "%s: %s differs", name, diff);
	CHECK(wire_check_encode(t->again, &got) == len &&
		  !memcmp(t->again, t->msg, len),
	      "%s: encodes back to other bytes", name);
	cut_short(t, name, len, image);
}

static void hello_ok(struct t *t, const char *name, uint32_t caps,
		     enum wire_role role, uint64_t session, const char *peer,
		     size_t peer_len)
{
	struct wire_msg w = {.type = WIRE_HELLO};
	size_t len = wire_hello(t->msg, caps, role, session, peer);

	w.hello.caps = caps;
	w.hello.role = role;
	w.hello.session = session;
	w.hello.name_len = (uint16_t)peer_len;
	memcpy(w.hello.name, peer, peer_len);
	CHECK(len == WIRE_HDR + 18 + peer_len, "%s: length %zu", name, len);
	round_trip(t, name, len, 0, &w);
	round_trip(t, name, len, IMAGE, &w);
}

static void welcome_ok(struct t *t, const char *name, uint32_t caps,
		       uint64_t image_bytes, uint64_t session)
{
	struct wire_msg w = {.type = WIRE_WELCOME};
	size_t len = wire_welcome(t->msg, caps, image_bytes, session);

	w.welcome.caps = caps;
	w.welcome.page_size = WIRE_PAGE;
	w.welcome.image_bytes = image_bytes;
	w.welcome.session = session;
	CHECK(len == WIRE_HDR + 24, "%s: length %zu", name, len);
	round_trip(t, name, len, 0, &w);
}

static void have_ok(struct t *t, const char *name, uint64_t first,
		    uint32_t npages, const uint8_t *bitmap, uint64_t image)
{
	struct wire_msg w = {.type = WIRE_HAVE};
	size_t len = wire_have(t->msg, first, npages, bitmap);

	w.have.first = first;
	w.have.npages = npages;
	w.have.bitmap = bitmap;
	CHECK(len == WIRE_HDR + WIRE_HAVE_FIXED + (npages + 7) / 8,
	      "%s: length %zu", name, len);
	round_trip(t, name, len, image, &w);
}

static void request_ok(struct t *t, const char *name, uint64_t page,
		       uint32_t count, uint64_t image)
{
	struct wire_msg w = {.type = WIRE_REQUEST};
	size_t len = wire_request(t->msg, page, count);

	w.request.page = page;
	w.request.count = count;
	round_trip(t, name, len, image, &w);
}

/* PAGES of @count pages at @page: a zero run if @flags says so, else
 * data seeded from @page, in place after the fixed part. */
static size_t pages_msg(struct t *t, uint64_t page, uint32_t count,
			uint32_t flags, bool csum)
{
	uint8_t *data = t->pay + WIRE_PAGES_FIXED;
	size_t bytes = flags & WIRE_PAGES_ZERO ? 0 : (size_t)count * WIRE_PAGE;

	t_fill(data, bytes, page);
	return wire_pages_header(t->msg, page, count, flags,
				 bytes ? data : NULL, csum) +
	       bytes;
}

static void pages_ok(struct t *t, const char *name, uint64_t page,
		     uint32_t count, uint32_t flags, bool csum, uint64_t image)
{
	struct wire_msg w = {.type = WIRE_PAGES};
	size_t len = pages_msg(t, page, count, flags, csum);

	w.flags = csum ? WIRE_F_CSUM : 0;
	w.pages.page = page;
	w.pages.count = count;
	w.pages.flags = flags;
	if (!(flags & WIRE_PAGES_ZERO))
		w.pages.data = t->pay + WIRE_PAGES_FIXED;
	round_trip(t, name, len, image, &w);
}

static void error_ok(struct t *t, const char *name, uint32_t code,
		     const char *text, size_t text_len)
{
	struct wire_msg w = {.type = WIRE_ERROR};
	size_t len = wire_error(t->msg, code, text);

	w.error.code = code;
	w.error.len = (uint16_t)text_len;
	memcpy(w.error.text, text, text_len);
	CHECK(len == WIRE_HDR + 6 + text_len, "%s: length %zu", name, len);
	round_trip(t, name, len, 0, &w);
}

static void round_trips(struct t *t)
{
	static uint8_t bitmap[WIRE_MAX_HAVE / 8];
	struct wire_msg w = {0};
	char text[300];

	memset(text, 'n', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	hello_ok(t, "HELLO", 0, WIRE_ROLE_STREAM, 0, "vm1", 3);
	hello_ok(t, "HELLO urgent", WIRE_CAP_CSUM | 0x80000000u,
		 WIRE_ROLE_URGENT, UINT64_MAX, "", 0);
	text[WIRE_MAX_NAME] = '\0';
	hello_ok(t, "HELLO 255-byte name", 0, WIRE_ROLE_STREAM, 7, text,
		 WIRE_MAX_NAME);
	text[WIRE_MAX_NAME] = 'n';
	hello_ok(t, "HELLO name cut to 255", 0, WIRE_ROLE_STREAM, 7, text,
		 WIRE_MAX_NAME);

	welcome_ok(t, "WELCOME", 0, WIRE_PAGE, 1);
	welcome_ok(t, "WELCOME 64 TiB", WIRE_CAP_CSUM, 1ull << 46, UINT64_MAX);

	for (size_t i = 0; i < sizeof(bitmap); i++)
		bitmap[i] = (uint8_t)(i * 37 + 1);
	have_ok(t, "HAVE 1 page", 0, 1, bitmap, IMAGE);
	have_ok(t, "HAVE 9 pages", 5, 9, bitmap, IMAGE);
	have_ok(t, "HAVE last page", IMAGE - 1, 1, bitmap, IMAGE);
	have_ok(t, "HAVE most pages", 0, WIRE_MAX_HAVE, bitmap, WIRE_MAX_HAVE);
	have_ok(t, "HAVE at the top", UINT64_MAX - 9, 9, bitmap, UINT64_MAX);

	wire_start(t->msg, 0);
	w.type = WIRE_START;
	round_trip(t, "START", WIRE_HDR + 4, 0, &w);

	request_ok(t, "REQUEST", 0, 1, IMAGE);
	request_ok(t, "REQUEST 256 at the end", IMAGE - 256, 256, IMAGE);
	request_ok(t, "REQUEST at the top", UINT64_MAX - 2, 2, UINT64_MAX);

	pages_ok(t, "PAGES", 3, 1, 0, false, IMAGE);
	pages_ok(t, "PAGES urgent", 4, 3, WIRE_PAGES_URGENT, false, IMAGE);
	pages_ok(t, "PAGES 256 checksummed", IMAGE - 256, 256, 0, true, IMAGE);
	pages_ok(t, "PAGES zero run", 0, 256, WIRE_PAGES_ZERO, false, IMAGE);
	pages_ok(t, "PAGES urgent zero run checksummed", IMAGE - 1, 1,
		 WIRE_PAGES_ZERO | WIRE_PAGES_URGENT, true, IMAGE);
	pages_ok(t, "PAGES at the top", UINT64_MAX - 2, 2, 0, false,
		 UINT64_MAX);

	wire_end(t->msg, UINT64_MAX);
	w.type = WIRE_END;
	w.end.pages_sent = UINT64_MAX;
	round_trip(t, "END", WIRE_HDR + 8, 0, &w);

	error_ok(t, "ERROR", ENOENT, "no such image", 13);
	error_ok(t, "ERROR empty", 0, "", 0);
	error_ok(t, "ERROR text cut to 255", EIO, text, 255);
}

/* What the header alone refuses, on an END message. */
static void header_errors(struct t *t)
{
	struct wire_msg m;
	size_t len = wire_end(t->msg, 42);
	static const uint8_t versions[] = {0, WIRE_VERSION + 1, 255};
	static const uint8_t types[] = {0, WIRE_TYPE_MAX, 255};

	bad(t, "truncated header (0 bytes)", 0, IMAGE, -EPROTO, "truncated");
	bad(t, "truncated header (15 bytes)", 15, IMAGE, -EPROTO, "truncated");
	bad(t, "truncated payload", len - 1, IMAGE, -EPROTO, "truncated");
	bad(t, "trailing bytes", len + 4096, IMAGE, -EPROTO, "after");
	for (int i = 0; i < 4; i++) {
		t->msg[i] ^= 0x20;
		bad(t, "bad magic", len, IMAGE, -EPROTO, "magic");
		t->msg[i] ^= 0x20;
	}
	for (size_t i = 0; i < sizeof(versions); i++) {
		t->msg[4] = versions[i];
		bad(t, "bad version", len, IMAGE, -EPROTO, "version");
	}
	t->msg[4] = WIRE_VERSION;
	for (size_t i = 0; i < sizeof(types); i++) {
		t->msg[5] = types[i];
		bad(t, "unknown type", len, IMAGE, -EPROTO, "type");
	}
	t->msg[5] = WIRE_END;
	for (int bit = 1; bit < 16; bit++) {
		le16(t->msg + 6, (uint16_t)(1u << bit));
		bad(t, "reserved flag bit", len, IMAGE, -EPROTO, "reserved");
	}
	le16(t->msg + 6, 0xffff);
	bad(t, "every flag bit", len, IMAGE, -EPROTO, "reserved");
	le16(t->msg + 6, 0);

	/* Refused from the header alone, before the payload is there. */
	relen(t, WIRE_MAX_PAYLOAD + 1);
	bad(t, "oversized payload", WIRE_HDR, IMAGE, -EMSGSIZE, "longer");
	bad(t, "oversized payload, all there", WIRE_HDR + WIRE_MAX_PAYLOAD + 1,
	    IMAGE, -EMSGSIZE, "longer");
	relen(t, UINT32_MAX);
	bad(t, "payload length 4 GiB", WIRE_HDR, IMAGE, -EMSGSIZE, "longer");
	relen(t, WIRE_MAX_PAYLOAD);
	bad(t, "largest payload, missing", WIRE_HDR, IMAGE, -EPROTO,
	    "truncated payload");
	len = relen(t, 8);

	le32(t->msg + 12, 1);
	bad(t, "checksum without the flag", len, IMAGE, -EPROTO, "checksum");
	le16(t->msg + 6, WIRE_F_CSUM);
	bad(t, "END checksum mismatch", len, IMAGE, -EBADMSG, "checksum");
	le32(t->msg + 12, wire_csum(t->pay, 8));
	good(t, "END checksummed", len, IMAGE, &m);
	CHECK(m.flags == WIRE_F_CSUM && m.end.pages_sent == 42, "END fields");
}

static void pages_errors(struct t *t)
{
	size_t len;

	pages_msg(t, 0, 0, WIRE_PAGES_ZERO, false);
	bad(t, "PAGES count 0", WIRE_HDR + 16, IMAGE, -ERANGE, "range");
	pages_msg(t, 0, 257, WIRE_PAGES_ZERO, false);
	bad(t, "PAGES count 257", WIRE_HDR + 16, IMAGE, -EMSGSIZE, "256");
	pages_msg(t, 0, UINT32_MAX, WIRE_PAGES_ZERO, false);
	bad(t, "PAGES count 2^32-1", WIRE_HDR + 16, IMAGE, -EMSGSIZE, "256");
	len = pages_msg(t, IMAGE, 1, 0, false);
	bad(t, "PAGES page = npages", len, IMAGE, -ERANGE, "range");
	len = pages_msg(t, IMAGE - 1, 2, 0, false);
	bad(t, "PAGES page + count > npages", len, IMAGE, -ERANGE, "range");
	len = pages_msg(t, UINT64_MAX - 1, 2, 0, false);
	bad(t, "PAGES wrapping range", len, IMAGE, -ERANGE, "range");
	bad(t, "PAGES wrapping range, huge image", len, UINT64_MAX, -ERANGE,
	    "range");
	len = pages_msg(t, UINT64_MAX, 1, 0, false);
	bad(t, "PAGES page UINT64_MAX", len, UINT64_MAX, -ERANGE, "range");

	pages_msg(t, 0, 2, 0, false);
	len = relen(t, WIRE_PAGES_FIXED + WIRE_PAGE);
	bad(t, "PAGES one page short", len, IMAGE, -EPROTO, "disagrees");
	len = relen(t, WIRE_PAGES_FIXED + 2 * WIRE_PAGE + 1);
	bad(t, "PAGES one byte long", len, IMAGE, -EPROTO, "disagrees");
	len = relen(t, WIRE_PAGES_FIXED);
	bad(t, "PAGES data without data", len, IMAGE, -EPROTO, "disagrees");
	len = relen(t, WIRE_PAGES_FIXED - 1);
	bad(t, "PAGES short fixed part", len, IMAGE, -EPROTO, "shorter");
	len = relen(t, 0);
	bad(t, "PAGES empty", len, IMAGE, -EPROTO, "shorter");

	pages_msg(t, 0, 1, WIRE_PAGES_ZERO, false);
	len = relen(t, WIRE_PAGES_FIXED + 1);
	bad(t, "zero run with a byte", len, IMAGE, -EPROTO, "zero-run");
	len = relen(t, WIRE_PAGES_FIXED + WIRE_PAGE);
	bad(t, "zero run with a page", len, IMAGE, -EPROTO, "zero-run");

	len = pages_msg(t, 0, 1, 1u << 2, false);
	bad(t, "PAGES flag bit 2", len, IMAGE, -EPROTO, "flags");
	len = pages_msg(t, 0, 1, WIRE_PAGES_ZERO | 1u << 31, false);
	bad(t, "PAGES flag bit 31", len, IMAGE, -EPROTO, "flags");

	/* The checksum covers the fixed part as well as the data. */
	len = pages_msg(t, 5, 2, 0, true);
	t->msg[len - 1] ^= 1;
	bad(t, "PAGES data changed", len, IMAGE, -EBADMSG, "checksum");
	t->msg[len - 1] ^= 1;
	t->pay[0] ^= 1;
	bad(t, "PAGES page changed", len, IMAGE, -EBADMSG, "checksum");
	t->pay[0] ^= 1;
	t->msg[12] ^= 0x80;
	bad(t, "PAGES checksum changed", len, IMAGE, -EBADMSG, "checksum");
	len = pages_msg(t, 5, 2, WIRE_PAGES_ZERO, true);
	t->pay[8] ^= 1;
	bad(t, "zero run count changed", len, IMAGE, -EBADMSG, "checksum");
}

static void have_errors(struct t *t)
{
	static uint8_t bitmap[WIRE_MAX_HAVE / 8 + 1];
	size_t len;

	wire_have(t->msg, 0, 9, bitmap);
	len = relen(t, WIRE_HAVE_FIXED + 1);
	bad(t, "HAVE bitmap short", len, IMAGE, -EPROTO, "disagrees");
	len = relen(t, WIRE_HAVE_FIXED + 3);
	bad(t, "HAVE bitmap long", len, IMAGE, -EPROTO, "disagrees");
	len = relen(t, WIRE_HAVE_FIXED);
	bad(t, "HAVE no bitmap", len, IMAGE, -EPROTO, "disagrees");
	len = relen(t, WIRE_HAVE_FIXED - 1);
	bad(t, "HAVE short fixed part", len, IMAGE, -EPROTO, "shorter");

	len = wire_have(t->msg, 0, 0, bitmap);
	bad(t, "HAVE 0 pages", len, IMAGE, -ERANGE, "range");
	len = wire_have(t->msg, 0, WIRE_MAX_HAVE + 1, bitmap);
	bad(t, "HAVE too many pages", len, UINT64_MAX, -EMSGSIZE, "many");
	len = wire_have(t->msg, IMAGE, 1, bitmap);
	bad(t, "HAVE first = npages", len, IMAGE, -ERANGE, "range");
	len = wire_have(t->msg, IMAGE - 8, 9, bitmap);
	bad(t, "HAVE past the end", len, IMAGE, -ERANGE, "range");
	len = wire_have(t->msg, UINT64_MAX - 1, 2, bitmap);
	bad(t, "HAVE wrapping range", len, UINT64_MAX, -ERANGE, "range");
}

static void request_errors(struct t *t)
{
	size_t len;

	len = wire_request(t->msg, IMAGE, 1);
	bad(t, "REQUEST page = npages", len, IMAGE, -ERANGE, "range");
	len = wire_request(t->msg, IMAGE - 1, 2);
	bad(t, "REQUEST past the end", len, IMAGE, -ERANGE, "range");
	len = wire_request(t->msg, UINT64_MAX - 1, 2);
	bad(t, "REQUEST wrapping range", len, IMAGE, -ERANGE, "range");
	bad(t, "REQUEST wrapping range, huge image", len, UINT64_MAX, -ERANGE,
	    "range");
	len = wire_request(t->msg, 0, 0);
	bad(t, "REQUEST count 0", len, IMAGE, -ERANGE, "range");
	len = wire_request(t->msg, 0, WIRE_MAX_PAGES + 1);
	bad(t, "REQUEST count 257", len, IMAGE, -EMSGSIZE, "256");
	len = relen(t, 11);
	bad(t, "REQUEST short", len, IMAGE, -EPROTO, "length");
	len = relen(t, 13);
	bad(t, "REQUEST long", len, IMAGE, -EPROTO, "length");
}

static void hello_errors(struct t *t)
{
	char name[WIRE_MAX_NAME + 2];
	size_t len;

	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	wire_hello(t->msg, 0, WIRE_ROLE_STREAM, 0, name);
	t->pay[18 + WIRE_MAX_NAME] = 'x';
	le16(t->pay + 16, WIRE_MAX_NAME + 1);
	len = relen(t, 18 + WIRE_MAX_NAME + 1);
	bad(t, "HELLO name_len 256", len, 0, -EPROTO, "255");
	le16(t->pay + 16, UINT16_MAX);
	len = relen(t, 18 + UINT16_MAX);
	bad(t, "HELLO name_len 65535", len, 0, -EPROTO, "255");

	len = wire_hello(t->msg, 0, WIRE_ROLE_STREAM, 0, "abcdef");
	t->pay[18 + 2] = '\0';
	bad(t, "HELLO name with a NUL", len, 0, -EPROTO, "NUL");
	t->pay[18 + 2] = 'c';
	le16(t->pay + 16, 5);
	bad(t, "HELLO name_len short", len, 0, -EPROTO, "disagrees");
	le16(t->pay + 16, 7);
	bad(t, "HELLO name_len long", len, 0, -EPROTO, "disagrees");
	len = relen(t, 17);
	bad(t, "HELLO short fixed part", len, 0, -EPROTO, "shorter");

	len = wire_hello(t->msg, 0, (enum wire_role)2, 0, "a");
	bad(t, "HELLO role 2", len, 0, -EPROTO, "role");
	len = wire_hello(t->msg, 0, (enum wire_role)UINT32_MAX, 0, "a");
	bad(t, "HELLO role 2^32-1", len, 0, -EPROTO, "role");
}

static void welcome_errors(struct t *t)
{
	static const uint64_t sizes[] = {0, 1, WIRE_PAGE + 1, UINT64_MAX,
					 (1ull << 46) + WIRE_PAGE};
	static const uint32_t page_sizes[] = {0, 512, 8192, 2u << 20};
	size_t len;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		len = wire_welcome(t->msg, 0, sizes[i], 1);
		bad(t, "WELCOME image size", len, 0, -ERANGE, "image size");
	}
	len = wire_welcome(t->msg, 0, WIRE_PAGE, 1);
	for (size_t i = 0; i < sizeof(page_sizes) / sizeof(page_sizes[0]);
	     i++) {
		le32(t->pay + 4, page_sizes[i]);
		bad(t, "WELCOME page size", len, 0, -EPROTO, "page size");
	}
	len = relen(t, 23);
	bad(t, "WELCOME short", len, 0, -EPROTO, "length");
	len = relen(t, 25);
	bad(t, "WELCOME long", len, 0, -EPROTO, "length");
}

/* START, END and ERROR. */
static void small_errors(struct t *t)
{
	size_t len;

	len = wire_start(t->msg, 1);
	bad(t, "START flags", len, 0, -EPROTO, "flags");
	wire_start(t->msg, 0);
	len = relen(t, 3);
	bad(t, "START short", len, 0, -EPROTO, "length");
	len = relen(t, 5);
	bad(t, "START long", len, 0, -EPROTO, "length");

	wire_end(t->msg, 1);
	len = relen(t, 7);
	bad(t, "END short", len, 0, -EPROTO, "length");
	len = relen(t, 9);
	bad(t, "END long", len, 0, -EPROTO, "length");

	len = wire_error(t->msg, EIO, "boom");
	le16(t->pay + 4, 3);
	bad(t, "ERROR text length short", len, 0, -EPROTO, "disagrees");
	le16(t->pay + 4, 5);
	bad(t, "ERROR text length long", len, 0, -EPROTO, "disagrees");
	le16(t->pay + 4, 256);
	len = relen(t, 6 + 256);
	bad(t, "ERROR text of 256 bytes", len, 0, -EPROTO, "disagrees");
	len = relen(t, 5);
	bad(t, "ERROR short fixed part", len, 0, -EPROTO, "shorter");

	len = wire_error(t->msg, EIO, "boom");
	t->pay[6 + 1] = '\0';
	bad(t, "ERROR text with a NUL", len, 0, -EPROTO, "NUL");
}

/* Before WELCOME (image_pages 0) only ranges are refused. */
static void no_image(struct t *t)
{
	static const uint8_t bitmap[1] = {1};
	struct wire_msg m;
	size_t len;

	len = wire_have(t->msg, 0, 1, bitmap);
	bad(t, "HAVE before WELCOME", len, 0, -ERANGE, "range");
	len = wire_request(t->msg, 0, 1);
	bad(t, "REQUEST before WELCOME", len, 0, -ERANGE, "range");
	len = pages_msg(t, 0, 1, 0, false);
	bad(t, "PAGES before WELCOME", len, 0, -ERANGE, "range");
	len = pages_msg(t, 0, 1, WIRE_PAGES_ZERO, false);
	bad(t, "zero run before WELCOME", len, 0, -ERANGE, "range");
	len = wire_end(t->msg, 0);
	good(t, "END before WELCOME", len, 0, &m);
}

int main(void)
{
	struct t t = {0};

	setup(&t);
	round_trips(&t);
	header_errors(&t);
	pages_errors(&t);
	have_errors(&t);
	request_errors(&t);
	hello_errors(&t);
	welcome_errors(&t);
	small_errors(&t);
	no_image(&t);
	printf("%u messages decoded, %u refused as they should be\n", t.good,
	       t.bad);
	free(t.msg);
	free(t.again);
	return 0;
}

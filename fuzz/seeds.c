// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Write the fuzzer's seed corpus into the directory argv[1]: valid
 * messages of every type, for an image of 300 pages (wire_fuzz.c decodes
 * against that size among others), each in a file named after it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "net/wire.h"

static int put(const char *dir, const char *name, const uint8_t *buf,
	       size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/seed-%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "seeds: %s: %s\n", path, strerror(errno));
		return 1;
	}
	return 0;
}

static size_t pages(uint8_t *buf, uint64_t page, uint32_t count, uint32_t flags,
		    bool csum)
{
	uint8_t *data = buf + WIRE_HDR + WIRE_PAGES_FIXED;
	size_t bytes = flags & WIRE_PAGES_ZERO ? 0 : (size_t)count * WIRE_PAGE;

	for (size_t i = 0; i < bytes; i++)
		data[i] = (uint8_t)(i * 131 + page);
	return wire_pages_header(buf, page, count, flags, bytes ? data : NULL,
				 csum) +
	       bytes;
}

int main(int argc, char **argv)
{
	static uint8_t buf[WIRE_HDR + WIRE_MAX_PAYLOAD];
	static const uint8_t bitmap[38] = {0xff, 0x0f, 0x01, 0x80, 0x55};
	const char *d = argv[1];
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: seeds DIR\n");
		return 2;
	}
	bad |= put(d, "hello", buf,
		   wire_hello(buf, WIRE_CAP_CSUM, WIRE_ROLE_STREAM, 0, "vm1"));
	bad |= put(d, "hello-urgent", buf,
		   wire_hello(buf, 0, WIRE_ROLE_URGENT, 42, "image/name"));
	bad |= put(d, "welcome", buf,
		   wire_welcome(buf, WIRE_CAP_CSUM, 300 * WIRE_PAGE, 42));
	bad |= put(d, "have", buf, wire_have(buf, 0, 300, bitmap));
	bad |= put(d, "have-tail", buf, wire_have(buf, 290, 10, bitmap));
	bad |= put(d, "start", buf, wire_start(buf, 0));
	bad |= put(d, "request", buf, wire_request(buf, 7, 1));
	bad |= put(d, "request-256", buf, wire_request(buf, 44, 256));
	bad |= put(d, "pages", buf, pages(buf, 0, 1, 0, false));
	bad |= put(d, "pages-urgent-csum", buf,
		   pages(buf, 297, 3, WIRE_PAGES_URGENT, true));
	bad |= put(d, "pages-zero", buf,
		   pages(buf, 10, 256, WIRE_PAGES_ZERO, false));
	bad |= put(d, "pages-zero-csum", buf,
		   pages(buf, 299, 1, WIRE_PAGES_ZERO, true));
	bad |= put(d, "pages-256", buf, pages(buf, 0, 256, 0, true));
	bad |= put(d, "end", buf, wire_end(buf, 300));
	bad |= put(d, "error", buf, wire_error(buf, ENOENT, "no such image"));
	return bad;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer harness for the wire decoder (`make fuzz`).  Whatever the
 * bytes, and whatever the image size, wire_decode() returns 0 or one of
 * the errors wire.h names, with a reason, and reads nothing outside them
 * (ASan).  A message it accepts encodes again with the wire_* encoders and
 * decodes again to equal fields; unless it carries a CSUM flag on a type
 * the encoders never checksum, it encodes again to the very same bytes:
 * the decoder accepts nothing the encoders could not have written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "net/wire.h"
#include "wire_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUG(...)                                                               \
	do {                                                                   \
		fprintf(stderr, "wire_fuzz: ");                                \
		fprintf(stderr, __VA_ARGS__);                                  \
		fputc('\n', stderr);                                           \
		abort();                                                       \
	} while (0)

static void check(const uint8_t *data, size_t size, uint64_t image)
{
	static uint8_t again[WIRE_HDR + WIRE_MAX_PAYLOAD];
	struct wire_msg m, m2;
	const char *why, *diff;
	bool canonical;
	size_t len;
	int ret;

	ret = wire_decode(data, size, image, &m, &why);
	if (ret) {
		if (ret != -EPROTO && ret != -EMSGSIZE && ret != -ERANGE &&
		    ret != -EBADMSG)
			BUG("refused with %d", ret);
		if (!why)
			BUG("refused with %d and no reason", ret);
		return;
	}
	if (why)
		BUG("accepted, with a reason: %s", why);

	/* The encoders checksum PAGES only: elsewhere the flag is lost. */
	canonical = m.type == WIRE_PAGES || !(m.flags & WIRE_F_CSUM);
	if (m.type != WIRE_PAGES)
		m.flags &= (uint16_t)~WIRE_F_CSUM;
	len = wire_check_encode(again, &m);
	if (!len)
		BUG("%s accepted but cannot be encoded", wire_type_name(m.type));
	ret = wire_decode(again, len, image, &m2, &why);
	if (ret)
		BUG("%s encoded again is refused: %s", wire_type_name(m.type),
		    why);
	diff = wire_check_diff(&m, &m2);
	if (diff)
		BUG("%s encoded again: %s differs", wire_type_name(m.type),
		    diff);
	if (canonical && (len != size || memcmp(again, data, len)))
		BUG("%s encodes again to other bytes", wire_type_name(m.type));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Before WELCOME, tiny, the seeds' size, the largest, absurd. */
	static const uint64_t images[] = {0, 1, 300, 1ull << 34, UINT64_MAX};

	for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++)
		check(data, size, images[i]);
	return 0;
}

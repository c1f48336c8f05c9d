// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The attach protocol's codec.  Fields are little-endian at fixed
 * offsets; each is read only after the length was checked to hold it,
 * and nothing a peer sends sizes a buffer: a request is at most
 * ATTACH_REQ_MAX bytes whatever its header says.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "base/le.h"
#include "manager/attach_wire.h"

#define REFUSE(err, f, text)         \
	do {                         \
		*field = (f);        \
		*why = (text);       \
		return (err);        \
	} while (0)

int attach_header(const uint8_t *buf, uint16_t *version, uint16_t *type,
		  uint32_t *len, const char **field, const char **why)
{
	*version = rd16(buf + 4);
	*type = rd16(buf + 6);
	*len = rd32(buf + 8);
	if (rd32(buf) != ATTACH_MAGIC)
		REFUSE(-EPROTO, "magic", "not an upager attach message");
	if (*type != ATTACH_T_ATTACH && *type != ATTACH_T_ANSWER)
		REFUSE(-EPROTO, "type", "unknown message type");
	if (rd32(buf + 12))
		REFUSE(-EPROTO, "reserved", "reserved header bytes are not 0");
	if (*len > ATTACH_REQ_MAX - ATTACH_HDR)
		REFUSE(-EMSGSIZE, "length", "longer than the protocol allows");
	if (*version != UPAGER_ATTACH_VERSION)
		REFUSE(-EPROTONOSUPPORT, "version",
		       "a protocol version this manager does not speak");
	return 0;
}

int attach_decode(const uint8_t *buf, size_t len, struct attach_req *req,
		  int *region, const char **field, const char **why)
{
	const uint8_t *p = buf + ATTACH_HDR + ATTACH_REQ_FIXED;
	uint16_t type;
	uint32_t plen;
	int ret;

	*field = *why = NULL;
	*region = -1;
	if (len < ATTACH_HDR)
		REFUSE(-EPROTO, "length", "shorter than a header");
	ret = attach_header(buf, &req->version, &type, &plen, field, why);
	if (ret < 0)
		return ret;
	if (type != ATTACH_T_ATTACH)
		REFUSE(-EPROTO, "type", "not an ATTACH message");
	if (plen != len - ATTACH_HDR)
		REFUSE(-EPROTO, "length", "the length is not the message's");
	if (plen < ATTACH_REQ_FIXED)
		REFUSE(-EPROTO, "length", "too short for its fixed fields");
	req->features = rd64(buf + ATTACH_HDR);
	req->nregions = rd32(buf + ATTACH_HDR + 12);
	if (rd32(buf + ATTACH_HDR + 8))
		REFUSE(-EINVAL, "flags", "unknown flags set");
	if (!req->nregions || req->nregions > UPAGER_ATTACH_MAX_REGIONS)
		REFUSE(-EINVAL, "nregions", "not 1 to 64 regions");
	if (plen != ATTACH_REQ_FIXED + req->nregions * ATTACH_REGION)
		REFUSE(-EPROTO, "length", "the length does not match nregions");
	for (uint32_t i = 0; i < req->nregions; i++, p += ATTACH_REGION) {
		struct attach_region *r = &req->r[i];

		r->addr = rd64(p);
		r->len = rd64(p + 8);
		r->offset = rd64(p + 16);
		r->fill = rd64(p + 24);
		r->memtype = p[32];
		r->remove = p[33];
		*region = (int)i;
		if (r->memtype != UPAGER_MEM_ANON &&
		    r->memtype != UPAGER_MEM_HUGETLB)
			REFUSE(-EINVAL, "memtype", "not anon (0) or hugetlb (2)");
		if (r->remove > UPAGER_REMOVE_ZERO)
			REFUSE(-EINVAL, "remove", "not refetch (0) or zero (1)");
		if (rd16(p + 34) || rd32(p + 36))
			REFUSE(-EINVAL, "reserved", "reserved bytes are not 0");
		if (!name_field_ok(p + 40, ATTACH_NAME))
			REFUSE(-EINVAL, "name",
			       "not 1 to 63 bytes and NUL padding");
		memcpy(r->name, p + 40, ATTACH_NAME);
	}
	*region = -1;
	return 0;
}

/* A string into a zeroed field of @size bytes, NUL-terminated. */
static void put_str(uint8_t *p, const char *s, size_t size)
{
	memcpy(p, s, strnlen(s, size - 1));
}

static size_t header(uint8_t *buf, uint16_t type, uint32_t len)
{
	wr32(buf, ATTACH_MAGIC);
	wr16(buf + 4, UPAGER_ATTACH_VERSION);
	wr16(buf + 6, type);
	wr32(buf + 8, len);
	wr32(buf + 12, 0);
	return ATTACH_HDR;
}

size_t attach_encode(uint8_t *buf, const struct attach_req *req)
{
	uint32_t plen = ATTACH_REQ_FIXED + req->nregions * ATTACH_REGION;
	uint8_t *p = buf + ATTACH_HDR;

	memset(buf, 0, ATTACH_HDR + plen);
	header(buf, ATTACH_T_ATTACH, plen);
	wr64(p, req->features);
	wr32(p + 12, req->nregions);
	p += ATTACH_REQ_FIXED;
	for (uint32_t i = 0; i < req->nregions; i++, p += ATTACH_REGION) {
		const struct attach_region *r = &req->r[i];

		wr64(p, r->addr);
		wr64(p + 8, r->len);
		wr64(p + 16, r->offset);
		wr64(p + 24, r->fill);
		p[32] = r->memtype;
		p[33] = r->remove;
		put_str(p + 40, r->name, ATTACH_NAME);
	}
	return ATTACH_HDR + plen;
}

size_t attach_answer_encode(uint8_t *buf, const struct attach_answer *a)
{
	uint8_t *p = buf + ATTACH_HDR;

	memset(buf, 0, ATTACH_ANSWER_LEN);
	header(buf, ATTACH_T_ANSWER, ATTACH_ANSWER_LEN - ATTACH_HDR);
	wr32(p, a->err);
	wr16(p + 4, UPAGER_ATTACH_VERSION);
	wr64(p + 8, a->features);
	put_str(p + 16, a->field, sizeof(a->field));
	put_str(p + 64, a->text, sizeof(a->text));
	return ATTACH_ANSWER_LEN;
}

int attach_answer_decode(const uint8_t *buf, size_t len,
			 struct attach_answer *a)
{
	const uint8_t *p = buf + ATTACH_HDR;

	if (len != ATTACH_ANSWER_LEN || rd32(buf) != ATTACH_MAGIC ||
	    rd16(buf + 6) != ATTACH_T_ANSWER ||
	    rd32(buf + 8) != ATTACH_ANSWER_LEN - ATTACH_HDR ||
	    rd32(buf + 12) || rd16(p + 6) ||
	    !memchr(p + 16, 0, sizeof(a->field)) ||
	    !memchr(p + 64, 0, sizeof(a->text)))
		return -EPROTO;
	a->err = rd32(p);
	a->version = rd16(p + 4);
	a->features = rd64(p + 8);
	memcpy(a->field, p + 16, sizeof(a->field));
	memcpy(a->text, p + 64, sizeof(a->text));
	/* An errno the client could not tell from its own failures. */
	if (a->err > 4095)
		return -EPROTO;
	return 0;
}

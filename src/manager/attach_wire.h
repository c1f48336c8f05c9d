/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The attach protocol's codec (docs/ATTACH.md): what a client sends to be
 * served (ATTACH: its features and region table, the uffd riding along
 * with SCM_RIGHTS) and the manager's ANSWER.  Pure functions over byte
 * buffers, so that the client, the manager and the tests share one
 * reading of every field.
 */
#ifndef UPAGER_MANAGER_ATTACH_WIRE_H
#define UPAGER_MANAGER_ATTACH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "upager/manager.h"

#define ATTACH_MAGIC 0x54415055u /* "UPAT" */
#define ATTACH_HDR 16
#define ATTACH_REGION 104 /* bytes per region entry */
#define ATTACH_NAME 64	  /* the name field, NUL padded */
#define ATTACH_REQ_FIXED 16 /* features, flags, nregions */
#define ATTACH_REQ_MAX                                                     \
	(ATTACH_HDR + ATTACH_REQ_FIXED +                                   \
	 UPAGER_ATTACH_MAX_REGIONS * ATTACH_REGION)
#define ATTACH_ANSWER_LEN (ATTACH_HDR + 224)

enum attach_type {
	ATTACH_T_ATTACH = 1,
	ATTACH_T_ANSWER = 2,
};

struct attach_region {
	uint64_t addr, len, offset, fill;
	uint8_t memtype, remove;
	char name[ATTACH_NAME];
};

struct attach_req {
	uint16_t version;
	uint64_t features;
	uint32_t nregions;
	struct attach_region r[UPAGER_ATTACH_MAX_REGIONS];
};

struct attach_answer {
	uint32_t err; /* 0: accepted; else an errno value */
	uint16_t version;
	uint64_t features;
	char field[48];
	char text[160];
};

/*
 * The header of a message in @buf (ATTACH_HDR bytes): its type and the
 * payload length that follows.  0, or -EPROTO with *@why ("bad magic")
 * and *@field ("magic", "type", "length", "reserved"); a version other
 * than ours is -EPROTONOSUPPORT (field "version") with the type and
 * length still read, so that the manager can answer in kind.
 */
int attach_header(const uint8_t *buf, uint16_t *version, uint16_t *type,
		  uint32_t *len, const char **field, const char **why);

/*
 * A whole ATTACH message of @len bytes into @req.  Every field is
 * checked for form (counts, reserved zeros, names of 1..63 bytes ending
 * in NUL padding, memtype, remove policy); what needs the manager's
 * knowledge (alignment to the page size, exports, overlap) is left to
 * it.  0, or -errno with *@field naming the field ("name"), *@region
 * the entry it is in (-1: none) and *@why the rule it broke (static
 * strings).
 */
int attach_decode(const uint8_t *buf, size_t len, struct attach_req *req,
		  int *region, const char **field, const char **why);

/* Encode @req into @buf (ATTACH_REQ_MAX bytes); returns the length. */
size_t attach_encode(uint8_t *buf, const struct attach_req *req);

/* Encode and decode an ANSWER (ATTACH_ANSWER_LEN bytes). */
size_t attach_answer_encode(uint8_t *buf, const struct attach_answer *a);
int attach_answer_decode(const uint8_t *buf, size_t len,
			 struct attach_answer *a);

#endif

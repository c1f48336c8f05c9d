// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Reading Firecracker's handshake.  The body comes from a process the
 * manager does not trust (a guest may own it), so the parse is json-c's
 * strict mode over a buffer already bounded by FC_MAX_BODY, and each
 * value is checked for its JSON type before it is read: json-c turns a
 * float, a string or a huge number into an integer if asked, silently.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "manager/firecracker.h"

#define REFUSE(err, f, text)  \
	do {                  \
		*field = (f); \
		*why = (text); \
		ret = (err);  \
		goto out;     \
	} while (0)

/*
 * An unsigned integer below 2^63 at @key of @o: 1 found, 0 absent, or
 * -EINVAL with *@why.  json-c clamps numbers beyond 64 bits to the
 * limit, which this bound refuses too.
 */
static int get_u63(json_object *o, const char *key, uint64_t *v,
		   const char **why)
{
	json_object *x;
	int64_t i;

	if (!json_object_object_get_ex(o, key, &x))
		return 0;
	if (!json_object_is_type(x, json_type_int)) {
		*why = "not an integer";
		return -EINVAL;
	}
	i = json_object_get_int64(x);
	if (i < 0) {
		*why = "negative";
		return -EINVAL;
	}
	if (i == INT64_MAX) {
		*why = "too large (2^63 or more)";
		return -EINVAL;
	}
	*v = (uint64_t)i;
	return 1;
}

static bool known(const char *key)
{
	static const char *const keys[] = { "base_host_virt_addr", "size",
					    "offset", "page_size",
					    "page_size_kib" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

int fc_parse(const char *buf, size_t len, struct fc_region *out,
	     unsigned int *n, int *region, const char **field,
	     const char **why, const char **unknown)
{
	static const char *const req[] = { "base_host_virt_addr", "size",
					   "offset" };
	static __thread char unknown_key[64], bad_json[96];
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *root = NULL;
	size_t count;
	int ret = 0;

	*n = 0;
	*region = -1;
	*field = *why = *unknown = NULL;
	if (len > FC_MAX_BODY || len > INT32_MAX)
		return -EMSGSIZE;
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		ret = -EAGAIN;
		goto out;
	}
	if (!root || jerr != json_tokener_success) {
		snprintf(bad_json, sizeof(bad_json), "invalid JSON at byte %zu: %s",
			 json_tokener_get_parse_end(tok),
			 json_tokener_error_desc(jerr));
		*field = "body";
		*why = bad_json;
		ret = -EBADMSG;
		goto out;
	}
	if (json_tokener_get_parse_end(tok) != len)
		REFUSE(-EBADMSG, "body", "bytes after the JSON value");
	if (!json_object_is_type(root, json_type_array))
		REFUSE(-EINVAL, "body", "not a JSON array");
	count = json_object_array_length(root);
	if (!count)
		REFUSE(-EINVAL, "body", "an empty array: no region");
	if (count > FC_MAX_REGIONS)
		REFUSE(-EINVAL, "body", "more than 64 regions");
	for (size_t i = 0; i < count; i++) {
		json_object *o = json_object_array_get_idx(root, i);
		struct fc_region *r = &out[i];
		uint64_t kib = 0, ps = 0;
		int has_ps, has_kib, got;

		*region = (int)i;
		if (!json_object_is_type(o, json_type_object))
			REFUSE(-EINVAL, "region", "not a JSON object");
		uint64_t *dst[] = { &r->addr, &r->size, &r->offset };
		for (int k = 0; k < 3; k++) {
			got = get_u63(o, req[k], dst[k], why);
			if (got < 0)
				REFUSE(-EINVAL, req[k], *why);
			if (!got)
				REFUSE(-EINVAL, req[k], "missing");
		}
		has_ps = get_u63(o, "page_size", &ps, why);
		if (has_ps < 0)
			REFUSE(-EINVAL, "page_size", *why);
		has_kib = get_u63(o, "page_size_kib", &kib, why);
		if (has_kib < 0)
			REFUSE(-EINVAL, "page_size_kib", *why);
		if (has_ps && has_kib && ps != kib)
			REFUSE(-EINVAL, "page_size_kib",
			       "differs from page_size (both are bytes)");
		r->page = has_ps ? ps : has_kib ? kib : 4096;
		if (r->page != 4096 && r->page != (2u << 20))
			REFUSE(-EINVAL, has_ps ? "page_size" : "page_size_kib",
			       "not 4096 or 2097152 (bytes)");
		json_object_object_foreach(o, key, val)
		{
			(void)val;
			if (!*unknown && !known(key)) {
				snprintf(unknown_key, sizeof(unknown_key), "%s",
					 key);
				*unknown = unknown_key;
			}
		}
	}
	*region = -1;
	*n = (unsigned int)count;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return ret;
}

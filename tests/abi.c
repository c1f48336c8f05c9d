// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The structs that cross the API by size keep the kernel's rules, for
 * every such struct of the library, one layer per run (argv[1]: ll, net
 * or engine).
 *
 * Parameter structs (copy_struct_from_user): a size smaller than the size
 * field is -EINVAL; a smaller struct from an older caller leaves the
 * fields it lacks at their defaults (a bad value placed beyond its size
 * is not read); a larger one from a newer caller is -E2BIG when its
 * unknown tail is not zero and accepted when it is; at its own size a
 * field is read (the same bad value fails the call).
 *
 * Output structs (copy_struct_to_user): a size smaller than the size
 * field is -EINVAL; an older caller's smaller struct is filled up to its
 * size and not a byte beyond; a newer caller's larger one gets zeros past
 * what the library knows; the size field comes back as the bytes filled.
 */
#include <stddef.h>
#include <unistd.h>

#include <upager/remote.h>
#include <upager/upager.h>

#include "harness.h"

#define TAIL 32 /* bytes a newer caller's struct has beyond ours */
#define CANARY 0xa5

static unsigned int failures;

#define EXPECT(cond, ...)                                                 \
	do {                                                              \
		if (!(cond)) {                                            \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__,         \
				__LINE__);                                \
			fprintf(stderr, __VA_ARGS__);                     \
			fputc('\n', stderr);                              \
			failures++;                                       \
		}                                                         \
	} while (0)

/* ---- parameter structs ------------------------------------------------ */

struct params_case {
	const char *name;
	size_t size;  /* sizeof the struct */
	size_t small; /* a size that leaves the bad field out */
	/* Write the struct's defaults, then the bad value of the field. */
	void (*set_bad)(void *p);
	/* The call taking the struct: 0 or -errno; it cleans up after. */
	int (*call)(const void *p);
	int bad; /* what the call returns when it reads the bad field */
};

static void set_size(void *p, size_t size)
{
	uint32_t s = (uint32_t)size;

	memcpy(p, &s, sizeof(s));
}

static void check_params(const struct params_case *c)
{
	unsigned char *p = calloc(1, c->size + TAIL);
	int ret;

	CHECK(p, "out of memory");
	c->set_bad(p);
	set_size(p, c->size);
	ret = c->call(p);
	EXPECT(ret == c->bad, "%s: the bad field at full size: %s, want %s",
	       c->name, strerror(-ret), strerror(-c->bad));

	set_size(p, c->small);
	ret = c->call(p);
	EXPECT(ret == 0, "%s: size %zu (an older caller): %s, want the "
	       "field beyond it ignored", c->name, c->small, strerror(-ret));

	for (uint32_t size = 0; size < sizeof(uint32_t); size++) {
		memset(p, 0, c->size);
		set_size(p, size);
		ret = c->call(p);
		EXPECT(ret == -EINVAL, "%s: size %u: %s, want EINVAL", c->name,
		       size, strerror(-ret));
	}

	memset(p, 0, c->size + TAIL);
	set_size(p, c->size + TAIL);
	ret = c->call(p);
	EXPECT(ret == 0, "%s: a newer caller's zero tail: %s, want 0",
	       c->name, strerror(-ret));
	p[c->size + TAIL - 1] = 1;
	ret = c->call(p);
	EXPECT(ret == -E2BIG, "%s: a newer caller's non-zero tail: %s, want "
	       "E2BIG", c->name, strerror(-ret));
	free(p);
}

/* ---- output structs --------------------------------------------------- */

struct output_case {
	const char *name;
	size_t size;			 /* sizeof the struct */
	int (*fill)(void *st, void *arg); /* 0 or -errno */
	void *arg;
};

static uint32_t size_of(const void *p)
{
	uint32_t s;

	memcpy(&s, p, sizeof(s));
	return s;
}

static void check_output(const struct output_case *c)
{
	/* An older caller that knew two words: the size field and one more. */
	const size_t older = 16;
	unsigned char *p = malloc(c->size + TAIL);
	size_t i;
	int ret;

	CHECK(p, "out of memory");
	for (uint32_t size = 0; size < sizeof(uint32_t); size++) {
		memset(p, CANARY, c->size + TAIL);
		set_size(p, size);
		ret = c->fill(p, c->arg);
		EXPECT(ret == -EINVAL, "%s: size %u: %s, want EINVAL", c->name,
		       size, strerror(-ret));
	}

	memset(p, CANARY, c->size + TAIL);
	set_size(p, older);
	ret = c->fill(p, c->arg);
	EXPECT(ret == 0, "%s: size %zu: %s", c->name, older, strerror(-ret));
	EXPECT(size_of(p) == older, "%s: size %zu came back as %u", c->name,
	       older, size_of(p));
	for (i = older; i < c->size + TAIL && p[i] == CANARY; i++)
		;
	EXPECT(i == c->size + TAIL, "%s: byte %zu written past an older "
	       "caller's %zu", c->name, i, older);

	memset(p, CANARY, c->size + TAIL);
	set_size(p, c->size + TAIL);
	ret = c->fill(p, c->arg);
	EXPECT(ret == 0, "%s: a newer caller: %s", c->name, strerror(-ret));
	EXPECT(size_of(p) == c->size, "%s: a newer caller's size came back "
	       "as %u, want %zu", c->name, size_of(p), c->size);
	for (i = c->size; i < c->size + TAIL && !p[i]; i++)
		;
	EXPECT(i == c->size + TAIL, "%s: byte %zu of a newer caller's tail "
	       "not zeroed", c->name, i);

	set_size(p, c->size);
	ret = c->fill(p, c->arg);
	EXPECT(ret == 0 && size_of(p) == c->size, "%s: own size: %s, size %u",
	       c->name, strerror(-ret), size_of(p));
	free(p);
}

/* ---- ll ---------------------------------------------------------------- */

static int fill_probe(void *st, void *arg)
{
	(void)arg;
	return upager_ll_probe(st);
}

static void layer_ll(void)
{
	const struct output_case probe = { "struct upager_ll_probe",
					   sizeof(struct upager_ll_probe),
					   fill_probe };

	check_output(&probe);
}

/* ---- net --------------------------------------------------------------- */

static void server_bad(void *p)
{
	struct upager_server_params *sp = p;

	sp->listen = "tcp:no-port-here";
}

static int server_call(const void *p)
{
	struct upager_server *srv;
	int err;

	srv = upager_server_new(p, &err);
	upager_server_free(srv);
	return srv ? 0 : err;
}

static int fill_server_stats(void *st, void *arg)
{
	return upager_server_stats(arg, st);
}

static int fill_remote_stats(void *st, void *arg)
{
	return upager_remote_stats(arg, st);
}

static void layer_net(void)
{
	const struct params_case server = {
		"struct upager_server_params",
		sizeof(struct upager_server_params),
		offsetof(struct upager_server_params, listen), server_bad,
		server_call, -EINVAL
	};
	struct upager_server *srv;
	struct upager_store *img, *s;
	char spec[64];
	int err;

	check_params(&server);

	img = upager_store_mem_new(16 * 4096, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	srv = upager_server_new(NULL, &err);
	CHECK(srv, "server: %s", strerror(-err));
	CHECK_RET(upager_server_export(srv, "img", img), 0);
	CHECK_RET(upager_server_plaintext(srv), 0);
	CHECK_RET(upager_server_start(srv), 0);
	snprintf(spec, sizeof(spec), "remote:127.0.0.1:%u/img,plaintext",
		 upager_server_port(srv));
	s = upager_store_open(spec, &err);
	CHECK(s, "%s: %s", spec, strerror(-err));
	{
		const struct output_case out[] = {
			{ "struct upager_server_stats",
			  sizeof(struct upager_server_stats),
			  fill_server_stats, srv },
			{ "struct upager_remote_stats",
			  sizeof(struct upager_remote_stats),
			  fill_remote_stats, s },
		};

		for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
			check_output(&out[i]);
	}
	upager_store_close(s);
	upager_server_free(srv);
	upager_store_close(img);
}

/* ---- engine ------------------------------------------------------------ */

static struct upager_handler *the_handler;
static struct upager_store *the_store;

static void handler_bad(void *p)
{
	struct upager_handler_params *hp = p;

	hp->stats_name = "not/a/name";
}

static int handler_call(const void *p)
{
	struct upager_handler *h;
	int err;

	h = upager_handler_new(p, &err);
	if (!h)
		return err;
	upager_handler_free(h);
	return 0;
}

static void map_bad(void *p)
{
	struct upager_map_params *mp = p;

	mp->fill = 12345; /* not a power of two */
}

static int map_call(const void *p)
{
	struct upager_region *r;
	int err;

	if (!upager_map(the_handler, the_store, 1 << 20, p, &r, &err))
		return err;
	return upager_unmap(r);
}

static void layer_engine(void)
{
	const struct params_case cases[] = {
		{ "struct upager_handler_params",
		  sizeof(struct upager_handler_params),
		  offsetof(struct upager_handler_params, stats_name),
		  handler_bad, handler_call, -EINVAL },
		{ "struct upager_map_params", sizeof(struct upager_map_params),
		  offsetof(struct upager_map_params, fill), map_bad, map_call,
		  -EINVAL },
	};
	int err;

	the_handler = upager_handler_new(NULL, &err);
	CHECK(the_handler, "handler: %s", strerror(-err));
	the_store = upager_store_open("zero", &err);
	CHECK(the_store, "zero store: %s", strerror(-err));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_params(&cases[i]);
	upager_handler_free(the_handler);
	upager_store_close(the_store);
}

int main(int argc, char **argv)
{
	const char *layer = argc > 1 ? argv[1] : "";

	if (!strcmp(layer, "ll"))
		layer_ll();
	else if (!strcmp(layer, "net"))
		layer_net();
	else if (!strcmp(layer, "engine"))
		layer_engine();
	else
		FAIL("usage: abi ll|net|engine");
	if (failures)
		FAIL("%u rule(s) broken in layer %s", failures, layer);
	printf("abi %s: every rule kept\n", layer);
	return 0;
}

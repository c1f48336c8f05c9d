// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager serve: export page stores over the page-server protocol
 * (docs/PROTOCOL.md) until SIGINT or SIGTERM.  The first line on stdout
 * is the bound address, so a script can start it on port 0 and read the
 * port back.  The signals are blocked before any thread starts and taken
 * with sigwait(), so no handler runs inside the server's threads.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <upager/remote.h>

#include "cli.h"
#include "cmds.h"

#define MAX_EXPORTS 64

struct export_arg {
	char *name;
	const char *spec;
	struct upager_store *store;
};

static void list_store(const struct upager_store_ops *ops, void *arg)
{
	(void)arg;
	printf("  %s\n", ops->help ? ops->help : ops->name);
}

static int usage(void)
{
	printf("usage: upager serve (--psk-file FILE | --plaintext) "
	       "[--listen ADDR] [--rate BYTES]\n"
	       "                    [--stream-cpu N] [--json] NAME=SPEC...\n\n"
	       "Export page stores to remote: stores until SIGINT or SIGTERM.\n"
	       "The first line printed is the bound address.  A client gets a\n"
	       "background stream of every page and urgent answers to its\n"
	       "faults; it reconnects and resumes if the server restarts.\n\n"
	       "  --psk-file FILE  TLS 1.3 with the pre-shared key in FILE, one\n"
	       "                 line IDENTITY:HEXKEY, mode 0600, e.g.\n"
	       "                 (umask 077; echo \"upager:$(openssl rand -hex "
	       "32)\" >FILE);\n"
	       "                 clients give the same file (remote:...,psk=FILE)\n"
	       "  --plaintext    no TLS: anyone who can connect reads every "
	       "export\n"
	       "                 (loopback tests and benchmarks)\n"
	       "  --listen ADDR  tcp:HOST:PORT (PORT 0: any free port) or\n"
	       "                 unix:PATH; default tcp:127.0.0.1:7070\n"
	       "  --rate BYTES   limit each background stream to BYTES a second\n"
	       "                 (K/M/G suffixes); urgent answers are not limited\n"
	       "  --stream-cpu N  send the background streams from CPU N only,\n"
	       "                 leaving the others to urgent answers (few CPUs\n"
	       "                 shared with the client: give it ,stream_cpu=N)\n"
	       "  --json         statistics at exit as one JSON object\n"
	       "  NAME=SPEC      export the store SPEC as NAME, e.g.\n"
	       "                 img=file:/var/tmp/img; clients map\n"
	       "                 remote:HOST:PORT/NAME,psk=FILE\n\n"
	       "stores:\n");
	upager_store_foreach(list_store, NULL);
	return 0;
}

static void log_line(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "upager serve: %s\n", msg);
}

/* Split and check NAME=SPEC; 0 or the exit code (a message printed). */
static int parse_export(const char *arg, struct export_arg *e,
			const struct export_arg *prev, int nprev)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;

	if (!eq)
		return cli_usage_error("serve", "export '%s' is not NAME=SPEC",
				       arg);
	if (!n || n > 255 || memchr(arg, '/', n) || memchr(arg, ',', n))
		return cli_usage_error("serve",
				       "export name in '%s' must be 1 to 255 "
				       "bytes without '/' or ','",
				       arg);
	e->name = strndup(arg, n);
	e->spec = eq + 1;
	if (!e->name)
		return cli_error("serve", "out of memory");
	for (int i = 0; i < nprev; i++)
		if (!strcmp(prev[i].name, e->name))
			return cli_usage_error("serve",
					       "export name '%s' given twice",
					       e->name);
	return 0;
}

/* Open the store of @e; 0 or the exit code (a message printed). */
static int open_export(struct export_arg *e)
{
	const char *colon = strchr(e->spec, ':');
	size_t klen = colon ? (size_t)(colon - e->spec) : strlen(e->spec);
	char kind[64];
	int err;

	snprintf(kind, sizeof(kind), "%.*s", (int)klen, e->spec);
	if (!upager_store_find(kind))
		return cli_usage_error("serve",
				       "export '%s': no store kind '%s' (see "
				       "--help)",
				       e->name, kind);
	e->store = upager_store_open(e->spec, &err);
	if (!e->store && err == -EINVAL)
		return cli_usage_error("serve", "export '%s': bad spec '%s'",
				       e->name, e->spec);
	if (!e->store)
		return cli_error("serve", "export '%s': %s: %s", e->name,
				 e->spec, strerror(-err));
	return 0;
}

static void report(bool json, const char *addr, struct export_arg *ex,
		   int nex, const struct upager_server_stats *st)
{
	struct json j;

	if (!json) {
		printf("clients %" PRIu64 ", sessions %" PRIu64
		       "; pages streamed %" PRIu64 ", urgent %" PRIu64
		       " (requests %" PRIu64 "), zero %" PRIu64
		       "; %.1f MiB sent; protocol errors %" PRIu64
		       ", refused by TLS %" PRIu64 "\n",
		       st->clients, st->sessions, st->pages_streamed,
		       st->pages_urgent, st->requests, st->pages_zero,
		       (double)st->bytes_sent / (1 << 20), st->protocol_errors,
		       st->tls_refused);
		return;
	}
	json_begin(&j, stdout);
	json_str(&j, "address", addr);
	json_arr_open(&j, "exports");
	for (int i = 0; i < nex; i++) {
		json_obj_open(&j, NULL);
		json_str(&j, "name", ex[i].name);
		json_str(&j, "spec", ex[i].spec);
		json_u64(&j, "pages", ex[i].store->npages);
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_obj_open(&j, "stats");
	json_u64(&j, "clients", st->clients);
	json_u64(&j, "sessions", st->sessions);
	json_u64(&j, "pages_streamed", st->pages_streamed);
	json_u64(&j, "pages_urgent", st->pages_urgent);
	json_u64(&j, "pages_zero", st->pages_zero);
	json_u64(&j, "requests", st->requests);
	json_u64(&j, "bytes_sent", st->bytes_sent);
	json_u64(&j, "protocol_errors", st->protocol_errors);
	json_u64(&j, "tls_refused", st->tls_refused);
	json_obj_close(&j);
	json_end(&j);
}

static int serve(const char *listen, const char *psk, uint64_t rate,
		 const cpu_set_t *cpus, bool json, struct export_arg *ex,
		 int nex)
{
	struct upager_server_params sp = { .size = sizeof(sp),
					   .listen = listen,
					   .stream_rate = rate,
					   .log = log_line,
					   .stream_cpus = cpus };
	struct upager_server_stats st = { .size = sizeof(st) };
	struct upager_server *srv;
	char addr[256];
	sigset_t set;
	int err, sig;

	srv = upager_server_new(&sp, &err);
	if (!srv && err == -EINVAL)
		return cli_usage_error("serve", "listen address '%s' is "
				       "malformed", listen);
	if (!srv)
		return cli_error("serve", "listen on %s: %s", listen,
				 strerror(-err));
	err = psk ? upager_server_tls_psk(srv, psk)
		  : upager_server_plaintext(srv);
	if (err < 0) {
		upager_server_free(srv); /* the log said what was wrong */
		return cli_error("serve", "key file %s: %s", psk,
				 strerror(-err));
	}
	for (int i = 0; i < nex; i++) {
		err = upager_server_export(srv, ex[i].name, ex[i].store);
		if (err < 0) {
			upager_server_free(srv);
			return cli_usage_error(
				"serve", "export '%s': %s", ex[i].name,
				err == -EINVAL ? "the store has no size (give "
						 "one, e.g. zero:1G)"
					       : strerror(-err));
		}
	}
	/* Blocked in every thread the server starts, taken below. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	err = upager_server_start(srv);
	if (err < 0) {
		upager_server_free(srv);
		return cli_error("serve", "start: %s", strerror(-err));
	}
	upager_server_address(srv, addr, sizeof(addr));
	printf("%s\n", addr);
	fflush(stdout);
	while (sigwait(&set, &sig))
		;
	upager_server_stats(srv, &st);
	upager_server_free(srv);
	report(json, addr, ex, nex, &st);
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'r' },
		{ "stream-cpu", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "psk-file", required_argument, NULL, 'k' },
		{ "plaintext", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *listen = "tcp:127.0.0.1:7070", *psk = NULL;
	bool plaintext = false;
	char why[256];
	struct export_arg ex[MAX_EXPORTS] = { 0 };
	uint64_t rate = 0;
	cpu_set_t cpus;
	unsigned int cpu;
	bool json = false, pin = false;
	int c, nex = 0, ret = 0;

	while ((c = getopt_long(argc, argv, "l:r:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'r':
			if (!cli_parse_u64("serve", "--rate", optarg, 1,
					   UINT64_MAX, true, &rate))
				return 2;
			break;
		case 'c':
			if (!cli_parse_cpu("serve", "--stream-cpu", optarg,
					   &cpu))
				return 2;
			CPU_ZERO(&cpus);
			CPU_SET(cpu, &cpus);
			pin = true;
			break;
		case 'j':
			json = true;
			break;
		case 'k':
			psk = optarg;
			break;
		case 'P':
			plaintext = true;
			break;
		case 'h':
			return usage();
		default:
			return cli_usage_error("serve", "unknown option");
		}
	}
	if (!psk && !plaintext)
		return cli_usage_error("serve", "no key: give --psk-file FILE "
				       "(TLS with a pre-shared key, see --help) "
				       "or --plaintext (pages in clear, for "
				       "loopback tests)");
	if (psk && plaintext)
		return cli_usage_error("serve", "--psk-file and --plaintext "
				       "exclude each other");
	if (psk && upager_psk_check(psk, why, sizeof(why)) < 0)
		return cli_error("serve", "key file %s: %s", psk, why);
	if (optind == argc)
		return cli_usage_error("serve", "nothing to export: give "
				       "NAME=SPEC");
	if (argc - optind > MAX_EXPORTS)
		return cli_usage_error("serve", "more than %d exports",
				       MAX_EXPORTS);
	for (; optind < argc && !ret; optind++, nex++) {
		ret = parse_export(argv[optind], &ex[nex], ex, nex);
		if (!ret)
			ret = open_export(&ex[nex]);
	}
	if (!ret)
		ret = serve(listen, psk, rate, pin ? &cpus : NULL, json, ex,
			    nex);
	for (int i = 0; i < nex; i++) {
		upager_store_close(ex[i].store);
		free(ex[i].name);
	}
	return ret;
}

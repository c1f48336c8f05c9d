// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upagerd: the upager manager as a daemon (<upager/manager.h>).  Options
 * come from the command line and from --config files, both through
 * apply(), so a config file says exactly what options say.  SIGTERM and
 * SIGINT are blocked before any thread starts and taken with sigwait():
 * shutdown runs in the main thread, never inside a signal handler.
 * SIGUSR1 prints the per-client statistics and goes on.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <upager/manager.h>

#include "cli.h"
#include "stats_json.h"

#define MAX_EXPORTS 64
#define MAX_SOCKETS 16
#define MAX_IDS 64
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct exp {
	char *name;
	char *spec;
	struct upager_store *store;
	const char *record_dir;
	const char *replay_path;
	struct upager_trace *replay;
	uid_t uids[MAX_IDS];
	gid_t gids[MAX_IDS];
	unsigned int nuids, ngids;
};

struct sock {
	struct upager_listen_params lp;
	char *path;
	char *export_name;
};

struct opts {
	struct exp ex[MAX_EXPORTS];
	int nex;
	struct sock so[MAX_SOCKETS];
	int nso;
	char *bare_spec; /* a SPEC without NAME= (Firecracker's file) */
	/* --record and --replay NAME:PATH, for resolve() (NAME may be the
	 * bare spec's 'fc', named only there). */
	struct {
		char *arg;
		bool replay;
	} ws[MAX_EXPORTS * 2];
	int nws;
	uint64_t threads, handshake_ms;
	const char *stats_name;
	bool json;
	int config_depth;
};

static int usage(void)
{
	printf("usage: upagerd [OPTIONS] NAME=SPEC...\n"
	       "       upagerd --firecracker SOCKET STORE-SPEC [OPTIONS]\n\n"
	       "Serve other processes' memory from page stores: each client\n"
	       "hands over its userfaultfd on a unix socket, and its faults are\n"
	       "filled from the exports named here (never from a path a client\n"
	       "names).  SIGTERM or SIGINT: every client is let go (what it\n"
	       "never had reads as SIGBUS, never zeros) and upagerd exits 0.\n"
	       "SIGUSR1: print each client's statistics.\n\n"
	       "  --listen PATH[,mode=OCTAL][,owner=USER[:GROUP]]\n"
	       "        a socket for upager's attach protocol (docs/ATTACH.md;\n"
	       "        clients call upager_attach())\n"
	       "  --firecracker PATH[,mode=OCTAL][,owner=USER[:GROUP]][,export=NAME]\n"
	       "        a socket for Firecracker's snapshot restore\n"
	       "        (mem_backend Uffd), served from export NAME (default:\n"
	       "        the STORE-SPEC given without a name, else the only\n"
	       "        export); balloon pages read zeros after inflation\n"
	       "  --allow NAME:WHO[,WHO...]\n"
	       "        who may attach to export NAME, WHO being uid:N, gid:N,\n"
	       "        user:LOGIN or group:NAME (SO_PEERCRED); default: the\n"
	       "        user upagerd runs as\n"
	       "  --record NAME:DIR\n"
	       "        record each client's working set on export NAME (the\n"
	       "        pages it touched first, in order) to\n"
	       "        DIR/NAME.PID.ID.trace when it goes; read-ahead is off\n"
	       "        for it (`upager trace` shows a trace)\n"
	       "  --replay NAME:TRACE\n"
	       "        prefetch the working set in TRACE into each client of\n"
	       "        export NAME, in the background from its attach on,\n"
	       "        faults first\n"
	       "  --threads N            engine workers (default: one per CPU,\n"
	       "                         at most 4)\n"
	       "  --stats-name NAME      statistics for `upager stat`\n"
	       "                         (default upagerd)\n"
	       "  --handshake-timeout MS refuse a client whose handshake is not\n"
	       "                         whole after MS (default 5000)\n"
	       "  --config FILE          more options, one a line, without the\n"
	       "                         dashes (\"listen /run/u.sock,mode=0660\",\n"
	       "                         \"allow vm:uid:1000\", \"vm=file:/img\");\n"
	       "                         # starts a comment\n"
	       "  --json                 log records and the final statistics as\n"
	       "                         JSON objects, one a line\n"
	       "  NAME=SPEC              export the store SPEC as NAME, e.g.\n"
	       "                         vm=file:/snap/mem\n\n"
	       "Socket modes default to 0600 (owner only).  Logs go to stderr,\n"
	       "statistics at exit to stdout.\n");
	return 0;
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cli_verror(2, "", fmt, ap);
	va_end(ap);
	return r;
}

static int parse_owner(const char *s, uid_t *uid, gid_t *gid)
{
	char user[64], *colon;
	struct passwd *pw;
	struct group *gr;
	char *end;

	snprintf(user, sizeof(user), "%s", s);
	colon = strchr(user, ':');
	if (colon)
		*colon++ = 0;
	if (*user) {
		unsigned long v = strtoul(user, &end, 10);

		if (!*end) {
			*uid = (uid_t)v;
		} else if ((pw = getpwnam(user))) {
			*uid = pw->pw_uid;
		} else {
			return bad("owner '%s': no such user", user);
		}
	}
	if (colon && *colon) {
		unsigned long v = strtoul(colon, &end, 10);

		if (!*end) {
			*gid = (gid_t)v;
		} else if ((gr = getgrnam(colon))) {
			*gid = gr->gr_gid;
		} else {
			return bad("owner '%s': no such group", colon);
		}
	}
	return 0;
}

/* PATH[,mode=OCTAL][,owner=U[:G]][,export=NAME] */
static int parse_socket(struct opts *o, const char *arg,
			enum upager_listen_mode mode)
{
	struct sock *so;
	char *opt, *save = NULL;

	if (o->nso == MAX_SOCKETS)
		return bad("more than %d sockets", MAX_SOCKETS);
	so = &o->so[o->nso++];
	so->lp = (struct upager_listen_params){ .size = sizeof(so->lp),
						.mode = mode,
						.owner = (uid_t)-1,
						.group = (gid_t)-1 };
	so->path = strdup(arg);
	if (!so->path)
		return cli_error("", "out of memory");
	strtok_r(so->path, ",", &save);
	if (!*so->path)
		return bad("socket '%s': no path", arg);
	while ((opt = strtok_r(NULL, ",", &save))) {
		char *end;

		if (!strncmp(opt, "mode=", 5)) {
			unsigned long v = strtoul(opt + 5, &end, 8);

			if (!opt[5] || *end || v > 07777)
				return bad("socket '%s': mode '%s' is not octal "
					   "permissions",
					   arg, opt + 5);
			so->lp.perm = (mode_t)v;
		} else if (!strncmp(opt, "owner=", 6)) {
			if (parse_owner(opt + 6, &so->lp.owner, &so->lp.group))
				return 2;
		} else if (!strncmp(opt, "export=", 7) &&
			   mode == UPAGER_LISTEN_FIRECRACKER) {
			so->export_name = opt + 7;
		} else {
			return bad("socket '%s': unknown option '%s'", arg, opt);
		}
	}
	so->lp.path = so->path;
	return 0;
}

static struct exp *find(struct opts *o, const char *name, size_t len)
{
	for (int i = 0; i < o->nex; i++)
		if (strlen(o->ex[i].name) == len &&
		    !strncmp(o->ex[i].name, name, len))
			return &o->ex[i];
	return NULL;
}

/* NAME:WHO[,WHO...]; the export must be given before. */
static int parse_allow(struct opts *o, const char *arg)
{
	const char *colon = strchr(arg, ':');
	char *list, *who, *save = NULL;
	struct exp *e;
	int ret = 0;

	if (!colon)
		return bad("--allow '%s' is not NAME:WHO", arg);
	e = find(o, arg, (size_t)(colon - arg));
	if (!e)
		return bad("--allow '%s': no export '%.*s' (give NAME=SPEC "
			   "first)",
			   arg, (int)(colon - arg), arg);
	list = strdup(colon + 1);
	if (!list)
		return cli_error("", "out of memory");
	for (who = strtok_r(list, ",", &save); who && !ret;
	     who = strtok_r(NULL, ",", &save)) {
		char *v = strchr(who, ':'), *end;
		unsigned long id = 0;
		struct passwd *pw;
		struct group *gr;

		if (!v) {
			ret = bad("--allow '%s': '%s' is not uid:N, gid:N, "
				  "user:LOGIN or group:NAME",
				  arg, who);
			break;
		}
		*v++ = 0;
		if (!strcmp(who, "uid") || !strcmp(who, "gid")) {
			id = strtoul(v, &end, 10);
			if (!*v || *end) {
				ret = bad("--allow '%s': '%s' is not a number",
					  arg, v);
				break;
			}
		} else if (!strcmp(who, "user") && (pw = getpwnam(v))) {
			id = pw->pw_uid;
		} else if (!strcmp(who, "group") && (gr = getgrnam(v))) {
			id = gr->gr_gid;
		} else {
			ret = bad("--allow '%s': no %s '%s'", arg, who, v);
			break;
		}
		if (e->nuids == MAX_IDS || e->ngids == MAX_IDS)
			ret = bad("--allow: more than %d ids", MAX_IDS);
		else if (!strcmp(who, "uid") || !strcmp(who, "user"))
			e->uids[e->nuids++] = (uid_t)id;
		else
			e->gids[e->ngids++] = (gid_t)id;
	}
	free(list);
	return ret;
}

/* NAME=SPEC, or a bare SPEC (Firecracker's memory file). */
static int parse_export(struct opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;
	struct exp *e;

	/* A name has no '/' or ':': "file:/a=b" is a spec. */
	if (!eq || !n || strcspn(arg, "/:") < n) {
		if (o->bare_spec)
			return bad("two stores without a name: '%s' and '%s' "
				   "(give NAME=SPEC)",
				   o->bare_spec, arg);
		o->bare_spec = strdup(arg);
		return o->bare_spec ? 0 : cli_error("", "out of memory");
	}
	if (o->nex == MAX_EXPORTS)
		return bad("more than %d exports", MAX_EXPORTS);
	if (find(o, arg, n))
		return bad("export name '%.*s' given twice", (int)n, arg);
	e = &o->ex[o->nex++];
	e->name = strndup(arg, n);
	e->spec = strdup(eq + 1);
	if (!e->name || !e->spec)
		return cli_error("", "out of memory");
	return 0;
}

static int read_config(struct opts *o, const char *path);

/* One option, from argv or a config line; 0 or the exit code. */
static int apply(struct opts *o, const char *name, const char *val)
{
	if (!strcmp(name, "listen"))
		return parse_socket(o, val, UPAGER_LISTEN_ATTACH);
	if (!strcmp(name, "firecracker"))
		return parse_socket(o, val, UPAGER_LISTEN_FIRECRACKER);
	if (!strcmp(name, "allow"))
		return parse_allow(o, val);
	if (!strcmp(name, "record") || !strcmp(name, "replay")) {
		if (o->nws == (int)ARRAY_LEN(o->ws))
			return bad("too many --record and --replay");
		o->ws[o->nws].replay = name[2] == 'p';
		o->ws[o->nws].arg = strdup(val);
		return o->ws[o->nws++].arg ? 0 : cli_error("", "out of memory");
	}
	if (!strcmp(name, "threads"))
		return cli_parse_u64("", "--threads", val, 1, 64, false,
				     &o->threads) ? 0 : 2;
	if (!strcmp(name, "handshake-timeout"))
		return cli_parse_u64("", "--handshake-timeout", val, 1,
				     3600000, false, &o->handshake_ms) ? 0 : 2;
	if (!strcmp(name, "stats-name")) {
		o->stats_name = strdup(val);
		return 0;
	}
	if (!strcmp(name, "config"))
		return read_config(o, val);
	return bad("unknown option '%s'", name);
}

static int read_config(struct opts *o, const char *path)
{
	char line[1024];
	int ret = 0, lineno = 0;
	FILE *f;

	if (++o->config_depth > 4)
		return bad("--config '%s': configs include each other", path);
	f = fopen(path, "re");
	if (!f)
		return cli_error("", "--config '%s': %s", path, strerror(errno));
	while (!ret && fgets(line, sizeof(line), f)) {
		char *s = line, *val, *hash = strchr(line, '#');

		lineno++;
		if (hash)
			*hash = 0;
		s[strcspn(s, "\r\n")] = 0;
		s += strspn(s, " \t");
		for (size_t n = strlen(s); n && strchr(" \t", s[n - 1]); n--)
			s[n - 1] = 0;
		if (!*s)
			continue;
		val = s + strcspn(s, " \t");
		if (*val) {
			*val++ = 0;
			val += strspn(val, " \t");
			ret = apply(o, s, val);
		} else if (!strcmp(s, "json")) {
			o->json = true;
		} else {
			ret = parse_export(o, s);
		}
		if (ret)
			fprintf(stderr, "upagerd: in %s, line %d\n", path,
				lineno);
	}
	fclose(f);
	o->config_depth--;
	return ret;
}

/* The export a Firecracker socket serves, once everything is read. */
static int resolve(struct opts *o)
{
	if (o->bare_spec) {
		if (find(o, "fc", 2))
			return bad("a bare STORE-SPEC is exported as 'fc', and "
				   "'fc' is taken");
		if (parse_export(o, "fc=") < 0)
			return 1;
		free(o->ex[o->nex - 1].spec);
		o->ex[o->nex - 1].spec = o->bare_spec;
		o->bare_spec = NULL;
	}
	if (!o->nso)
		return bad("no socket: give --listen PATH or --firecracker PATH");
	if (!o->nex)
		return bad("nothing to export: give NAME=SPEC (or, with "
			   "--firecracker, STORE-SPEC)");
	for (int i = 0; i < o->nso; i++) {
		struct sock *so = &o->so[i];

		if (so->lp.mode != UPAGER_LISTEN_FIRECRACKER)
			continue;
		if (!so->export_name) {
			if (find(o, "fc", 2))
				so->export_name = "fc";
			else if (o->nex == 1)
				so->export_name = o->ex[0].name;
			else
				return bad("--firecracker %s: which export? "
					   "(add ,export=NAME)",
					   so->path);
		}
		if (!find(o, so->export_name, strlen(so->export_name)))
			return bad("--firecracker %s: no export '%s'", so->path,
				   so->export_name);
		so->lp.export_name = so->export_name;
	}
	for (int i = 0; i < o->nws; i++) {
		const char *what = o->ws[i].replay ? "--replay" : "--record";
		char *arg = o->ws[i].arg, *colon = strchr(arg, ':');
		struct exp *e;

		if (!colon || colon == arg || !colon[1])
			return bad("%s '%s' is not NAME:%s", what, arg,
				   o->ws[i].replay ? "TRACE" : "DIR");
		e = find(o, arg, (size_t)(colon - arg));
		if (!e)
			return bad("%s '%s': no export '%.*s'", what, arg,
				   (int)(colon - arg), arg);
		if (o->ws[i].replay ? e->replay_path != NULL
				    : e->record_dir != NULL)
			return bad("%s given twice for export '%s'", what,
				   e->name);
		if (o->ws[i].replay)
			e->replay_path = colon + 1;
		else
			e->record_dir = colon + 1;
		if (e->replay_path && e->record_dir)
			return bad("export '%s': --record and --replay at once "
				   "(a recording would see only what the replay "
				   "missed)",
				   e->name);
	}
	return 0;
}

/* The replay traces, read and checked; the record directories, there. */
static int open_working_sets(struct opts *o)
{
	for (int i = 0; i < o->nex; i++) {
		struct exp *e = &o->ex[i];
		char why[256];
		struct stat st;
		int err;

		if (e->record_dir &&
		    (stat(e->record_dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
		     access(e->record_dir, W_OK | X_OK) < 0))
			return bad("--record %s:%s: not a directory upagerd can "
				   "write to",
				   e->name, e->record_dir);
		if (!e->replay_path)
			continue;
		e->replay = upager_trace_read(e->replay_path, why, sizeof(why),
					      &err);
		if (!e->replay)
			return bad("--replay %s:%s: %s", e->name, e->replay_path,
				   why);
		if (e->replay->export_pages != e->store->npages)
			return bad("--replay %s:%s: recorded on an export of "
				   "%" PRIu64 " pages, '%s' has %" PRIu64,
				   e->name, e->replay_path,
				   e->replay->export_pages, e->name,
				   e->store->npages);
	}
	return 0;
}

static int open_exports(struct opts *o)
{
	for (int i = 0; i < o->nex; i++) {
		struct exp *e = &o->ex[i];
		int err;

		e->store = upager_store_open(e->spec, &err);
		if (!e->store && err == -EINVAL)
			return bad("export '%s': bad spec '%s'", e->name,
				   e->spec);
		if (!e->store && err == -ENOENT && !strchr(e->spec, ':'))
			return bad("export '%s': no store kind '%s'", e->name,
				   e->spec);
		if (!e->store)
			return cli_error("", "export '%s': %s: %s", e->name,
					 e->spec, strerror(-err));
	}
	return 0;
}

static const char *const kinds[] = {
	[UPAGER_EV_LISTEN] = "listen",	   [UPAGER_EV_ATTACHED] = "attached",
	[UPAGER_EV_REFUSED] = "refused",   [UPAGER_EV_GONE] = "gone",
	[UPAGER_EV_RELEASED] = "released", [UPAGER_EV_NOTE] = "note",
};

/* A log record: one line on stderr, text or JSON. */
static void log_event(void *arg, const struct upager_manager_event *ev)
{
	const struct opts *o = arg;
	struct json j;

	if (o->json) {
		json_begin_line(&j, stderr);
		json_u64(&j, "time", (uint64_t)time(NULL));
		json_str(&j, "event", kinds[ev->kind]);
		if (ev->client) {
			json_u64(&j, "client", ev->client);
			json_i64(&j, "pid", ev->pid);
			json_u64(&j, "uid", ev->uid);
			json_u64(&j, "gid", ev->gid);
			json_str(&j, "protocol", ev->protocol);
			json_str(&j, "socket", ev->socket);
		}
		if (ev->export_name)
			json_str(&j, "export", ev->export_name);
		if (ev->kind == UPAGER_EV_ATTACHED)
			json_u64(&j, "regions", ev->regions);
		if (ev->field)
			json_str(&j, "field", ev->field);
		if (ev->err)
			json_i64(&j, "errno", ev->err);
		json_str(&j, "text", ev->text);
		json_end(&j);
		return;
	}
	if (!ev->client) {
		fprintf(stderr, "upagerd: %s\n", ev->text);
		return;
	}
	fprintf(stderr,
		"upagerd: client %" PRIu64 " (pid %d uid %u gid %u, %s on %s) "
		"%s%s%s: %s\n",
		ev->client, (int)ev->pid, (unsigned int)ev->uid,
		(unsigned int)ev->gid, ev->protocol, ev->socket,
		kinds[ev->kind], ev->field ? ", " : "",
		ev->field ? ev->field : "", ev->text);
}

static int print_client(const struct upager_manager_client *c, void *arg)
{
	struct opts *o = arg;
	struct json j;

	if (o->json) {
		json_begin_line(&j, stdout);
		json_str(&j, "record", "client");
		json_u64(&j, "client", c->id);
		json_i64(&j, "pid", c->pid);
		json_u64(&j, "uid", c->uid);
		json_str(&j, "protocol", c->protocol);
		json_str(&j, "export", c->export_name);
		json_u64(&j, "regions", c->regions);
		json_stats(&j, "stats", &c->stats);
		json_end(&j);
	} else {
		printf("client %" PRIu64 " pid %d uid %u %s export '%s': %u "
		       "regions, faults %" PRIu64 ", pages %" PRIu64
		       ", p99 %.0f us\n",
		       c->id, (int)c->pid, (unsigned int)c->uid, c->protocol,
		       c->export_name, c->regions, c->stats.faults,
		       c->stats.pages_filled,
		       upager_stats_percentile(&c->stats, 99));
	}
	return 0;
}

static void print_stats(struct opts *o, struct upager_manager *m)
{
	struct upager_manager_stats st = { .size = sizeof(st) };
	struct json j;

	upager_manager_stats(m, &st);
	if (o->json) {
		json_begin_line(&j, stdout);
		json_str(&j, "record", "manager");
		json_u64(&j, "connections", st.connections);
		json_u64(&j, "attached", st.attached);
		json_u64(&j, "refused", st.refused);
		json_u64(&j, "gone", st.gone);
		json_u64(&j, "clients", st.clients);
		json_u64(&j, "regions", st.regions);
		json_stats(&j, "total", &st.total);
		json_end(&j);
	} else {
		printf("connections %" PRIu64 ", attached %" PRIu64
		       ", refused %" PRIu64 ", gone %" PRIu64
		       "; clients now %" PRIu64 " (%" PRIu64
		       " regions); faults %" PRIu64 ", pages %" PRIu64 "\n",
		       st.connections, st.attached, st.refused, st.gone,
		       st.clients, st.regions, st.total.faults,
		       st.total.pages_filled);
	}
	fflush(stdout);
}

static int run(struct opts *o)
{
	struct upager_manager_params mp = { .size = sizeof(mp),
					    .threads = (unsigned int)o->threads,
					    .stats_name = o->stats_name,
					    .log = log_event,
					    .log_arg = o,
					    .handshake_ms =
						    (unsigned int)o->handshake_ms };
	struct upager_manager *m;
	sigset_t set;
	int err, sig;

	m = upager_manager_new(&mp, &err);
	if (!m)
		return cli_error("", "%s", err == -EEXIST
					   ? "the statistics name is taken "
					     "(--stats-name)"
					   : strerror(-err));
	for (int i = 0; i < o->nex; i++) {
		struct exp *e = &o->ex[i];
		struct upager_export_params ep = { .size = sizeof(ep),
						   .uids = e->uids,
						   .nuids = e->nuids,
						   .gids = e->gids,
						   .ngids = e->ngids,
						   .record_dir = e->record_dir,
						   .replay = e->replay };

		err = upager_manager_export(m, e->name, e->store, &ep);
		if (err < 0) {
			upager_manager_free(m);
			return bad("export '%s': %s", e->name,
				   err == -EINVAL ? "a name of [A-Za-z0-9._-] "
						    "and a store with a size"
						  : strerror(-err));
		}
	}
	for (int i = 0; i < o->nso; i++) {
		err = upager_manager_listen(m, &o->so[i].lp);
		if (err < 0) {
			upager_manager_free(m);
			return cli_error("", "socket %s: %s", o->so[i].path,
					 strerror(-err));
		}
	}
	/* Blocked in every thread the manager starts, taken below. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	err = upager_manager_start(m);
	if (err < 0) {
		upager_manager_free(m);
		return cli_error("", "start: %s", strerror(-err));
	}
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig != SIGUSR1)
			break;
		upager_manager_clients(m, print_client, o);
		print_stats(o, m);
	}
	upager_manager_stop(m);
	print_stats(o, m);
	upager_manager_free(m);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "firecracker", required_argument, NULL, 'f' },
		{ "allow", required_argument, NULL, 'a' },
		{ "record", required_argument, NULL, 'r' },
		{ "replay", required_argument, NULL, 'R' },
		{ "threads", required_argument, NULL, 't' },
		{ "stats-name", required_argument, NULL, 's' },
		{ "handshake-timeout", required_argument, NULL, 'T' },
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static struct opts o;
	int c, idx, ret = 0;

	cli_set_program("upagerd");
	/* A log reader that went away must not take the daemon with it. */
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "h", lopts, &idx)) != -1) {
		if (c == 'h')
			return usage();
		if (c == 'j') {
			o.json = true;
			continue;
		}
		if (c == '?')
			return bad("unknown option");
		/* --allow names an export: it waits for the NAME=SPECs. */
		if (c == 'a')
			continue;
		ret = apply(&o, lopts[idx].name, optarg);
		if (ret)
			return ret;
	}
	for (int i = optind; i < argc && !ret; i++)
		ret = parse_export(&o, argv[i]);
	optind = 0;
	while (!ret && (c = getopt_long(argc, argv, "h", lopts, &idx)) != -1)
		if (c == 'a')
			ret = apply(&o, "allow", optarg);
	if (!ret)
		ret = resolve(&o);
	if (!ret)
		ret = open_exports(&o);
	if (!ret)
		ret = open_working_sets(&o);
	if (!ret)
		ret = run(&o);
	for (int i = 0; i < o.nex; i++) {
		if (o.ex[i].store)
			upager_store_close(o.ex[i].store);
		upager_trace_free(o.ex[i].replay);
	}
	return ret;
}

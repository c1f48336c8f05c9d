// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * A migration's background stream kept to one CPU: the server's
 * stream_cpus and the remote: store's stream_cpu= option run the
 * stream's sending and receiving threads (upager-srv-strm,
 * upager-rmt-strm) on that CPU only, and leave the urgent channel's
 * threads where they were (every CPU of the process).  A CPU the process
 * may not run on, or no number, is refused with -EINVAL by both.  Needs
 * two CPUs (else nothing tells a pinned thread from the others).
 */
#include "tremote.h"

#define IMG_PAGES 4096u

/* The CPUs thread @name of this process may run on, as /proc says. */
static void cpus_of(const char *name, char *out, size_t len)
{
	char path[64], line[256];
	pid_t tid;
	FILE *f;

	for (int ms = 0; t_threads_named(name, &tid) != 1; ms++) {
		CHECK(ms < 5000, "no thread %s", name);
		usleep(1000);
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	CHECK(f, "%s: %s", path, strerror(errno));
	out[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cpus_allowed_list:", 18))
			snprintf(out, len, "%s", line + 18 + strspn(line + 18,
								    " \t"));
	fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

static void refused(unsigned int port, const char *opt)
{
	struct upager_store *s;
	char spec[512];
	int err = 0;

	s = upager_store_open(t_spec(spec, sizeof(spec), port, opt), &err);
	CHECK(!s && err == -EINVAL, "%s: %s, not EINVAL", spec,
	      s ? "opened" : strerror(-err));
}

int main(int argc, char **argv)
{
	struct upager_server_params sp = { .size = sizeof(sp),
					   .stream_rate = 64 * PG };
	struct upager_store *img, *rs;
	struct upager_region *rr;
	struct upager_handler *rh;
	struct upager_server *srv;
	char spec[512], tail[64], want[16], all[256], got[256];
	cpu_set_t allowed, one;
	int cpu = -1, err;
	char *p;

	t_security(argc, argv);
	CHECK(!sched_getaffinity(0, sizeof(allowed), &allowed),
	      "sched_getaffinity");
	if (CPU_COUNT(&allowed) < 2)
		SKIP("one CPU: a pinned thread looks like any other");
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &allowed))
			cpu = c; /* the last: not where main() runs, likely */
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	snprintf(want, sizeof(want), "%d", cpu);
	cpus_of("stream_cpu", all, sizeof(all));

	img = upager_store_mem_new(IMG_PAGES * PG, &err);
	CHECK(img, "mem store: %s", strerror(-err));
	for (size_t i = 0; i < IMG_PAGES; i++)
		t_fill((char *)upager_store_mem_data(img) + i * PG, PG, i);
	/* The first 1 MiB run, then 64 pages a second: it stays up. */
	sp.stream_cpus = &one;
	srv = t_serve_params(img, 0, &sp);
	rh = t_handler();
	snprintf(tail, sizeof(tail), "/img,stream_cpu=%d", cpu);
	p = t_map_remote(rh, t_spec(spec, sizeof(spec),
				    upager_server_port(srv), tail),
			 &rs, &rr);
	CHECK(t_verify(p + 5 * PG, PG, 5), "page 5");

	cpus_of("upager-srv-strm", got, sizeof(got));
	CHECK(!strcmp(got, want), "the server's stream on CPUs %s, not %s",
	      got, want);
	cpus_of("upager-rmt-strm", got, sizeof(got));
	CHECK(!strcmp(got, want), "the client's stream on CPUs %s, not %s",
	      got, want);
	cpus_of("upager-srv-urg", got, sizeof(got));
	CHECK(!strcmp(got, all), "the server's urgent thread on CPUs %s, "
	      "not the process's %s", got, all);
	cpus_of("upager-rmt-urg", got, sizeof(got));
	CHECK(!strcmp(got, all), "the client's urgent thread on CPUs %s, "
	      "not the process's %s", got, all);

	refused(upager_server_port(srv), "/img,stream_cpu=1023");
	refused(upager_server_port(srv), "/img,stream_cpu=-1");
	refused(upager_server_port(srv), "/img,stream_cpu=x");
	refused(upager_server_port(srv), "/img,stream_cpu=");
	CPU_ZERO(&one);
	CPU_SET(CPU_SETSIZE - 1, &one);
	sp.listen = "tcp:127.0.0.1:0";
	CHECK(!upager_server_new(&sp, &err) && err == -EINVAL,
	      "a server streaming from CPU %d: %s", CPU_SETSIZE - 1,
	      strerror(-err));

	t_remote_done(rr, rh, rs, srv);
	upager_store_close(img);
	return t_end();
}

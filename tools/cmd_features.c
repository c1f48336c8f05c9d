// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager features: what userfaultfd offers this process on this kernel.
 * Everything is probed at run time (upager_ll_probe()); nothing here is
 * decided by the headers the tool was built with.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <upager/ll.h>

#include "cli.h"
#include "cmds.h"
#include "sysfs.h"

struct sysinfo_uffd {
	long unprivileged_sysctl; /* vm.unprivileged_userfaultfd, -1 unknown */
	bool cap_sys_ptrace;
	bool dev_node;	    /* /dev/userfaultfd exists */
	bool dev_access;    /* and this process may open it */
	long huge_total, huge_free, huge_kb;
	char thp[32];	    /* [always] / madvise / never */
};

static bool has_cap_sys_ptrace(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	bool cap = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long eff;

		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			cap = eff & (1ull << 19); /* CAP_SYS_PTRACE */
	}
	fclose(f);
	return cap;
}

static void meminfo_huge(struct sysinfo_uffd *s)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];

	s->huge_total = s->huge_free = s->huge_kb = -1;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "HugePages_Total: %ld", &s->huge_total);
		sscanf(line, "HugePages_Free: %ld", &s->huge_free);
		sscanf(line, "Hugepagesize: %ld", &s->huge_kb);
	}
	fclose(f);
}

static void thp_mode(char *out, size_t len)
{
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	char buf[128], *a, *b;

	snprintf(out, len, "unknown");
	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f) && (a = strchr(buf, '[')) &&
	    (b = strchr(a, ']'))) {
		*b = '\0';
		snprintf(out, len, "%s", a + 1);
	}
	fclose(f);
}

static void gather(struct sysinfo_uffd *s)
{
	memset(s, 0, sizeof(*s));
	s->unprivileged_sysctl = sys_read_long("/proc/sys/vm/unprivileged_userfaultfd");
	s->cap_sys_ptrace = has_cap_sys_ptrace();
	s->dev_node = access("/dev/userfaultfd", F_OK) == 0;
	s->dev_access = access("/dev/userfaultfd", R_OK | W_OK) == 0;
	meminfo_huge(s);
	thp_mode(s->thp, sizeof(s->thp));
}

static const char *path_name(enum upager_ll_path p)
{
	switch (p) {
	case UPAGER_LL_PATH_SYSCALL:
		return "syscall";
	case UPAGER_LL_PATH_SYSCALL_USER_ONLY:
		return "syscall-user-mode-only";
	case UPAGER_LL_PATH_DEVICE:
		return "/dev/userfaultfd";
	}
	return "none";
}

static void ioctl_names(uint64_t ioctls, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned int nr = 0; nr < 64 && n < len; nr++) {
		const char *name = upager_ll_ioctl_name(nr);

		if ((ioctls & (1ull << nr)) && name)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      n ? " " : "", name);
	}
}

/* What this process may do with feature bit @i. */
static const char *feature_status(const struct upager_ll_probe *p,
				  unsigned int i)
{
	uint64_t bit = 1ull << i;

	if (p->available & bit)
		return "available";
	if (p->refused & bit)
		return "refused";
	return p->features & bit ? "failed" : "absent";
}

static void print_features(const struct upager_ll_probe *p)
{
	printf("features:\n");
	for (unsigned int i = 0; i < 64; i++) {
		uint64_t bit = 1ull << i;
		const char *name = upager_ll_feature_name(bit);
		const char *priv = upager_ll_feature_privilege(bit);
		char unknown[16];

		if (!name && !(p->features & bit))
			continue;
		if (!name) {
			snprintf(unknown, sizeof(unknown), "bit%u", i);
			name = unknown;
		}
		printf("  %-20s ", name);
		if (p->available & bit)
			printf("yes%s%s%s", priv ? " (needs " : "",
			       priv ? priv : "", priv ? ")" : "");
		else if (p->refused & bit)
			printf("no: needs %s", priv ? priv : "a privilege");
		else if (p->features & bit)
			printf("no: the kernel refused it");
		else
			printf("no: not in this kernel%s%s%s",
			       priv ? " (needs " : "", priv ? priv : "",
			       priv ? ")" : "");
		if (!upager_ll_feature_name(bit))
			printf(" (unknown to this upager)");
		putchar('\n');
	}
}

static void print_text(const struct upager_ll_probe *p,
		       const struct sysinfo_uffd *s)
{
	char buf[512];

	printf("userfaultfd: opened via %s\n", path_name(p->path));
	print_features(p);
	ioctl_names(p->ioctls, buf, sizeof(buf));
	printf("api ioctls: %s\n", buf);
	printf("memory types (register modes; range ioctls):\n");
	for (int t = 0; t < UPAGER_LL_MEM_COUNT; t++) {
		uint64_t m = p->register_modes[t];

		ioctl_names(p->range_ioctls[t], buf, sizeof(buf));
		printf("  %-8s %-20s %s\n", upager_ll_memtype_name(t),
		       !m ? "(not registrable)"
		       : (m & UFFDIO_REGISTER_MODE_MINOR) ? "missing, wp, minor"
		       : (m & UFFDIO_REGISTER_MODE_WP) ? "missing, wp"
						       : "missing",
		       m ? buf : "-");
	}
	printf("privileges: euid %u, CAP_SYS_PTRACE %s, "
	       "vm.unprivileged_userfaultfd %ld, /dev/userfaultfd %s\n",
	       (unsigned int)geteuid(), s->cap_sys_ptrace ? "yes" : "no",
	       s->unprivileged_sysctl,
	       !s->dev_node ? "absent" : s->dev_access ? "usable" : "no access");
	printf("hugetlb: %ld kB pages, %ld reserved, %ld free%s\n", s->huge_kb,
	       s->huge_total, s->huge_free,
	       s->huge_total == 0 ? " (raise /proc/sys/vm/nr_hugepages)" : "");
	printf("transparent hugepages: %s\n", s->thp);
}

static void json_features(struct json *j, const struct upager_ll_probe *p)
{
	char unknown[16];

	json_u64(j, "features_mask", p->features);
	json_u64(j, "available_mask", p->available);
	json_obj_open(j, "features");
	for (unsigned int i = 0; i < 64; i++) {
		uint64_t bit = 1ull << i;
		const char *name = upager_ll_feature_name(bit);
		const char *priv = upager_ll_feature_privilege(bit);

		if (!name && !(p->features & bit))
			continue;
		if (!name) {
			snprintf(unknown, sizeof(unknown), "bit%u", i);
			name = unknown;
		}
		json_obj_open(j, name);
		json_u64(j, "bit", i);
		json_str(j, "status", feature_status(p, i));
		if (priv)
			json_str(j, "privilege", priv);
		json_obj_close(j);
	}
	json_obj_close(j);
}

static void print_json(const struct upager_ll_probe *p,
		       const struct sysinfo_uffd *s)
{
	struct json j;

	json_begin(&j, stdout);
	json_str(&j, "open_path", path_name(p->path));
	json_features(&j, p);
	json_arr_open(&j, "ioctls");
	for (unsigned int nr = 0; nr < 64; nr++)
		if ((p->ioctls & (1ull << nr)) && upager_ll_ioctl_name(nr))
			json_str(&j, NULL, upager_ll_ioctl_name(nr));
	json_arr_close(&j);
	json_obj_open(&j, "memory_types");
	for (int t = 0; t < UPAGER_LL_MEM_COUNT; t++) {
		uint64_t m = p->register_modes[t];

		json_obj_open(&j, upager_ll_memtype_name(t));
		json_bool(&j, "missing", m & UFFDIO_REGISTER_MODE_MISSING);
		json_bool(&j, "wp", m & UFFDIO_REGISTER_MODE_WP);
		json_bool(&j, "minor", m & UFFDIO_REGISTER_MODE_MINOR);
		json_arr_open(&j, "range_ioctls");
		for (unsigned int nr = 0; nr < 64; nr++)
			if ((p->range_ioctls[t] & (1ull << nr)) &&
			    upager_ll_ioctl_name(nr))
				json_str(&j, NULL, upager_ll_ioctl_name(nr));
		json_arr_close(&j);
		json_obj_close(&j);
	}
	json_obj_close(&j);
	json_obj_open(&j, "privileges");
	json_u64(&j, "euid", geteuid());
	json_bool(&j, "cap_sys_ptrace", s->cap_sys_ptrace);
	json_i64(&j, "unprivileged_userfaultfd", s->unprivileged_sysctl);
	json_bool(&j, "dev_userfaultfd", s->dev_node);
	json_bool(&j, "dev_userfaultfd_access", s->dev_access);
	json_obj_close(&j);
	json_obj_open(&j, "hugetlb");
	json_i64(&j, "page_kb", s->huge_kb);
	json_i64(&j, "total", s->huge_total);
	json_i64(&j, "free", s->huge_free);
	json_obj_close(&j);
	json_str(&j, "thp", s->thp);
	json_end(&j);
}

int cmd_features(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct upager_ll_probe p = { .size = sizeof(p) };
	struct sysinfo_uffd s;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("usage: upager features [--json]\n\n"
			       "Probe what userfaultfd offers this process on the "
			       "running kernel:\nevery feature by name (yes; no: "
			       "needs a privilege, and which; no: not\nin this "
			       "kernel), the ioctls, which memory types can be "
			       "registered in which\nmodes, how the descriptor "
			       "was opened, privileges, hugetlb pages and the\n"
			       "transparent-hugepage mode.\n\n"
			       "  --json   one JSON object, for scripts\n");
			return 0;
		default:
			return cli_usage_error("features", "unknown option");
		}
	}
	if (optind < argc)
		return cli_usage_error("features", "unexpected argument '%s'",
				       argv[optind]);
	gather(&s);
	ret = upager_ll_probe(&p);
	if (ret < 0)
		return cli_error("features",
				 "cannot open a userfaultfd: %s%s", strerror(-ret),
				 ret == -EPERM ? " (run as root, set "
						 "vm.unprivileged_userfaultfd=1, "
						 "or grant access to /dev/userfaultfd)"
					       : "");
	if (json)
		print_json(&p, &s);
	else
		print_text(&p, &s);
	return 0;
}

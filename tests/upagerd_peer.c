// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The clients of a real upagerd, for the upagerd_*.sh tests: each mode
 * is one kind of process the daemon meets.  Data is the harness pattern:
 * page i of the image is t_fill(page, i), so a page read at region
 * offset O reads as pattern O / 4096 + its index.  Exit 0: what was
 * expected happened; 1: it did not (a line says what); every mode ends
 * within its alarm() instead of hanging.
 *
 *   mkimg PATH NPAGES            write the image
 *   fc SOCK NPAGES STYLE         Firecracker's restore (STYLE: page_size,
 *                                kib, both, none)
 *   attach SOCK EXPORT NPAGES    upager_attach(), read, write, drop
 *   forktree SOCK EXPORT NPAGES  the same, then children two levels deep
 *   remap SOCK EXPORT NPAGES     mremap() the region whole, munmap() half
 *   blockfork SOCK NPAGES        Firecracker's handshake with a uffd opened
 *                                blocking with EVENT_FORK, then forks
 *   wset SOCK EXPORT NPAGES SEED record|replay FILE
 *                                a working set: a scattered quarter of the
 *                                pages in an order SEED picks; record:
 *                                read them, write their numbers to FILE;
 *                                replay: wait until the daemon installed
 *                                them all untouched (mincore), and no
 *                                other page, then read them
 *   hostile SOCK CASE            a handshake the daemon must refuse
 *   churn SOCK EXPORT N          N short-lived clients, one after another
 *   stream SOCK EXPORT NPAGES    read pages scattered, slowly, until done
 *                                or SIGBUS (the daemon is being stopped
 *                                meanwhile; NPAGES odd-strided: a power
 *                                of two)
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <upager/manager.h>

#include "harness.h"

#define PG 4096ul

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	      "connect %s: %s", path, strerror(errno));
	return fd;
}

/* One sendmsg of @len bytes with @fd attached (-1: none). */
static ssize_t send_with_fd(int sock, const void *buf, size_t len, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *c;

		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

static char *map_anon(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static bool zeros(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* A uffd as Firecracker makes it: EVENT_REMOVE, ranges MISSING. */
static int fc_uffd(char *a, size_t alen, char *b, size_t blen)
{
	int uffd = upager_ll_open(UPAGER_LL_NONBLOCK, NULL);

	CHECK(uffd >= 0, "userfaultfd: %s", strerror(-uffd));
	CHECK_RET(upager_ll_api(uffd, UFFD_FEATURE_EVENT_REMOVE, NULL), 0);
	CHECK_RET(upager_ll_register(uffd, a, alen,
				     UFFDIO_REGISTER_MODE_MISSING, NULL), 0);
	if (b)
		CHECK_RET(upager_ll_register(uffd, b, blen,
					     UFFDIO_REGISTER_MODE_MISSING, NULL),
			  0);
	return uffd;
}

static int fc_region(char *buf, size_t size, const char *style, uint64_t addr,
		     uint64_t len, uint64_t off)
{
	char ps[64] = "";

	if (!strcmp(style, "page_size"))
		snprintf(ps, sizeof(ps), ",\"page_size\":4096");
	else if (!strcmp(style, "kib"))
		snprintf(ps, sizeof(ps), ",\"page_size_kib\":4096");
	else if (!strcmp(style, "both"))
		snprintf(ps, sizeof(ps), ",\"page_size\":4096,\"page_size_kib\":4096");
	return snprintf(buf, size,
			"{\"base_host_virt_addr\":%llu,\"size\":%llu,"
			"\"offset\":%llu%s}",
			(unsigned long long)addr, (unsigned long long)len,
			(unsigned long long)off, ps);
}

/*
 * Firecracker at snapshot restore: guest memory in two private anonymous
 * regions with a gap, one uffd, one sendmsg, the socket kept open.  The
 * image holds region 0 at offset 0 and region 1 right after it.
 */
static int mode_fc(const char *sock_path, size_t npages, const char *style)
{
	size_t half = npages / 2, len = half * PG;
	char *m = map_anon(3 * len), *a = m, *b = m + 2 * len, body[1024];
	int uffd, sock, ok = 1, n;

	munmap(m + len, len); /* the gap */
	uffd = fc_uffd(a, len, b, len);
	n = snprintf(body, sizeof(body), "[");
	n += fc_region(body + n, sizeof(body) - n, style, (uintptr_t)a, len, 0);
	n += snprintf(body + n, sizeof(body) - n, ",");
	n += fc_region(body + n, sizeof(body) - n, style, (uintptr_t)b, len, len);
	n += snprintf(body + n, sizeof(body) - n, "]");
	sock = connect_to(sock_path);
	CHECK(send_with_fd(sock, body, (size_t)n, uffd) == n, "sendmsg: %s",
	      strerror(errno));
	/* Firecracker keeps its copy of the uffd, and the socket. */
	for (size_t i = 0; i < half; i++) {
		ok &= t_verify(a + i * PG, PG, i);
		ok &= t_verify(b + i * PG, PG, half + i);
	}
	CHECK(ok, "a page differs from the memory file");
	memset(a + 5 * PG, 'w', PG);
	CHECK(madvise(b + 2 * PG, 8 * PG, MADV_DONTNEED) == 0, "madvise");
	CHECK(madvise(a + 4 * PG, 4 * PG, MADV_DONTNEED) == 0, "madvise");
	for (size_t i = 0; i < 8; i++)
		CHECK(zeros(b + (2 + i) * PG, PG),
		      "region 1 page %zu is not zero after the balloon took it",
		      2 + i);
	for (size_t i = 4; i < 8; i++)
		CHECK(zeros(a + i * PG, PG),
		      "region 0 page %zu is not zero after MADV_DONTNEED", i);
	CHECK(t_verify(b + 10 * PG, PG, half + 10) && t_verify(a + 3 * PG, PG, 3),
	      "pages beside the dropped ones changed");
	close(sock);
	close(uffd);
	printf("fc %s: %zu pages verified, balloon ranges read zeros\n", style,
	       npages);
	return 0;
}

static void wait_ok(pid_t pid, const char *what)
{
	int status;

	CHECK(t_wait_child(pid, 60000, &status) == 0 && WIFEXITED(status) &&
		      WEXITSTATUS(status) == 0,
	      "%s failed (status %#x)", what, status);
}

/*
 * A client whose uffd was opened blocking, with EVENT_FORK: the kernel
 * opens its children's uffds blocking too, and the daemon must still
 * serve them (and everyone else).  The parent reads half, forks a child
 * that reads all and writes its own page, then forks again; its own
 * pages stay its own.
 */
static int mode_blockfork(const char *sock_path, size_t npages)
{
	size_t len = npages * PG;
	char *p = map_anon(len), body[256];
	int uffd = upager_ll_open(0, NULL), sock, n;

	CHECK(uffd >= 0, "userfaultfd: %s", strerror(-uffd));
	CHECK_RET(upager_ll_api(uffd,
				UFFD_FEATURE_EVENT_FORK |
					UFFD_FEATURE_EVENT_REMOVE,
				NULL),
		  0);
	CHECK_RET(upager_ll_register(uffd, p, len, UFFDIO_REGISTER_MODE_MISSING,
				     NULL),
		  0);
	n = snprintf(body, sizeof(body), "[");
	n += fc_region(body + n, sizeof(body) - n, "page_size", (uintptr_t)p,
		       len, 0);
	n += snprintf(body + n, sizeof(body) - n, "]");
	sock = connect_to(sock_path);
	CHECK(send_with_fd(sock, body, (size_t)n, uffd) == n, "sendmsg: %s",
	      strerror(errno));
	for (size_t i = 0; i < npages / 2; i++)
		CHECK(t_verify(p + i * PG, PG, i), "parent: page %zu", i);
	for (int round = 0; round < 2; round++) {
		pid_t pid;

		fflush(stdout);
		pid = fork();
		CHECK(pid >= 0, "fork");
		if (pid == 0) {
			for (size_t i = 0; i < npages; i++)
				CHECK(t_verify(p + i * PG, PG, i),
				      "child %d: page %zu", round, i);
			t_fill(p, PG, 5000);
			CHECK(t_verify(p, PG, 5000), "child %d: its page",
			      round);
			_exit(0);
		}
		wait_ok(pid, "a child of a blocking uffd");
	}
	for (size_t i = 0; i < npages; i++)
		CHECK(t_verify(p + i * PG, PG, i), "parent: page %zu after", i);
	close(sock);
	close(uffd);
	printf("blockfork: 2 children of a blocking uffd served, %zu pages\n",
	       npages);
	return 0;
}

static int attach_one(const char *sock_path, const char *export, char *p,
		      size_t len, enum upager_remove_policy remove)
{
	struct upager_attach_region r = { .addr = p, .len = len, .name = export,
					  .remove = remove };
	struct upager_attach_result res = { .size = sizeof(res) };
	int sock = upager_attach(sock_path, &r, 1, NULL, &res);

	CHECK(sock >= 0, "attach: %s (%s: %s)", strerror(-sock), res.field,
	      res.text);
	return sock;
}

static int mode_attach(const char *sock_path, const char *export,
		       size_t npages)
{
	char *p = map_anon(npages * PG);
	int sock = attach_one(sock_path, export, p, npages * PG,
			      UPAGER_REMOVE_REFETCH);

	for (size_t i = 0; i < npages; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu differs", i);
	memset(p + PG, 'x', PG);
	CHECK(madvise(p, 4 * PG, MADV_DONTNEED) == 0, "madvise");
	for (size_t i = 0; i < 4; i++)
		CHECK(t_verify(p + i * PG, PG, i),
		      "page %zu after MADV_DONTNEED is not the export's again",
		      i);
	close(sock);
	printf("attach: %zu pages verified\n", npages);
	return 0;
}

/*
 * Every process of the tree owns a slice of pages to write its own
 * pattern into (seed 1000 * id + page); everything else it reads must
 * be the image, or what its ancestors wrote before its fork.
 */
static void tree_work(char *p, size_t npages, int id, int parent_ids[],
		      int nparents)
{
	size_t slice = npages / 8;

	for (size_t i = 0; i < npages; i++) {
		int owner = (int)(i / slice);
		bool mine = owner == id, ancestor = false;

		for (int k = 0; k < nparents; k++)
			ancestor |= owner == parent_ids[k];
		if (mine)
			continue;
		if (ancestor)
			CHECK(t_verify(p + i * PG, PG, 1000u * owner + i),
			      "process %d: page %zu of ancestor %d differs", id,
			      i, owner);
		else
			CHECK(t_verify(p + i * PG, PG, i),
			      "process %d: page %zu differs from the image", id,
			      i);
	}
	for (size_t i = id * slice; i < (id + 1) * slice; i++)
		t_fill(p + i * PG, PG, 1000u * id + i);
	for (size_t i = id * slice; i < (id + 1) * slice; i++)
		CHECK(t_verify(p + i * PG, PG, 1000u * id + i),
		      "process %d: its own page %zu", id, i);
}

static int mode_forktree(const char *sock_path, const char *export,
			 size_t npages)
{
	char *p = map_anon(npages * PG);
	int sock = attach_one(sock_path, export, p, npages * PG,
			      UPAGER_REMOVE_REFETCH);
	int none[1] = { -1 }, root[1] = { 0 };
	pid_t kids[2];

	/* The parent fills only its slice before the forks: the children
	 * must get the rest from the daemon. */
	tree_work(p, npages / 8, 0, none, 0);
	for (int c = 0; c < 2; c++) {
		fflush(stdout);
		kids[c] = fork();
		CHECK(kids[c] >= 0, "fork");
		if (kids[c] == 0) {
			int me = 1 + c, anc[2] = { 0, me };
			pid_t g;

			tree_work(p, npages, me, root, 1);
			g = fork();
			CHECK(g >= 0, "fork");
			if (g == 0) {
				tree_work(p, npages, 3 + c, anc, 2);
				_exit(0);
			}
			wait_ok(g, "a grandchild");
			_exit(0);
		}
	}
	wait_ok(kids[0], "child 1");
	wait_ok(kids[1], "child 2");
	/* The parent's own view is untouched by its children. */
	for (size_t i = npages / 8; i < npages; i++)
		CHECK(t_verify(p + i * PG, PG, i), "parent: page %zu", i);
	close(sock);
	printf("forktree: 5 processes, %zu pages each verified\n", npages);
	return 0;
}

/* Wait for the daemon to drop us: true when it closed the socket. */
static bool dropped(int sock)
{
	struct timeval tv = { .tv_sec = 10 };
	char buf[512];
	ssize_t n;

	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	do
		n = recv(sock, buf, sizeof(buf), 0);
	while (n > 0);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static int raw_uffd(bool api)
{
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	CHECK(fd >= 0, "userfaultfd: %s", strerror(errno));
	if (api)
		CHECK_RET(upager_ll_api(fd, UFFD_FEATURE_EVENT_REMOVE, NULL), 0);
	return fd;
}

/* A Firecracker-socket case: send @body with @fd, expect to be dropped. */
static int fc_hostile(const char *sock_path, const char *body, size_t len,
		      int fd)
{
	int sock = connect_to(sock_path);

	send_with_fd(sock, body, len, fd);
	CHECK(dropped(sock), "the daemon kept the connection");
	return 0;
}

static int mode_hostile(const char *sock_path, const char *what)
{
	char *m = map_anon(64 * PG), body[2048];
	uint64_t a = (uintptr_t)m;
	int uffd = fc_uffd(m, 64 * PG, NULL, 0), fds[2];

#define REGION(addr, size, off) \
	"{\"base_host_virt_addr\":" addr ",\"size\":" size ",\"offset\":" off \
	",\"page_size\":4096}"
	if (!strcmp(what, "truncated")) {
		int n = snprintf(body, sizeof(body),
				 "[{\"base_host_virt_addr\":%llu,\"size\":",
				 (unsigned long long)a);
		int sock = connect_to(sock_path);

		send_with_fd(sock, body, (size_t)n, uffd);
		shutdown(sock, SHUT_WR); /* Firecracker died mid-message */
		CHECK(dropped(sock), "kept");
		return 0;
	}
	if (!strcmp(what, "invalid"))
		return fc_hostile(sock_path, "[{\"size\": 4096,}]", 17, uffd);
	if (!strcmp(what, "notarray"))
		return fc_hostile(sock_path, "{\"size\":1}", 10, uffd);
	if (!strcmp(what, "big")) {
		size_t len = 10u << 20;
		char *big = malloc(len);
		int sock = connect_to(sock_path);

		CHECK(big, "malloc");
		memset(big, ' ', len);
		big[0] = '[';
		/* The daemon stops reading at its bound and closes: EPIPE. */
		send_with_fd(sock, big, len, uffd);
		free(big);
		CHECK(dropped(sock), "kept");
		return 0;
	}
	snprintf(body, sizeof(body), "[" REGION("%llu", "262144", "0") "]",
		 (unsigned long long)a);
	if (!strcmp(what, "nofd"))
		return fc_hostile(sock_path, body, strlen(body), -1);
	if (!strcmp(what, "pipe")) {
		CHECK(pipe(fds) == 0, "pipe");
		return fc_hostile(sock_path, body, strlen(body), fds[0]);
	}
	if (!strcmp(what, "eventfd"))
		return fc_hostile(sock_path, body, strlen(body),
				  eventfd(0, EFD_CLOEXEC));
	if (!strcmp(what, "noapi"))
		return fc_hostile(sock_path, body, strlen(body), raw_uffd(false));
	if (!strcmp(what, "overlap")) {
		snprintf(body, sizeof(body),
			 "[" REGION("%llu", "131072", "0") "," REGION(
				 "%llu", "131072", "131072") "]",
			 (unsigned long long)a, (unsigned long long)a + 65536);
		return fc_hostile(sock_path, body, strlen(body), uffd);
	}
	if (!strcmp(what, "beyond")) {
		snprintf(body, sizeof(body), "[" REGION("%llu", "4096", "0") "]",
			 1ull << 58);
		return fc_hostile(sock_path, body, strlen(body), uffd);
	}
	if (!strcmp(what, "unmapped")) {
		munmap(m + 32 * PG, 32 * PG);
		return fc_hostile(sock_path, body, strlen(body), uffd);
	}
	if (!strcmp(what, "overflow")) {
		snprintf(body, sizeof(body),
			 "[" REGION("%llu", "18446744073709547520", "0") "]",
			 (unsigned long long)a);
		return fc_hostile(sock_path, body, strlen(body), uffd);
	}
	if (!strcmp(what, "wrap")) {
		snprintf(body, sizeof(body),
			 "[" REGION("%llu", "9223372036854771712", "0") "]",
			 (unsigned long long)a);
		return fc_hostile(sock_path, body, strlen(body), uffd);
	}
	if (!strcmp(what, "pagesize")) {
		snprintf(body, sizeof(body),
			 "[{\"base_host_virt_addr\":%llu,\"size\":4096,"
			 "\"offset\":0,\"page_size\":4096,\"page_size_kib\":4}]",
			 (unsigned long long)a);
		return fc_hostile(sock_path, body, strlen(body), uffd);
	}
	if (!strcmp(what, "past")) {
		snprintf(body, sizeof(body), "[" REGION("%llu", "262144",
							"1099511627776") "]",
			 (unsigned long long)a);
		return fc_hostile(sock_path, body, strlen(body), uffd);
	}
	/* The attach protocol's cases. */
	if (!strcmp(what, "noexport") || !strcmp(what, "uid")) {
		/* A range of its own: m is registered with Firecracker's. */
		struct upager_attach_region r = { .addr = map_anon(64 * PG),
						  .len = 64 * PG,
						  .name = "nosuch" };
		struct upager_attach_result res = { .size = sizeof(res) };
		int ret;

		if (!strcmp(what, "uid")) {
			r.name = "img";
			CHECK(setgid(65534) == 0 && setuid(65534) == 0,
			      "setuid: %s", strerror(errno));
		}
		ret = upager_attach(sock_path, &r, 1, NULL, &res);
		CHECK(ret < 0, "attached");
		printf("refused: %s: %s: %s\n", strerror(-ret), res.field,
		       res.text);
		CHECK(ret == (strcmp(what, "uid") ? -ENOENT : -EPERM),
		      "refused with %s", strerror(-ret));
		return 0;
	}
	if (!strcmp(what, "garbage")) {
		int sock = connect_to(sock_path);

		memset(body, 0x55, 64);
		send_with_fd(sock, body, 64, uffd);
		CHECK(dropped(sock), "kept");
		return 0;
	}
	FAIL("unknown case '%s'", what);
}

/*
 * The client moves its region (mremap) and unmaps half of it: the pages
 * it had move with it, the others come from the export at the moved
 * address, and the half it kept is still served.
 */
static int mode_remap(const char *sock_path, const char *export,
		      size_t npages)
{
	size_t len = npages * PG;
	char *p = map_anon(len), *to = map_anon(len), *q;
	int sock = attach_one(sock_path, export, p, len,
			      UPAGER_REMOVE_REFETCH);

	for (size_t i = 0; i < npages / 4; i++)
		CHECK(t_verify(p + i * PG, PG, i), "page %zu before mremap", i);
	t_fill(p + 2 * PG, PG, 7777);
	q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(q == to, "mremap: %s", strerror(errno));
	CHECK(t_verify(q + 2 * PG, PG, 7777), "a written page did not move");
	for (size_t i = 0; i < npages; i++)
		CHECK(i == 2 || t_verify(q + i * PG, PG, i),
		      "page %zu after mremap", i);
	CHECK(munmap(q + len / 2, len / 2) == 0, "munmap");
	CHECK(madvise(q, len / 2, MADV_DONTNEED) == 0, "madvise");
	for (size_t i = 0; i < npages / 2; i++)
		CHECK(t_verify(q + i * PG, PG, i), "page %zu after munmap", i);
	close(sock);
	printf("remap: %zu pages moved, half unmapped, verified\n", npages);
	return 0;
}

/* The pages of a working set: a quarter of @npages, in @seed's order. */
static size_t *wset_pages(size_t npages, uint64_t seed)
{
	size_t *perm = malloc(npages * sizeof(*perm));

	CHECK(perm, "malloc");
	t_shuffle(perm, npages, seed);
	return perm;
}

static size_t resident(const char *p, size_t npages, unsigned char *vec)
{
	size_t n = 0;

	CHECK(mincore((void *)p, npages * PG, vec) == 0, "mincore: %s",
	      strerror(errno));
	for (size_t i = 0; i < npages; i++)
		n += vec[i] & 1;
	return n;
}

static int mode_wset(const char *sock_path, const char *export,
		     size_t npages, uint64_t seed, const char *how,
		     const char *file)
{
	size_t *set = wset_pages(npages, seed), n = npages / 4, got = 0;
	unsigned char *vec = calloc(npages, 1);
	char *p = map_anon(npages * PG);
	int sock = attach_one(sock_path, export, p, npages * PG,
			      UPAGER_REMOVE_REFETCH);
	FILE *f;

	CHECK(vec, "calloc");
	if (!strcmp(how, "replay")) {
		for (int ms = 0; (got = resident(p, npages, vec)) < n; ms++) {
			CHECK(ms < 20000,
			      "%zu of the %zu working-set pages installed "
			      "after 20 s",
			      got, n);
			usleep(1000);
		}
		for (size_t i = 0; i < n; i++)
			vec[set[i]] = 0;
		for (size_t i = 0; i < npages; i++)
			CHECK(!(vec[i] & 1), "page %zu installed, not in the "
			      "working set", i);
	}
	for (size_t i = 0; i < n; i++)
		CHECK(t_verify(p + set[i] * PG, PG, set[i]), "page %zu", set[i]);
	if (!strcmp(how, "record")) {
		f = fopen(file, "w");
		CHECK(f, "%s: %s", file, strerror(errno));
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%zu\n", set[i]);
		fclose(f);
	}
	close(sock);
	printf("wset %s: %zu pages%s\n", how, n,
	       got ? ", all installed before any touch" : "");
	free(set);
	free(vec);
	return 0;
}

static int mode_churn(const char *sock_path, const char *export, int n)
{
	for (int i = 0; i < n; i++) {
		pid_t pid;

		pid = fork();
		CHECK(pid >= 0, "fork");
		if (pid == 0) {
			char *p = map_anon(16 * PG);
			int sock = attach_one(sock_path, export, p, 16 * PG,
					      UPAGER_REMOVE_REFETCH);

			CHECK(t_verify(p + (i % 16) * PG, PG, i % 16),
			      "client %d", i);
			(void)sock;
			_exit(0); /* exits attached: the daemon must notice */
		}
		wait_ok(pid, "a short-lived client");
	}
	printf("churn: %d clients\n", n);
	return 0;
}

static sigjmp_buf bus_jmp;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

static int mode_stream(const char *sock_path, const char *export,
		       size_t npages)
{
	char *p = map_anon(npages * PG);
	struct sigaction sa = { .sa_handler = on_bus };
	volatile size_t i = 0;

	attach_one(sock_path, export, p, npages * PG, UPAGER_REMOVE_REFETCH);
	sigaction(SIGBUS, &sa, NULL);
	printf("attached %d\n", (int)getpid());
	if (sigsetjmp(bus_jmp, 1)) {
		printf("SIGBUS after %zu of %zu pages\n", (size_t)i, npages);
		return 0;
	}
	/*
	 * Scattered (no read-ahead carries it), and slow enough that the
	 * daemon is stopped while this runs: a fault is then in flight or
	 * about to be taken, and must end in its page or SIGBUS.
	 */
	for (; i < npages; i++) {
		size_t pg = i * 4099 % npages;

		CHECK(t_verify(p + pg * PG, PG, pg),
		      "page %zu is not the image's (zeros?)", pg);
		if (i % 8 == 0)
			usleep(1000);
	}
	printf("all %zu pages read\n", npages);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(90); /* no mode may hang: SIGALRM ends it as a failure */
	if (!strcmp(mode, "mkimg") && argc == 4) {
		int fd = open(argv[2], O_CREAT | O_TRUNC | O_WRONLY, 0644);

		CHECK(fd >= 0, "%s: %s", argv[2], strerror(errno));
		t_fill_file(fd, strtoul(argv[3], NULL, 0) * PG, 0);
		close(fd);
		return 0;
	}
	if (!strcmp(mode, "fc") && argc == 5)
		return mode_fc(argv[2], strtoul(argv[3], NULL, 0), argv[4]);
	if (!strcmp(mode, "attach") && argc == 5)
		return mode_attach(argv[2], argv[3], strtoul(argv[4], NULL, 0));
	if (!strcmp(mode, "forktree") && argc == 5)
		return mode_forktree(argv[2], argv[3],
				     strtoul(argv[4], NULL, 0));
	if (!strcmp(mode, "remap") && argc == 5)
		return mode_remap(argv[2], argv[3], strtoul(argv[4], NULL, 0));
	if (!strcmp(mode, "blockfork") && argc == 4)
		return mode_blockfork(argv[2], strtoul(argv[3], NULL, 0));
	if (!strcmp(mode, "wset") && argc == 8)
		return mode_wset(argv[2], argv[3], strtoul(argv[4], NULL, 0),
				 strtoull(argv[5], NULL, 0), argv[6], argv[7]);
	if (!strcmp(mode, "hostile") && argc == 4)
		return mode_hostile(argv[2], argv[3]);
	if (!strcmp(mode, "churn") && argc == 5)
		return mode_churn(argv[2], argv[3], atoi(argv[4]));
	if (!strcmp(mode, "stream") && argc == 5)
		return mode_stream(argv[2], argv[3], strtoul(argv[4], NULL, 0));
	fprintf(stderr, "usage: see the comment at the top of %s\n", __FILE__);
	return 2;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager_ll_open(): as root the plain syscall path is taken; VIA_DEVICE
 * gives a working fd from /dev/userfaultfd; NONBLOCK sets O_NONBLOCK, the
 * default sets FD_CLOEXEC and NOCLOEXEC leaves it off (on both paths);
 * VIA_SYSCALL|VIA_DEVICE is -EINVAL.  An unprivileged child, with
 * vm.unprivileged_userfaultfd at 0 and the device node root-only (here
 * VIA_DEVICE is -EACCES), falls back to the syscall with
 * UFFD_USER_MODE_ONLY (PATH_SYSCALL_USER_ONLY), and asking for
 * USER_MODE_ONLY via the syscall explicitly works too.
 */
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sysfs.h"

#define SYSCTL "/proc/sys/vm/unprivileged_userfaultfd"

static long sysctl_old = -1;
static pid_t sysctl_owner;

/* At exit of the parent only: the child inherits the atexit list. */
static void sysctl_restore(void)
{
	if (getpid() == sysctl_owner && !sys_write_long(SYSCTL, sysctl_old))
		fprintf(stderr, "cannot restore %s to %ld\n", SYSCTL,
			sysctl_old);
}

/* The fd does a handshake and resolves a fault-free COPY. */
static void check_works(int fd)
{
	char *area, *src;
	size_t done;

	CHECK_RET(upager_ll_api(fd, 0, NULL), 0);
	area = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	src = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED && src != MAP_FAILED, "mmap");
	CHECK_RET(upager_ll_register(fd, area, 4096,
				     UFFDIO_REGISTER_MODE_MISSING, NULL), 0);
	t_fill(src, 4096, 7);
	CHECK_RET(upager_ll_copy(fd, area, src, 4096, 0, &done), 0);
	CHECK(done == 4096, "done %zu", done);
	CHECK(t_verify(area, 4096, 7), "copied page differs");
	munmap(area, 4096);
	munmap(src, 4096);
}

static void check_flags(unsigned int via, enum upager_ll_path want)
{
	enum upager_ll_path path = 0;
	int fd;

	fd = upager_ll_open(via, &path);
	CHECK(fd >= 0, "open(%#x): %s", via, strerror(-fd));
	CHECK(path == want, "path %d, want %d", path, want);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "default: no FD_CLOEXEC");
	CHECK(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "default: O_NONBLOCK");
	check_works(fd);
	close(fd);

	fd = upager_ll_open(via | UPAGER_LL_NONBLOCK, &path);
	CHECK(fd >= 0, "open NONBLOCK: %s", strerror(-fd));
	CHECK(path == want, "path %d, want %d", path, want);
	CHECK(fcntl(fd, F_GETFL) & O_NONBLOCK, "NONBLOCK: no O_NONBLOCK");
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "NONBLOCK: no FD_CLOEXEC");
	close(fd);

	fd = upager_ll_open(via | UPAGER_LL_NOCLOEXEC, &path);
	CHECK(fd >= 0, "open NOCLOEXEC: %s", strerror(-fd));
	CHECK(path == want, "path %d, want %d", path, want);
	CHECK(!(fcntl(fd, F_GETFD) & FD_CLOEXEC), "NOCLOEXEC: FD_CLOEXEC");
	close(fd);
}

static void unprivileged_child(void)
{
	enum upager_ll_path path = 0;
	struct stat st;
	int fd;

	CHECK(setgroups(0, NULL) == 0, "setgroups: %s", strerror(errno));
	CHECK(setgid(65534) == 0, "setgid: %s", strerror(errno));
	CHECK(setuid(65534) == 0, "setuid: %s", strerror(errno));

	/* A root-only device node refuses us by its permissions. */
	if (stat("/dev/userfaultfd", &st) == 0 && st.st_uid == 0 &&
	    !(st.st_mode & 0066))
		CHECK_RET(upager_ll_open(UPAGER_LL_VIA_DEVICE, &path),
			  -EACCES);

	fd = upager_ll_open(0, &path);
	CHECK(fd >= 0, "unprivileged open: %s", strerror(-fd));
	CHECK(path == UPAGER_LL_PATH_SYSCALL_USER_ONLY, "path %d", path);
	check_works(fd);
	close(fd);

	/* VIA_SYSCALL only forbids the device; the user-mode retry stays. */
	fd = upager_ll_open(UPAGER_LL_VIA_SYSCALL, &path);
	CHECK(fd >= 0, "VIA_SYSCALL open: %s", strerror(-fd));
	CHECK(path == UPAGER_LL_PATH_SYSCALL_USER_ONLY, "path %d", path);
	/* EVENT_FORK needs CAP_SYS_PTRACE, which we just gave up. */
	CHECK_RET(upager_ll_api(fd, UFFD_FEATURE_EVENT_FORK, NULL), -EPERM);
	close(fd);

	/*
	 * Asked for explicitly, UFFD_USER_MODE_ONLY succeeds on the first
	 * syscall: nothing was added, so the path is the plain syscall one.
	 */
	fd = upager_ll_open(UPAGER_LL_VIA_SYSCALL | UPAGER_LL_USER_MODE_ONLY,
			    &path);
	CHECK(fd >= 0, "USER_MODE_ONLY open: %s", strerror(-fd));
	CHECK(path == UPAGER_LL_PATH_SYSCALL, "path %d", path);
	check_works(fd);
	close(fd);
	exit(0);
}

int main(void)
{
	enum upager_ll_path path = 0;
	int status, fd;
	pid_t pid;

	if (geteuid() != 0)
		SKIP("needs root (privileged paths and dropping privileges)");

	fd = upager_ll_open(0, &path);
	CHECK(fd >= 0, "open: %s", strerror(-fd));
	CHECK(path == UPAGER_LL_PATH_SYSCALL, "root path %d", path);
	close(fd);

	check_flags(0, UPAGER_LL_PATH_SYSCALL);
	check_flags(UPAGER_LL_VIA_SYSCALL, UPAGER_LL_PATH_SYSCALL);
	check_flags(UPAGER_LL_VIA_DEVICE, UPAGER_LL_PATH_DEVICE);

	CHECK_RET(upager_ll_open(UPAGER_LL_VIA_SYSCALL | UPAGER_LL_VIA_DEVICE,
				 &path), -EINVAL);

	sysctl_old = sys_read_long(SYSCTL);
	CHECK(sysctl_old >= 0, "cannot read %s", SYSCTL);
	if (sysctl_old != 0) {
		sysctl_owner = getpid();
		atexit(sysctl_restore);
		CHECK(sys_write_long(SYSCTL, 0), "cannot set %s to 0", SYSCTL);
	}
	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		unprivileged_child();
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "unprivileged child failed (status %#x)", status);
	return 0;
}

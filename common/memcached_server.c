// SPDX-License-Identifier: LGPL-2.1-or-later
/* Starting Debian's memcached for tests and benchmarks (memcached_server.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memcached_server.h"

/* A loopback port free at this moment (the server may still lose it). */
static int free_port(unsigned int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret = 0;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &len))
		ret = -errno;
	close(fd);
	*port = ntohs(a.sin_port);
	return ret;
}

bool mcsrv_accepts(unsigned int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a));

	if (fd >= 0)
		close(fd);
	return ok;
}

void mcsrv_kill(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

int mcsrv_start(uint64_t mib, pid_t *pid, unsigned int *port)
{
	char m[32], p[16];
	int ret, status;

	if (access(MCSRV_BIN, X_OK))
		return -ENOENT;
	snprintf(m, sizeof(m), "%" PRIu64, mib);
	for (int attempt = 0; attempt < 20; attempt++) {
		ret = free_port(port);
		if (ret < 0)
			return ret;
		snprintf(p, sizeof(p), "%u", *port);
		*pid = fork();
		if (*pid < 0)
			return -errno;
		if (!*pid) {
			execl(MCSRV_BIN, "memcached", "-l", "127.0.0.1", "-p",
			      p, "-U", "0", "-m", m, "-t", "1", "-u", "nobody",
			      (char *)NULL);
			_exit(127);
		}
		for (int ms = 0; ms < 5000; ms += 10) {
			if (mcsrv_accepts(*port))
				return 0;
			if (waitpid(*pid, &status, WNOHANG) == *pid) {
				*pid = 0; /* reaped: lost the port */
				break;
			}
			usleep(10000);
		}
		mcsrv_kill(*pid);
	}
	return -ETIMEDOUT;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The UFFDIO_API handshake through upager_ll_api(): it reports features
 * and the fd-wide ioctls; a second handshake on the same fd is -EINVAL
 * (not -EOPNOTSUPP) with nothing missing; an unknown feature bit is
 * -EOPNOTSUPP with that bit in info->missing, named "bit62".  Every known
 * feature bit has a name, and upager_ll_probe() agrees with a plain
 * handshake, finds each feature either available or refused (every one
 * available to root), and sees the range ioctls anonymous memory must
 * grant.
 */
#include <unistd.h>

#include "harness.h"

#define BIT(n) (1ull << (n))

int main(void)
{
	const uint64_t unknown = BIT(62);
	const uint64_t fd_ioctls = BIT(_UFFDIO_REGISTER) |
				   BIT(_UFFDIO_UNREGISTER) | BIT(_UFFDIO_API);
	const uint64_t anon_ioctls = BIT(_UFFDIO_COPY) | BIT(_UFFDIO_ZEROPAGE) |
				     BIT(_UFFDIO_WAKE) |
				     BIT(_UFFDIO_WRITEPROTECT) |
				     BIT(_UFFDIO_MOVE) | BIT(_UFFDIO_POISON);
	struct upager_ll_api_info info, plain;
	struct upager_ll_probe probe = { .size = sizeof(probe) };
	char names[256];
	int fd, n;

	fd = upager_ll_open(0, NULL);
	if (fd < 0)
		SKIP("userfaultfd unavailable: %s", strerror(-fd));
	CHECK_RET(upager_ll_api(fd, 0, &plain), 0);
	CHECK(plain.features != 0, "no features reported");
	CHECK((plain.ioctls & fd_ioctls) == fd_ioctls, "ioctls %#llx",
	      (unsigned long long)plain.ioctls);
	CHECK(plain.missing == 0, "missing %#llx",
	      (unsigned long long)plain.missing);

	/* Once per fd: EINVAL, whether features are asked for or not. */
	info.missing = ~0ull;
	CHECK_RET(upager_ll_api(fd, 0, &info), -EINVAL);
	CHECK(info.missing == 0, "missing %#llx after a second handshake",
	      (unsigned long long)info.missing);
	info.missing = ~0ull;
	CHECK_RET(upager_ll_api(fd, UFFD_FEATURE_THREAD_ID, &info), -EINVAL);
	CHECK(info.missing == 0, "missing %#llx after a second handshake",
	      (unsigned long long)info.missing);
	CHECK_RET(upager_ll_api(fd, 0, NULL), -EINVAL);
	close(fd);

	/* An unknown bit is refused and named. */
	fd = upager_ll_open(0, NULL);
	CHECK(fd >= 0, "open: %s", strerror(-fd));
	CHECK_RET(upager_ll_api(fd, unknown | UFFD_FEATURE_THREAD_ID, &info),
		  -EOPNOTSUPP);
	CHECK(info.missing == unknown, "missing %#llx",
	      (unsigned long long)info.missing);
	n = upager_ll_feature_list(info.missing, names, sizeof(names));
	CHECK(n == 5 && !strcmp(names, "bit62"), "list '%s' (%d)", names, n);
	CHECK(upager_ll_feature_name(unknown) == NULL, "bit 62 has a name");
	/* The refused handshake did not consume the fd. */
	CHECK_RET(upager_ll_api(fd, UFFD_FEATURE_THREAD_ID, &info), 0);
	CHECK(info.features == plain.features, "features %#llx vs %#llx",
	      (unsigned long long)info.features,
	      (unsigned long long)plain.features);
	close(fd);

	for (int i = 0; i < 64; i++) {
		if (!(plain.features & BIT(i)))
			continue;
		CHECK(upager_ll_feature_name(BIT(i)) != NULL,
		      "kernel feature bit %d has no name", i);
	}
	CHECK(upager_ll_feature_name(0) == NULL, "0 has a name");
	CHECK(upager_ll_feature_name(BIT(0) | BIT(1)) == NULL,
	      "two bits have a name");
	n = upager_ll_feature_list(UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MOVE,
				   names, sizeof(names));
	CHECK(!strcmp(names, "SIGBUS, MOVE") && n == 12, "list '%s' (%d)",
	      names, n);
	/* Truncation: NUL-terminated, returns the length needed. */
	n = upager_ll_feature_list(UFFD_FEATURE_SIGBUS | UFFD_FEATURE_MOVE,
				   names, 4);
	CHECK(n == 12 && !strcmp(names, "SIG"), "truncated '%s' (%d)", names,
	      n);

	CHECK_RET(upager_ll_probe(&probe), 0);
	CHECK(probe.path == UPAGER_LL_PATH_SYSCALL || geteuid() != 0,
	      "probe path %d as root", probe.path);
	CHECK(probe.features == plain.features, "probe %#llx vs %#llx",
	      (unsigned long long)probe.features,
	      (unsigned long long)plain.features);
	CHECK(!(probe.available & ~probe.features) &&
		      !(probe.refused & ~probe.features) &&
		      !(probe.available & probe.refused),
	      "available %#llx, refused %#llx, features %#llx",
	      (unsigned long long)probe.available,
	      (unsigned long long)probe.refused,
	      (unsigned long long)probe.features);
	/* Each feature alone: root may have every one the kernel has. */
	CHECK(geteuid() != 0 || probe.available == probe.features,
	      "as root, %#llx of %#llx available",
	      (unsigned long long)probe.available,
	      (unsigned long long)probe.features);
	CHECK(probe.size == sizeof(probe), "size %u", probe.size);
	CHECK(probe.ioctls == plain.ioctls, "probe ioctls %#llx vs %#llx",
	      (unsigned long long)probe.ioctls,
	      (unsigned long long)plain.ioctls);
	CHECK((probe.range_ioctls[UPAGER_LL_MEM_ANON] & anon_ioctls) ==
		      anon_ioctls,
	      "anon range ioctls %#llx lack %#llx",
	      (unsigned long long)probe.range_ioctls[UPAGER_LL_MEM_ANON],
	      (unsigned long long)(anon_ioctls &
				   ~probe.range_ioctls[UPAGER_LL_MEM_ANON]));
	CHECK(probe.register_modes[UPAGER_LL_MEM_ANON] &
		      UFFDIO_REGISTER_MODE_MISSING,
	      "anon MISSING not accepted");
	return 0;
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/* Small helpers shared by the library's files.  See src/base/util.h. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"

int parse_size(const char *str, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	/* strtoull() would take blanks, a sign, and 0x or 0 as a base. */
	if (!isdigit((unsigned char)*str))
		return -EINVAL;
	errno = 0;
	v = strtoull(str, &end, 10);
	if (errno)
		return -errno;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX >> shift)
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

int params_copy(void *dst, size_t dsize, const void *src)
{
	const unsigned char *tail;
	uint32_t usize;

	if (!src)
		return 0;
	memcpy(&usize, src, sizeof(usize));
	if (usize < sizeof(usize))
		return -EINVAL;
	for (tail = (const unsigned char *)src + dsize;
	     usize > dsize && tail < (const unsigned char *)src + usize; tail++)
		if (*tail)
			return -E2BIG;
	memcpy(dst, src, usize < dsize ? usize : dsize);
	/* The caller's size is not ours: keep the field as this build's. */
	memcpy(dst, &(uint32_t){ (uint32_t)dsize }, sizeof(uint32_t));
	return 0;
}

int output_copy(void *dst, const void *src, size_t ksize)
{
	uint32_t usize, filled;

	memcpy(&usize, dst, sizeof(usize));
	if (usize < sizeof(usize))
		return -EINVAL;
	filled = usize < ksize ? usize : (uint32_t)ksize;
	memcpy(dst, src, filled);
	if (usize > ksize)
		memset((unsigned char *)dst + ksize, 0, usize - ksize);
	memcpy(dst, &filled, sizeof(filled));
	return 0;
}

void *mem_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void mem_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

int why_fmt(int err, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

void line_str(struct line *l, const char *s)
{
	while (*s && l->n < sizeof(l->buf) - 1)
		l->buf[l->n++] = *s++;
}

void line_u64(struct line *l, uint64_t v)
{
	char d[24], *p = d + sizeof(d) - 1;

	*p = 0;
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	line_str(l, p);
}

void line_tell(struct line *l)
{
	if (write(STDERR_FILENO, l->buf, l->n) < 0)
		return; /* nowhere left to tell */
}

/* Those of @cpus this process may run on, into @both. */
static int usable(const cpu_set_t *cpus, cpu_set_t *both)
{
	if (sched_getaffinity(0, sizeof(*both), both))
		return -errno;
	CPU_AND(both, both, cpus);
	return CPU_COUNT(both) ? 0 : -EINVAL;
}

bool cpus_usable(const cpu_set_t *cpus)
{
	cpu_set_t both;

	return usable(cpus, &both) == 0;
}

int thread_pin(pthread_t t, const cpu_set_t *cpus)
{
	cpu_set_t both;
	int ret = usable(cpus, &both);

	return ret ? ret : -pthread_setaffinity_np(t, sizeof(both), &both);
}

void thread_name(pthread_t t, const char *fmt, ...)
{
	char name[16] = "upager-";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name + 7, sizeof(name) - 7, fmt, ap);
	va_end(ap);
	pthread_setname_np(t, name);
}

// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The file store: the pages of a file or block device.
 * "file:PATH[,direct][,writable]"; the options come last, so PATH may hold
 * commas.  ",direct" reads (and writes) with O_DIRECT, past the page
 * cache; ",writable" opens the file for writing and enables writeback().
 *
 * The store's size is the file's at open: its last page reads as zeros
 * past that size.  A file that shrinks later makes fetch() fail with -EIO
 * rather than read zeros that were never in the file.  Every access is a
 * pread()/pwrite() at an explicit offset, so threads share one fd without
 * a lock, and fetch() is async-signal-safe.
 *
 * upager_store_file_fd() opens the same store over a descriptor the
 * caller opened (UMap's umap() takes one): its O_DIRECT and access mode
 * choose ",direct" and ",writable".
 *
 * Whether the file has holes is learnt at open: a file with none then
 * costs no lseek() per fill, and a hole punched later reads as zeros
 * through fetch() all the same (only without the ZEROPAGE shortcut).
 *
 * Without ",direct" the file is also mapped read-only, and direct() hands
 * the engine its page-cache pages: UFFDIO_COPY then copies each page once,
 * from the page cache into the region, instead of pread() copying it into
 * a staging buffer first.  A file on tmpfs is memory already: memfile()
 * offers it, and a region maps it instead of copying it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/util.h"
#include "engine/store_call.h"
#include "store/builtin.h"

#define PAGE UPAGER_STORE_PAGE

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* The mapping is given back a block at a time (see file_release()). */
#define BLOCK_PAGES 512u
/*
 * Blocks released in part that stay mapped, at most: the streams of two
 * workers and their read-ahead (1-2 blocks each) fit.
 */
#define HELD 4

struct file_store {
	struct upager_store s;
	int fd;
	bool direct;
	bool writable;
	bool sparse;  /* the file had a hole at open: zero_run() looks */
	bool in_memory; /* on tmpfs: its page cache is the memory itself */
	uint64_t base;	/* byte offset of page 0 in the file */
	uint64_t size;	/* bytes from @base, at open */
	char *map;     /* read-only shared mapping, or NULL */
	atomic_uint *released; /* per block of the mapping: pages released */
	atomic_uint tick;      /* file_release()'s next slot in held[] */
	atomic_ulong held[HELD]; /* blocks released in part, + 1; 0: none */
};


static struct file_store *to_file(struct upager_store *s)
{
	return (struct file_store *)s;
}

/* Strip @opt from the end of the @*len bytes at @arg, if it is there. */
static bool strip_option(const char *arg, size_t *len, const char *opt)
{
	size_t n = strlen(opt);

	if (*len < n || memcmp(arg + *len - n, opt, n))
		return false;
	*len -= n;
	return true;
}

static int file_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) ? -errno : 0;
	return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
}

static int open_fd(const char *arg, size_t len, int flags)
{
	char *path = strndup(arg, len);
	int fd;

	if (!path)
		return -ENOMEM;
	fd = open(path, flags);
	fd = fd < 0 ? -errno : fd;
	free(path);
	return fd;
}

#define TMPFS_MAGIC_ 0x01021994

static bool on_tmpfs(int fd)
{
	struct statfs sf;

	return !fstatfs(fd, &sf) && sf.f_type == TMPFS_MAGIC_;
}

/*
 * O_DIRECT wants buffers and file offsets aligned to what the filesystem
 * or device says (statx STATX_DIOALIGN, else the device's logical block
 * size).  Every transfer here is whole 4 KiB pages at page offsets from
 * page-aligned buffers (the engine's staging buffers, or the bounce page
 * of file_pages()), so any alignment up to a page is met; a larger one
 * can't be.
 */
static int direct_aligned(int fd)
{
	struct statx sx;
	int lbs;

	if (!statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		/* 0: the file can't do O_DIRECT at all. */
		if (!sx.stx_dio_offset_align ||
		    sx.stx_dio_offset_align > PAGE ||
		    sx.stx_dio_mem_align > PAGE)
			return -EINVAL;
		return 0;
	}
	if (!ioctl(fd, BLKSSZGET, &lbs) && lbs > (int)PAGE)
		return -EINVAL;
	return 0;
}

/*
 * A store over @fd (taken: closed on error) from byte @base on.  @shared:
 * the descriptor is a dup of the caller's, whose file position it shares,
 * so the store must never lseek() it (no hole detection then: holes read
 * as zeros through pread() all the same).
 */
static int file_new(int fd, uint64_t base, bool direct, bool writable,
		    bool shared, struct upager_store **out)
{
	struct file_store *f = NULL;
	uint64_t size;
	int ret;

	ret = file_size(fd, &size);
	if (!ret && (base % PAGE || base > size))
		ret = -EINVAL;
	if (!ret && direct)
		ret = direct_aligned(fd);
	/*
	 * O_DIRECT writes whole blocks, so writing back the last page of a
	 * file whose size is not a whole number of pages would either fail
	 * or make the file longer.
	 */
	if (!ret && direct && writable && (size - base) % PAGE)
		ret = -EINVAL;
	if (!ret && !(f = malloc(sizeof(*f))))
		ret = -ENOMEM;
	if (ret) {
		close(fd);
		return ret;
	}
	size -= base;
	f->s.ops = &store_file_ops;
	f->s.npages = store_pages(size);
	/* Buffered reads come from the page cache, read ahead of us. */
	f->s.flags = UPAGER_STORE_SIGNAL_SAFE |
		     (direct ? 0 : UPAGER_STORE_CHEAP);
	f->fd = fd;
	f->direct = direct;
	f->writable = writable;
	f->base = base;
	f->size = size;
	/* A dense file never asks lseek() again (one syscall per fill). */
	f->sparse =
	    !shared && lseek(fd, (off_t)base, SEEK_HOLE) < (off_t)(base + size);
	f->in_memory = !direct && on_tmpfs(fd);
	f->map = NULL;
	f->released = NULL;
	atomic_init(&f->tick, 0);
	for (int i = 0; i < HELD; i++)
		atomic_init(&f->held[i], 0);
	if (!direct && size) {
		f->map = mmap(NULL, f->s.npages * PAGE, PROT_READ, MAP_SHARED,
			      fd, (off_t)base);
		if (f->map == MAP_FAILED)
			f->map = NULL; /* a device that can't: pread() only */
		if (f->map)
			f->released = calloc(f->s.npages / BLOCK_PAGES + 1,
					     sizeof(*f->released));
		if (f->map && !f->released) {
			munmap(f->map, f->s.npages * PAGE);
			f->map = NULL;
		}
	}
	*out = &f->s;
	return 0;
}

static int file_open(const char *arg, struct upager_store **out)
{
	bool direct = false, writable = false;
	size_t len = strlen(arg);
	uint64_t size;
	int fd, ret;

	for (;;) {
		if (strip_option(arg, &len, ",direct"))
			direct = true;
		else if (strip_option(arg, &len, ",writable"))
			writable = true;
		else
			break;
	}
	if (!len)
		return -EINVAL;
	/*
	 * O_NONBLOCK because open() of a FIFO would wait for a writer
	 * before we could refuse it; it is dropped once the type is known.
	 */
	fd = open_fd(arg, len,
		     (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK |
			 (direct ? O_DIRECT : 0));
	if (fd < 0)
		return fd;
	ret = file_size(fd, &size);
	if (!ret && fcntl(fd, F_SETFL, direct ? O_DIRECT : 0))
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	return file_new(fd, 0, direct, writable, false, out);
}

struct upager_store *upager_store_file_fd(int fd, uint64_t offset,
					  unsigned int flags, int *err)
{
	struct upager_store *s = NULL;
	int fl, ret = 0, dup;

	if (flags & ~UPAGER_FILE_READONLY)
		ret = -EINVAL;
	else if ((fl = fcntl(fd, F_GETFL)) < 0)
		ret = -errno;
	else if ((fl & O_ACCMODE) == O_WRONLY || (fl & O_PATH))
		ret = -EBADF;
	else if ((dup = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		ret = -errno;
	else
		ret = file_new(dup, offset, fl & O_DIRECT,
			       (fl & O_ACCMODE) == O_RDWR &&
				   !(flags & UPAGER_FILE_READONLY),
			       true, &s);
	if (ret && err)
		*err = ret;
	return ret ? NULL : s;
}

/*
 * Read or write @npages pages at @pgoff, none of them past the size at
 * open but for the tail of the last page: a read fills that tail with
 * zeros, a write leaves it out so the file keeps its size.
 */
static int file_io(struct file_store *f, bool write, uint64_t pgoff,
		   char *buf, size_t npages)
{
	size_t len = npages * PAGE, done = 0, want = len;
	uint64_t rel = pgoff * PAGE;
	off_t off = (off_t)(f->base + rel);
	ssize_t n;

	if (f->size - rel < len)
		want = (size_t)(f->size - rel);
	while (done < want) {
		/*
		 * A read asks for whole pages even across the end of the
		 * file: O_DIRECT wants a length in whole blocks, and the
		 * kernel stops at the end anyway.
		 */
		if (write)
			n = pwrite(f->fd, buf + done, want - done, off + done);
		else
			n = pread(f->fd, buf + done, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		done += (size_t)n;
		/*
		 * 0 bytes: the file has shrunk since open.  O_DIRECT can't
		 * go on from an unaligned offset, so there a short transfer
		 * is as final.
		 */
		if (n == 0 || (f->direct && done % PAGE && done < want))
			return -EIO;
	}
	if (!write && done < len)
		memset(buf + done, 0, len - done);
	return 0;
}

/*
 * O_DIRECT needs an aligned buffer.  The engine's staging buffers are
 * page aligned; another caller's buffer goes a page at a time through
 * one on the stack, which costs no allocation and keeps fetch()
 * async-signal-safe.
 */
static int file_pages(struct file_store *f, bool write, uint64_t pgoff,
		      char *buf, size_t npages)
{
	char bounce[PAGE] __attribute__((aligned(PAGE)));
	int ret;

	if (!f->direct || (uintptr_t)buf % PAGE == 0)
		return file_io(f, write, pgoff, buf, npages);
	for (size_t i = 0; i < npages; i++) {
		if (write)
			memcpy(bounce, buf + i * PAGE, PAGE);
		ret = file_io(f, write, pgoff + i, bounce, 1);
		if (ret)
			return ret;
		if (!write)
			memcpy(buf + i * PAGE, bounce, PAGE);
	}
	return 0;
}

static int file_fetch(struct upager_store *s, uint64_t pgoff, void *dst,
		      size_t npages)
{
	return file_pages(to_file(s), false, pgoff, dst, npages);
}

static int file_writeback(struct upager_store *s, uint64_t pgoff,
			  const void *src, size_t npages)
{
	struct file_store *f = to_file(s);

	if (!f->writable)
		return -EOPNOTSUPP;
	/* file_pages() only reads from the buffer of a write. */
	return file_pages(f, true, pgoff, (char *)src, npages);
}

/*
 * lseek(SEEK_DATA) finds the next data at or after an offset without
 * reading.  It also moves the fd's file position, which all threads
 * share; that is harmless because nothing here uses the position (only
 * pread/pwrite), and each lseek() returns its own answer.
 */
static size_t file_zero_run(struct upager_store *s, uint64_t pgoff,
			    size_t npages)
{
	struct file_store *f = to_file(s);
	off_t off = (off_t)(f->base + pgoff * PAGE), data;
	uint64_t end = (pgoff + npages) * PAGE;
	struct stat st;

	if (!f->sparse)
		return 0;

	data = lseek(f->fd, off, SEEK_DATA);
	if (data >= 0) {
		uint64_t run = (uint64_t)(data - off) / PAGE;

		return run < npages ? (size_t)run : npages;
	}
	/*
	 * ENXIO: no data from @off on, a hole up to the end of the file;
	 * unless the file shrank under the run, which fetch() reports as
	 * -EIO, not as zeros.
	 */
	if (errno != ENXIO || fstat(f->fd, &st))
		return 0;
	if (end > f->size)
		end = f->size;
	return (uint64_t)st.st_size >= f->base + end ? npages : 0;
}

/*
 * The pages in the page cache, through the mapping.  MADV_POPULATE_READ
 * maps the whole range in one call (reading what is not cached), so the
 * engine's UFFDIO_COPY finds every source page present; it fails when the
 * file shrank under the range, and fetch() then reports that as -EIO.
 * The disk reads are the kernel's own mmap read-ahead's, started by these
 * faults: asking for more with MADV_WILLNEED cut them into 2 MiB requests
 * and its markers went missing (half the queue depth, a tenth slower
 * cold).
 */
static const void *file_direct(struct upager_store *s, uint64_t pgoff,
			       size_t npages)
{
	struct file_store *f = to_file(s);
	char *p = f->map + pgoff * PAGE;
	size_t len = npages * PAGE;

	if (!f->map || madvise(p, len, MADV_POPULATE_READ))
		return NULL;
	return p;
}

/* Unmap block @b: the page cache stays, and can now be dropped. */
static void drop_block(struct file_store *f, uint64_t b)
{
	uint64_t first = b * BLOCK_PAGES, n = f->s.npages - first;

	madvise(f->map + first * PAGE, (n < BLOCK_PAGES ? n : BLOCK_PAGES) * PAGE,
		MADV_DONTNEED);
}

/*
 * Installed: drop our mapping of what was copied, not the page cache, so
 * the process does not hold the data twice and the cache can be dropped.
 *
 * Unmapping costs a TLB flush on every CPU the process runs on, so a
 * 2 MiB block is dropped once it has been released whole: one flush per
 * block for a stream, however its two workers interleave their chunks.
 * Random reads release blocks in part and reach whole late or never, and
 * what they leave mapped is more than the range: MADV_POPULATE_READ maps
 * the kernel's fault-around window with it, and since 6.18 a large folio
 * of the page cache whole (a folio never crosses a block, 2 MiB aligned
 * in the file).  So at most HELD blocks stay released in part: the block
 * that starts being released takes a slot in held[] in turn and drops
 * the one it displaces (bounding the memory held twice at HELD x 2 MiB).
 * A page released twice counts twice and the block goes a little early;
 * a dropped page another thread still copies from faults back in: both
 * harmless, the mapping maps the page cache again on the next use.
 * Lock-free: in-thread regions call this from a signal handler.
 */
static void file_release(struct upager_store *s, uint64_t pgoff,
			 size_t npages)
{
	struct file_store *f = to_file(s);

	while (npages) {
		uint64_t b = pgoff / BLOCK_PAGES, first = b * BLOCK_PAGES;
		size_t k = BLOCK_PAGES - pgoff % BLOCK_PAGES, whole;
		unsigned int old, slot;
		unsigned long out;

		/* The last block may be short. */
		whole = s->npages - first < BLOCK_PAGES ? s->npages - first
							: BLOCK_PAGES;
		if (k > npages)
			k = npages;
		old = atomic_fetch_add(&f->released[b], (unsigned int)k);
		if (old < whole && old + k >= whole) {
			atomic_fetch_sub(&f->released[b], (unsigned int)whole);
			drop_block(f, b);
		} else if (!old) {
			slot = atomic_fetch_add(&f->tick, 1) % HELD;
			out = atomic_exchange(&f->held[slot], b + 1);
			if (out && out != b + 1 &&
			    atomic_exchange(&f->released[out - 1], 0))
				drop_block(f, out - 1);
		}
		pgoff += k;
		npages -= k;
	}
}

/*
 * A file on tmpfs (/dev/shm, a memfd's /proc/self/fd/N) is memory
 * already: a region can map it (copy-on-write) instead of copying it.
 */
static int file_memfile(struct upager_store *s, uint64_t *offset)
{
	struct file_store *f = to_file(s);

	if (!f->in_memory)
		return -EOPNOTSUPP;
	*offset = f->base;
	return f->fd;
}

static void file_close(struct upager_store *s)
{
	struct file_store *f = to_file(s);

	if (f->map)
		munmap(f->map, f->s.npages * PAGE);
	free(f->released);
	close(f->fd);
	free(f);
}

const struct upager_store_ops store_file_ops = {
	.size = sizeof(struct upager_store_ops),
	.name = "file",
	.help = "file:PATH[,direct][,writable]  pages of a file or block "
		"device (holes read as zeros)",
	.open = file_open,
	.fetch = file_fetch,
	.close = file_close,
	.zero_run = file_zero_run,
	.writeback = file_writeback,
	.direct = file_direct,
	.release = file_release,
	.memfile = file_memfile,
};

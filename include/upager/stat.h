/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * upager statistics of other processes: what a handler created with
 * upager_handler_params.stats_name publishes in /dev/shm/upager-PID-NAME,
 * read as a snapshot (what `upager stat` shows).  Reading costs the
 * publishing process nothing: it updates the file in place and never
 * waits for a reader.
 *
 *   static int one(const char *path, int pid, const char *name, void *arg)
 *   {
 *           struct upager_stat_info info = { .size = sizeof(info) };
 *           struct upager_stat *st = upager_stat_read(path, NULL, &err);
 *           struct upager_stats total;
 *
 *           upager_stat_info(st, &info);
 *           upager_stat_total(st, &total);
 *           for (unsigned int i = 0; i < info.nregions; i++)
 *                   upager_stat_region(st, i, &reg, &stats);
 *           upager_stat_free(st);
 *   }
 *   upager_stat_list(0, one, NULL);   // every process's files
 *
 * Every function is thread-safe and needs no kernel feature: the files
 * are plain files in a tmpfs.  Those returning int return 0 or -errno;
 * those returning a pointer store -errno in *err (when err is not NULL)
 * and return NULL.
 */
#ifndef UPAGER_STAT_H
#define UPAGER_STAT_H

#include <stddef.h>
#include <stdint.h>

#include <upager/upager.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/*
 * Call @fn for each statistics file, /dev/shm/upager-PID-NAME, of
 * process @pid (0: of every process), with its path, the PID and NAME its
 * name gives, and @arg.  Files whose process has gone are listed too (a
 * process killed cannot remove its own): kill(pid, 0) tells.  A non-zero
 * return of @fn ends the walk and is returned.  Returns 0, @fn's
 * non-zero return, or -errno of opendir(3) (-ENOENT: no /dev/shm).
 */
int upager_stat_list(int pid,
		     int (*fn)(const char *path, int pid, const char *name,
			       void *arg),
		     void *arg);

/* A snapshot of one statistics file. */
struct upager_stat;

/*
 * Read the statistics file @path (as upager_stat_list() gives it) into a
 * snapshot; every counter is as the publisher last wrote it, read once.
 * The file is checked before anything in it is believed: its magic,
 * that its version is one this library reads (files of an older library
 * still running are read by their own layout), that its size is that
 * version's, that its strings end within their fields.  Returns the
 * snapshot, or NULL with *@err:
 *   -EAGAIN           the file is being created (no magic yet): try again
 *   -EBADMSG          not a statistics file, or a malformed or truncated
 *                     one
 *   -EPROTONOSUPPORT  a version this library does not read (a newer
 *                     library wrote it)
 *   -ENOENT, -EACCES... open(2) and read(2)'s errors (-ENOENT: its
 *                     process ended meanwhile; -EACCES: another user's)
 *   -ENOMEM
 * @why, if not NULL, is set to a static string saying what was wrong for
 * the first three (NULL otherwise), for a message that names the file.
 */
struct upager_stat *upager_stat_read(const char *path, const char **why,
				     int *err);
void upager_stat_free(struct upager_stat *st);

/*
 * The handler a snapshot describes.  Starts with its size, as every
 * output struct that may grow: in, sizeof as the caller was built; out,
 * the bytes filled.
 */
struct upager_stat_info {
	uint32_t size;
	uint32_t pid;	   /* the publishing process */
	uint32_t version;  /* of the file's layout */
	uint32_t nregions; /* regions published: upager_stat_region()'s */
	uint64_t threads;  /* the handler's workers */
	char name[64];	   /* upager_handler_params.stats_name */
};

/* Fill @info (its size set by the caller).  0, or -EINVAL (size < 4). */
int upager_stat_info(const struct upager_stat *st,
		     struct upager_stat_info *info);
/* Counters of the regions unmapped so far, and of stray faults. */
void upager_stat_retired(const struct upager_stat *st, struct upager_stats *s);
/* The retired counters plus every published region's: the handler's. */
void upager_stat_total(const struct upager_stat *st, struct upager_stats *s);

/* One published region (its size field as struct upager_stat_info's). */
struct upager_stat_region {
	uint32_t size;
	uint64_t addr;	   /* in the publishing process */
	uint64_t len;	   /* bytes */
	uint64_t fill;	   /* bytes per fill unit */
	char store[48];	   /* the kind of store ("file", "remote"...) */
	char memtype[16];  /* "anon", "shmem", "hugetlb" */
};

/*
 * Region @i (below info.nregions) of the snapshot into @reg (its size set
 * by the caller) and its counters into @s; either may be NULL.  0, -ERANGE
 * (no region @i), -EINVAL (@reg's size < 4).
 */
int upager_stat_region(const struct upager_stat *st, unsigned int i,
		       struct upager_stat_region *reg, struct upager_stats *s);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif

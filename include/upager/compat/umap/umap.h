/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <umap/umap.h> as UMap programs include it, for builds against upager's
 * UMap API: put this folder on the include path (pkg-config upager-umap
 * does) and link -lupager-umap -lupager instead of -lumap.
 */
#include <upager/umap.h>

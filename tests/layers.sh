#!/bin/bash
# The library's layers depend one way, and its folders show it:
#   src/base < src/ll < src/engine < src/store < src/net < src/manager
#   < src/*.c (top) < src/umap (libupager-umap, UMap's API: a library
#   of its own over libupager's public headers only)
# A file may include the private headers of its own layer and the layers
# below it, never of a layer above; the public headers belong to layers
# too (uapi.h and ll.h: ll; upager.h, store.h and stat.h: engine, whose
# store interface the stores implement; image.h and memcached.h: store;
# remote.h: net; manager.h and trace.h: manager; umap.h: umap).
# Programs outside the library (tools/, bench/, examples/, and common/,
# which tools/ and bench/ share), and src/umap/, include public headers
# (<upager/...>) and their own, never the library's private ones.  Tests
# may (they test internals).
set -u
cd "$(dirname "$0")/.."
rank() {
	case $1 in
	base) echo 0 ;; ll) echo 1 ;; engine) echo 2 ;; store) echo 3 ;;
	net) echo 4 ;; manager) echo 5 ;; top) echo 6 ;; umap) echo 7 ;;
	*) echo 99 ;;
	esac
}
# The layer of an included path: "engine/x.h", or a public "upager/x.h".
layer_of() {
	case $1 in
	upager/uapi.h | upager/ll.h) echo ll ;;
	upager/upager.h | upager/store.h | upager/stat.h) echo engine ;;
	upager/image.h | upager/memcached.h) echo store ;;
	upager/remote.h) echo net ;;
	upager/manager.h | upager/trace.h) echo manager ;;
	upager/umap.h) echo umap ;;
	upager/*) echo top ;;
	*) echo "${1%%/*}" ;;
	esac
}
bad=0
for f in src/*.c src/*/*.c src/*/*.h include/upager/*.h; do
	case $f in
	include/*) layer=$(layer_of "${f#include/}") ;;
	src/*/*) layer=${f#src/}; layer=${layer%%/*} ;;
	*) layer=top ;;
	esac
	mine=$(rank "$layer")
	while IFS= read -r inc; do
		dep=$(layer_of "$inc")
		if [ "$(rank "$dep")" -gt "$mine" ]; then
			echo "FAIL $f ($layer) includes \"$inc\" from a higher layer"
			bad=1
		fi
	done < <(sed -n -e 's/^#include "\([a-z]*\/[^"]*\)".*/\1/p' \
		-e 's/^#include <\(upager\/[^>]*\)>.*/\1/p' "$f")
done
for f in tools/*.c tools/*.h bench/*.c bench/*.h common/*.c common/*.h \
	examples/*.c src/umap/*.c src/umap/*.h; do
	[ -f "$f" ] || continue
	if grep -Hn '^#include "\(base\|ll\|engine\|store\|net\|manager\)/' "$f"; then
		echo "FAIL $f includes a private header of the library"
		bad=1
	fi
done
[ $bad = 0 ] && echo "layers: every include goes down"
exit $bad

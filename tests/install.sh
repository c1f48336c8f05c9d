#!/bin/bash
# `make install` into a prefix gives a working pkg-config file, and the
# example compiles against the installed header and library (shared and
# static) and runs, and so does a program in UMap's style against
# libupager-umap (C and C++, pkg-config upager-umap's flags instead of
# UMap's); the installed `upager bench` runs the installed
# upager-bench (and says so when it is missing); `make uninstall` takes
# it away.
build=$1
. "$(dirname "$0")/lib.sh"
command -v pkg-config >/dev/null || skip "pkg-config missing"

prefix=$tmp/prefix
# A sanitizer build's library needs the same runtime in the program
# (make check passes SANITIZE; a direct run of tests/run.sh does not).
case ${SANITIZE:-$(basename "$build")} in
build-asan | *address*) sanitize=address,undefined ;;
build-tsan | thread) sanitize=thread ;;
*) sanitize= ;;
esac
san=${sanitize:+-fsanitize=$sanitize}
make -s -C "$src" install BUILD="$build" SANITIZE="$sanitize" PREFIX="$prefix" \
	>"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "make install"; }
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs upager) || fail "pkg-config --cflags --libs upager"
echo "pkg-config: $flags"
[ -f "$prefix/include/upager/ll.h" ] || fail "header not installed"
[ -f "$prefix/share/man/man1/upager.1" ] || fail "man page not installed"
[ -f "$prefix/share/man/man1/upagerd.1" ] || fail "upagerd's man page not installed"
[ -f "$prefix/include/upager/manager.h" ] || fail "manager.h not installed"
"$prefix/bin/upagerd" --help | grep -q '^usage: upagerd' || fail "installed upagerd"
# The library parses Firecracker's JSON with json-c: a static link needs it.
pkg-config --static --libs upager | grep -q -- -ljson-c ||
	fail "Libs.private lacks json-c: $(pkg-config --static --libs upager)"

# Only the installed prefix, no tree paths: the header must stand alone.
cc -Wall -Werror $san -o "$tmp/demo" "$src/examples/demo.c" $flags -pthread \
	-Wl,-rpath,"$prefix/lib" || fail "example does not build against the install"
"$tmp/demo" 2 | grep -q 'in main(): B$' || fail "shared-linked example"
cc -Wall -Werror $san -o "$tmp/demo-static" "$src/examples/demo.c" \
	$(pkg-config --cflags upager) "$prefix/lib/libupager.a" -pthread ||
	fail "static link"
"$tmp/demo-static" 2 | grep -q 'in main(): B$' || fail "static-linked example"
# Only upager_ symbols leave the shared library.
nm -D --defined-only "$prefix/lib/libupager.so" | awk '$2 == "T" {print $3}' |
	grep -v '^upager_' && fail "non-upager symbols exported"
"$prefix/bin/upager" features >/dev/null || fail "installed CLI"

# UMap's API: its own library, its symbols only there.
uflags=$(pkg-config --cflags --libs upager-umap) ||
	fail "pkg-config --cflags --libs upager-umap"
echo "pkg-config upager-umap: $uflags"
nm -D --defined-only "$prefix/lib/libupager-umap.so" |
	awk '$2 == "T" {print $3}' | grep -v '^\(umap\|uunmap\|umapcfg_\)' &&
	fail "libupager-umap exports more than UMap's calls"
nm -D --defined-only "$prefix/lib/libupager-umap.so" | grep -q ' T umap_flush@' ||
	fail "libupager-umap does not export umap_flush"
cc -Wall -Werror $san -o "$tmp/umap-c" "$src/tests/umap_style.c" $uflags \
	-pthread -Wl,-rpath,"$prefix/lib" || fail "a UMap program (C) does not build"
"$tmp/umap-c" || fail "the UMap program (C) against the install"
g++ -Wall -Werror $san -x c++ -o "$tmp/umap-cxx" "$src/tests/umap_style.c" \
	-x none $uflags -pthread -Wl,-rpath,"$prefix/lib" ||
	fail "a UMap program (C++) does not build"
"$tmp/umap-cxx" || fail "the UMap program (C++) against the install"
[ -x "$prefix/libexec/upager/upager-bench" ] || fail "upager-bench not installed"
# The installed CLI runs the installed benchmark, not the build tree's.
"$prefix/bin/upager" bench --help | grep -q "^usage: upager bench" ||
	fail "installed upager bench --help"
mv "$prefix/libexec/upager/upager-bench" "$tmp/moved"
"$prefix/bin/upager" bench --help >/dev/null 2>"$tmp/err" &&
	fail "upager bench ran with upager-bench gone"
grep -q "upager-bench is not installed" "$tmp/err" ||
	fail "upager bench without upager-bench: $(cat "$tmp/err")"
make -s -C "$src" uninstall BUILD="$build" PREFIX="$prefix" >/dev/null ||
	fail "make uninstall"
[ -e "$prefix/libexec/upager" ] && fail "uninstall left libexec/upager"
exit 0

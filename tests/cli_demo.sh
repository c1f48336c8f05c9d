#!/bin/bash
# `upager demo N` prints the man page's lines: one fault per page, pages
# A, B, C..., four reads per page; the examples/ program does the same;
# bad arguments are refused with a message naming them.
build=$1
. "$(dirname "$0")/lib.sh"

"$upager" demo 3 >"$tmp/out" || fail "upager demo exited $?"
cat "$tmp/out"
[ "$(grep -c '^fault_handler_thread():' "$tmp/out")" = 3 ] || fail "want 3 faults"
[ "$(grep -c 'UFFD_EVENT_PAGEFAULT event: flags = 0; address = ' "$tmp/out")" = 3 ] || fail "event lines"
[ "$(grep -c '(uffdio_copy.copy returned 4096)' "$tmp/out")" = 3 ] || fail "copy lines"
for c in A B C; do
	[ "$(grep -c "^Read address 0x[0-9a-f]* in main(): $c\$" "$tmp/out")" = 4 ] ||
		fail "want 4 reads of page $c"
done
# Each page's copy line comes before the page's reads (DONTWAKE then WAKE).
awk '/copy returned/ {c++} /in main\(\): / {r++; if (r > 4 * c) bad = 1}
     END {exit bad}' "$tmp/out" || fail "a read printed before its copy line"
# The faulting address is the exact byte read (0xf into the page).
grep -q 'address = [0-9a-f]*00f$' "$tmp/out" || fail "exact address"

"$build/examples/demo" 5 >"$tmp/ex" || fail "example exited $?"
[ "$(grep -c '^fault at ' "$tmp/ex")" = 5 ] || fail "example: want 5 faults"
[ "$(grep -c 'in main(): E$' "$tmp/ex")" = 4 ] || fail "example: page E"

"$upager" demo abc 2>"$tmp/err" && fail "demo abc accepted"
grep -q "NUM_PAGES 'abc' is not a number" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$upager" demo 0 2>"$tmp/err"; [ $? = 2 ] || fail "demo 0: want exit 2"
grep -q "out of range" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$upager" demo --help | grep -q '^usage: upager demo' || fail "--help"
exit 0

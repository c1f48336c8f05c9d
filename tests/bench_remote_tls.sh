#!/bin/bash
# bench/remote_tls in a small run: the bare stream's floor line and the
# table with positive numbers (the program verifies every page it maps
# and exits 1 on a wrong one); bad arguments exit 2.
build=$1
. "$(dirname "$0")/lib.sh"
bench=$build/bench/remote_tls
[ -x "$bench" ] || fail "$bench is not built"

"$bench" --size 8 --faults 100 --rounds 1 >"$tmp/out.txt" 2>"$tmp/err" ||
	fail "remote_tls exited $?: $(cat "$tmp/err")"
grep -Eq '^bare stream of 8 MiB over loopback, no upager \(median of 1\): plaintext [1-9][0-9]* MB/s, TLS 1\.3 [1-9][0-9]* MB/s, [0-9.]+x the time$' \
	"$tmp/out.txt" || fail "no bare stream line: $(cat "$tmp/out.txt")"
for row in plaintext "TLS 1.3" TLS/plain; do
	grep -q "^$row  *[0-9]" "$tmp/out.txt" ||
		fail "the table has no '$row' row: $(cat "$tmp/out.txt")"
done

refused "--size of at least 8 MiB" "$bench" --size 4
"$bench" --rounds 99 >/dev/null 2>&1
[ $? = 2 ] || fail "--rounds 99: not refused"
"$bench" --help | grep -q "^usage: remote_tls" || fail "--help"
exit 0

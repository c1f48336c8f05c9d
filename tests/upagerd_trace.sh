#!/bin/bash
# Working-set record and replay through upagerd, and `upager trace`.
# Record (--record img:DIR): a client reads a scattered quarter of its
# pages in a random order; when it goes, the daemon writes a trace of
# exactly those pages in exactly that order (upager trace --entries).
# A second client, another order: its own trace; --merge makes one trace
# of both (the union, each page once).  Replay (--replay img:TRACE): a
# new client finds every page of the working set installed before it
# touches any (mincore), and no other page, and reads them right.
# Traces are files a daemon reads: a truncated one, a wrong magic or
# version, a page past the export, a page twice, an export of another
# size: each refused at start with what and where, by upagerd and by
# upager trace.  --json output.
build=$1
. "$(dirname "$0")/lib.sh"

pages=4096 quarter=1024
peer mkimg "$tmp/img" $pages || fail "image"
mkdir "$tmp/rec"
start_upagerd --listen "$tmp/at.sock" --record img:"$tmp/rec" img=file:"$tmp/img"
timeout 60 "$build/tests/upagerd_peer" wset "$tmp/at.sock" img $pages 1 record "$tmp/order1" ||
	fail "recording client 1: exit $?"
log_has "recorded $quarter pages of 'img' to $tmp/rec/img\."
timeout 60 "$build/tests/upagerd_peer" wset "$tmp/at.sock" img $pages 2 record "$tmp/order2" ||
	fail "recording client 2: exit $?"
for _ in $(seq 100); do [ "$(ls "$tmp/rec" | wc -l)" = 2 ] && break; sleep 0.05; done
stop_upagerd
recorded() { grep -o "to $tmp/rec/img\.[0-9.]*trace" "$tmp/upagerd.log" | sed -n "$1p" | cut -c4-; }
t1=$(recorded 1) t2=$(recorded 2)
[ "$t1" != "$t2" ] || fail "one trace for two clients: $(ls "$tmp/rec")"

"$upager" trace --entries "$t1" >"$tmp/show1" || fail "upager trace: exit $?"
grep -q "export 'img' ($pages pages, 16.0 MiB)" "$tmp/show1" || fail "header: $(head -3 "$tmp/show1")"
grep -q "pages $quarter (4.0 MiB, 25.0% of the export)" "$tmp/show1" || fail "pages: $(head -3 "$tmp/show1")"
awk 'NF == 2 && $1 ~ /^[0-9]+$/ {print $1}' "$tmp/show1" >"$tmp/got1"
cmp -s "$tmp/got1" "$tmp/order1" || fail "the trace's order is not the client's: $(diff "$tmp/got1" "$tmp/order1" | head -5)"
[ "$(grep -c '%$' "$tmp/show1")" = 10 ] || fail "timeline: $(cat "$tmp/show1" | head -16)"
grep -q ' 100.0%$' "$tmp/show1" || fail "timeline ends below 100%"

union=$(sort -u "$tmp/order1" "$tmp/order2" | wc -l)
"$upager" trace --json --merge "$tmp/merged.trace" "$t1" "$t2" >"$tmp/merged.json" ||
	fail "merge: exit $?"
grep -q "\"pages\": *$union," "$tmp/merged.json" || fail "merged: want $union pages: $(head -c 300 "$tmp/merged.json")"
"$upager" trace --json "$t1" "$t2" | grep -c '"export": *"img"' | grep -qx 2 || fail "--json of two traces"

# Replay.
start_upagerd --listen "$tmp/at.sock" --replay img:"$t1" img=file:"$tmp/img"
timeout 60 "$build/tests/upagerd_peer" wset "$tmp/at.sock" img $pages 1 replay - ||
	fail "replaying client: exit $?"
log_has "replaying $quarter pages of the working set of 'img'"
stop_upagerd

# Bad traces, refused with what and where.
bad() { # NAME 'MESSAGE'
	"$build/upagerd" --listen "$tmp/x.sock" --replay img:"$tmp/$1" img=file:"$tmp/img" \
		>/dev/null 2>"$tmp/err" && fail "upagerd started with trace $1"
	grep -q -- "$2" "$tmp/err" || fail "upagerd on $1: $(cat "$tmp/err")"
	"$upager" trace "$tmp/$1" >/dev/null 2>"$tmp/err" && fail "upager trace read $1"
	grep -q -- "$2" "$tmp/err" || fail "upager trace on $1: $(cat "$tmp/err")"
}
size=$(stat -c %s "$t1")
head -c $((size - 5)) "$t1" >"$tmp/short"
bad short "byte 24: $quarter entries make $size bytes, the file has $((size - 5))"
cp "$t1" "$tmp/magic" && printf 'XXXX' | dd of="$tmp/magic" conv=notrunc status=none
bad magic "byte 0: magic 0x58585858, not an upager trace"
cp "$t1" "$tmp/version" && printf '\x02' | dd of="$tmp/version" bs=1 seek=4 conv=notrunc status=none
bad version "byte 4: version 2, this reads version 1"
cp "$t1" "$tmp/past" && printf '\xff\xff\xff\x00' | dd of="$tmp/past" bs=1 seek=112 conv=notrunc status=none
bad past "entry 1 (byte 112): page 16777215 is past the export's $pages pages"
cp "$t1" "$tmp/twice" && dd if="$t1" of="$tmp/twice" bs=1 skip=96 seek=112 count=8 conv=notrunc status=none
bad twice "page $(head -1 "$tmp/order1") is listed twice"
head -c 40 /dev/zero >"$tmp/tiny"
bad tiny "40 bytes: shorter than the 96-byte header"
peer mkimg "$tmp/img2" 1024 || fail "image 2"
"$build/upagerd" --listen "$tmp/x.sock" --replay img:"$t1" img=file:"$tmp/img2" \
	>/dev/null 2>"$tmp/err" && fail "upagerd replayed a trace of another export's size"
grep -q "recorded on an export of $pages pages, 'img' has 1024" "$tmp/err" || fail "size: $(cat "$tmp/err")"
"$build/upagerd" --listen "$tmp/x.sock" --record img:"$tmp/nosuch" img=file:"$tmp/img" \
	>/dev/null 2>"$tmp/err" && fail "upagerd recorded into a missing directory"
grep -q "not a directory upagerd can write to" "$tmp/err" || fail "record dir: $(cat "$tmp/err")"
exit 0

#!/bin/bash
# bench/memcached-store in a small run (three memcached servers on
# loopback, started and stopped by the program): the JSON has every row
# with positive numbers and no p99 under its p50, the table every row;
# the program checks each page it reads (exit 1 on a wrong one); bad
# arguments exit 2 naming them.
build=$1
. "$(dirname "$0")/lib.sh"
bench=$build/bench/memcached-store
[ -x "$bench" ] || fail "$bench is not built"
[ -x /usr/bin/memcached ] || skip "memcached is not installed"
command -v python3 >/dev/null || skip "python3 is not installed"

json_run "$bench" --size 4M --rounds 1 --faults 200 --dir "$tmp" --json
python3 - "$tmp/out.json" <<'PY' || fail "the JSON output: $(cat "$tmp/out.json")"
import json, sys
d = json.load(open(sys.argv[1]))
bad = [k for k in ("push_seconds", "seq_mget_seconds", "seq_nomget_seconds",
                   "seq_file_seconds") if not d.get(k, 0) > 0]
for row in ("fault_memcached", "fault_memcached_inthread",
            "fault_bare", "fault_bare_inthread", "fault_file",
            "memcached_get", "store_fetch"):
    p50, p99 = d.get(row + "_p50_us", 0), d.get(row + "_p99_us", 0)
    if not 0 < p50 <= p99:
        bad.append(f"{row}: p50 {p50}, p99 {p99}")
if d.get("bytes") != 4 << 20 or d.get("rounds") != 1:
    bad.append(f"bytes {d.get('bytes')}, rounds {d.get('rounds')}")
for b in bad:
    print("JSON:", b)
sys.exit(1 if bad else 0)
PY

"$bench" --size 4M --rounds 1 --faults 200 --dir "$tmp" >"$tmp/out.txt" \
	2>/dev/null || fail "memcached-store exited $?"
for w in "memcached_get, bare (the floor)" "memcached: fetch() alone" \
	"region over memcached:" "region over memcached:, in-thread" \
	"bare handler thread: get, COPY" \
	"bare in-thread: memcached_get, COPY" "region over file:" \
	"memcached (mget=256)" "memcached (mget=1)"; do
	grep -qF "$w" "$tmp/out.txt" || fail "the table has no '$w': $(cat "$tmp/out.txt")"
done

refused "--size '3x'" "$bench" --size 3x
refused "--rounds" "$bench" --rounds 0
refused "--faults" "$bench" --faults 5
"$bench" --help | grep -q "^usage: memcached-store" || fail "--help"
exit 0

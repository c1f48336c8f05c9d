#!/bin/bash
# `upager stat` reads the counters a running handler publishes: the
# examples/mapfile program maps a file through upager and holds it; stat
# (text and --json) shows its region with every page filled; the file is
# gone once the program ends.  A file of a live process that is not a
# statistics file (here this shell's, truncated) is an error that names
# it, exit 1.
build=$1
. "$(dirname "$0")/lib.sh"

python3 -c "import os; open('$tmp/data','wb').write(os.urandom(3 << 20))"
want=$(python3 -c "
import struct; d = open('$tmp/data','rb').read()
print(sum(struct.unpack('<%dQ' % (len(d) // 8), d)) % (1 << 64))")

"$build/examples/mapfile" "$tmp/data" 20 >"$tmp/out" &
pid=$!
for _ in $(seq 300); do
	[ -s "$tmp/out" ] && break
	sleep 0.1
done
grep -q "^sum $want pages 768\$" "$tmp/out" || { kill $pid; fail "mapfile: $(cat "$tmp/out"), want sum $want"; }
[ -f /dev/shm/upager-$pid-mapfile ] || { kill $pid; fail "no statistics file"; }

"$upager" stat $pid >"$tmp/stat.txt" || { kill $pid; fail "stat exited $?"; }
cat "$tmp/stat.txt"
grep -q "handler 'mapfile'" "$tmp/stat.txt" || { kill $pid; fail "handler line"; }
grep -q "pages filled 768," "$tmp/stat.txt" || { kill $pid; fail "pages filled"; }
"$upager" stat --json $pid >"$tmp/stat.json" || { kill $pid; fail "stat --json"; }
kill $pid
wait $pid 2>/dev/null
python3 - "$tmp/stat.json" <<'PY' || exit 1
import json, sys
j = json.load(open(sys.argv[1]))
[h] = j["handlers"]
assert h["name"] == "mapfile"
[r] = h["regions"]
s = r["stats"]
assert r["store"] == "file" and r["memtype"] == "anon", r
assert r["len"] == 3 << 20
assert s["pages_filled"] == 768, s
assert s["bytes_fetched"] == 3 << 20, s
assert 0 < s["faults"] < 768, s          # read-ahead took most pages
assert s["ra_pages"] + s["faults"] >= 768, s
assert s["store_errors"] == 0
assert sum(s["latency_hist_us"]) == s["faults"] - s["faults_dup"], s
assert h["total"]["pages_filled"] == 768
PY
"$upager" stat $pid >/dev/null 2>&1 && fail "stat of a gone process succeeded"
"$upager" stat --help | grep -q '^usage: upager stat' || fail "--help"
"$upager" stat notapid 2>/dev/null; [ $? = 2 ] || fail "bad pid: want exit 2"
bad=/dev/shm/upager-$$-broken
trap 'rm -rf "$tmp" "$bad"' EXIT
printf 'upagerst' >"$bad"
"$upager" stat $$ >/dev/null 2>"$tmp/err"; rc=$?
[ $rc = 1 ] || fail "broken file: exit $rc, want 1"
grep -q "^upager stat: $bad: Bad message" "$tmp/err" ||
	fail "broken file: $(cat "$tmp/err")"
exit 0

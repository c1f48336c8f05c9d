#!/bin/bash
# upager migrate with both sides on this machine: a postcopy migration
# whose source is killed (SIGKILL) when 40% of the pages have arrived and
# restarted 300 ms later on the same port completes, with every page
# verified and no page installed twice; bad arguments are refused.
build=$1
. "$(dirname "$0")/lib.sh"

"$upager" migrate --size 128M --rate 100M --restart-source 40 --json \
	>"$tmp/r.json" || fail "migration with a restart exited $?"
cat "$tmp/r.json"
python3 - "$tmp/r.json" <<'PY' || exit 1
import json, sys
j = json.load(open(sys.argv[1]))
assert j["reconnects"] >= 1, j
assert j["pages_bad"] == 0 and j["pages_verified"] == j["pages"] == 32768, j
# Every page was installed once: pushed + urgent is exactly the image.
assert j["pages_pushed"] + j["pages_urgent"] == j["pages"], j
PY
"$upager" migrate --size 12345 2>"$tmp/err"; [ $? = 2 ] || fail "unaligned size accepted"
grep -q "not a multiple of 4096" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$upager" migrate --source --dest 2>/dev/null; [ $? = 2 ] || fail "--source --dest accepted"
"$upager" migrate --dest 2>"$tmp/err"; [ $? = 2 ] || fail "--dest without --connect"
"$upager" migrate --help | grep -q '^usage: upager migrate' || fail "--help"
exit 0

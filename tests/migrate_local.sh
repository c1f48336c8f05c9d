#!/bin/bash
# upager migrate with both sides on this machine: a postcopy migration
# whose source is killed (SIGKILL) when 40% of the pages have arrived and
# restarted 300 ms later on the same port completes, with every page
# verified and no page installed twice, over TLS (both sides hold the key,
# the restarted source too); bad arguments are refused, and so is a run
# with neither a key nor --plaintext.  --stream-cpu reaches both sides.
build=$1
. "$(dirname "$0")/lib.sh"

key=$tmp/key
(umask 077; python3 -c "import os; print('upager:' + os.urandom(32).hex())" >"$key")
"$upager" migrate --size 128M --rate 100M --restart-source 40 --json \
	--psk-file "$key" >"$tmp/r.json" || fail "migration with a restart exited $?"
cat "$tmp/r.json"
python3 - "$tmp/r.json" <<'PY' || exit 1
import json, sys
j = json.load(open(sys.argv[1]))
assert j["reconnects"] >= 1, j
assert j["pages_bad"] == 0 and j["pages_verified"] == j["pages"] == 32768, j
# Every page was installed once: pushed + urgent is exactly the image.
assert j["pages_pushed"] + j["pages_urgent"] == j["pages"], j
PY
# The stream kept to CPU 0 on both sides (the source a child of ours).
"$upager" migrate --size 32M --plaintext --stream-cpu 0 --json >"$tmp/c.json" ||
	fail "migration with --stream-cpu 0 exited $?"
python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); assert j["pages_bad"] == 0 and j["pages_verified"] == 8192, j' "$tmp/c.json" || exit 1
"$upager" migrate --size 1M --plaintext --stream-cpu 1023 2>"$tmp/err"; [ $? = 2 ] || fail "--stream-cpu 1023 accepted"
grep -q "may not run on that CPU" "$tmp/err" || fail "--stream-cpu: $(cat "$tmp/err")"
"$upager" migrate --size 1M 2>"$tmp/err"; [ $? = 2 ] || fail "no key accepted"
grep -q "no key: give --psk-file FILE" "$tmp/err" || fail "no key: $(cat "$tmp/err")"
"$upager" migrate --size 12345 --plaintext 2>"$tmp/err"; [ $? = 2 ] || fail "unaligned size accepted"
grep -q "not a multiple of 4096" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$upager" migrate --source --dest --plaintext 2>/dev/null; [ $? = 2 ] || fail "--source --dest accepted"
"$upager" migrate --dest --plaintext 2>"$tmp/err"; [ $? = 2 ] || fail "--dest without --connect"
"$upager" migrate --help | grep -q '^usage: upager migrate' || fail "--help"
exit 0

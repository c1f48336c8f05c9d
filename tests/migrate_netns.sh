#!/bin/bash
# Postcopy migration between two network namespaces over a 1 Gbit/s tbf
# link with 1 ms of added delay each way (the relay): every page verified;
# the destination's first access comes long before precopy's (which must
# wait for the whole image); urgent latency is reported; the total stays
# near the bandwidth bound.  Timing checks are ratios to numbers measured
# or configured in this run, and loose: the exact figures go to
# docs/BENCHMARKS.md.  MIGRATE_SIZE (default 256M; the benchmark uses 1G).
# Over TLS, both sides holding the same key file; MIGRATE_PLAINTEXT=1 for
# the plaintext baseline; MIGRATE_STREAM_CPU=N keeps the stream to CPU N.
build=$1
. "$(dirname "$0")/lib.sh"
. "$src/tests/netns.sh"
NETNS_BUILD=$build
size=${MIGRATE_SIZE:-256M}
netns_check || exit 77
delay_ms=1
netns_up mig 1gbit $delay_ms || fail "netns_up"
key=$tmp/key
(umask 077; python3 -c "import os; print('upager:' + os.urandom(32).hex())" >"$key")
sec=(--psk-file "$key")
[ "${MIGRATE_PLAINTEXT:-}" = 1 ] && sec=(--plaintext)
# MIGRATE_STREAM_CPU=N: both sides' stream threads on CPU N only.
[ -n "${MIGRATE_STREAM_CPU:-}" ] && sec+=(--stream-cpu "$MIGRATE_STREAM_CPU")

migrate() { # MODE-FLAGS... -> JSON on stdout
	# The stream is limited to 95% of the link in payload bytes (QEMU's
	# max-postcopy-bandwidth does the same); the source paces its
	# segments at that rate, so urgent pages don't queue behind its
	# bursts in tbf.  Headers fill most of the 5% left.
	netns_bg src "$upager" migrate --source --listen "tcp:$NETNS_SRC_IP:7070" \
		--size "$size" --rate 118750000 "${sec[@]}" >/dev/null
	netns_wait_listen src 7070 "$NETNS_PID" || fail "source did not listen"
	local srcpid=$NETNS_PID
	netns_relay dst 127.0.0.1:7070 "$NETNS_SRC_IP:7070" $delay_ms
	netns_exec dst "$upager" migrate --dest --connect 127.0.0.1:7070 \
		--size "$size" --link-rate 1000000000 "${sec[@]}" --json "$@"
	local rc=$?
	netns_relay_stop
	# The next source binds the same port.
	netns_stop "$srcpid"
	return $rc
}

migrate >"$tmp/post.json" || fail "postcopy migration exited $?"
migrate --precopy >"$tmp/pre.json" || fail "precopy migration exited $?"
cat "$tmp/post.json" "$tmp/pre.json"
python3 - "$tmp/post.json" "$tmp/pre.json" "$delay_ms" <<'PY' || exit 1
import json, sys
post, pre = (json.load(open(p)) for p in sys.argv[1:3])
delay_ms = int(sys.argv[3])
for j in (post, pre):
    assert j["pages_bad"] == 0 and j["pages_verified"] == j["pages"], j
    assert j["pages_pushed"] + j["pages_urgent"] == j["pages"], j
    assert j["timeouts"] == 0, j
assert post["pages_urgent"] > 0, "no fault went urgent"
assert post["pages_zero"] > 0, "zero pages did not travel as markers"
# The destination worked long before the last page arrived...
assert post["first_access_s"] < post["total_s"] / 4, post
# ...and before precopy could even start.
assert post["first_access_s"] < pre["first_access_s"] / 4, (post, pre)
# Postcopy costs the stream no time: within 1.6x the precopy of the same
# run (loose here; BENCHMARKS.md has the numbers against the bandwidth
# bound).  Not the bound itself: a busy CPU slows both below the link's
# rate (precopy at 1.74x the bound once, postcopy 1.04x in that run).
assert post["total_s"] < 1.6 * pre["total_s"], (post, pre)
# An urgent page's floor: the urgent channel's round trip (at least the
# relay's two delays) and the page's time on the link.  Half the answers
# come within a few of it: they do not wait behind the stream (loose, a
# busy machine delays them too; issue 12 wants the p99 within 3 round
# trips and a page, BENCHMARKS.md has the numbers).
floor = post["rtt_us"] + post["page_us"]
assert post["rtt_us"] >= 2 * delay_ms * 1000, post
assert post["urgent_p50_us"] < 3 * floor, post
print("postcopy %.2fs (%.2fx bound), first access %.1f ms vs precopy %.0f ms; "
      "urgent p50 %d us p99 %d us (%.1f round trips + a page: round trip "
      "%d us, a page %d us)" % (post["total_s"], post["ratio_to_bound"],
      post["first_access_s"] * 1e3, pre["first_access_s"] * 1e3,
      post["urgent_p50_us"], post["urgent_p99_us"],
      (post["urgent_p99_us"] - post["page_us"]) / post["rtt_us"],
      post["rtt_us"], post["page_us"]))
PY

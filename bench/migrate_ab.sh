#!/bin/bash
# migrate_ab.sh: postcopy migration over the network of tests/migrate_netns.sh
# (two namespaces, a 1 Gbit/s tbf link, 1 ms each way through bench/relay),
# two builds of upager alternated in one run, so that a change is measured
# side by side with the code before it on the same link at the same time.
#
#   bench/migrate_ab.sh [--rounds N] [--size SIZE] [--plaintext] BUILD...
#
# Each BUILD is a build directory holding an upager binary (e.g. one made
# from the commit before the change, and build/); the relay comes from the
# first.  One row a migration: total time and its ratio to the bandwidth
# bound, urgent p50 and p99, the urgent channel's round trip and a page's
# time on the link, and the p99 in round trips plus a page (issue 12's
# target: 3 at most).  TLS with a fresh key unless --plaintext.  Root.
set -u
rounds=3 size=1G sec=tls
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--plaintext) sec=plain; shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "migrate_ab.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -lt 1 ]; then
	echo "usage: migrate_ab.sh [--rounds N] [--size SIZE] [--plaintext] BUILD..." >&2
	exit 2
fi
for b in "$@"; do
	[ -x "$b/upager" ] || { echo "migrate_ab.sh: no $b/upager" >&2; exit 2; }
done
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. "$here/tests/netns.sh"
NETNS_BUILD=$1
netns_check || exit 77
netns_up migab 1gbit 1 || exit 1
opt=(--plaintext)
if [ $sec = tls ]; then
	(umask 077; python3 -c "import os; print('upager:' + os.urandom(32).hex())" >"$tmp/key")
	opt=(--psk-file "$tmp/key")
fi

# One migration with the upager of build $1; its JSON on stdout.
migrate() {
	local srcpid rc
	# 95% of the link in payload, as tests/migrate_netns.sh.
	netns_bg src "$1/upager" migrate --source --listen "tcp:$NETNS_SRC_IP:7070" \
		--size "$size" --rate 118750000 "${opt[@]}" >/dev/null
	srcpid=$NETNS_PID
	netns_wait_listen src 7070 "$srcpid" || return 1
	netns_relay dst 127.0.0.1:7070 "$NETNS_SRC_IP:7070" 1 || return 1
	netns_exec dst "$1/upager" migrate --dest --connect 127.0.0.1:7070 \
		--size "$size" --link-rate 1000000000 "${opt[@]}" --json
	rc=$?
	netns_relay_stop
	netns_stop "$srcpid"
	return $rc
}

echo "postcopy of $size over 1 Gbit/s, 1 ms each way, $sec; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %8s %6s %8s %8s %7s %6s %9s\n' build total bound "p50 us" "p99 us" "rtt us" "page" "p99 trips"
for _ in $(seq "$rounds"); do
	for b in "$@"; do
		migrate "$b" >"$tmp/out.json" || { echo "$b: migration failed" >&2; exit 1; }
		python3 - "$b" "$tmp/out.json" <<'PY' || exit 1
import json, sys
j = json.load(open(sys.argv[2]))
assert j["pages_bad"] == 0 and j["pages_verified"] == j["pages"], j
rtt = j.get("rtt_us", 0)
trips = (j["urgent_p99_us"] - j.get("page_us", 0)) / rtt if rtt else float("nan")
print("%-28s %7.2fs %5.3fx %8d %8d %7s %5.0fus %9.1f" % (
    sys.argv[1][-28:], j["total_s"], j["ratio_to_bound"], j["urgent_p50_us"],
    j["urgent_p99_us"], rtt or "-", j.get("page_us", 0), trips))
PY
	done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"

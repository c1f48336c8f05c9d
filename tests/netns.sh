# shellcheck shell=bash
# A network for the tests that need one: two network namespaces joined by
# a veth pair whose two ends are shaped by tbf, and a relay (bench/relay)
# that adds latency, since this kernel has tbf but no netem.  Traffic stays
# on the namespaces' own addresses.  Source it from a test script (bash):
#
#   . "$(dirname "$0")/netns.sh"
#   NETNS_BUILD=$build                  # where bench/relay is (default build)
#   netns_check || exit 77              # prints "SKIP: why" when it can't
#   netns_up mig 1gbit 20 || exit 1     # PREFIX RATE DELAY_MS
#   netns_bg src CMD...                 # src, dst, or a namespace's name
#   netns_wait_listen src 7000 "$NETNS_PID"   # until CMD listens on 7000
#   netns_relay dst 127.0.0.1:7000 "$NETNS_SRC_IP:7000"
#   netns_exec dst CMD...               # reaches src through the relay
#   netns_relay_stop                    # cut its connections (a failure)
#   netns_stop "$pid"                   # end a netns_bg process, wait
#   netns_link down / netns_link up     # a partition, and its end
#   netns_down                          # also run at exit; idempotent
#
# netns_up sets NETNS_SRC and NETNS_DST (the namespaces' names:
# PREFIX-PID-src, PREFIX-PID-dst), NETNS_SRC_IP (10.77.0.1) and
# NETNS_DST_IP (10.77.0.2) on veth0 in each, NETNS_RATE (tc's syntax, e.g.
# 1gbit: each direction of the veth pair is limited to it) and
# NETNS_DELAY_MS (the relay's default delay, each way: a round trip through
# the relay takes twice it).  Each namespace has lo up.
#
# Cleanup: netns_up adds netns_down to the EXIT trap (keeping what was
# there, e.g. tests/lib.sh's; a script that sets its own EXIT trap later
# must call netns_down from it) and turns INT, TERM and HUP into an exit,
# so a test killed by the runner's timeout still cleans up.  netns_down
# kills every process inside the two namespaces (the relay, what
# netns_bg or netns_exec started there) and deletes them, which destroys
# the veth pair.  Namespaces left by an earlier run whose shell is gone are
# removed by netns_check and netns_up first.

NETNS_SRC= NETNS_DST= NETNS_PID= NETNS_RELAY_PID=

# netns_check: 0 when namespaces, veth and tbf can be had here; else print
# "SKIP: why" (the runner shows it) and return 1.
netns_check() {
	local ns=upager-probe-$$ ok=1
	if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
		echo "SKIP: no ip or tc (iproute2)"
		return 1
	fi
	_netns_stale '^upager-probe-([0-9]+)$'
	if ! ip netns add "$ns" 2>/dev/null; then
		echo "SKIP: ip netns add is not permitted"
		return 1
	fi
	if ! ip -n "$ns" link add veth0 type veth peer name veth1 2>/dev/null; then
		echo "SKIP: no veth"
		ok=0
	elif ! tc -n "$ns" qdisc add dev veth0 root tbf rate 1gbit \
		burst 64k latency 10ms 2>/dev/null; then
		echo "SKIP: no tbf qdisc"
		ok=0
	fi
	ip netns del "$ns"
	[ $ok = 1 ]
}

# netns_rate_bytes RATE: tc's RATE (bit, kbit, mbit, gbit, bps, kbps, mbps,
# gbps; a bare number is bits) in bytes per second.
netns_rate_bytes() {
	local r=${1,,} m
	[[ $r =~ ^([0-9]+)([a-z]*)$ ]] || return 1
	case ${BASH_REMATCH[2]} in
	"" | bit) m=1 ;;
	kbit) m=1000 ;;
	mbit) m=1000000 ;;
	gbit) m=1000000000 ;;
	bps) m=8 ;;
	kbps) m=8000 ;;
	mbps) m=8000000 ;;
	gbps) m=8000000000 ;;
	*) return 1 ;;
	esac
	echo $((BASH_REMATCH[1] * m / 8))
}

# netns_alive PID: is PID a live process (not a zombie waiting for its
# parent)?
netns_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# The namespace a side names: src, dst, or a namespace's own name.
_netns_name() {
	case $1 in
	src) echo "$NETNS_SRC" ;;
	dst) echo "$NETNS_DST" ;;
	*) echo "$1" ;;
	esac
}

_netns_exists() {
	ip netns list 2>/dev/null | awk '{print $1}' | grep -qxF -- "$1"
}

# Kill what runs in namespace $1 (TERM, then KILL after 2 s), delete it.
_netns_del() {
	local ns=$1 pids i
	[ -n "$ns" ] && _netns_exists "$ns" || return 0
	for i in $(seq 40); do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -z "$pids" ] && break
		# shellcheck disable=SC2086 # a list of pids
		kill -"$([ "$i" -le 20 ] && echo TERM || echo KILL)" $pids 2>/dev/null
		sleep 0.1
	done
	ip netns del "$ns" 2>/dev/null
	! _netns_exists "$ns"
}

# Namespaces matching the regex $1, whose group 1 is the pid of the shell
# that made them, when that shell is gone (a killed run).
_netns_stale() {
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
		[[ $ns =~ $1 ]] || continue
		netns_alive "${BASH_REMATCH[1]}" && continue
		echo "netns: removing $ns, left by an earlier run" >&2
		_netns_del "$ns"
	done
}

# netns_up PREFIX RATE DELAY_MS: the two namespaces, joined and shaped.
# PREFIX is letters, digits, _ and -.  0, or 1 with a message (and nothing
# left behind).
netns_up() {
	local prefix=$1 rate=$2 delay=${3:-0} bytes burst ns ip prev
	if [ $# -lt 2 ] || ! [[ $prefix =~ ^[A-Za-z0-9_-]+$ && $delay =~ ^[0-9]+$ ]]; then
		echo "usage: netns_up PREFIX RATE DELAY_MS" >&2
		return 1
	fi
	if ! bytes=$(netns_rate_bytes "$rate"); then
		echo "netns_up: rate '$rate': want a number and bit, kbit, mbit, gbit, bps..." >&2
		return 1
	fi
	# A bucket of 5 ms at the rate (at least 16 KiB): tbf forwards a
	# burst of that much at line speed, a small error on the rate.
	burst=$((bytes / 200))
	[ $burst -lt 16384 ] && burst=16384

	prev=$(trap -p EXIT)
	if [[ $prev != *netns_down* ]]; then
		eval "prev=(${prev:-x x '' x})"
		# shellcheck disable=SC2064 # expand the old trap now
		trap "netns_down; ${prev[2]}" EXIT
		trap 'exit 129' HUP
		trap 'exit 130' INT
		trap 'exit 143' TERM
	fi

	_netns_stale "^$prefix-([0-9]+)-(src|dst)\$"
	NETNS_SRC=$prefix-$$-src NETNS_DST=$prefix-$$-dst
	NETNS_SRC_IP=10.77.0.1 NETNS_DST_IP=10.77.0.2
	NETNS_RATE=$rate NETNS_DELAY_MS=$delay
	_netns_del "$NETNS_SRC"
	_netns_del "$NETNS_DST"
	if ! { ip netns add "$NETNS_SRC" && ip netns add "$NETNS_DST" &&
		ip -n "$NETNS_SRC" link add veth0 type veth \
			peer name veth0 netns "$NETNS_DST"; }; then
		echo "netns_up: cannot create the namespaces" >&2
		netns_down
		return 1
	fi
	for ns in "$NETNS_SRC $NETNS_SRC_IP" "$NETNS_DST $NETNS_DST_IP"; do
		ip=${ns#* } ns=${ns% *}
		if ! { ip -n "$ns" link set lo up &&
			ip -n "$ns" addr add "$ip/24" dev veth0 &&
			ip -n "$ns" link set veth0 up &&
			tc -n "$ns" qdisc add dev veth0 root tbf rate "$rate" \
				burst "$burst" latency 25ms; }; then
			echo "netns_up: cannot set up $ns" >&2
			netns_down
			return 1
		fi
	done
}

# netns_down: kill what runs in the namespaces, delete them.  Idempotent.
netns_down() {
	local ok=0
	_netns_del "$NETNS_DST" || ok=1
	_netns_del "$NETNS_SRC" || ok=1
	NETNS_RELAY_PID=
	return $ok
}

# netns_exec SIDE CMD...: run CMD in a namespace (src, dst, or a name).
netns_exec() {
	local ns
	ns=$(_netns_name "$1") && shift && ip netns exec "$ns" "$@"
}

# netns_bg SIDE CMD...: start CMD in a namespace in the background; its
# pid (CMD's own: ip netns exec execs it) in NETNS_PID.  Out of the job
# table, so that netns_down ending it prints no "Terminated".
netns_bg() {
	local ns
	ns=$(_netns_name "$1") && shift || return 1
	ip netns exec "$ns" "$@" &
	NETNS_PID=$!
	disown "$NETNS_PID"
}

# netns_wait_listen SIDE PORT [PID]: wait (10 s at most) until a TCP
# socket listens on PORT in the namespace; fail early if PID dies.
netns_wait_listen() {
	local ns i
	ns=$(_netns_name "$1")
	for i in $(seq 200); do
		[ -n "$(ss -N "$ns" -Hltn "sport = :$2" 2>/dev/null)" ] && return 0
		if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then
			echo "netns_wait_listen: pid $3 died before listening on $2" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "netns_wait_listen: nothing listens on $2 in $ns" >&2
	return 1
}

# netns_relay SIDE LISTEN TO [DELAY_MS]: start the relay in a namespace,
# listening on LISTEN (ADDR:PORT) and forwarding to TO, holding each byte
# DELAY_MS (default NETNS_DELAY_MS) each way; return once it listens.
# Sets NETNS_RELAY_PID; netns_down ends it.  The relay is
# ${NETNS_RELAY:-$NETNS_BUILD/bench/relay}.
netns_relay() {
	local bin=${NETNS_RELAY:-${NETNS_BUILD:-build}/bench/relay}
	if [ ! -x "$bin" ]; then
		echo "netns_relay: no $bin (make builds it)" >&2
		return 1
	fi
	netns_bg "$1" "$bin" --listen "$2" --to "$3" \
		--delay-ms "${4:-${NETNS_DELAY_MS:-0}}" || return 1
	NETNS_RELAY_PID=$NETNS_PID
	netns_wait_listen "$1" "${2##*:}" "$NETNS_RELAY_PID"
}

# netns_relay_stop: end the relay started last, and wait until it is gone.
# Every connection through it closes, as when a network path fails;
# netns_relay starts it again on the same addresses.
netns_relay_stop() {
	local i
	[ -n "$NETNS_RELAY_PID" ] || return 0
	kill "$NETNS_RELAY_PID" 2>/dev/null
	for i in $(seq 100); do
		netns_alive "$NETNS_RELAY_PID" || break
		sleep 0.02
	done
	NETNS_RELAY_PID=
}

# netns_stop PID: end PID (TERM), and wait (10 s at most) until it is
# gone: a server started next on the same port must not find it there,
# nor a check that something listens see it.
netns_stop() {
	local i
	kill "$1" 2>/dev/null
	for i in $(seq 200); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# netns_link down|up: take the src end of the veth pair down, or bring it
# back.  Down, what dst sends vanishes without an error and nothing comes
# back: a partition as dst sees it, where connections stall rather than
# break.  The tbf shaping stays.
netns_link() {
	case $1 in
	up | down) ip -n "$NETNS_SRC" link set veth0 "$1" ;;
	*) echo "usage: netns_link up|down" >&2; return 1 ;;
	esac
}

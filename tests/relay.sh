#!/bin/bash
# The network test infrastructure (tests/netns.sh, bench/relay): two
# namespaces joined by a veth pair shaped by tbf, and the delaying relay.
# Through the relay a round trip takes twice the delay and not much more;
# bulk data crosses the tbf at about its rate, straight and through the
# relay (its delay costs no throughput), and arrives intact.  Stopping the
# relay ends the connections through it, and it starts again; with the
# link down src cannot be reached, and can once it is up.  Afterwards no
# namespace and no process is left.
#
# No bound is a fixed time or rate that a slow or busy machine could miss:
# "not much more" than twice the delay is judged against round trips
# straight over the veth pair, taken in turn with those through the relay
# so that both see the same load; "about its rate" is at most the rate
# (the shaping) and at least half of what this machine moves over
# loopback, measured just before, where that is below the rate.
build=$1
. "$(dirname "$0")/lib.sh"
. "$src/tests/netns.sh"
NETNS_BUILD=$build
rate=1gbit delay=15 mib=50

netns_check || exit 77
# Debian's python3 (tools/deps.sh), not a version manager's shim.
py=/usr/bin/python3
[ -x $py ] || py=$(command -v python3) || skip "no python3"
[ -x "$build/bench/relay" ] || fail "no $build/bench/relay"
netns_up upager-relay "$rate" "$delay" || fail "netns_up"
src_ns=$NETNS_SRC dst_ns=$NETNS_DST
bytes=$(netns_rate_bytes "$rate")

# The peers: "serve" echoes (E) or sends N MiB (B N); "pingpong" and
# "bulk" measure and judge.  The first target of "bulk" is named loopback.
peer=$(
	cat <<'EOF'
import random, socket, socketserver, statistics, sys, time

BLOCK = random.Random(1).randbytes(1 << 20)

def nodelay(s):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            sys.exit(f"EOF after {len(buf)} of {n} bytes")
        buf += b
    return bytes(buf)

class Peer(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        nodelay(s)
        kind = recv_exact(s, 1)
        if kind == b"E":
            while b := s.recv(65536):
                s.sendall(b)
        elif kind == b"B":
            for _ in range(int.from_bytes(recv_exact(s, 4), "little")):
                s.sendall(BLOCK)

def connect(host, port):
    s = socket.create_connection((host, int(port)), timeout=30)
    nodelay(s)
    return s

mode, host, port, *rest = sys.argv[1:]
if mode == "serve":
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer((host, int(port)), Peer).serve_forever()
elif mode == "pingpong":
    # Round trips through the relay at host:port, each followed by one
    # straight to the peer (rest[1:3]): the baseline this machine's
    # scheduling allows right now, the relay's extra hops included.
    delay = float(rest[0])
    s = connect(host, port)
    d = connect(rest[1], rest[2])
    s.sendall(b"E")
    d.sendall(b"E")
    def rtt(sock, msg):
        t = time.perf_counter()
        sock.sendall(msg)
        if recv_exact(sock, 64) != msg:
            sys.exit("the echo differs")
        return (time.perf_counter() - t) * 1000
    rtts, base = [], []
    for i in range(20):
        msg = bytes([i]) * 64
        rtts.append(rtt(s, msg))
        base.append(rtt(d, msg))
    med, bmed = statistics.median(rtts), statistics.median(base)
    print(f"round trip, ms: min {min(rtts):.2f} median {med:.2f} "
          f"max {max(rtts):.2f}; delay {delay:g} each way; straight: "
          f"median {bmed:.2f}")
    if min(rtts) < 2 * delay:
        sys.exit(f"a round trip took less than {2 * delay:g} ms")
    # A delay applied twice, or a stall (Nagle, a late timer) is tens of
    # ms; how late a busy machine runs the relay shows in the straight
    # trips too, which widen the bound.
    bound = 2 * delay + 20 + 4 * bmed
    if med > bound:
        sys.exit(f"the median round trip is over {bound:.2f} ms (twice "
                 f"the delay, 20 ms and 4 straight round trips)")
elif mode == "bulk":
    # MiB through loopback, straight over the veth and through the relay
    # (each NAME=HOST:PORT in rest[2:], in that order), judged together.
    mib, rate = int(rest[0]), float(rest[1])
    total = mib << 20
    buf = memoryview(bytearray(total))
    speed = {}
    for target in [f"loopback={host}:{port}"] + rest[2:]:
        name, _, hp = target.rpartition("=")
        h, _, p = hp.rpartition(":")
        s = connect(h, p)
        s.sendall(b"B" + mib.to_bytes(4, "little"))
        # Timed from the first byte: the relay's delay is latency, not rate.
        got = first = s.recv_into(buf, total)
        t = time.perf_counter()
        while 0 < got < total:
            n = s.recv_into(buf[got:], total - got)
            if not n:
                break
            got += n
        secs = time.perf_counter() - t
        s.close()
        if got < total:
            sys.exit(f"{name}: EOF after {got} of {total} bytes")
        if any(buf[i << 20:(i + 1) << 20] != BLOCK for i in range(mib)):
            sys.exit(f"{name}: the data differs")
        speed[name] = (total - first) / secs
        print(f"{name}: {total / 1e6:.1f} MB in {secs:.3f} s: "
              f"{speed[name] / 1e6:.1f} MB/s, {speed[name] / rate:.2f} of "
              f"the rate")
    can = min(rate, speed["loopback"])
    for name in ("veth", "relay"):
        if speed[name] > 1.1 * rate:
            sys.exit(f"{name}: over 1.1 times the rate: is tbf shaping?")
        if speed[name] < 0.5 * can:
            sys.exit(f"{name}: under half of {can / 1e6:.1f} MB/s (the "
                     f"rate, or loopback where that is less)")
elif mode == "cut":
    s = connect(host, port)
    s.sendall(b"Ex")
    recv_exact(s, 1)
    print("ready", flush=True)
    s.settimeout(5)
    try:
        if s.recv(1):
            sys.exit("data after the cut")
    except TimeoutError:
        sys.exit("the connection outlived the relay")
    except ConnectionError:
        pass
    print("the connection ended with the relay")
elif mode == "reach":
    # yes: an echo within 3 s (the link may be just up); no: none in 1 s.
    want = rest[0] == "yes"
    end = time.monotonic() + (3 if want else 0)
    while True:
        try:
            s = socket.create_connection((host, int(port)), timeout=1)
            s.settimeout(1)
            s.sendall(b"Ex")
            ok = s.recv(1) == b"x"
        except OSError:
            ok = False
        if ok or time.monotonic() >= end:
            break
        time.sleep(0.1)
    print(f"{host}:{port} {'answers' if ok else 'does not answer'}")
    if ok != want:
        sys.exit("want the opposite")
EOF
)

netns_bg src $py -c "$peer" serve "$NETNS_SRC_IP" 5001
server=$NETNS_PID
netns_wait_listen src 5001 $server || fail "the server does not listen"
# The same peer on dst's loopback: what this machine moves unshaped.
netns_bg dst $py -c "$peer" serve 127.0.0.1 5002
lo_server=$NETNS_PID
netns_wait_listen dst 5002 $lo_server || fail "the loopback peer does not listen"
netns_relay dst 127.0.0.1:6001 "$NETNS_SRC_IP:5001" || fail "netns_relay"
relay=$NETNS_RELAY_PID

echo "ping-pong through the relay ($delay ms each way), and straight:"
netns_exec dst $py -c "$peer" pingpong 127.0.0.1 6001 "$delay" \
	"$NETNS_SRC_IP" 5001 || fail "ping-pong through the relay"
echo "bulk over loopback, the veth pair ($rate), the relay ($delay ms each way):"
netns_exec dst $py -c "$peer" bulk 127.0.0.1 5002 $mib "$bytes" \
	veth="$NETNS_SRC_IP:5001" relay=127.0.0.1:6001 ||
	fail "bulk over the veth pair or through the relay"

echo "stopping the relay ends the connections through it:"
netns_exec dst $py -c "$peer" cut 127.0.0.1 6001 >"$tmp/cut" 2>&1 &
cut=$!
for _ in $(seq 600); do
	grep -q ready "$tmp/cut" && break
	sleep 0.05
done
grep -q ready "$tmp/cut" || fail "no connection: $(cat "$tmp/cut")"
netns_relay_stop
wait $cut || fail "$(cat "$tmp/cut")"
cat "$tmp/cut"
netns_alive $relay && fail "the relay outlived netns_relay_stop"
netns_relay dst 127.0.0.1:6001 "$NETNS_SRC_IP:5001" || fail "netns_relay again"
relay2=$NETNS_RELAY_PID
netns_exec dst $py -c "$peer" pingpong 127.0.0.1 6001 "$delay" \
	"$NETNS_SRC_IP" 5001 || fail "ping-pong through the relay started again"

echo "a partition, and its end:"
netns_link down || fail "netns_link down"
netns_exec dst $py -c "$peer" reach "$NETNS_SRC_IP" 5001 no ||
	fail "reached src across a partition"
netns_link up || fail "netns_link up"
netns_exec dst $py -c "$peer" reach "$NETNS_SRC_IP" 5001 yes ||
	fail "src unreachable after the partition"

netns_down || fail "netns_down failed"
netns_down || fail "a second netns_down failed"
for ns in "$src_ns" "$dst_ns"; do
	ip netns list | awk '{print $1}' | grep -qxF "$ns" && fail "$ns is left"
done
for pid in $server $lo_server $relay $relay2; do
	netns_alive "$pid" && fail "pid $pid is left"
done
echo "torn down: no namespace, no process left"

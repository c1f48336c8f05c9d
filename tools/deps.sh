#!/bin/sh
# Install the Debian packages the build and the tests need, only those that
# are missing, so a second run costs nothing and needs no network.
#   tools/deps.sh        the build and the tests
#   tools/deps.sh fuzz   and clang with its libFuzzer runtime (make fuzz)
set -e
pkgs="gcc g++ make pkg-config libc6-dev libjson-c-dev libssl-dev openssl iproute2 python3 libzstd-dev liblz4-dev libxxhash-dev libmemcached-dev memcached"
case "${1:-}" in
"") ;;
fuzz) pkgs="$pkgs clang libclang-rt-14-dev" ;;
*) echo "usage: tools/deps.sh [fuzz]" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root, or apt-get install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null

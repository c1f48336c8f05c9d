# Shared by the shell tests: verdicts and the built binaries.
# Source it after setting build=$1.
set -u
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
upager=$build/upager
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

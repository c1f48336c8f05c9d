#!/bin/bash
# Run every test in tests/TESTS against the build in BUILD (default build).
#   tests/run.sh [--repeat N] [BUILD]
# Each line of TESTS is "name [variant...]": a test with variants runs once
# per variant (a memory type: anon shmem hugetlb), with it as argv[1].
# A test is a program built from tests/NAME.c, or a script tests/NAME.sh
# (called with the build directory first).
# Exit 0 pass, 77 skip, anything else fail; each run has a timeout.
# The last line is "N passed, N failed, N skipped"; it is also written to
# $BUILD/test-summary for .ci/run.
#   --repeat N          run each test N times in a row (default 1).  A test
#                       counts once in the summary: failed if any run
#                       failed, skipped if every run skipped, else passed.
#                       One whose runs did not all end alike is listed as
#                       flaky with its counts, and the log of its first
#                       failing run is kept as test-logs/NAME.fail.log.
#   T_TIMEOUT=seconds   per-run limit (default 120)
#   T_FILTER=regex      run only the tests whose name matches
set -u
repeat=1
while [ $# -gt 0 ]; do
	case $1 in
	--repeat) repeat=${2:-}; shift 2 || break ;;
	--repeat=*) repeat=${1#*=}; shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if ! [[ $repeat =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: --repeat wants a count of 1 or more" >&2
	exit 2
fi
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
timeout=${T_TIMEOUT:-120}
pass=0 fail=0 skip=0 failed=() flaky=()
log=$build/test-logs
mkdir -p "$log"

# A test killed by its timeout can't restore what it reserved.
# SIGBUS is the engine's answer to data it cannot bring: tests check that
# the program's handler, or the default action, gets it.  ASan would catch
# it first and report a crash.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0"

huge=/proc/sys/vm/nr_hugepages
huge_old=$(cat $huge 2>/dev/null || echo)
restore() { [ -n "$huge_old" ] && echo "$huge_old" > $huge 2>/dev/null; }
trap restore EXIT

# One run of "${cmd[@]}" "${args[@]}" into $out; sets rc and secs.
run_once() {
	local start us
	start=${EPOCHREALTIME/./}
	timeout -k 5 "$timeout" "${cmd[@]}" "${args[@]}" >"$out" 2>&1
	rc=$?
	us=$((${EPOCHREALTIME/./} - start))
	secs=$(printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000)))
	[ $rc = 124 ] && echo "timed out after ${timeout}s" >>"$out"
}

while read -r name variants; do
	case "$name" in "" | \#*) continue ;; esac
	if [ -n "${T_FILTER:-}" ] && ! [[ $name =~ $T_FILTER ]]; then
		continue
	fi
	for v in ${variants:--}; do
		label=$name
		args=()
		if [ "$v" != - ]; then label="$name[$v]"; args=("$v"); fi
		out=$log/${label//[\[\]]/_}.log
		cmd=("$build/tests/$name")
		[ -f "$here/$name.sh" ] && cmd=(bash "$here/$name.sh" "$build")
		if [ "$repeat" = 1 ]; then
			run_once
			case $rc in
			0) pass=$((pass + 1)); printf 'PASS %-34s %6ss\n' "$label" "$secs" ;;
			77) skip=$((skip + 1)); printf 'SKIP %-34s %s\n' "$label" "$(grep -m1 SKIP "$out" | cut -c7-)" ;;
			*) fail=$((fail + 1)); failed+=("$label")
			   printf 'FAIL %-34s (exit %d)\n' "$label" "$rc"
			   sed 's/^/    /' "$out" | tail -n 20 ;;
			esac
			continue
		fi
		# The same test N times: count each ending, keep the first failure.
		p=0 f=0 s=0 first_rc= why= slowest=0.00
		rm -f "${out%.log}.fail.log"
		for ((i = 0; i < repeat; i++)); do
			run_once
			[ $((10#${secs/./})) -gt $((10#${slowest/./})) ] && slowest=$secs
			case $rc in
			0) p=$((p + 1)) ;;
			77) s=$((s + 1)); [ -n "$why" ] || why=$(grep -m1 SKIP "$out" | cut -c7-) ;;
			*) f=$((f + 1))
			   [ -n "$first_rc" ] || { first_rc=$rc; cp "$out" "${out%.log}.fail.log"; } ;;
			esac
		done
		counts="$p/$repeat passed"
		[ $f -gt 0 ] && counts+=", $f failed"
		[ $s -gt 0 ] && counts+=", $s skipped"
		# Runs that did not all end alike: flaky, whatever the verdict.
		[ $(((p > 0) + (f > 0) + (s > 0))) -gt 1 ] && flaky+=("$label: $counts")
		if [ $f -gt 0 ]; then
			fail=$((fail + 1)); failed+=("$label")
			printf 'FAIL %-34s %s (first exit %d)\n' "$label" "$counts" "$first_rc"
			sed 's/^/    /' "${out%.log}.fail.log" | tail -n 20
		elif [ $p -gt 0 ]; then
			pass=$((pass + 1))
			printf 'PASS %-34s %s, slowest %ss\n' "$label" "$counts" "$slowest"
		else
			skip=$((skip + 1)); printf 'SKIP %-34s %s\n' "$label" "$why"
		fi
	done
done <"$here/TESTS"

[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
for t in "${flaky[@]}"; do echo "flaky: $t"; done
summary="$pass passed, $fail failed, $skip skipped"
echo "$summary" >"$build/test-summary"
echo "$summary"
[ $fail -eq 0 ]

#!/bin/bash
# The test suite's power, measured: each mutant is a one-line breakage of
# the library that some test must notice.  For every mutant listed, the
# tree is copied once to a scratch directory (never the working tree: the
# copy takes uncommitted changes too), the breakage applied there alone,
# the library and tests rebuilt, and the tests the mutant names run; a
# mutant the suite fails on is killed, one it passes on survived.  Run it
# after every large change, above all to the engine; it is not part of
# `make check` (a few minutes).
#
#   tests/mutants.sh [LIST...]      default tests/mutants.txt
#
#   M_FILTER=regex    only the mutants whose name matches
#   T_TIMEOUT=secs    per test run (default 60: a hang counts as killed)
#   T_LOCK=file       test runs hold flock(1) on it, so that they never
#                     overlap another run on this machine (default
#                     /tmp/upager-tests.lock; empty: no lock)
#   MUTANTS_KEEP=1    keep the scratch tree (its path is printed)
#
# A list has one mutant a line, "NAME FILE TESTS SED" (tests/mutants.txt
# says more), with '#' comments naming what each breaks.  The tests a
# mutant names run first on the unbroken copy, which must pass them.
# The last lines are a table, mutant by mutant: killed (with the tests
# that failed), SURVIVED, or an ERROR (the expression no longer changes
# its file, or the mutant does not build: fix the list).  Exit 0 when
# every mutant was killed, 1 otherwise.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
lists=("$@")
[ ${#lists[@]} -gt 0 ] || lists=("$root/tests/mutants.txt")
export T_TIMEOUT=${T_TIMEOUT:-60}
lock=${T_LOCK-/tmp/upager-tests.lock}
jobs=$(nproc 2>/dev/null || echo 2)

names=() files=() filters=() exprs=()
for list in "${lists[@]}"; do
	[ -r "$list" ] || { echo "mutants.sh: cannot read $list" >&2; exit 2; }
	while read -r name file filter expr; do
		case $name in "" | \#*) continue ;; esac
		if [ -z "$expr" ]; then
			echo "mutants.sh: $list: '$name' wants NAME FILE TESTS SED" >&2
			exit 2
		fi
		[[ -n ${M_FILTER:-} && ! $name =~ $M_FILTER ]] && continue
		names+=("$name") files+=("$file") filters+=("$filter")
		exprs+=("$expr")
	done <"$list"
done
[ ${#names[@]} -gt 0 ] || { echo "mutants.sh: no mutant selected" >&2; exit 2; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/upager-mutants.XXXXXX")
if [ "${MUTANTS_KEEP:-}" = 1 ]; then
	echo "scratch tree: $scratch"
else
	trap 'rm -rf "$scratch"' EXIT
fi
tar -C "$root" --exclude=./.git --exclude=./build --exclude=./build-asan \
	--exclude=./build-tsan -cf - . | tar -C "$scratch" -xf - ||
	{ echo "mutants.sh: copying the tree failed" >&2; exit 2; }

# Not WERROR: a warning the breakage causes is no kill, and no error.
build() { make -C "$scratch" -j"$jobs" all >"$scratch/make.log" 2>&1; }
# run_tests REGEX: the suite's tests matching it, in the copy; their
# output in $scratch/run.log.
run_tests() {
	local cmd=(env T_FILTER="$1" "$scratch/tests/run.sh" "$scratch/build")
	[ -n "$lock" ] && cmd=(flock "$lock" "${cmd[@]}")
	"${cmd[@]}" >"$scratch/run.log" 2>&1
}

echo "building the unbroken copy"
build || { tail -n 20 "$scratch/make.log"; echo "mutants.sh: the tree does not build" >&2; exit 2; }
all=$(printf '%s\n' "${filters[@]}" | sort -u | paste -sd'|')
echo "running the tests the mutants name on it: $all"
if ! run_tests "$all"; then
	grep -E '^(FAIL|    )' "$scratch/run.log" | head -n 40
	echo "mutants.sh: the suite fails without a mutant; nothing to measure" >&2
	exit 2
fi

killed=0 survived=0 errors=0 rows=()
for i in "${!names[@]}"; do
	name=${names[$i]} file=${files[$i]} f=$scratch/${files[$i]}
	start=$SECONDS
	if [ ! -f "$f" ]; then
		verdict="ERROR: no file $file"
	else
		cp "$f" "$scratch/orig"
		sed -i -e "${exprs[$i]}" "$f" 2>"$scratch/sed.log"
		if cmp -s "$f" "$scratch/orig"; then
			verdict="ERROR: the expression changes nothing $(head -c 200 "$scratch/sed.log")"
		elif ! build; then
			verdict="ERROR: does not build: $(grep -m1 'error' "$scratch/make.log")"
		elif run_tests "${filters[$i]}"; then
			verdict="SURVIVED"
		else
			verdict="killed by $(sed -n 's/^failed: //p' "$scratch/run.log")"
		fi
		# A new mtime: the next build compiles the file as it was.
		cat "$scratch/orig" >"$f"
	fi
	case $verdict in
	killed*) killed=$((killed + 1)) ;;
	SURVIVED) survived=$((survived + 1)) ;;
	*) errors=$((errors + 1)) ;;
	esac
	rows+=("$(printf '%-28s %s' "$name" "$verdict")")
	printf '%-28s %s (%ds)\n' "$name" "$verdict" $((SECONDS - start))
done
[ "${MUTANTS_KEEP:-}" = 1 ] && build # leave the kept copy built as it was

echo
printf '%-28s %s\n' "mutant" "result"
printf '%s\n' "${rows[@]}"
echo "${#names[@]} mutants: $killed killed, $survived survived, $errors errors"
[ $survived = 0 ] && [ $errors = 0 ]

#!/usr/bin/env bash
# tools/test.sh — the project's one test command: runs every test.
#
#   bash tools/test.sh [--werror] [TEST...]
#
# Installs missing packages (tools/deps.sh), copies the source tree into a
# fresh build directory under /tmp owned by the postgres user, builds there,
# installs the extension as root, then runs `make installcheck` as postgres:
# the pg_regress suites, then the isolation specs, then the TAP tests, each
# starting its own throwaway server. On success the runner's own summary is the
# last output and the build directory is removed; on failure the diffs and log
# tails are printed and the build directory is kept for a look.
#
# --werror  fail on compiler warnings (always on when CI=true)
# TEST...   run only these tests: names of sql/NAME.sql (regress),
#           specs/NAME.spec (isolation) or t/NAME.pl (TAP),
#           e.g. `bash tools/test.sh rewrite lifecycle`
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	sed -n '4,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

werror=false
[ "${CI:-}" = true ] && werror=true
names=()
for arg in "$@"; do
	case $arg in
	--werror) werror=true ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; tm_die "unknown option $arg" ;;
	*) names+=("$arg") ;;
	esac
done

tm_require_root
bash "$TM_SRC/tools/deps.sh"

# Decide which suites run before building, so a mistyped name fails fast.
select_args=()
if [ "${#names[@]}" -gt 0 ]; then
	regress=() iso=() tap=()
	for name in "${names[@]}"; do
		name=${name##*/}
		name=${name%.sql}
		name=${name%.spec}
		name=${name%.pl}
		if [ -f "$TM_SRC/sql/$name.sql" ]; then
			regress+=("$name")
		elif [ -f "$TM_SRC/specs/$name.spec" ]; then
			iso+=("$name")
		elif [ -f "$TM_SRC/t/$name.pl" ]; then
			tap+=("t/$name.pl")
		else
			tm_die "no test named '$name' (looked for sql/$name.sql, specs/$name.spec, t/$name.pl)"
		fi
	done
	# An empty REGRESS/ISOLATION/TAP_TESTS on make's command line overrides
	# the Makefile's list and skips that suite.
	select_args=("REGRESS=${regress[*]}" "ISOLATION=${iso[*]}")
	if [ "${#tap[@]}" -gt 0 ]; then
		select_args+=("PROVE_TESTS=${tap[*]}")
	else
		select_args+=("TAP_TESTS=")
	fi
fi

make_args=()
if $werror; then
	make_args+=(EXTRA_CFLAGS=-Werror)
fi

build=$(tm_prepare_build test)
if ! tm_build "$build" "${make_args[@]}" || ! tm_install "$build" "${make_args[@]}"; then
	tm_die "build failed; build directory kept: $build"
fi

# Print what a failed run left behind. The suites run in order and make stops
# at the first that fails: TAP if its logs exist, else isolation if it
# started, else pg_regress. Show that suite's diffs and server log tails.
show_failure() {
	local f files=()
	if [ -d "$build/tmp_check/log" ]; then
		files=("$build"/tmp_check/log/*)
	elif [ -d "$build/output_iso" ]; then
		files=("$build/output_iso/regression.diffs" "$build/output_iso/log/postmaster.log")
	else
		files=("$build/regression.diffs" "$build/log/postmaster.log")
	fi
	for f in "${files[@]}"; do
		[ -s "$f" ] || continue
		case $f in
		*.diffs)
			printf '\n===== %s (first 500 lines) =====\n' "$f"
			head -n 500 "$f"
			;;
		*)
			printf '\n===== %s (last 40 lines) =====\n' "$f"
			tail -n 40 "$f"
			;;
		esac
	done
	printf '\nTests failed; build directory kept: %s\n' "$build"
}

tm_say "running tests"
if tm_as_pg "$build" make "${TM_MAKE_ARGS[@]}" "${make_args[@]}" "${select_args[@]}" installcheck; then
	# Quietly, so the runner's summary stays the last thing printed.
	rm -rf "$build"
else
	show_failure
	exit 1
fi

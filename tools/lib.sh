# tools/lib.sh — shared by tools/test.sh and tools/demo.sh (sourced, not run):
# where PostgreSQL 15 is, how to run a command as the postgres OS user, and
# how to copy the source tree into a build directory that user owns, build
# the extension there and install it.
# shellcheck shell=bash

# Errors inside $(...) stop the script too (e.g. a failed copy).
shopt -s inherit_errexit

TM_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TM_PGBIN=/usr/lib/postgresql/15/bin
TM_PGUSER=postgres

# Always the PostgreSQL 15 binaries, even if another major version's
# pg_config or psql wrapper comes first in PATH.
export PATH="$TM_PGBIN:$PATH"

# Same locale on every machine, so initdb (UTF8 encoding) and error messages
# in the expected outputs do not depend on who runs the tests.
export LANG=C.UTF-8
unset LC_ALL LC_CTYPE LC_COLLATE LC_MESSAGES LC_MONETARY LC_NUMERIC LC_TIME LANGUAGE

# Arguments for every make call (build, install, installcheck) so they agree.
# with_llvm=no: no LLVM bitcode, so clang is not needed to build.
TM_MAKE_ARGS=(--no-print-directory "PG_CONFIG=$TM_PGBIN/pg_config" with_llvm=no)

tm_say() {
	printf '==> %s\n' "$*"
}

tm_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

tm_require_root() {
	[ "$(id -u)" -eq 0 ] || tm_die "run this as root (it installs packages and the extension)"
}

# tm_as_pg DIR CMD... — run CMD as the postgres user with DIR as working
# directory. initdb, pg_ctl and pg_regress refuse to run as root, and the
# caller's directory (say /root/...) may not be one postgres can enter.
tm_as_pg() {
	local dir=$1
	shift
	(cd "$dir" && runuser -u "$TM_PGUSER" -- "$@")
}

# tm_port_in_use PORT — something listens on it over TCP, or a PostgreSQL
# socket with that port number exists in any directory.
tm_port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
	grep -q "\.s\.PGSQL\.$1\$" /proc/net/unix 2>/dev/null
}

# tm_init_cluster DIR DATA FIRST_PORT LABEL [CONF_LINE...] — initdb a
# throwaway cluster in DATA (as postgres, logs in DIR) on the first free port
# from FIRST_PORT, reachable only through a unix socket in DIR, with the
# extra postgresql.conf lines given; sets TM_PORT. Does not start it.
tm_init_cluster() {
	local dir=$1 data=$2 first=$3 label=$4 port
	shift 4
	port=$first
	while tm_port_in_use "$port"; do
		port=$((port + 1))
		[ "$port" -lt $((first + 100)) ] || tm_die "no free port in $first..$((port - 1))"
	done
	tm_say "creating the $label cluster in $data (port $port)"
	if ! tm_as_pg "$dir" initdb -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
		--no-instructions >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		tm_die "initdb failed"
	fi
	{
		printf '\n# tenant_migrate %s cluster\n' "$label"
		printf "port = %s\nlisten_addresses = ''\nunix_socket_directories = '%s'\n" "$port" "$dir"
		[ $# -eq 0 ] || printf '%s\n' "$@"
	} >>"$data/postgresql.conf"
	# shellcheck disable=SC2034  # read by the scripts that source this file
	TM_PORT=$port
}

# tm_prepare_build PURPOSE — make a fresh build directory under /tmp, copy the
# source tree into it without git data or earlier build and test outputs, and
# give it to postgres; prints its path.
tm_prepare_build() {
	local dir
	dir=$(mktemp -d "/tmp/tenant_migrate-$1.XXXXXX")
	# "./name" patterns match only at the top of the tree.
	tar -C "$TM_SRC" -cf - \
		--exclude=.git --exclude=./tmp_check --exclude=./results \
		--exclude=./output_iso --exclude=./log \
		--exclude=regression.diffs --exclude=regression.out \
		--exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		. | tar -C "$dir" --no-same-owner -xf -
	chown -R "$TM_PGUSER:" "$dir"
	printf '%s\n' "$dir"
}

# tm_build DIR [MAKE_ARG...] — compile as postgres, so every file in DIR
# stays writable by the test runs that follow.
tm_build() {
	local dir=$1
	shift
	tm_say "building in $dir"
	tm_as_pg "$dir" make -j"$(nproc)" "${TM_MAKE_ARGS[@]}" "$@"
}

# tm_install DIR [MAKE_ARG...] — install into the PostgreSQL 15 tree (root).
tm_install() {
	local dir=$1
	shift
	tm_say "installing the extension"
	make -C "$dir" "${TM_MAKE_ARGS[@]}" "$@" install >/dev/null
}

#!/usr/bin/env bash
# bench/run.sh — fleet benchmark of tenant_migrate: how long CALL
# tenant_migrate_all(workers => 1, 2, 4) takes to migrate N tenants through
# every tenant script of migrations/, compared with the same rewritten SQL
# sent by a client over one connection, each tenant's transaction as one
# query (one round trip per tenant), and streamed through one psql session
# (one round trip per statement); a no-op run; tenant_migration_status();
# and the peak anonymous memory of every process of each run.
#
#   bash bench/run.sh [--tenants N] [--workers "1 2 4"] [--pairs N]
#                     [--no-stream] [--shared-buffers SIZE] [--keep]
#
# --tenants N           tenants to create and migrate (default 1000)
# --workers LIST        the fleet runs to time, by workers (default "1 2 4";
#                       1 is always timed: the ratios are to it)
# --pairs N             time the one-query client (B) and workers => 1 (C1)
#                       N times each, in the order B C1 C1 B B C1..., each
#                       on its own copy (default 2; 1 above 2,000 tenants)
# --no-stream           leave out the psql stream (A), the slowest client
# --shared-buffers SIZE shared_buffers of the throwaway server (default 256MB)
# --keep                keep the work directory (cluster files, plan file,
#                       memory samples) instead of removing it
#
# Builds and installs the extension (tools/lib.sh), creates a throwaway
# cluster as the postgres user under /tmp on the first free port from 5480
# (unix socket only; fsync and everything else left at their defaults but
# tenant_migrate.max_workers = 4), builds five identical databases of N
# tenants (one built, four copied from it), measures -- before each timed
# phase it vacuums what the previous one changed and waits for autovacuum
# to be idle, so no phase pays for another's catch-up --, prints a summary with
# PASS/MISS per target, writes it to bench/out/, stops the cluster and cleans
# up (also on error or Ctrl-C). It holds /tmp/tm-test.lock from start to end,
# so that nobody's tests run beside it (run it directly, not under flock).
# See bench/README.md for what each figure means.
set -euo pipefail

# shellcheck source=SCRIPTDIR/../tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

usage() {
	sed -n '10,22s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

tenants=1000
shared_buffers=256MB
keep=false
worker_counts="1 2 4"
pairs=
stream=true
while [ $# -gt 0 ]; do
	case $1 in
	--tenants) [ $# -ge 2 ] || tm_die "--tenants needs a number"; tenants=$2; shift 2 ;;
	--shared-buffers) [ $# -ge 2 ] || tm_die "--shared-buffers needs a size"; shared_buffers=$2; shift 2 ;;
	--workers) [ $# -ge 2 ] || tm_die "--workers needs a list"; worker_counts=$2; shift 2 ;;
	--pairs) [ $# -ge 2 ] || tm_die "--pairs needs a number"; pairs=$2; shift 2 ;;
	--no-stream) stream=false; shift ;;
	--keep) keep=true; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; tm_die "unknown argument $1" ;;
	esac
done
[[ $tenants =~ ^[1-9][0-9]{0,5}$ ]] || tm_die "--tenants must be a number from 1 to 999999"
# two pairs where a pair takes minutes, one where it takes most of an hour
[ -n "$pairs" ] || if [ "$tenants" -le 2000 ]; then pairs=2; else pairs=1; fi
[[ $pairs =~ ^[1-9]$ ]] || tm_die "--pairs must be a number from 1 to 9"
[[ " $worker_counts " =~ ^(\ [1-9][0-9]?)+\ $ ]] || tm_die "--workers must be a list of numbers from 1 to 99"
# workers => 1 first: the others are compared with it
worker_counts="1 $(tr ' ' '\n' <<<"$worker_counts" | { grep -vx 1 || true; } | sort -nu | paste -sd' ')"
worker_counts=${worker_counts% }

# Targets (see bench/README.md)
target_ratio=1.0        # workers => 1 / one query per tenant, at 1000 tenants
target_speedup=1.5      # workers => 2 throughput / workers => 1, at 1000 tenants
target_noop_ms=100      # no-op CALL, at 10,000 tenants
target_status_ms=100    # SELECT * FROM tenant_migration_status(), at 10,000 tenants
target_rss_mb=200       # peak RssAnon of any one process of a run

first_port=5480
sample_ms=250           # memory sampling period
max_samples=28800       # sampler gives up after 2 h of sampling at 250 ms

tm_require_root
# Nobody's tests beside the benchmark: the shared test lock, held to the end
exec 8>>/tmp/tm-test.lock
tm_say "waiting for /tmp/tm-test.lock (held while tests run)"
flock 8
tm_say "holding /tmp/tm-test.lock"
bash "$TM_SRC/tools/deps.sh"
[ -d "$TM_SRC/migrations" ] || tm_die "no migrations/ folder in $TM_SRC"

bench_started=$EPOCHREALTIME
work=$(mktemp -d /tmp/tenant_migrate-bench.XXXXXX)
chown "$TM_PGUSER:" "$work"
chmod 755 "$work"
data=$work/data
log=$work/server.log
port=
sampler_pid=

cleanup() {
	local rc=$?
	if [ -n "$sampler_pid" ]; then
		kill "$sampler_pid" 2>/dev/null || true
		wait "$sampler_pid" 2>/dev/null || true
	fi
	if [ -f "$data/postmaster.pid" ]; then
		tm_as_pg "$work" pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	# fd 9 is the script's own stderr: a signal's trap runs inside whatever
	# redirection the interrupted command had (say psql's 2>stream.err)
	if [ "$rc" -ne 0 ]; then
		printf '\n===== %s (last 30 lines) =====\n' "$log" >&9
		tail -n 30 "$log" >&9 2>/dev/null || true
		printf '\nBenchmark failed (exit %s); work directory kept: %s\n' "$rc" "$work" >&9
	elif $keep; then
		printf 'Work directory kept: %s\n' "$work"
	else
		rm -rf "$work"
	fi
}
exec 9>&2
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build and install (output kept in a file, shown if the build fails) ----
build=$(tm_prepare_build bench)
if ! { tm_build "$build" && tm_install "$build"; } >"$build/build.log" 2>&1; then
	cat "$build/build.log" >&2
	tm_die "build failed; build directory kept: $build"
fi
rm -rf "$build"
tm_say "built and installed the extension"

# ---- throwaway cluster ----
# everything but shared_buffers is initdb's default
tm_init_cluster "$work" "$data" "$first_port" benchmark "shared_buffers = '$shared_buffers'" \
	"tenant_migrate.max_workers = 4"
port=$TM_PORT
tm_as_pg "$work" pg_ctl -D "$data" -l "$log" -w start >/dev/null

# psql_b DB ARG... — psql as postgres on the bench server, stopping at the
# first error.
psql_b() {
	local db=$1
	shift
	tm_as_pg "$work" psql -X -h "$work" -p "$port" -U postgres -d "$db" \
		-v ON_ERROR_STOP=1 -P pager=off "$@"
}
# q DB SQL — one value, unaligned
q() {
	psql_b "$1" -Atqc "$2"
}
# ms_since START — milliseconds since an $EPOCHREALTIME value
ms_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}
# timing_ms FILE — the "Time: X ms" lines psql's \timing wrote, one per line
timing_ms() {
	sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$1"
}
# loadavg — the 1-minute load average (other work on the machine skews timings)
loadavg() {
	cut -d' ' -f1 /proc/loadavg
}
# settle — before each timed phase: VACUUM (ANALYZE) the databases the last
# phases changed, a CHECKPOINT, then wait (10 minutes at most) until no
# autovacuum worker is busy.  Otherwise the catch-up work of one phase --
# autovacuum going through the 600,000 catalog rows that 10,000 tenants
# add -- runs on the 2 cores during the next phase and is charged to it.
# Sets settled_in (what the wait cost, for the summary).
dirty=
settled_in=
settle() {
	local t0=$EPOCHREALTIME db busy i
	for db in $dirty; do
		q "$db" "VACUUM (ANALYZE)" >/dev/null
	done
	dirty=
	q postgres "CHECKPOINT" >/dev/null
	for ((i = 0; i < 600; i++)); do
		busy=$(q postgres "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'autovacuum worker'")
		[ "$busy" -eq 0 ] && break
		sleep 1
	done
	[ "$busy" -eq 0 ] || tm_say "autovacuum still busy after 10 minutes; timing anyway"
	settled_in=$(ms_since "$t0")
}
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The server reads the migration folders: give it its own copies. shared_only
# holds just the shared scripts, so tenants can be created before any tenant
# script is registered (creating them is not what is measured).
cp -R "$TM_SRC/migrations" "$work/migrations"
mkdir -p "$work/shared_only"
cp -R "$TM_SRC/migrations/shared" "$work/shared_only/shared"
chown -R "$TM_PGUSER:" "$work/migrations" "$work/shared_only"

width=${#tenants}
batch=500
# build_db DB — extension, shared scripts applied, N empty tenants, then every
# tenant script registered (pending for all N tenants).
build_db() {
	local db=$1 from to
	psql_b postgres -qc "CREATE DATABASE $db"
	psql_b "$db" -q >/dev/null <<SQL
CREATE EXTENSION tenant_migrate;
SELECT tenant_migrations_load('$work/shared_only');
SELECT count(*) FROM tenant_migrate_shared();
SQL
	for ((from = 1; from <= tenants; from += batch)); do
		to=$((from + batch - 1))
		[ "$to" -le "$tenants" ] || to=$tenants
		q "$db" "SELECT count(public.create_tenant_schema('t' || lpad(i::text, $width, '0')))
		          FROM generate_series($from, $to) i" >/dev/null
	done
	q "$db" "SELECT public.tenant_migrations_load('$work/migrations')" >/dev/null
}

t0=$EPOCHREALTIME
tm_say "building database bench_tmpl: $tenants tenants, tenant scripts registered, not applied"
build_db bench_tmpl
# the copies start vacuumed and analyzed
q bench_tmpl "VACUUM (ANALYZE)" >/dev/null
# bench_raw: the psql stream's copy (not made with --no-stream)
# bench_one_<i>, bench_w1_<i>: the copies of the second and later pairs
if $stream; then dbs="bench_raw bench_one"; else dbs="bench_one"; fi
for ((i = 2; i <= pairs; i++)); do dbs="$dbs bench_one_$i"; done
for w in $worker_counts; do dbs="$dbs bench_w$w"; done
for ((i = 2; i <= pairs; i++)); do dbs="$dbs bench_w1_$i"; done
for db in $dbs; do
	psql_b postgres -qc "CREATE DATABASE $db TEMPLATE bench_tmpl"
done
tm_say "copied it to $dbs"
nscripts=$(q bench_one "SELECT count(*) FROM tenant_migration_scripts WHERE scope = 'tenant'")
for db in $dbs; do
	pending=$(q "$db" "SELECT sum(pending) FROM tenant_migration_status()")
	[ "$pending" -eq $((nscripts * tenants)) ] || tm_die "$db: expected $((nscripts * tenants)) pending migrations, found $pending"
done
tm_say "setup took $(ms_since "$t0") ms ($nscripts tenant scripts pending on each tenant)"

# ---- the clients' input: every tenant's plan, one transaction each ----
plan=$work/plan.sql
t0=$EPOCHREALTIME
tm_say "writing the plan file from tenant_migration_plan()"
psql_b bench_one -Atq -v FETCH_COUNT=200 -o "$plan" <<'SQL'
SELECT format(E'BEGIN;\nSET LOCAL search_path = %I, public;\n', r.schema_name)
       || (SELECT string_agg(p.sql, E'\n;\n' ORDER BY public.tenant_version_key(p.version))
             FROM public.tenant_migration_plan(r.schema_name) p)
       || E'\n;\nCOMMIT;'
  FROM public.tenant_registry r
 ORDER BY r.schema_name;
SQL
[ "$(grep -c '^COMMIT;$' "$plan")" -eq "$tenants" ] || tm_die "plan file has not $tenants transactions"
plan_bytes=$(stat -c %s "$plan")
tm_say "plan file: $plan_bytes bytes, written in $(ms_since "$t0") ms"

# ---- the one-query-per-tenant client (libpq) ----
onequery=$work/onequery
gcc -O2 -Wall -o "$onequery" "$TM_SRC/bench/onequery.c" \
	-I"$(pg_config --includedir)" -L"$(pg_config --libdir)" -lpq ||
	tm_die "could not build bench/onequery.c (libpq-dev?)"
chmod 755 "$onequery"

# ---- A. psql stream: one round trip per statement ----
stream_ms=- load_stream=-
if $stream; then
	settle
	load_stream=$(loadavg)
	tm_say "timing the psql stream: psql -f plan.sql on bench_raw (load average $load_stream)"
	t0=$EPOCHREALTIME
	psql_b bench_raw -q -f "$plan" >"$work/stream.out" 2>"$work/stream.err"
	stream_ms=$(ms_since "$t0")
	dirty="$dirty bench_raw"
	tm_say "psql stream: $stream_ms ms"
fi

# ---- memory of the fleet runs: every process of a CALL, sampled ----
# rss_kb PID — RssAnon (kB) of a process, nothing if it is gone
rss_kb() {
	local key value _
	{
		while read -r key value _; do
			if [ "$key" = RssAnon: ]; then
				echo "$value"
				return
			fi
		done <"/proc/$1/status"
	} 2>/dev/null || true
}
# fleet_workers PID — the background workers of a CALL's backend (their
# title is "... worker N for PID <backend pid>")
fleet_workers() {
	# one grep over every process's command line: the sampler must not eat
	# the CPU the run is measured on
	# (a pattern that does not match grep's own command line)
	grep -lsE -- "worker [0-9]+ for PID $1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 || true
}
# sampler PIDFILE STOPFILE SAMPLES — waits (10 s at most) for the backend
# pid, then writes "ms total_kB backend_kB largest_process_kB workers" every
# $sample_ms ms, until the stop file appears, the backend is gone, or
# $max_samples samples.
sampler() {
	local pidfile=$1 stopfile=$2 samples=$3 i pid start leader total w v largest n
	for ((i = 0; i < 100; i++)); do
		[ -s "$pidfile" ] && break
		sleep 0.1
	done
	[ -s "$pidfile" ] || return 0
	pid=$(<"$pidfile")
	start=$EPOCHREALTIME
	for ((i = 0; i < max_samples; i++)); do
		[ -e "$stopfile" ] && break
		[ -d "/proc/$pid" ] || break
		# a worker (or the backend) may exit between listing and reading
		leader=$(rss_kb "$pid") || leader=
		if [ -n "$leader" ]; then
			total=$leader largest=$leader n=0
			for w in $(fleet_workers "$pid"); do
				v=$(rss_kb "$w") || v=0
				v=${v:-0}
				total=$((total + v))
				[ "$v" -le "$largest" ] || largest=$v
				n=$((n + 1))
			done
			printf '%s %s %s %s %s\n' "$(ms_since "$start")" "$total" "$leader" "$largest" "$n" >>"$samples"
		fi
		sleep "0.$(printf '%03d' "$sample_ms")"
	done
}

# ---- B. one query per tenant (one round trip per tenant), C. the fleet runs ----
declare -A settle_of call_ms peak_total peak_leader peak_proc max_workers_seen nsamples_of load_of
run_order=
# run_label KEY — "B (1)", "C1 (2)", "C4" for the summary
run_label() {
	case $1 in
	one_*) echo "B (${1#one_})" ;;
	1_*) echo "C1 (${1#1_})" ;;
	*) echo "C$1" ;;
	esac
}

# phase_start KEY — settle, then note the settling time, the load and the order
phase_start() {
	settle
	settle_of[$1]=$settled_in
	load_of[$1]=$(loadavg)
	run_order="$run_order $1"
}

# time_one DB KEY — B on DB: the one-query client sends the plan file
time_one() {
	local db=$1 key=$2 t0 sent
	phase_start "$key"
	tm_say "timing one query per tenant on $db (load average ${load_of[$key]})"
	t0=$EPOCHREALTIME
	sent=$(tm_as_pg "$work" "$onequery" "host=$work port=$port user=postgres dbname=$db" "$plan" 2>"$work/one.err") ||
		tm_die "the one-query client failed: $(cat "$work/one.err")"
	call_ms[$key]=$(ms_since "$t0")
	dirty="$dirty $db"
	[ "$sent" -eq "$tenants" ] || tm_die "the one-query client sent $sent transactions, not $tenants"
	tm_say "one query per tenant: ${call_ms[$key]} ms"
}

# time_call W DB KEY — C<W> on DB: CALL tenant_migrate_all(workers => W),
# with every process's memory sampled
time_call() {
	local w=$1 db=$2 key=$3 pidfile=$work/call-$3.pid stopfile=$work/sampler-$3.stop
	local samples=$work/rss-$3.samples behind
	: >"$samples"
	phase_start "$key"
	sampler "$pidfile" "$stopfile" "$samples" &
	sampler_pid=$!
	tm_say "timing CALL tenant_migrate_all(workers => $w) on $db (load average ${load_of[$key]})"
	psql_b "$db" -Atq >"$work/call-$key.out" 2>"$work/call-$key.err" <<SQL
\o $pidfile
SELECT pg_backend_pid();
\o
\timing on
CALL tenant_migrate_all(workers => $w);
\timing off
SQL
	touch "$stopfile"
	wait "$sampler_pid" || true
	sampler_pid=
	dirty="$dirty $db"
	call_ms[$key]=$(timing_ms "$work/call-$key.out" | tail -n 1)
	[ -n "${call_ms[$key]}" ] || tm_die "no timing for the CALL (see $work/call-$key.out)"
	tm_say "CALL tenant_migrate_all(workers => $w): ${call_ms[$key]} ms"
	grep -h 'finished in\|worker' "$work/call-$key.err" | sed 's/^/    /' || true
	behind=$(q "$db" "SELECT count(*) FROM tenant_migration_status() WHERE pending > 0 OR last_error IS NOT NULL")
	[ "$behind" -eq 0 ] || tm_die "$db: $behind tenants not migrated by the CALL (see $work/call-$key.err)"
	nsamples_of[$key]=$(wc -l <"$samples")
	peak_total[$key]=$(awk '$2 > m { m = $2 } END { printf "%.1f", m / 1024 }' "$samples")
	peak_leader[$key]=$(awk '$3 > m { m = $3 } END { printf "%.1f", m / 1024 }' "$samples")
	peak_proc[$key]=$(awk '$4 > m { m = $4 } END { printf "%.1f", m / 1024 }' "$samples")
	max_workers_seen[$key]=$(awk '$5 > m { m = $5 } END { print m + 0 }' "$samples")
}

# B and C1 in pairs, every other pair in the other order (B C1 C1 B ...):
# whatever drifts over the run (the file system's recent deletions, the
# cluster's size, autovacuum's backlog) falls on both alike.
one_keys='' call1_keys='' call1_dbs=''
for ((i = 1; i <= pairs; i++)); do
	if [ "$i" -eq 1 ]; then sfx=; else sfx=_$i; fi
	if ((i % 2)); then
		time_one "bench_one$sfx" "one_$i"
		time_call 1 "bench_w1$sfx" "1_$i"
	else
		time_call 1 "bench_w1$sfx" "1_$i"
		time_one "bench_one$sfx" "one_$i"
	fi
	one_keys="$one_keys one_$i" call1_keys="$call1_keys 1_$i" call1_dbs="$call1_dbs bench_w1$sfx"
done
for w in $worker_counts; do
	[ "$w" -eq 1 ] || time_call "$w" "bench_w$w" "$w"
done
# B and C1: the mean of their runs
mean_of() { for k in "$@"; do echo "${call_ms[$k]}"; done | awk '{ s += $1 } END { printf "%.1f", s / NR }'; }
runs_of() { for k in "$@"; do echo "${call_ms[$k]}"; done | paste -sd' '; }
# shellcheck disable=SC2086
{
	one_ms=$(mean_of $one_keys) one_runs=$(runs_of $one_keys)
	call1_runs=$(runs_of $call1_keys)
	call_ms[1]=$(mean_of $call1_keys)
	peak_proc[1]=$(for k in $call1_keys; do echo "${peak_proc[$k]}"; done | sort -g | tail -n 1)
	peak_leader[1]=$(for k in $call1_keys; do echo "${peak_leader[$k]}"; done | sort -g | tail -n 1)
	peak_total[1]=$(for k in $call1_keys; do echo "${peak_total[$k]}"; done | sort -g | tail -n 1)
	max_workers_seen[1]=$(for k in $call1_keys; do echo "${max_workers_seen[$k]}"; done | sort -g | tail -n 1)
	nsamples_of[1]=$(for k in $call1_keys; do echo "${nsamples_of[$k]}"; done | paste -sd+ | bc)
}

# Every database must now be in the same state: every tenant migrated.
count_objects="SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'tenant\\_%'"
objs_ref=$(q bench_one "$count_objects")
[ "$objs_ref" -gt 0 ] || tm_die "no tenant relations in bench_one"
for db in $dbs; do
	objs=$(q "$db" "$count_objects")
	[ "$objs" -eq "$objs_ref" ] || tm_die "tenant relations differ: $objs ($db) vs $objs_ref (bench_one)"
done

# Where the sequential CALL's time went: the scripts' own statements
# (duration_ms of each applied migration) vs the rest (bookkeeping, locks,
# commits, caches); the mean over the C1 runs.
scripts_ms=$(for db in $call1_dbs; do
	q "$db" "SELECT round(sum(duration_ms)::numeric, 1) FROM tenant_migrations WHERE tenant_schema <> 'public'"
done | awk '{ s += $1 } END { printf "%.1f", s / NR }')

# ---- D. no-op run (every tenant up to date), 3 times ----
settle
settle_noop=$settled_in
tm_say "timing the no-op CALL tenant_migrate_all() (3 runs)"
psql_b bench_w1 -Atq >"$work/noop.out" 2>"$work/noop.err" <<SQL
\timing on
CALL tenant_migrate_all();
CALL tenant_migrate_all();
CALL tenant_migrate_all();
SQL
noop_all=$(timing_ms "$work/noop.out" | paste -sd' ')
noop_ms=$(timing_ms "$work/noop.out" | median)

# ---- E. status, 5 times ----
tm_say "timing SELECT * FROM tenant_migration_status() (5 runs)"
psql_b bench_w1 -q >"$work/status.out" <<SQL
\timing on
\o /dev/null
SELECT * FROM tenant_migration_status();
SELECT * FROM tenant_migration_status();
SELECT * FROM tenant_migration_status();
SELECT * FROM tenant_migration_status();
SELECT * FROM tenant_migration_status();
SQL
status_all=$(timing_ms "$work/status.out" | paste -sd' ')
status_ms=$(timing_ms "$work/status.out" | median)

# ---- summary ----
# (a figure not measured in this run is "-", and so is any ratio to it)
div() {
	if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo -; fi
}
per() { div "$1" "$tenants"; }
ratio=$(div "${call_ms[1]}" "$one_ms")
ratio_stream=$(div "${call_ms[1]}" "$stream_ms")
speedup2=$(div "${call_ms[1]}" "${call_ms[2]:--}")
speedup4=$(div "${call_ms[1]}" "${call_ms[4]:--}")
overhead_ms=$(awk -v a="${call_ms[1]}" -v s="$scripts_ms" 'BEGIN { printf "%.1f", a - s }')
peak_any=$(for w in $worker_counts; do echo "${peak_proc[$w]}"; done | sort -g | tail -n 1)
pass() { # VALUE OP LIMIT
	if ! [[ $1 =~ ^[0-9.]+$ ]]; then echo "not measured"
	elif awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo PASS; else echo MISS; fi
}
at_scale() { # N_FOR_TARGET — note when this run is not at the target's scale
	[ "$tenants" -eq "$1" ] || printf ' (target is set at %s tenants; this run has %s)' "$1" "$tenants"
}
settings=$(q bench_w1 "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
                         FROM pg_settings WHERE name IN ('shared_buffers', 'fsync', 'synchronous_commit',
                         'wal_level', 'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'work_mem',
                         'full_page_writes', 'tenant_migrate.max_workers', 'max_worker_processes')")
pgversion=$(q bench_w1 "SELECT version()")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
memtotal=$(awk '/^MemTotal:/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
total_s=$(awk -v a="$bench_started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

mkdir -p "$TM_SRC/bench/out"
summary=$TM_SRC/bench/out/summary-$tenants-$(date +%Y%m%d-%H%M%S).txt
{
	printf '\n===== tenant_migrate fleet benchmark: %s tenants x %s tenant scripts =====\n' "$tenants" "$nscripts"
	printf 'date      %s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'machine   %s CPUs (%s), %s RAM, %s\n' "$(nproc)" "$cpu" "$memtotal" "$(uname -sr)"
	printf 'server    %s\n' "$pgversion"
	printf 'settings  %s\n' "$settings"
	printf 'plan file %s bytes (BEGIN; SET LOCAL search_path; the %s rewritten scripts; COMMIT; per tenant)\n\n' "$plan_bytes" "$nscripts"
	printf 'clients (the same SQL, no bookkeeping)\n'
	printf 'A. psql stream, psql -f: one round trip per statement     %s ms  (%s ms/tenant)\n' "$stream_ms" "$(per "$stream_ms")"
	printf 'B. one query per tenant (libpq): one round trip per tenant %s ms  (%s ms/tenant; mean of runs: %s)\n\n' "$one_ms" "$(per "$one_ms")" "$one_runs"
	printf 'CALL tenant_migrate_all(workers => n)\n'
	for w in $worker_counts; do
		printf 'C%s. workers => %s: %s ms  (%s ms/tenant, %s tenants/s; speedup over workers => 1: %s%s)\n' \
			"$w" "$w" "${call_ms[$w]}" "$(per "${call_ms[$w]}")" \
			"$(awk -v a="${call_ms[$w]}" -v n="$tenants" 'BEGIN { printf "%.1f", n / (a / 1000) }')" \
			"$(div "${call_ms[1]}" "${call_ms[$w]}")" \
			"$([ "$w" -ne 1 ] || printf '; mean of runs: %s' "$call1_runs")"
		printf '    peak RssAnon (MB): largest process %s, the CALL backend %s, all together %s; most workers at once %s (%s samples)\n' \
			"${peak_proc[$w]}" "${peak_leader[$w]}" "${peak_total[$w]}" "${max_workers_seen[$w]}" "${nsamples_of[$w]}"
	done
	printf '    workers => 1: script statements (sum of tenant_migrations.duration_ms) %s ms, the rest %s ms\n' "$scripts_ms" "$overhead_ms"
	printf 'D. no-op CALL (all up to date), median of 3  %s ms  (runs: %s)\n' "$noop_ms" "$noop_all"
	printf 'E. tenant_migration_status(), median of 5    %s ms  (runs: %s)\n' "$status_ms" "$status_all"
	printf 'order of the timed runs, with the load average (1 min, %s CPUs) and the settling time (VACUUM of what\n' "$(nproc)"
	printf 'the last run changed, CHECKPOINT, autovacuum idle) before each:\n'
	[ "$stream_ms" = - ] || printf '  A %s, -\n' "$load_stream"
	for k in $run_order; do
		printf '  %s %s, %s ms\n' "$(run_label "$k")" "${load_of[$k]}" "${settle_of[$k]}"
	done
	printf '  D -, %s ms\n\n' "$settle_noop"
	printf 'targets\n'
	printf '  workers => 1 / one query per tenant <= %s   %s   %s%s\n' "$target_ratio" "$ratio" "$(pass "$ratio" '<=' "$target_ratio")" "$(at_scale 1000)"
	printf '  workers => 2 speedup >= %s                %s   %s%s\n' "$target_speedup" "$speedup2" "$(pass "$speedup2" '>=' "$target_speedup")" "$(at_scale 1000)"
	printf '  (workers => 4 speedup %s; workers => 1 / psql stream %s)\n' "$speedup4" "$ratio_stream"
	printf '  no-op run < %s ms                      %s ms   %s%s\n' "$target_noop_ms" "$noop_ms" "$(pass "$noop_ms" '<' "$target_noop_ms")" "$(at_scale 10000)"
	printf '  status < %s ms                         %s ms   %s%s\n' "$target_status_ms" "$status_ms" "$(pass "$status_ms" '<' "$target_status_ms")" "$(at_scale 10000)"
	printf '  peak RssAnon of any process < %s MB    %s MB   %s\n\n' "$target_rss_mb" "$peak_any" "$(pass "$peak_any" '<' "$target_rss_mb")"
	printf 'benchmark wall time %s s\n' "$total_s"
} | tee "$summary"
for k in $call1_keys; do cp "$work/rss-$k.samples" "${summary%.txt}.rss-w$k"; done
for w in $worker_counts; do
	[ "$w" -eq 1 ] || cp "$work/rss-$w.samples" "${summary%.txt}.rss-w$w"
done
tm_say "summary written to $summary"

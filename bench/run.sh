#!/usr/bin/env bash
# bench/run.sh — fleet benchmark of tenant_migrate: how long CALL
# tenant_migrate_all() takes to migrate N tenants through every tenant script
# of migrations/, compared with the same rewritten SQL streamed through one
# psql session (the raw floor); a no-op run; tenant_migration_status(); and
# the peak anonymous memory of the backend running the CALL.
#
#   bash bench/run.sh [--tenants N] [--shared-buffers SIZE] [--keep]
#
# --tenants N           tenants to create and migrate (default 1000)
# --shared-buffers SIZE shared_buffers of the throwaway server (default 256MB)
# --keep                keep the work directory (cluster files, plan file,
#                       memory samples) instead of removing it
#
# Builds and installs the extension (tools/lib.sh), creates a throwaway
# cluster as the postgres user under /tmp on the first free port from 5480
# (unix socket only; fsync and everything else left at their defaults), builds
# two identical databases of N tenants, measures, prints a summary with
# PASS/MISS per target, writes it to bench/out/, stops the cluster and cleans
# up (also on error or Ctrl-C). See bench/README.md for what each figure means.
set -euo pipefail

# shellcheck source=SCRIPTDIR/../tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

usage() {
	sed -n '8,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

tenants=1000
shared_buffers=256MB
keep=false
while [ $# -gt 0 ]; do
	case $1 in
	--tenants) [ $# -ge 2 ] || tm_die "--tenants needs a number"; tenants=$2; shift 2 ;;
	--shared-buffers) [ $# -ge 2 ] || tm_die "--shared-buffers needs a size"; shared_buffers=$2; shift 2 ;;
	--keep) keep=true; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; tm_die "unknown argument $1" ;;
	esac
done
[[ $tenants =~ ^[1-9][0-9]{0,5}$ ]] || tm_die "--tenants must be a number from 1 to 999999"

# Targets (see bench/README.md)
target_ratio=1.0        # extension / raw stream, at 1000 tenants
target_noop_ms=1000     # no-op CALL, at 10,000 tenants
target_status_ms=200    # SELECT * FROM tenant_migration_status(), at 10,000 tenants
target_rss_mb=200       # peak RssAnon of the CALL's backend plus its fleet worker

first_port=5480
sample_ms=100           # memory sampling period
max_samples=72000       # sampler gives up after 2 h of sampling at 100 ms

tm_require_root
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
tm_init_cluster "$work" "$data" "$first_port" benchmark "shared_buffers = '$shared_buffers'"
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
tm_say "building database bench_ext: $tenants tenants, tenant scripts registered, not applied"
build_db bench_ext
tm_say "building database bench_raw the same way"
build_db bench_raw
nscripts=$(q bench_ext "SELECT count(*) FROM tenant_migration_scripts WHERE scope = 'tenant'")
pending=$(q bench_ext "SELECT sum(pending) FROM tenant_migration_status()")
[ "$pending" -eq $((nscripts * tenants)) ] || tm_die "expected $((nscripts * tenants)) pending migrations, found $pending"
tm_say "setup took $(ms_since "$t0") ms ($nscripts tenant scripts pending on each tenant)"

# ---- the raw floor's input: every tenant's plan, one transaction each ----
plan=$work/plan.sql
t0=$EPOCHREALTIME
tm_say "writing the raw stream file from tenant_migration_plan()"
psql_b bench_raw -Atq -v FETCH_COUNT=200 -o "$plan" <<'SQL'
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

# ---- 2. raw floor ----
q bench_raw "CHECKPOINT" >/dev/null
load_stream=$(loadavg)
tm_say "timing the raw stream: psql -f plan.sql on bench_raw (load average $load_stream)"
t0=$EPOCHREALTIME
psql_b bench_raw -q -f "$plan" >"$work/stream.out" 2>"$work/stream.err"
stream_ms=$(ms_since "$t0")
tm_say "raw stream: $stream_ms ms"

# ---- 1 + 5. the fleet run, with the backend's memory sampled ----
pidfile=$work/call.pid
stopfile=$work/sampler.stop
samples=$work/rss.samples
: >"$samples"
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
# fleet_workers PID — the background workers a CALL's backend hands its
# tenants to (their title is "... worker for PID <backend pid>")
fleet_workers() {
	local d title
	for d in /proc/[0-9]*; do
		title=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
		case $title in *"worker for PID $1"*) echo "${d#/proc/}" ;; esac
	done
}
# sampler — waits (10 s at most) for the backend pid, then writes
# "ms_since_first_sample total_kB backend_kB" every $sample_ms ms, where
# total is the RssAnon of the CALL's backend plus its fleet worker, until
# the stop file appears, the backend is gone, or $max_samples samples.
sampler() {
	local i pid start leader total w v
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
			total=$leader
			for w in $(fleet_workers "$pid"); do
				v=$(rss_kb "$w") || v=0
				total=$((total + ${v:-0}))
			done
			printf '%s %s %s\n' "$(ms_since "$start")" "$total" "$leader" >>"$samples"
		else
			echo "sample $i: no RssAnon" >>"$samples.err"
		fi
		sleep "0.$(printf '%03d' "$sample_ms")"
	done
	echo "sampler stopped after $i samples" >>"$samples.err"
}

q bench_ext "CHECKPOINT" >/dev/null
load_call=$(loadavg)
sampler &
sampler_pid=$!
tm_say "timing CALL tenant_migrate_all() on bench_ext (load average $load_call)"
# After the CALL, the same backend lists the memory contexts it still holds
# (what the procedure's SPI connection held is gone by then).
psql_b bench_ext -Atq >"$work/call.out" 2>"$work/call.err" <<SQL
\o $pidfile
SELECT pg_backend_pid();
\o
\timing on
CALL tenant_migrate_all();
\timing off
\o $work/retained.txt
SELECT format('%s x%s: %s MB', name, count(*), round(sum(total_bytes) / 1048576.0, 1))
  FROM pg_backend_memory_contexts GROUP BY name ORDER BY sum(total_bytes) DESC LIMIT 5;
SELECT format('all contexts: %s MB', round(sum(total_bytes) / 1048576.0, 1)) FROM pg_backend_memory_contexts;
\o
SQL
touch "$stopfile"
wait "$sampler_pid" || true
sampler_pid=
call_ms=$(timing_ms "$work/call.out" | tail -n 1)
[ -n "$call_ms" ] || tm_die "no timing for the CALL (see $work/call.out)"
tm_say "CALL tenant_migrate_all(): $call_ms ms"
grep -h 'finished in' "$work/call.err" | sed 's/^/    /' || true

# Both databases must now be in the same state: every tenant migrated.
behind=$(q bench_ext "SELECT count(*) FROM tenant_migration_status() WHERE pending > 0 OR last_error IS NOT NULL")
[ "$behind" -eq 0 ] || tm_die "$behind tenants not migrated by the CALL (see $work/call.err)"
count_objects="SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'tenant\\_%'"
objs_ext=$(q bench_ext "$count_objects")
objs_raw=$(q bench_raw "$count_objects")
if [ "$objs_ext" -ne "$objs_raw" ] || [ "$objs_ext" -eq 0 ]; then
	tm_die "tenant relations differ: $objs_ext (extension) vs $objs_raw (raw stream)"
fi

# Where the CALL's time went: the scripts' own statements (duration_ms of
# each applied migration) vs the rest (bookkeeping, locks, commits, caches).
scripts_ms=$(q bench_ext "SELECT round(sum(duration_ms)::numeric, 1) FROM tenant_migrations WHERE tenant_schema <> 'public'")

# Memory: first sample, at 10% and 50% of the run, last sample, peak.
nsamples=$(wc -l <"$samples")
rss_at() { # FRACTION — RssAnon (MB) of the sample nearest to that point of the CALL
	awk -v f="$1" -v t="$call_ms" '
		{ d = $1 - f * t; if (d < 0) d = -d; if (NR == 1 || d < best) { best = d; v = $2 } }
		END { printf "%.1f", v / 1024 }' "$samples"
}
if [ "$nsamples" -gt 0 ]; then
	rss_first=$(awk 'NR == 1 { printf "%.1f", $2 / 1024 }' "$samples")
	rss_10=$(rss_at 0.1)
	rss_50=$(rss_at 0.5)
	rss_last=$(awk 'END { printf "%.1f", $2 / 1024 }' "$samples")
	rss_peak=$(awk '$2 > m { m = $2 } END { printf "%.1f", m / 1024 }' "$samples")
	rss_leader_peak=$(awk '$3 > m { m = $3 } END { printf "%.1f", m / 1024 }' "$samples")
else
	rss_first=n/a rss_10=n/a rss_50=n/a rss_last=n/a rss_peak=n/a rss_leader_peak=n/a
fi

# ---- 3. no-op run (every tenant up to date), 3 times ----
tm_say "timing the no-op CALL tenant_migrate_all() (3 runs)"
psql_b bench_ext -Atq >"$work/noop.out" 2>"$work/noop.err" <<SQL
\timing on
CALL tenant_migrate_all();
CALL tenant_migrate_all();
CALL tenant_migrate_all();
SQL
noop_all=$(timing_ms "$work/noop.out" | paste -sd' ')
noop_ms=$(timing_ms "$work/noop.out" | median)

# ---- 4. status, 5 times ----
tm_say "timing SELECT * FROM tenant_migration_status() (5 runs)"
psql_b bench_ext -q >"$work/status.out" <<SQL
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
ratio=$(awk -v a="$call_ms" -v b="$stream_ms" 'BEGIN { printf "%.2f", a / b }')
per_tenant_ext=$(awk -v a="$call_ms" -v n="$tenants" 'BEGIN { printf "%.2f", a / n }')
per_tenant_raw=$(awk -v a="$stream_ms" -v n="$tenants" 'BEGIN { printf "%.2f", a / n }')
overhead_ms=$(awk -v a="$call_ms" -v s="$scripts_ms" 'BEGIN { printf "%.1f", a - s }')
pass() { # VALUE OP LIMIT
	if [[ $1 =~ ^[0-9.]+$ ]] && awk -v v="$1" -v l="$3" "BEGIN { exit !(v $2 l) }"; then echo PASS; else echo MISS; fi
}
at_scale() { # N_FOR_TARGET — note when this run is not at the target's scale
	[ "$tenants" -eq "$1" ] || printf ' (target is set at %s tenants; this run has %s)' "$1" "$tenants"
}
settings=$(q bench_ext "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
                         FROM pg_settings WHERE name IN ('shared_buffers', 'fsync', 'synchronous_commit',
                         'wal_level', 'max_wal_size', 'checkpoint_timeout', 'autovacuum', 'work_mem',
                         'full_page_writes')")
pgversion=$(q bench_ext "SELECT version()")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
memtotal=$(awk '/^MemTotal:/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
total_s=$(awk -v a="$bench_started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

mkdir -p "$TM_SRC/bench/out"
summary=$TM_SRC/bench/out/summary-$tenants-$(date +%Y%m%d-%H%M%S).txt
{
	cat <<EOF

===== tenant_migrate fleet benchmark: $tenants tenants x $nscripts tenant scripts =====
date      $(date -u '+%Y-%m-%d %H:%M UTC')
machine   $(nproc) CPUs ($cpu), $memtotal RAM, $(uname -sr)
server    $pgversion
settings  $settings
plan file $plan_bytes bytes (BEGIN; SET LOCAL search_path; the $nscripts rewritten scripts; COMMIT; per tenant)

1. CALL tenant_migrate_all(), all tenants   $call_ms ms  ($per_tenant_ext ms/tenant)
     of which script statements (sum of tenant_migrations.duration_ms)  $scripts_ms ms
     of which the rest (bookkeeping, locks, subtransactions, commits)   $overhead_ms ms
2. raw stream, psql -f, one tx per tenant   $stream_ms ms  ($per_tenant_raw ms/tenant; DDL only, no bookkeeping)
   ratio extension / stream                  $ratio
3. no-op CALL (all up to date), median of 3  $noop_ms ms  (runs: $noop_all)
4. tenant_migration_status(), median of 5    $status_ms ms  (runs: $status_all)
5. RssAnon of the CALL's backend + its fleet worker (MB)  peak $rss_peak (backend alone: $rss_leader_peak); first sample $rss_first, 10% $rss_10, 50% $rss_50, last sample $rss_last ($nsamples samples every ${sample_ms} ms)
   memory contexts the backend still holds after the CALL (largest first):
$(sed 's/^/     /' "$work/retained.txt")
load average (1 min) before the stream $load_stream, before the CALL $load_call ($(nproc) CPUs)

targets
  ratio extension/stream <= $target_ratio    $ratio     $(pass "$ratio" '<=' "$target_ratio")$(at_scale 1000)
  no-op run < $target_noop_ms ms            $noop_ms ms   $(pass "$noop_ms" '<' "$target_noop_ms")$(at_scale 10000)
  status < $target_status_ms ms              $status_ms ms   $(pass "$status_ms" '<' "$target_status_ms")$(at_scale 10000)
  peak RssAnon < $target_rss_mb MB          $rss_peak MB   $(pass "$rss_peak" '<' "$target_rss_mb")

benchmark wall time $total_s s
EOF
} | tee "$summary"
cp "$samples" "${summary%.txt}.rss"
tm_say "summary written to $summary"

#!/usr/bin/env bash
# bench/verify.sh — how long tenant_verify() takes over a fleet of N tenants
# of the example app (migrations/), all up to date: the whole fleet (no
# rows expected), one tenant, and the whole fleet again with a hand-made
# drift in 1% of the tenants; and the peak anonymous memory of the backend
# running the fleet-wide call.
#
#   bash bench/verify.sh [--tenants N] [--keep]
#
# --tenants N   tenants to create (default 1000)
# --keep        keep the work directory (cluster, samples)
#
# Builds and installs the extension (tools/lib.sh), creates a throwaway
# cluster as postgres under /tmp (first free port from 5490, unix socket
# only, initdb defaults but shared_buffers = 256MB), loads migrations/,
# creates N tenants with every script applied (CALL tenant_migrate_all()),
# measures, prints a summary with PASS/MISS per target, stops the cluster
# and cleans up. Run it alone: every figure is a wall-clock time.
set -euo pipefail

# shellcheck source=SCRIPTDIR/../tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

tenants=1000
keep=false
while [ $# -gt 0 ]; do
	case $1 in
	--tenants) [ $# -ge 2 ] || tm_die "--tenants needs a number"; tenants=$2; shift 2 ;;
	--keep) keep=true; shift ;;
	-h | --help) sed -n '8,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) tm_die "unknown argument $1" ;;
	esac
done
[[ $tenants =~ ^[1-9][0-9]{0,5}$ ]] || tm_die "--tenants must be a number from 1 to 999999"

# Targets (issue 8): whole fleet under 5 s at 1,000 tenants, under 60 s at
# 10,000; one tenant under 100 ms.
if [ "$tenants" -ge 10000 ]; then target_fleet_ms=60000; else target_fleet_ms=5000; fi
target_one_ms=100

tm_require_root
bash "$TM_SRC/tools/deps.sh"
work=$(mktemp -d /tmp/tenant_migrate-bench-verify.XXXXXX)
chown "$TM_PGUSER:" "$work"
chmod 755 "$work"
data=$work/data
log=$work/server.log
sampler_pid=

cleanup() {
	local rc=$?
	[ -z "$sampler_pid" ] || kill "$sampler_pid" 2>/dev/null || true
	if [ -f "$data/postmaster.pid" ]; then
		tm_as_pg "$work" pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ]; then
		tail -n 30 "$log" >&2 2>/dev/null || true
		printf '\nBenchmark failed (exit %s); work directory kept: %s\n' "$rc" "$work" >&2
	elif $keep; then
		printf 'Work directory kept: %s\n' "$work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build=$(tm_prepare_build bench)
if ! { tm_build "$build" && tm_install "$build"; } >"$build/build.log" 2>&1; then
	cat "$build/build.log" >&2
	tm_die "build failed; build directory kept: $build"
fi
rm -rf "$build"
tm_say "built and installed the extension"

tm_init_cluster "$work" "$data" 5490 benchmark "shared_buffers = '256MB'"
port=$TM_PORT
tm_as_pg "$work" pg_ctl -D "$data" -l "$log" -w start >/dev/null

psql_b() {
	tm_as_pg "$work" psql -X -h "$work" -p "$port" -U postgres -d bench \
		-v ON_ERROR_STOP=1 -P pager=off "$@"
}
q() { psql_b -Atqc "$1"; }
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
timing_ms() { sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$1"; }

cp -R "$TM_SRC/migrations" "$work/migrations"
chown -R "$TM_PGUSER:" "$work/migrations"
tm_as_pg "$work" psql -X -h "$work" -p "$port" -U postgres -d postgres -qc 'CREATE DATABASE bench'

t0=$EPOCHREALTIME
width=${#tenants}
# the shared scripts alone first, so that creating the tenants applies
# nothing; then every tenant script, applied by a fleet run
mkdir -p "$work/shared_only"
cp -R "$TM_SRC/migrations/shared" "$work/shared_only/shared"
chown -R "$TM_PGUSER:" "$work/shared_only"
psql_b -q >/dev/null <<SQL
CREATE EXTENSION tenant_migrate;
SELECT tenant_migrations_load('$work/shared_only');
SELECT count(*) FROM tenant_migrate_shared();
SQL
for ((from = 1; from <= tenants; from += 500)); do
	to=$((from + 499))
	[ "$to" -le "$tenants" ] || to=$tenants
	q "SELECT count(create_tenant_schema('t' || lpad(i::text, $width, '0'))) FROM generate_series($from, $to) i" >/dev/null
done
q "SELECT tenant_migrations_load('$work/migrations')" >/dev/null
psql_b -q -c "SET client_min_messages = warning" -c "CALL tenant_migrate_all(workers => 2)" >/dev/null
nscripts=$(q "SELECT count(*) FROM tenant_migration_scripts WHERE scope = 'tenant'")
behind=$(q "SELECT behind FROM tenant_migration_overview")
[ "$behind" -eq 0 ] || tm_die "$behind tenants are behind"
tm_say "setup: $tenants tenants with $nscripts tenant scripts each, in $(ms_since "$t0") ms"
q "VACUUM ANALYZE" >/dev/null
q "CHECKPOINT" >/dev/null

# ---- whole fleet, healthy: median of 3, memory sampled ----
pidfile=$work/pid
samples=$work/rss.samples
: >"$samples"
sampler() {
	local pid i key v _
	for ((i = 0; i < 100; i++)); do [ -s "$pidfile" ] && break; sleep 0.1; done
	pid=$(<"$pidfile")
	while [ -d "/proc/$pid" ]; do
		while read -r key v _; do [ "$key" = RssAnon: ] && echo "$v" >>"$samples"; done <"/proc/$pid/status" 2>/dev/null || true
		sleep 0.05
	done
}
sampler &
sampler_pid=$!
psql_b -At -o /dev/null >"$work/fleet.out" <<SQL
\\o $pidfile
SELECT pg_backend_pid();
\\o /dev/null
\\timing on
SELECT count(*) FROM tenant_verify();
SELECT count(*) FROM tenant_verify();
SELECT count(*) FROM tenant_verify();
SQL
wait "$sampler_pid" || true
sampler_pid=
fleet_ms=$(timing_ms "$work/fleet.out" | median)
rows=$(q "SELECT count(*) FROM tenant_verify()")
[ "$rows" -eq 0 ] || tm_die "a healthy fleet gave $rows rows: $(q 'SELECT * FROM tenant_verify() LIMIT 5')"
peak_kb=$(sort -g "$samples" | tail -1)
first_kb=$(head -1 "$samples")

# ---- one tenant: the first call of a new session, then a median of 5 ----
mid=$(printf "t%0${width}d" $(( (tenants + 1) / 2 )))
psql_b -o /dev/null >"$work/one.out" <<SQL
\\timing on
SELECT count(*) FROM tenant_verify('tenant_$mid');
SELECT count(*) FROM tenant_verify('tenant_$mid');
SELECT count(*) FROM tenant_verify('tenant_$mid');
SELECT count(*) FROM tenant_verify('tenant_$mid');
SELECT count(*) FROM tenant_verify('tenant_$mid');
SELECT count(*) FROM tenant_verify('tenant_$mid');
SQL
one_first_ms=$(timing_ms "$work/one.out" | head -n 1)
one_ms=$(timing_ms "$work/one.out" | tail -n +2 | median)
# the same with no reference kept: the call replays the history first
q "TRUNCATE tenant_verify_reference" >/dev/null
psql_b -o /dev/null >"$work/replay.out" <<SQL
\\timing on
SELECT count(*) FROM tenant_verify('tenant_$mid');
SQL
one_replay_ms=$(timing_ms "$work/replay.out")

# ---- drift in 1% of the tenants: one index dropped each ----
ndrift=$(( tenants / 100 > 0 ? tenants / 100 : 1 ))
q "DO \$\$ DECLARE s name; BEGIN
     FOR s IN SELECT schema_name FROM tenant_registry ORDER BY schema_name LIMIT $ndrift LOOP
       EXECUTE format('DROP INDEX %I.interviews_scheduled_at_idx', s);
     END LOOP; END \$\$" >/dev/null
psql_b -o /dev/null >"$work/drift.out" <<SQL
\\timing on
SELECT count(*) FROM tenant_verify();
SQL
drift_ms=$(timing_ms "$work/drift.out" | median)
drift_rows=$(q "SELECT count(*) FROM tenant_verify() WHERE problem = 'schema_drift'")
[ "$drift_rows" -eq "$ndrift" ] || tm_die "expected $ndrift schema_drift rows, got $drift_rows"

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "MISS" }'; }
mkdir -p "$TM_SRC/bench/out"
summary=$(cat <<EOT
tenant_verify() benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)
tenants: $tenants, tenant scripts each: $nscripts, shared_buffers 256MB
whole fleet, healthy (median of 3):   $fleet_ms ms   target < $target_fleet_ms ms: $(verdict "$fleet_ms" "$target_fleet_ms")
one tenant, first call of a session: $one_first_ms ms   target < $target_one_ms ms: $(verdict "$one_first_ms" "$target_one_ms")
one tenant, next calls (median of 5): $one_ms ms   target < $target_one_ms ms: $(verdict "$one_ms" "$target_one_ms")
one tenant, no reference kept (replay): $one_replay_ms ms
whole fleet, $ndrift tenants drifted:      $drift_ms ms ($drift_rows schema_drift rows)
backend RssAnon during the fleet calls: first sample $first_kb kB, peak $peak_kb kB ($(wc -l <"$samples") samples)
EOT
)
echo "$summary"
echo "$summary" >"$TM_SRC/bench/out/verify-$tenants.txt"

#!/usr/bin/env bash
# bench/rls.sh — speed of the row level security and tenant role functions:
# tenant_enable_rls() over N tables in one call list, create_tenant_role() for
# N tenants, and tenant_add_tenant_column() on a table of M million rows (a new
# column, and an existing nullable column whose NULLs are backfilled).
#
#   flock /tmp/tm-test.lock bash bench/rls.sh [--tables N] [--tenants N] [--rows M]
#
# --tables N   tables for tenant_enable_rls (default 1000)
# --tenants N  tenants for create_tenant_role (default 1000)
# --rows M     rows of the backfill table, in millions (default 1)
#
# Run it as root, holding /tmp/tm-test.lock (it installs the extension
# system-wide, and its figures are wall-clock times on a shared machine).
# Builds and installs the extension (tools/lib.sh), creates a throwaway
# cluster as the postgres user under /tmp on the first free port from 5580
# (unix socket only, initdb's defaults), prints one line per figure with
# PASS/MISS against the targets of bench/README.md, stops the cluster and
# removes it (kept, and its place printed, if anything fails).
set -euo pipefail

# shellcheck source=SCRIPTDIR/../tools/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

usage() {
	sed -n '7,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

tables=1000
tenants=1000
rows=1
while [ $# -gt 0 ]; do
	case $1 in
	--tables) [ $# -ge 2 ] || tm_die "--tables needs a number"; tables=$2; shift 2 ;;
	--tenants) [ $# -ge 2 ] || tm_die "--tenants needs a number"; tenants=$2; shift 2 ;;
	--rows) [ $# -ge 2 ] || tm_die "--rows needs a number"; rows=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; tm_die "unknown argument $1" ;;
	esac
done
for n in "$tables" "$tenants" "$rows"; do
	[[ $n =~ ^[1-9][0-9]{0,4}$ ]] || tm_die "counts must be numbers from 1 to 99999"
done

target_enable_ms=5000    # tenant_enable_rls over 1,000 tables
target_roles_ms=10000    # create_tenant_role for 1,000 tenants

tm_require_root
bash "$TM_SRC/tools/deps.sh"

work=$(mktemp -d /tmp/tenant_migrate-rlsbench.XXXXXX)
chown "$TM_PGUSER:" "$work"
chmod 755 "$work"
data=$work/data
log=$work/server.log

cleanup() {
	local rc=$?
	if [ -f "$data/postmaster.pid" ]; then
		tm_as_pg "$work" pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	if [ "$rc" -ne 0 ]; then
		tail -n 30 "$log" >&2 2>/dev/null || true
		printf '\nBenchmark failed (exit %s); work directory kept: %s\n' "$rc" "$work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build=$(tm_prepare_build rlsbench)
if ! { tm_build "$build" && tm_install "$build"; } >"$build/build.log" 2>&1; then
	cat "$build/build.log" >&2
	tm_die "build failed; build directory kept: $build"
fi
rm -rf "$build"
tm_say "built and installed the extension"

tm_init_cluster "$work" "$data" 5580 rls-benchmark
port=$TM_PORT
tm_as_pg "$work" pg_ctl -D "$data" -l "$log" -w start >/dev/null

psql_b() {
	tm_as_pg "$work" psql -X -h "$work" -p "$port" -U postgres -d postgres \
		-v ON_ERROR_STOP=1 -P pager=off "$@"
}
# timed SQL — runs SQL (setup first, not timed, in the same session) and
# prints the milliseconds \timing gave the last statement
timed() {
	local setup=$1 sql=$2
	psql_b -q <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1
SET client_min_messages = warning;
$setup
\\timing on
$sql
SQL
}
verdict() {
	awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "MISS" }'
}

psql_b -q -c 'CREATE EXTENSION tenant_migrate'
echo
echo "tenant_migrate RLS benchmark: $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"

# ---- tenant_enable_rls over N tables, one call list ----
psql_b -q >/dev/null <<SQL
DO \$\$
BEGIN
  FOR i IN 1..$tables LOOP
    EXECUTE format('CREATE TABLE public.%I (id bigint, tenant_id text NOT NULL, body text)', 'rls_t' || i);
  END LOOP;
END \$\$;
SQL
psql_b -q -c 'CHECKPOINT' >/dev/null
ms=$(timed "" "SELECT count(*) FILTER (WHERE tenant_enable_rls(c.oid::regclass)) FROM pg_class c WHERE c.relname LIKE 'rls\\_t%' AND c.relkind = 'r';")
ok=$(psql_b -Atqc "SELECT count(*) FROM pg_policies WHERE policyname = 'tenant_isolation'")
[ "$ok" -eq "$tables" ] || tm_die "expected $tables policies, found $ok"
printf '%-52s %9.1f ms  %s\n' "tenant_enable_rls, $tables tables, one statement" "$ms" \
	"$([ "$tables" -eq 1000 ] && verdict "$ms" "$target_enable_ms" || echo '-')"
ms=$(timed "" "SELECT count(*) FILTER (WHERE tenant_enable_rls(c.oid::regclass)) FROM pg_class c WHERE c.relname LIKE 'rls\\_t%' AND c.relkind = 'r';")
printf '%-52s %9.1f ms\n' "  again (all in place: a no-op)" "$ms"
ms=$(timed "" "SELECT count(*) FILTER (WHERE tenant_disable_rls(c.oid::regclass)) FROM pg_class c WHERE c.relname LIKE 'rls\\_t%' AND c.relkind = 'r';")
printf '%-52s %9.1f ms\n' "tenant_disable_rls, $tables tables, one statement" "$ms"

# ---- create_tenant_role for N tenants ----
psql_b -q >/dev/null <<SQL
SELECT tenant_migration_add('1', 'accounts',
  'CREATE TABLE public.accounts (id bigserial PRIMARY KEY, name text);
   CREATE TABLE public.invoices (id bigserial PRIMARY KEY, account_id bigint REFERENCES public.accounts, total int);
   CREATE INDEX ON public.invoices (account_id);') IS NOT NULL;
SET client_min_messages = warning;
SELECT format('SELECT create_tenant_schema(%L)', 'b' || i) FROM generate_series(1, $tenants) i \\gexec
SQL
psql_b -q -c 'CHECKPOINT' >/dev/null
ms=$(timed "" "SELECT count(create_tenant_role(schema_name)) FROM tenant_registry;")
ok=$(psql_b -Atqc "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tenant\\_b%\\_role'")
[ "$ok" -eq "$tenants" ] || tm_die "expected $tenants roles, found $ok"
printf '%-52s %9.1f ms  %s\n' "create_tenant_role, $tenants tenants, one statement" "$ms" \
	"$([ "$tenants" -eq 1000 ] && verdict "$ms" "$target_roles_ms" || echo '-')"
ms=$(timed "" "SELECT count(create_tenant_role(schema_name)) FROM tenant_registry;")
printf '%-52s %9.1f ms\n' "  again (idempotent)" "$ms"
ms=$(timed "" "SELECT count(*) FILTER (WHERE drop_tenant_role(schema_name)) FROM tenant_registry;")
printf '%-52s %9.1f ms\n' "drop_tenant_role, $tenants tenants, one statement" "$ms"

# ---- tenant_add_tenant_column on M million rows ----
n=$((rows * 1000000))
psql_b -q >/dev/null <<SQL
CREATE TABLE public.big_new (id bigint PRIMARY KEY, body text);
INSERT INTO public.big_new SELECT g, md5(g::text) FROM generate_series(1, $n) g;
CREATE TABLE public.big_null (id bigint PRIMARY KEY, body text, tenant_id text);
INSERT INTO public.big_null SELECT g, md5(g::text), CASE WHEN g % 2 = 0 THEN 'acme' END FROM generate_series(1, $n) g;
VACUUM ANALYZE public.big_new, public.big_null;
CHECKPOINT;
SQL
before=$(psql_b -Atqc "SELECT pg_relation_filenode('public.big_new')")
ms=$(timed "" "SELECT tenant_add_tenant_column('public.big_new', 'acme');")
after=$(psql_b -Atqc "SELECT pg_relation_filenode('public.big_new')")
rewrite=$([ "$before" = "$after" ] && echo "no rewrite" || echo "REWRITTEN")
per=$(awk -v ms="$ms" -v r="$rows" 'BEGIN { printf "%.2f", ms / 1000 / r }')
printf '%-52s %9.1f ms  (%s s per million rows, %s)\n' "tenant_add_tenant_column, new column, $rows M rows" "$ms" "$per" "$rewrite"
ms=$(timed "" "SELECT tenant_add_tenant_column('public.big_null', 'acme');")
per=$(awk -v ms="$ms" -v r="$rows" 'BEGIN { printf "%.2f", ms / 1000 / r }')
printf '%-52s %9.1f ms  (%s s per million rows)\n' "tenant_add_tenant_column, backfill half NULL, $rows M" "$ms" "$per"
left=$(psql_b -Atqc "SELECT count(*) FROM public.big_null WHERE tenant_id IS NULL")
[ "$left" -eq 0 ] || tm_die "$left rows left without a tenant"
ms=$(timed "" "CREATE INDEX ON public.big_new (body);")
per=$(awk -v ms="$ms" -v r="$rows" 'BEGIN { printf "%.2f", ms / 1000 / r }')
printf '%-52s %9.1f ms  (%s s per million rows)\n' "  for scale: CREATE INDEX on a text column, $rows M" "$ms" "$per"
echo

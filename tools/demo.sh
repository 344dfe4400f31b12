#!/usr/bin/env bash
# tools/demo.sh — shows tenant_migrate working end to end on a throwaway
# cluster: builds and installs the extension, creates a fresh cluster in
# /tmp/tenant_migrate-demo (wiping the one an earlier run left), loads the
# repository's migrations/ folder, creates three tenants, rolls one back and
# migrates it again, runs a fleet run, isolates tenants with a tenant role and
# with row level security on a shared table, then makes a schema drift by
# hand, finds it with tenant_verify() and repairs it; prints status along the
# way (every statement is echoed before its result), then stops the cluster
# and leaves its data for a look.
#
#   bash tools/demo.sh
#
# Exits non-zero if any step fails.
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

demo=/tmp/tenant_migrate-demo
data=$demo/data
log=$demo/server.log
first_port=5497

tm_require_root
bash "$TM_SRC/tools/deps.sh"
[ -d "$TM_SRC/migrations" ] || tm_die "no migrations/ folder in $TM_SRC"

# The compiler's output is no part of the demo: keep it in a file, shown only
# if the build fails.
build=$(tm_prepare_build demo)
if ! { tm_build "$build" && tm_install "$build"; } >"$build/build.log" 2>&1; then
	cat "$build/build.log" >&2
	tm_die "build failed; build directory kept: $build"
fi
tm_say "built and installed the extension"
rm -rf "$build"

# A previous demo's server may still be up (an interrupted run): stop it
# before wiping its files.
if [ -f "$data/postmaster.pid" ]; then
	tm_say "stopping the previous demo cluster"
	tm_as_pg / pg_ctl -D "$data" -m fast -w stop >/dev/null || true
fi
rm -rf "$demo"
install -d -o "$TM_PGUSER" -g "$TM_PGUSER" -m 755 "$demo"

# Only a unix socket in the demo directory: nothing else on the machine can
# reach it, and it cannot clash with other servers' sockets.
tm_init_cluster "$demo" "$data" "$first_port" demo
port=$TM_PORT

on_exit() {
	local rc=$?
	tm_as_pg "$demo" pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	if [ "$rc" -ne 0 ]; then
		printf '\n===== %s (last 30 lines) =====\n' "$log" >&2
		tail -n 30 "$log" >&2 || true
		printf '\nDemo failed (exit %s); the cluster is stopped, its files are in %s\n' "$rc" "$demo" >&2
	fi
}
trap on_exit EXIT
tm_as_pg "$demo" pg_ctl -D "$data" -l "$log" -w start >/dev/null

# The server runs as postgres, which may not be able to read the clone
# (say /root/...): give it its own copy.
cp -R "$TM_SRC/migrations" "$demo/migrations"
chown -R "$TM_PGUSER:" "$demo/migrations"

psql_demo() {
	tm_as_pg "$demo" psql -X -h "$demo" -p "$port" -U postgres \
		-v ON_ERROR_STOP=1 -P pager=off "$@"
}
psql_demo -q -d postgres -c 'CREATE DATABASE demo'

tm_say "running the demo SQL"
echo
psql_demo -d demo --echo-all <<SQL
-- Install the extension: its tables and functions live in public.
CREATE EXTENSION tenant_migrate;

-- Register every script in the migrations folder (read by the server).
SELECT tenant_migrations_load('$demo/migrations');
SELECT version, name, scope FROM tenant_migration_scripts ORDER BY registered_at, version;

-- Shared scripts (migrations/shared/) run once, in public, unchanged;
-- 0012 switches row level security on for public.billing_events.
SELECT * FROM tenant_migrate_shared();
SELECT tablename, policyname, qual FROM pg_policies WHERE tablename = 'billing_events';

-- Three tenants: each gets its schema and every tenant migration, public.
-- qualifiers rewritten to the tenant (the key's case is kept: "tenant_org_AbC").
SELECT create_tenant_schema('acme', 'Acme Corp');
SELECT create_tenant_schema('globex', 'Globex Inc');
SELECT create_tenant_schema('org_AbC', 'AbC Labs');
SELECT schema_name, tenant_key, display_name, status FROM tenant_registry ORDER BY schema_name;

-- One tenant up close: its own tables, made from migrations written for public.
\dt tenant_acme.*

-- Revert globex's newest migration with its recorded down script ...
SELECT * FROM tenant_rollback('tenant_globex');
-- ... so globex is now one migration behind the others.
SELECT * FROM tenant_migration_status();

-- Migrate globex again: only the reverted migration is applied.
SELECT * FROM tenant_migrate('tenant_globex');
SELECT * FROM tenant_migration_status();
SELECT * FROM tenant_migration_overview;

-- Isolation, schema per tenant: a role per tenant, with its schema's tables
-- (also those later migrations add) and nothing else.
SELECT create_tenant_role('tenant_acme');
SELECT create_tenant_role('tenant_globex');
CREATE ROLE app_pool LOGIN;
GRANT tenant_acme_role, tenant_globex_role TO app_pool;
GRANT EXECUTE ON FUNCTION tenant_set(text, boolean) TO app_pool;
GRANT SELECT, INSERT ON public.billing_events TO app_pool;
GRANT USAGE ON SEQUENCE public.billing_events_id_seq TO app_pool;

-- A new migration for every tenant, applied by a fleet run: shared scripts
-- first, then each active tenant, one commit per tenant.
SELECT tenant_migration_add('0013', 'add_user_nickname',
       'ALTER TABLE public.users ADD COLUMN nickname text;
        CREATE TABLE public.saved_searches (id bigserial PRIMARY KEY, query text NOT NULL);',
       'DROP TABLE public.saved_searches; ALTER TABLE public.users DROP COLUMN nickname;');
CALL tenant_migrate_all();
SELECT * FROM tenant_migration_overview;

-- The application, as acme's role: its own tables, including the one the
-- fleet run just added; another tenant's schema is refused.
SET ROLE app_pool;
BEGIN;
SELECT tenant_set('tenant_acme', true);
SET LOCAL ROLE tenant_acme_role;
INSERT INTO saved_searches (query) VALUES ('senior rust engineer');
SELECT current_user, * FROM saved_searches;
COMMIT;
\set ON_ERROR_STOP off
BEGIN;
SET LOCAL ROLE tenant_acme_role;
SELECT count(*) FROM tenant_globex.saved_searches;
ROLLBACK;
\set ON_ERROR_STOP on
RESET ROLE;

-- Isolation, shared table: billing_events holds every tenant's rows; with row
-- level security each session sees and writes only its tenant's.
INSERT INTO public.billing_events (tenant_id, event_type, amount_cents) VALUES
    ('acme', 'invoice_paid', 19900), ('acme', 'invoice_paid', 19900), ('globex', 'refund', -4900);
SET ROLE app_pool;
SELECT count(*) AS rows_without_a_tenant FROM public.billing_events;
SELECT tenant_set('tenant_globex');
SELECT tenant_id, event_type, amount_cents FROM public.billing_events;
INSERT INTO public.billing_events (event_type) VALUES ('plan_changed');
SELECT tenant_set('tenant_acme');
SELECT tenant_id, event_type, amount_cents FROM public.billing_events;
\set ON_ERROR_STOP off
INSERT INTO public.billing_events (tenant_id, event_type) VALUES ('globex', 'refund');
\set ON_ERROR_STOP on
RESET ROLE;
-- A superuser bypasses row level security: every tenant's rows.
SELECT tenant_id, count(*) FROM public.billing_events GROUP BY 1 ORDER BY 1;

-- Trust: tenant_verify() checks every tenant against its recorded history
-- (checksums, history rows, registry, and every object of every schema
-- against a replay of its migrations). No rows: all healthy.
SELECT * FROM tenant_verify();

-- Someone "fixes" acme by hand: drops an index and widens a column.
DROP INDEX tenant_acme.interviews_scheduled_at_idx;
ALTER TABLE tenant_acme.users ALTER COLUMN nickname TYPE varchar(200);
-- tenant_verify() finds each change, with the expected and the actual definition.
\x on
SELECT * FROM tenant_verify();
\x off

-- The repair: put acme back as its migrations define it (the expected
-- definitions above), then verify again: no rows.
CREATE INDEX interviews_scheduled_at_idx ON tenant_acme.interviews USING btree (scheduled_at);
ALTER TABLE tenant_acme.users ALTER COLUMN nickname TYPE text;
SELECT * FROM tenant_verify();
SQL

trap - EXIT
tm_as_pg "$demo" pg_ctl -D "$data" -m fast -w stop >/dev/null
cat <<EOF

Demo finished. The cluster is stopped; its files stay in $demo.
Start it again and connect:
  cd /tmp
  runuser -u postgres -- $TM_PGBIN/pg_ctl -D $data -l $log start
  runuser -u postgres -- $TM_PGBIN/psql -h $demo -p $port demo
Stop it:
  runuser -u postgres -- $TM_PGBIN/pg_ctl -D $data stop
EOF

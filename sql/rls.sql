--
-- rls: row level security for shared row-per-tenant tables
-- (tenant_enable_rls, tenant_disable_rls, tenant_add_tenant_column), the
-- tenant context while a tenant's scripts run, tenant_set and the settings
-- tenant_migrate.tenant_setting and tenant_migrate.current_tenant.
--
-- Roles: regress_rls_owner owns the shared tables (not superuser: a
-- superuser bypasses row level security whatever FORCE says);
-- regress_rls_app is the application, with DML on them; regress_rls_other
-- owns nothing; regress_rls_migrator registers the tenant scripts.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup
\set VERBOSITY terse

CREATE ROLE regress_rls_owner;
CREATE ROLE regress_rls_app;
CREATE ROLE regress_rls_other;
CREATE ROLE regress_rls_migrator;
GRANT CREATE ON SCHEMA public TO regress_rls_owner;
SELECT tenant_migrate_grant('regress_rls_owner') > 0 AS granted;
SELECT tenant_migrate_grant('regress_rls_migrator') > 0 AS granted;
SELECT tenant_migrate_grant('regress_rls_other') > 0 AS granted;
GRANT CREATE ON DATABASE contrib_regression TO regress_rls_migrator;

-- One table per tenant column type: text, uuid, integer, bigint
SET ROLE regress_rls_owner;
CREATE TABLE public.orders (id int PRIMARY KEY, tenant_id text NOT NULL, item text);
CREATE TABLE public.invoices (id int PRIMARY KEY, tenant_id text NOT NULL, total int);
CREATE TABLE public.events_uuid (id int PRIMARY KEY, org uuid NOT NULL);
CREATE TABLE public.events_int (id int PRIMARY KEY, org integer NOT NULL);
CREATE TABLE public.events_big (id int PRIMARY KEY, org bigint NOT NULL);
INSERT INTO orders VALUES (1, 'acme', 'anvil'), (2, 'acme', 'rocket'), (3, 'globex', 'laser');
INSERT INTO invoices VALUES (1, 'acme', 10), (2, 'globex', 20), (3, 'globex', 30);
INSERT INTO events_uuid VALUES (1, '00000000-0000-0000-0000-00000000000a'), (2, '00000000-0000-0000-0000-00000000000b');
INSERT INTO events_int VALUES (1, 1), (2, 2), (3, 2);
INSERT INTO events_big VALUES (1, 10000000000), (2, 20000000000);
GRANT SELECT, INSERT, UPDATE, DELETE ON orders, invoices, events_uuid, events_int, events_big TO regress_rls_app;

-- Bulk form, as plain SQL; then a string literal argument
SELECT r AS rel, tenant_enable_rls(r) AS changed
  FROM unnest('{orders,invoices}'::regclass[]) r ORDER BY 1;
SELECT tenant_enable_rls('events_uuid', 'org');
SELECT tenant_enable_rls('public.events_int', tenant_column => 'org');
SELECT tenant_enable_rls('events_big'::regclass, 'org', 'app.org_id');
RESET ROLE;

-- What it made: ENABLE and FORCE, one policy for every command and role
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
  FROM pg_class c WHERE c.relname IN ('orders', 'invoices', 'events_uuid', 'events_int', 'events_big')
 ORDER BY 1;
SELECT tablename, policyname, permissive, roles, cmd, qual, with_check
  FROM pg_policies WHERE schemaname = 'public' ORDER BY tablename;
SELECT obj_description(p.oid, 'pg_policy') AS recorded
  FROM pg_policy p WHERE p.polrelid = 'orders'::regclass;

-- A second call changes nothing and says so
SET ROLE regress_rls_owner;
SELECT r AS rel, tenant_enable_rls(r) AS changed
  FROM unnest('{orders,invoices}'::regclass[]) r ORDER BY 1;
SELECT tenant_enable_rls('events_uuid', 'org');
RESET ROLE;
SELECT count(*) AS policies FROM pg_policies WHERE schemaname = 'public';

-- The application sees only the tenant in the setting; unset or empty
-- means no rows (also for uuid and integer columns: no cast error)
SET ROLE regress_rls_app;
SELECT count(*) AS unset_orders FROM orders;
SELECT count(*) AS unset_uuid FROM events_uuid;
SELECT count(*) AS unset_int FROM events_int;
SET app.current_tenant_id = '';
SELECT count(*) AS empty_orders FROM orders;
SELECT count(*) AS empty_uuid FROM events_uuid;
SELECT count(*) AS empty_int FROM events_int;
SET app.current_tenant_id = 'acme';
SELECT * FROM orders ORDER BY id;
SELECT * FROM invoices ORDER BY id;
SET app.current_tenant_id = '00000000-0000-0000-0000-00000000000b';
SELECT * FROM events_uuid;
SET app.current_tenant_id = '2';
SELECT * FROM events_int ORDER BY id;
SET app.org_id = '20000000000';
SELECT * FROM events_big;
-- writes are checked too: another tenant's row cannot be written
SET app.current_tenant_id = 'acme';
SELECT pg_temp.try($$INSERT INTO orders VALUES (4, 'globex', 'stolen')$$);
SELECT pg_temp.try($$UPDATE orders SET tenant_id = 'globex' WHERE id = 1$$);
INSERT INTO orders VALUES (4, 'acme', 'magnet');
UPDATE orders SET item = upper(item);
DELETE FROM invoices;
SET app.current_tenant_id = 'globex';
SELECT * FROM orders ORDER BY id;
SELECT * FROM invoices ORDER BY id;
RESET app.current_tenant_id;
SELECT count(*) AS reset_orders FROM orders;
RESET ROLE;

-- FORCE: the owner is filtered too; a superuser is not
SET ROLE regress_rls_owner;
SELECT count(*) AS owner_unset FROM orders;
SET app.current_tenant_id = 'globex';
SELECT count(*) AS owner_globex FROM orders;
RESET app.current_tenant_id;
RESET ROLE;
SELECT count(*) AS superuser_sees_all FROM orders;

-- tenant_set() sets the same setting, named by tenant_migrate.tenant_setting
SELECT create_tenant_schema('acme');
SELECT create_tenant_schema('globex');
SELECT tenant_set('tenant_acme');
SELECT current_setting('app.current_tenant_id') AS key, current_setting('search_path') AS path;
SET ROLE regress_rls_app;
SELECT id, item FROM orders ORDER BY id;
RESET ROLE;
SET tenant_migrate.tenant_setting = 'myapp.tenant';
SELECT tenant_set('tenant_globex');
SELECT current_setting('myapp.tenant') AS myapp_tenant, current_setting('app.current_tenant_id') AS app_tenant;
-- setting NULL: the policy reads tenant_migrate.tenant_setting
CREATE TABLE public.notes_by_setting (tenant_id text);
SELECT tenant_enable_rls('notes_by_setting', 'tenant_id', NULL);
SELECT qual FROM pg_policies WHERE tablename = 'notes_by_setting';
DROP TABLE public.notes_by_setting;
RESET tenant_migrate.tenant_setting;
RESET search_path;
RESET app.current_tenant_id;
-- only names of custom settings
SELECT pg_temp.try($$SET tenant_migrate.tenant_setting = 'nodot'$$);
SELECT pg_temp.try($$SET tenant_migrate.tenant_setting = 'app.bad name'$$);
SELECT pg_temp.try($$SET tenant_migrate.tenant_setting = 'app.1st'$$);
SELECT pg_temp.try($$SET tenant_migrate.tenant_setting = 'app.'$$);
SELECT pg_temp.try($$SET tenant_migrate.tenant_setting = 'tenant_migrate.current_tenant'$$);
SELECT pg_temp.try($$SET tenant_migrate.tenant_setting = 'app.tenant''; DROP TABLE orders; --'$$);
SHOW tenant_migrate.tenant_setting;
-- current_tenant is read only, and empty outside a tenant script
SHOW tenant_migrate.current_tenant;
SELECT pg_temp.try($$SET tenant_migrate.current_tenant = 'tenant_acme'$$);
SELECT pg_temp.try($$SELECT set_config('tenant_migrate.current_tenant', 'tenant_acme', false)$$);

-- Refusals
SET ROLE regress_rls_owner;
CREATE VIEW public.orders_view AS SELECT * FROM orders;
CREATE TABLE public.measurements (tenant_id text, at date) PARTITION BY RANGE (at);
CREATE TABLE public.measurements_2024 PARTITION OF public.measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.no_tenant (id int);
CREATE SEQUENCE public.some_seq;
SELECT pg_temp.try($$SELECT tenant_enable_rls('orders', 'org_id')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('no_tenant')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('orders', 'ctid')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('orders_view')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('measurements_2024')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('some_seq')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('missing_table')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls(NULL)$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('orders', NULL)$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('orders', 'tenant_id', 'no_dot')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('orders', 'tenant_id', 'app.x''); DROP TABLE orders; --')$$);
SELECT pg_temp.try($$SELECT tenant_enable_rls('pg_catalog.pg_class', 'relname')$$);
-- the parent of a partition works, and covers rows through it
SELECT tenant_enable_rls('measurements');
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
  FROM pg_class c WHERE c.relname LIKE 'measurements%' ORDER BY 1;
RESET ROLE;
-- a table the caller does not own (as the caller: 42501, nothing locked)
SET ROLE regress_rls_other;
SELECT pg_temp.try($$SELECT tenant_enable_rls('no_tenant')$$);
SELECT pg_temp.try($$SELECT tenant_disable_rls('orders')$$);
SELECT pg_temp.try($$SELECT tenant_add_tenant_column('no_tenant', 'acme')$$);
RESET ROLE;
SELECT pg_temp.try($$SELECT tenant_enable_rls(oid) FROM pg_class WHERE relname = 'pg_class'$$);
-- a policy tenant_isolation somebody else made is left alone
SET ROLE regress_rls_owner;
CREATE TABLE public.handmade (tenant_id text);
CREATE POLICY tenant_isolation ON public.handmade USING (true);
SELECT pg_temp.try($$SELECT tenant_enable_rls('handmade')$$);
SELECT pg_temp.try($$SELECT tenant_disable_rls('handmade')$$);
SELECT count(*) AS handmade_policies FROM pg_policy WHERE polrelid = 'handmade'::regclass;

-- Other permissive policies are ORed with the tenant's: a warning says so
CREATE TABLE public.shared_docs (tenant_id text, published boolean);
CREATE POLICY published_docs ON public.shared_docs FOR SELECT USING (published);
SELECT tenant_enable_rls('shared_docs');
-- a restrictive one is fine
CREATE TABLE public.shared_docs2 (tenant_id text, hidden boolean);
CREATE POLICY not_hidden ON public.shared_docs2 AS RESTRICTIVE USING (NOT hidden);
SELECT tenant_enable_rls('shared_docs2');

-- Other arguments replace the policy tenant_enable_rls made
SELECT tenant_enable_rls('shared_docs2', 'tenant_id', 'app.other_setting');
SELECT qual FROM pg_policies WHERE tablename = 'shared_docs2' AND policyname = 'tenant_isolation';

-- tenant_disable_rls removes exactly what tenant_enable_rls made
SELECT tenant_disable_rls('invoices');
SELECT tenant_disable_rls('invoices');
SELECT c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
  FROM pg_class c WHERE c.oid = 'invoices'::regclass;
-- other policies stay, and so does row level security while they exist
SELECT tenant_disable_rls('shared_docs2');
SELECT c.relrowsecurity, c.relforcerowsecurity,
       (SELECT string_agg(polname, ',') FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
  FROM pg_class c WHERE c.oid = 'shared_docs2'::regclass;
-- row level security that was on before enable stays on after disable
CREATE TABLE public.already (tenant_id text);
ALTER TABLE public.already ENABLE ROW LEVEL SECURITY;
SELECT tenant_enable_rls('already');
SELECT obj_description(p.oid, 'pg_policy') AS recorded
  FROM pg_policy p WHERE p.polrelid = 'already'::regclass;
SELECT tenant_disable_rls('already');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'already'::regclass;
-- enable repairs what was switched off by hand
ALTER TABLE orders NO FORCE ROW LEVEL SECURITY;
SELECT tenant_enable_rls('orders');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'orders'::regclass;
SELECT r AS rel, tenant_disable_rls(r) AS changed
  FROM unnest('{orders,events_uuid,events_int,events_big,measurements}'::regclass[]) r ORDER BY 1;
SELECT tablename FROM pg_policies WHERE policyname = 'tenant_isolation' ORDER BY 1;

-- tenant_add_tenant_column: existing rows get the default tenant (no
-- rewrite: a constant default), NOT NULL, the session's tenant as the
-- default for new rows, an index leading with the column
CREATE TABLE public.tickets (id int PRIMARY KEY, subject text);
INSERT INTO tickets SELECT g, 'ticket ' || g FROM generate_series(1, 3) g;
SELECT tenant_add_tenant_column('tickets', 'acme');
SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid) AS default
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = 'tickets'::regclass AND a.attname = 'tenant_id';
SELECT indexrelid::regclass AS index, pg_get_indexdef(indexrelid) AS definition
  FROM pg_index WHERE indrelid = 'tickets'::regclass AND NOT indisprimary;
SELECT * FROM tickets ORDER BY id;
SELECT pg_temp.try($$INSERT INTO tickets (id, subject) VALUES (10, 'no tenant')$$);
SET app.current_tenant_id = 'globex';
INSERT INTO tickets (id, subject) VALUES (11, 'from globex');
RESET app.current_tenant_id;
SELECT id, tenant_id FROM tickets WHERE id > 3;
SELECT tenant_add_tenant_column('tickets', 'acme');
-- then the policy, and the application works in both tenants
SELECT tenant_enable_rls('tickets');
GRANT SELECT, INSERT ON tickets TO regress_rls_app;
RESET ROLE;
GRANT EXECUTE ON FUNCTION tenant_set(text, boolean) TO regress_rls_app;
SET ROLE regress_rls_app;
BEGIN;
SELECT tenant_set('tenant_globex', true);
SELECT id, subject, tenant_id FROM tickets;
INSERT INTO tickets (id, subject) VALUES (12, 'globex again');
COMMIT;
SELECT current_setting('app.current_tenant_id', true) AS after_commit;
SELECT count(*) AS unset_tickets FROM tickets;
RESET ROLE;
SET ROLE regress_rls_owner;
-- another column name; a partitioned table
CREATE TABLE public.logs (id int, at date) PARTITION BY RANGE (at);
CREATE TABLE public.logs_2024 PARTITION OF public.logs FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO logs VALUES (1, '2024-05-01');
SELECT tenant_add_tenant_column('logs', 'acme', 'org_key');
SELECT * FROM logs;
SELECT pg_temp.try($$SELECT tenant_add_tenant_column('logs_2024', 'acme', 'other')$$);
-- an existing nullable column is completed: NULLs backfilled, NOT NULL, default, index
CREATE TABLE public.legacy (id int, tenant_id text);
INSERT INTO legacy VALUES (1, NULL), (2, 'globex'), (3, NULL);
SELECT tenant_add_tenant_column('legacy', 'acme');
SELECT * FROM legacy ORDER BY id;
SELECT attnotnull FROM pg_attribute WHERE attrelid = 'legacy'::regclass AND attname = 'tenant_id';
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'legacy'::regclass;
-- refusals
SELECT pg_temp.try($$SELECT tenant_add_tenant_column('legacy', NULL)$$);
SELECT pg_temp.try($$SELECT tenant_add_tenant_column('legacy', '')$$);
SELECT pg_temp.try($$SELECT tenant_add_tenant_column('orders_view', 'acme')$$);
SELECT pg_temp.try($$SELECT tenant_add_tenant_column(NULL, 'acme')$$);
SELECT pg_temp.try($$SELECT tenant_add_tenant_column('legacy', 'acme', NULL)$$);
RESET ROLE;

-- A data migration under RLS touches only its tenant's rows; the tenant
-- context holds the key and the schema while the script runs, and is
-- restored afterwards
DROP SCHEMA tenant_acme, tenant_globex CASCADE;
DELETE FROM tenant_registry;
SET ROLE regress_rls_owner;
CREATE TABLE public.usage (tenant_id text NOT NULL
                             DEFAULT NULLIF(current_setting('app.current_tenant_id', true), ''),
                           units int);
INSERT INTO usage VALUES ('acme', 1), ('acme', 2), ('globex', 5);
SELECT tenant_enable_rls('usage');
GRANT SELECT, INSERT, UPDATE, DELETE ON usage TO regress_rls_migrator;
RESET ROLE;
-- (a role with CREATE on public must have the script role's rights)
REVOKE CREATE ON SCHEMA public FROM regress_rls_owner;
-- the scripts name the shared table usage, which stays public.usage
SET tenant_migrate.shared_objects = 'usage';
SET ROLE regress_rls_migrator;
SELECT create_tenant_schema('rls_a');
SELECT create_tenant_schema('rls_b');
SELECT tenant_migration_add('100', 'usage_x10',
  $$UPDATE public.usage SET units = units * 10;
    INSERT INTO public.usage (units) VALUES (7);
    CREATE TABLE public.seen AS
      SELECT current_setting('app.current_tenant_id') AS key,
             current_setting('tenant_migrate.current_tenant') AS schema,
             (SELECT count(*) FROM public.usage) AS usage_rows;$$,
  $$UPDATE public.usage SET units = units / 10 WHERE units <> 7;
    DELETE FROM public.usage WHERE units = 7;
    DROP TABLE public.seen;$$) IS NOT NULL AS registered;
RESET ROLE;
UPDATE tenant_registry SET tenant_key = 'acme' WHERE schema_name = 'tenant_rls_a';
SET app.current_tenant_id = 'session value';
SELECT version FROM tenant_migrate('tenant_rls_a');
SELECT current_setting('app.current_tenant_id') AS after, current_setting('tenant_migrate.current_tenant') AS current_tenant;
SELECT * FROM tenant_rls_a.seen;
SELECT * FROM usage ORDER BY tenant_id, units;
-- a fleet run (background worker) sets it the same way
SET tenant_migrate.progress_interval = 0;
SET client_min_messages = warning;
CALL tenant_migrate_all(tenants => '{tenant_rls_b}');
RESET client_min_messages;
SELECT * FROM tenant_rls_b.seen;
SELECT * FROM usage ORDER BY tenant_id, units;
-- the down script runs in the context too
SELECT version FROM tenant_rollback('tenant_rls_a');
SELECT * FROM usage ORDER BY tenant_id, units;
SELECT current_setting('app.current_tenant_id') AS after;
RESET app.current_tenant_id;
-- with another tenant_setting, that one is set
SET tenant_migrate.tenant_setting = 'myapp.tenant';
SET ROLE regress_rls_migrator;
SELECT tenant_migration_add('101', 'seen2',
  $$CREATE TABLE public.seen2 AS SELECT current_setting('myapp.tenant') AS key,
      current_setting('app.current_tenant_id', true) AS app_key$$) IS NOT NULL AS registered;
RESET ROLE;
SELECT version FROM tenant_migrate('tenant_rls_b');
SELECT * FROM tenant_rls_b.seen2;
RESET tenant_migrate.tenant_setting;
-- shared scripts run with no tenant: an empty setting and current_tenant
SELECT tenant_migration_add('102', 'shared_seen',
  $$CREATE TABLE public.shared_seen AS SELECT current_setting('app.current_tenant_id') AS key,
      current_setting('tenant_migrate.current_tenant') AS schema$$, scope => 'shared') IS NOT NULL AS registered;
SELECT tenant_set('tenant_rls_b');
SELECT version FROM tenant_migrate_shared();
SELECT key = '' AS empty_key, schema = '' AS empty_schema FROM public.shared_seen;
RESET search_path;
RESET app.current_tenant_id;
-- a tenant script cannot change the context
SET ROLE regress_rls_migrator;
SELECT tenant_migration_add('103', 'fake_tenant',
  $$SELECT set_config('tenant_migrate.current_tenant', 'tenant_rls_b', false)$$) IS NOT NULL AS registered;
RESET ROLE;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_rls_a')$$);

-- clean up
RESET tenant_migrate.shared_objects;
DROP SCHEMA tenant_rls_a, tenant_rls_b CASCADE;
DELETE FROM tenant_registry;
DROP TABLE orders, invoices, events_uuid, events_int, events_big, measurements, no_tenant,
  handmade, shared_docs, shared_docs2, already, tickets, logs, legacy, usage, shared_seen CASCADE;
DROP SEQUENCE some_seq;
DROP EXTENSION tenant_migrate CASCADE;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_rls_migrator;
DROP ROLE regress_rls_owner, regress_rls_app, regress_rls_other, regress_rls_migrator;

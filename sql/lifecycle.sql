--
-- lifecycle: create_tenant_schema(), tenant_migrate(), tenant_migrate_shared()
-- and tenant_set() on small scripts registered here with tenant_migration_add().
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- What public holds now; tenant migrations must add nothing to it
CREATE TEMP VIEW public_objects AS
SELECT 'pg_class' AS catalog, relname::text AS name FROM pg_class WHERE relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'pg_type', typname::text FROM pg_type WHERE typnamespace = 'public'::regnamespace
UNION ALL
SELECT 'pg_proc', proname::text FROM pg_proc WHERE pronamespace = 'public'::regnamespace;
CREATE TEMP TABLE public_before AS SELECT * FROM public_objects;
SELECT count(*) > 0 AS public_has_objects FROM public_before;

-- Two tenant scripts written with public. qualifiers: tables with defaults,
-- a foreign key and a check, a trigger whose function writes to an audit
-- table, an index; the returned checksum is the hex SHA-256 of up_sql
SELECT tenant_migration_add('001', 'customers_and_orders', $up$
CREATE TABLE public.customers (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'new'
);
CREATE TABLE public.orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    amount numeric NOT NULL CHECK (amount > 0)
);
CREATE TABLE public.order_audit (
    order_id bigint NOT NULL,
    amount numeric NOT NULL
);
CREATE FUNCTION public.orders_audit() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO public.order_audit (order_id, amount) VALUES (NEW.id, NEW.amount);
    RETURN NEW;
END
$fn$;
CREATE TRIGGER orders_audit AFTER INSERT ON public.orders
    FOR EACH ROW EXECUTE FUNCTION public.orders_audit();
$up$, $down$
DROP TABLE public.orders;
DROP TABLE public.order_audit;
DROP TABLE public.customers;
DROP FUNCTION public.orders_audit();
$down$) AS checksum \gset
SELECT :'checksum' = encode(sha256(convert_to(up_sql, 'UTF8')), 'hex') AS checksum_is_sha256,
       :'checksum' = checksum AS checksum_stored
  FROM tenant_migration_scripts WHERE version = '001';

SELECT tenant_migration_add('002', 'customer_email',
  'ALTER TABLE public.customers ADD COLUMN email text; CREATE UNIQUE INDEX customers_email_idx ON public.customers (email);',
  'DROP INDEX public.customers_email_idx; ALTER TABLE public.customers DROP COLUMN email;') IS NOT NULL AS registered;

-- create_tenant_schema returns the schema name (prefix + key)
SELECT create_tenant_schema('acme', 'Acme Corp');

-- The tenant is registered, active
SELECT schema_name, tenant_key, display_name, status, metadata
  FROM tenant_registry ORDER BY schema_name;

-- Every tenant migration was applied; the recorded rollback_sql is the down
-- script rewritten for the tenant
SELECT tenant_schema, version, name, rollback_sql,
       checksum = (SELECT s.checksum FROM tenant_migration_scripts s WHERE s.version = m.version) AS checksum_ok,
       applied_by = current_user AS applied_by_me, duration_ms >= 0 AS timed
  FROM tenant_migrations m ORDER BY tenant_schema, version;

-- ... and each attempt is in the audit log
SELECT tenant_schema, version, action, status, error, duration_ms >= 0 AS timed
  FROM tenant_migration_log ORDER BY id;

-- The objects are in the tenant schema
SELECT c.relname, c.relkind
  FROM pg_class c WHERE c.relnamespace = 'tenant_acme'::regnamespace
 ORDER BY c.relname;

-- ... and they work: defaults fire, the trigger writes to the tenant's audit
-- table (its body was rewritten too), the foreign key and the check reject
-- bad rows, the unique index rejects duplicates
INSERT INTO tenant_acme.customers (name, email) VALUES ('Ann', 'ann@example.com');
INSERT INTO tenant_acme.orders (customer_id, amount) VALUES (1, 10.50);
SELECT id, name, status, email FROM tenant_acme.customers;
SELECT order_id, amount FROM tenant_acme.order_audit;
SELECT pg_temp.try('INSERT INTO tenant_acme.orders (customer_id, amount) VALUES (42, 1)');
SELECT pg_temp.try('INSERT INTO tenant_acme.orders (customer_id, amount) VALUES (1, -1)');
SELECT pg_temp.try($$INSERT INTO tenant_acme.customers (name, email) VALUES ('Bob', 'ann@example.com')$$);
SELECT prosrc LIKE '%INSERT INTO tenant_acme.order_audit%' AS body_rewritten
  FROM pg_proc WHERE oid = 'tenant_acme.orders_audit'::regproc;

-- public gained nothing
SELECT * FROM public_objects EXCEPT ALL SELECT * FROM public_before ORDER BY 1, 2;

-- A mixed-case key keeps its case: the schema is "tenant_org_AbC", quoted
-- everywhere
SELECT create_tenant_schema('org_AbC', NULL);
SELECT nspname FROM pg_namespace WHERE nspname ILIKE 'tenant_org_abc';
SELECT tenant_key, display_name, status FROM tenant_registry WHERE schema_name = 'tenant_org_AbC';
SELECT version, rollback_sql FROM tenant_migrations
 WHERE tenant_schema = 'tenant_org_AbC' ORDER BY version;
INSERT INTO "tenant_org_AbC".customers (name) VALUES ('Zed');
INSERT INTO "tenant_org_AbC".orders (customer_id, amount) VALUES (1, 3);
SELECT count(*) AS audit_rows FROM "tenant_org_AbC".order_audit;
SELECT * FROM tenant_migrate('tenant_org_AbC');

-- tenant_migrate applies newly registered scripts in version order, up to
-- target_version inclusive, and returns what it applied
SELECT tenant_migration_add('003', 'customer_notes', 'CREATE TABLE public.notes (customer_id bigint REFERENCES public.customers, body text);', 'DROP TABLE public.notes;') IS NOT NULL AS registered;
SELECT tenant_migration_add('004', 'order_status', $$ALTER TABLE public.orders ADD COLUMN status text NOT NULL DEFAULT 'open';$$, 'ALTER TABLE public.orders DROP COLUMN status;') IS NOT NULL AS registered;
SELECT tenant_migration_add('005', 'tags', 'CREATE TABLE public.tags (tag text PRIMARY KEY);', 'DROP TABLE public.tags;') IS NOT NULL AS registered;
SELECT version, name, duration_ms >= 0 AS timed FROM tenant_migrate('tenant_acme', '004');
SELECT version, name FROM tenant_migrate('tenant_acme', '004');
SELECT version, name FROM tenant_migrate('tenant_acme');
-- up to date: no rows
SELECT version, name FROM tenant_migrate('tenant_acme');
SELECT status FROM tenant_acme.orders;
SELECT version, name FROM tenant_migrate('tenant_org_AbC');

-- The call holds the tenant's advisory lock until the end of the transaction
BEGIN;
SELECT count(*) FROM tenant_migrate('tenant_acme');
SELECT mode, granted FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid()
   AND classid = 1414332417 AND objid = 'tenant_acme'::regnamespace::oid AND objsubid = 21581;
COMMIT;
SELECT count(*) AS advisory_locks_left FROM pg_locks
 WHERE locktype = 'advisory' AND pid = pg_backend_pid();

-- A migration runs with search_path = tenant, public and lock_timeout =
-- tenant_migrate.lock_timeout; unqualified CREATE TABLE lands in the tenant
SET tenant_migrate.lock_timeout = '1500ms';
SHOW search_path;
SHOW lock_timeout;
SHOW check_function_bodies;
SELECT tenant_migration_add('006', 'settings_seen', $$
SET check_function_bodies = false;
CREATE TABLE settings_seen AS
SELECT current_setting('search_path') AS search_path,
       current_setting('lock_timeout') AS lock_timeout,
       current_setting('check_function_bodies') AS check_function_bodies;
$$, 'DROP TABLE settings_seen;') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_acme');
SELECT search_path, lock_timeout, check_function_bodies FROM tenant_acme.settings_seen;
SELECT to_regclass('public.settings_seen') AS in_public;
-- ... and they are restored afterwards, as is what the script SET itself
-- (as pg_dump output does)
SHOW search_path;
SHOW lock_timeout;
SHOW check_function_bodies;
RESET tenant_migrate.lock_timeout;

-- A tenant table named tenant_migrations (created unqualified) does not
-- capture the extension's bookkeeping: the next migration is still recorded
-- in public.tenant_migrations
SELECT tenant_migration_add('007', 'own_tenant_migrations', 'CREATE TABLE tenant_migrations (note text);', 'DROP TABLE tenant_migrations;') IS NOT NULL AS registered;
SELECT tenant_migration_add('008', 'after_own_table', 'CREATE TABLE public.after_own (id int);', 'DROP TABLE public.after_own;') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_acme');
SELECT count(*) AS tenant_table_rows FROM tenant_acme.tenant_migrations;
SELECT version FROM public.tenant_migrations
 WHERE tenant_schema = 'tenant_acme' AND version IN ('007', '008') ORDER BY version;
SELECT tenant_schema, version, action, status FROM tenant_migration_log
 WHERE version IN ('007', '008') ORDER BY id;

-- A failing migration (its second statement fails) leaves the tenant
-- exactly as before, and search_path / lock_timeout are restored even when
-- the error is caught by a PL/pgSQL exception block; the failed attempt
-- itself is in the log (written in a transaction of its own)
SELECT tenant_migration_add('009', 'half_done', 'CREATE TABLE public.half_done (id int); INSERT INTO public.no_such_table VALUES (1);') IS NOT NULL AS registered;
SELECT count(*) AS log_rows_before FROM tenant_migration_log \gset
SET search_path = public, pg_catalog;
DO $$
BEGIN
    PERFORM tenant_migrate('tenant_acme');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM;
END
$$;
SHOW search_path;
SHOW lock_timeout;
SELECT to_regclass('tenant_acme.half_done') AS half_done;
SELECT count(*) AS history_rows FROM tenant_migrations WHERE version = '009';
SELECT count(*) - :log_rows_before AS new_log_rows FROM tenant_migration_log;
SELECT version, action, status, split_part(error, E'\n', 1) AS error
  FROM tenant_migration_log ORDER BY id DESC LIMIT 1;
-- the same through a savepoint
BEGIN;
SAVEPOINT before_migrate;
SELECT version FROM tenant_migrate('tenant_acme');
ROLLBACK TO SAVEPOINT before_migrate;
SHOW search_path;
SELECT to_regclass('tenant_acme.half_done') AS half_done;
COMMIT;
RESET search_path;
-- 009 is applied nowhere, so it may be fixed in place
SELECT tenant_migration_add('009', 'half_done', 'CREATE TABLE public.half_done (id int); INSERT INTO public.half_done VALUES (1);', 'DROP TABLE public.half_done;') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_acme');
SELECT id FROM tenant_acme.half_done;

-- depends_on: a tenant script that depends on an unapplied shared script is
-- refused until tenant_migrate_shared() has run (the tenant script refers to
-- the shared table, listed in tenant_migrate.shared_objects so that its
-- public. qualifier is kept)
SET tenant_migrate.shared_objects = 'lc_plans';
SELECT tenant_migration_add('010', 'plans', 'CREATE TABLE public.lc_plans (id int PRIMARY KEY, name text); INSERT INTO public.lc_plans VALUES (1, $$free$$);', 'DROP TABLE public.lc_plans;', 'shared') IS NOT NULL AS registered;
SELECT tenant_migration_add('011', 'customer_plan', 'ALTER TABLE public.customers ADD COLUMN plan_id int REFERENCES public.lc_plans (id);', 'ALTER TABLE public.customers DROP COLUMN plan_id;', 'tenant', '{010}') IS NOT NULL AS registered;
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_acme')$$);
SELECT version, name FROM tenant_migrate_shared();
SELECT version, name FROM tenant_migrate_shared();
-- shared scripts are recorded under public and run as written
SELECT tenant_schema, version, rollback_sql FROM tenant_migrations WHERE version = '010';
SELECT version, name FROM tenant_migrate('tenant_acme');
SELECT k.conname, n.nspname || '.' || c.relname AS references_table
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.confrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE k.conrelid = 'tenant_acme.customers'::regclass AND k.contype = 'f';

-- tenant_set: search_path = tenant, public and app.current_tenant_id = key
SELECT tenant_set('tenant_acme');
SHOW search_path;
SELECT current_setting('app.current_tenant_id') AS tenant_id;
SELECT name FROM customers;
-- is_local: only until the end of the transaction
BEGIN;
SELECT tenant_set('tenant_org_AbC', true);
SHOW search_path;
SELECT current_setting('app.current_tenant_id') AS tenant_id;
SELECT name FROM customers;
COMMIT;
SHOW search_path;
SELECT current_setting('app.current_tenant_id') AS tenant_id;
RESET search_path;
RESET app.current_tenant_id;

-- create_tenant_schema is all or nothing: when a tenant migration fails, no
-- schema, registry row, history or log row remains
SELECT tenant_migration_add('012', 'broken', 'CREATE TABLE public.broken (id int); SELECT 1 / 0;') IS NOT NULL AS registered;
SELECT count(*) AS log_rows_before FROM tenant_migration_log \gset
DO $$
BEGIN
    PERFORM create_tenant_schema('doomed', 'Doomed Inc');
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM;
END
$$;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'tenant_doomed';
SELECT count(*) AS registry_rows FROM tenant_registry WHERE tenant_key = 'doomed';
SELECT count(*) AS history_rows FROM tenant_migrations WHERE tenant_schema = 'tenant_doomed';
SELECT count(*) - :log_rows_before AS new_log_rows FROM tenant_migration_log;
-- the key is free again once the script is fixed (012 is applied nowhere)
SELECT tenant_migration_add('012', 'broken', 'CREATE TABLE public.broken (id int);', 'DROP TABLE public.broken;') IS NOT NULL AS registered;
SELECT create_tenant_schema('doomed', 'Doomed Inc');
SELECT count(*) AS applied FROM tenant_migrations WHERE tenant_schema = 'tenant_doomed';

-- tenant_migrate.schema_prefix changes the schema name
SET tenant_migrate.schema_prefix = 'org_';
SELECT create_tenant_schema('beta', 'Beta Ltd');
RESET tenant_migrate.schema_prefix;
SELECT schema_name, tenant_key FROM tenant_registry WHERE tenant_key = 'beta';
SELECT count(*) AS applied FROM tenant_migrations WHERE tenant_schema = 'org_beta';
SELECT to_regclass('org_beta.customers') IS NOT NULL AS has_customers;

-- Every tenant now has every tenant script
SELECT version, name FROM tenant_migrate('tenant_acme');
SELECT version, name FROM tenant_migrate('tenant_org_AbC');
SELECT tenant_schema, count(*) AS applied FROM tenant_migrations
 GROUP BY tenant_schema ORDER BY tenant_schema;

-- public gained nothing but the shared table (its index, row and array
-- types) and lost nothing
SELECT * FROM public_objects EXCEPT ALL SELECT * FROM public_before ORDER BY 1, 2;
SELECT * FROM public_before EXCEPT ALL SELECT * FROM public_objects ORDER BY 1, 2;

-- Clean up
RESET tenant_migrate.shared_objects;
SET client_min_messages = warning;
DROP SCHEMA tenant_acme, "tenant_org_AbC", org_beta, tenant_doomed CASCADE;
DROP TABLE public.lc_plans;
DROP EXTENSION tenant_migrate CASCADE;
RESET client_min_messages;

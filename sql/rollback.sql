--
-- rollback: tenant_rollback() for tenants and for shared scripts ('public'),
-- on small scripts registered here with tenant_migration_add().
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- The shape of a schema: tables, columns, indexes, constraints, functions,
-- triggers (to compare a tenant before and after a round trip)
CREATE FUNCTION pg_temp.shape(s name) RETURNS SETOF text LANGUAGE sql AS $f$
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = s::text::regnamespace AND c.relkind = 'r'
UNION ALL
SELECT 'relation ' || relname || ' ' || relkind::text FROM pg_class WHERE relnamespace = s::text::regnamespace
UNION ALL
SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE connamespace = s::text::regnamespace
UNION ALL
SELECT 'function ' || proname || ' ' || md5(prosrc) FROM pg_proc WHERE pronamespace = s::text::regnamespace
UNION ALL
SELECT 'trigger ' || tgname FROM pg_trigger
 WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = s::text::regnamespace)
ORDER BY 1
$f$;

-- Four tenant scripts, each with a down script written with public.
SELECT tenant_migration_add('1', 'accounts',
  'CREATE TABLE public.accounts (id serial PRIMARY KEY, name text NOT NULL);',
  'DROP TABLE public.accounts;') IS NOT NULL AS registered;
SELECT tenant_migration_add('2', 'invoices',
  'CREATE TABLE public.invoices (id serial PRIMARY KEY, account_id int NOT NULL REFERENCES public.accounts, total numeric DEFAULT 0);',
  'DROP TABLE public.invoices;') IS NOT NULL AS registered;
SELECT tenant_migration_add('3', 'account_email',
  'ALTER TABLE public.accounts ADD COLUMN email text; CREATE INDEX accounts_email_idx ON public.accounts (email);',
  'DROP INDEX public.accounts_email_idx; ALTER TABLE public.accounts DROP COLUMN email;') IS NOT NULL AS registered;
SELECT tenant_migration_add('4', 'invoice_total_fn', $up$
CREATE FUNCTION public.account_total(a int) RETURNS numeric LANGUAGE sql STABLE
AS $$ SELECT coalesce(sum(total), 0) FROM public.invoices WHERE account_id = a $$;
$up$, 'DROP FUNCTION public.account_total(int);') IS NOT NULL AS registered;

SELECT create_tenant_schema('rb');
SELECT create_tenant_schema('rb2');
CREATE TEMP TABLE shape_full AS SELECT pg_temp.shape('tenant_rb') AS line;
SELECT count(*) > 0 AS has_shape FROM shape_full;
INSERT INTO tenant_rb.accounts (name, email) VALUES ('a', 'a@example.com');
INSERT INTO tenant_rb.invoices (account_id, total) VALUES (1, 5), (1, 7);
SELECT tenant_rb.account_total(1);

-- NULL target: only the newest migration is reverted
SELECT max(id) AS log_id FROM tenant_migration_log \gset
SELECT version, name, duration_ms >= 0 AS timed FROM tenant_rollback('tenant_rb');
SELECT to_regprocedure('tenant_rb.account_total(int)') AS account_total;
SELECT version FROM tenant_migrations WHERE tenant_schema = 'tenant_rb' ORDER BY version;
SELECT tenant_schema, version, action, status, error, duration_ms >= 0 AS timed
  FROM tenant_migration_log WHERE id > :log_id ORDER BY id;
-- the other tenant is untouched
SELECT to_regprocedure('tenant_rb2.account_total(int)') IS NOT NULL AS rb2_has_function;
SELECT count(*) AS rb2_applied FROM tenant_migrations WHERE tenant_schema = 'tenant_rb2';

-- A target: everything newer than it, newest first (in the returned order)
SELECT version, name FROM tenant_migrate('tenant_rb');
SELECT max(id) AS log_id FROM tenant_migration_log \gset
SELECT version, name FROM tenant_rollback('tenant_rb', '1');
SELECT version FROM tenant_migrations WHERE tenant_schema = 'tenant_rb' ORDER BY version;
SELECT version, action, status FROM tenant_migration_log WHERE id > :log_id ORDER BY id;
SELECT to_regclass('tenant_rb.invoices') AS invoices,
       to_regclass('tenant_rb.accounts_email_idx') AS email_idx,
       to_regprocedure('tenant_rb.account_total(int)') AS account_total;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'tenant_rb.accounts'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum;
-- a target at or above the newest applied version reverts nothing
SELECT version, name FROM tenant_rollback('tenant_rb', '1');
SELECT version, name FROM tenant_rollback('tenant_rb', '99');

-- Target '0' reverts everything; then nothing is left to revert
SELECT version, name FROM tenant_rollback('tenant_rb', '0');
SELECT count(*) AS applied FROM tenant_migrations WHERE tenant_schema = 'tenant_rb';
SELECT count(*) AS relations FROM pg_class WHERE relnamespace = 'tenant_rb'::regnamespace;
SELECT version, name FROM tenant_rollback('tenant_rb', '0');
SELECT version, name FROM tenant_rollback('tenant_rb');

-- Migrating again returns the tenant to the same state
SELECT version, name FROM tenant_migrate('tenant_rb');
(SELECT pg_temp.shape('tenant_rb') EXCEPT SELECT line FROM shape_full)
UNION ALL
(SELECT line FROM shape_full EXCEPT SELECT pg_temp.shape('tenant_rb'));
-- ... and the same rollback_sql is recorded
SELECT version, rollback_sql FROM tenant_migrations WHERE tenant_schema = 'tenant_rb' ORDER BY version;

-- Rollback runs the rollback_sql recorded when the migration was applied,
-- not the down script registered now (changing only down_sql of an applied
-- version is allowed)
SELECT tenant_migration_add('4', 'invoice_total_fn', $up$
CREATE FUNCTION public.account_total(a int) RETURNS numeric LANGUAGE sql STABLE
AS $$ SELECT coalesce(sum(total), 0) FROM public.invoices WHERE account_id = a $$;
$up$, 'DROP FUNCTION public.account_total(int); CREATE TABLE public.new_down_ran (id int);') IS NOT NULL AS registered;
SELECT version, name FROM tenant_rollback('tenant_rb');
SELECT to_regprocedure('tenant_rb.account_total(int)') AS account_total,
       to_regclass('tenant_rb.new_down_ran') AS new_down_ran;
-- applied again, the new down script is recorded and used
SELECT version, name FROM tenant_migrate('tenant_rb');
SELECT rollback_sql FROM tenant_migrations WHERE tenant_schema = 'tenant_rb' AND version = '4';
SELECT version, name FROM tenant_rollback('tenant_rb');
SELECT to_regclass('tenant_rb.new_down_ran') AS new_down_ran;
DROP TABLE tenant_rb.new_down_ran;
-- the other tenant still has the old recorded rollback_sql
SELECT rollback_sql FROM tenant_migrations WHERE tenant_schema = 'tenant_rb2' AND version = '4';
SELECT tenant_migration_add('4', 'invoice_total_fn', $up$
CREATE FUNCTION public.account_total(a int) RETURNS numeric LANGUAGE sql STABLE
AS $$ SELECT coalesce(sum(total), 0) FROM public.invoices WHERE account_id = a $$;
$up$, 'DROP FUNCTION public.account_total(int);') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_rb');

-- A migration without a down script in the range: error 55000, and nothing
-- changed, not even the newer migrations that have down scripts
SELECT tenant_migration_add('5', 'no_down', 'CREATE TABLE public.no_down (id int);') IS NOT NULL AS registered;
SELECT tenant_migration_add('6', 'has_down', 'CREATE TABLE public.has_down (id int);', 'DROP TABLE public.has_down;') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_rb');
SELECT version, rollback_sql IS NULL AS no_rollback_sql FROM tenant_migrations
 WHERE tenant_schema = 'tenant_rb' AND version IN ('5', '6') ORDER BY version;
SELECT count(*) AS log_rows_before FROM tenant_migration_log \gset
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_rb', '4')$$);
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_rb', '0')$$);
SELECT to_regclass('tenant_rb.has_down') AS has_down, to_regclass('tenant_rb.no_down') AS no_down;
SELECT version FROM tenant_migrations WHERE tenant_schema = 'tenant_rb' ORDER BY version;
SELECT count(*) - :log_rows_before AS new_log_rows FROM tenant_migration_log;
-- the newest one alone can still be reverted
SELECT version, name FROM tenant_rollback('tenant_rb');
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_rb')$$);

-- Registering a down script later (same up_sql, new down_sql): nothing was
-- recorded, so rollback uses the registered one, rewritten for the tenant
-- (unrewritten, DROP TABLE public.no_down would fail: there is none)
SELECT tenant_migration_add('5', 'no_down', 'CREATE TABLE public.no_down (id int);', 'DROP TABLE public.no_down;') IS NOT NULL AS registered;
SELECT to_regclass('public.no_down') AS in_public;
SELECT version, name FROM tenant_rollback('tenant_rb');
SELECT to_regclass('tenant_rb.no_down') AS no_down;
SELECT version, action, status FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_rb' AND version = '5' ORDER BY id;
-- applied again, the down script is now recorded, rewritten
SELECT version, name FROM tenant_migrate('tenant_rb');
SELECT version, rollback_sql FROM tenant_migrations
 WHERE tenant_schema = 'tenant_rb' AND version IN ('5', '6') ORDER BY version;

-- Shared scripts: tenant_rollback('public') reverts them, run as written
SELECT tenant_migration_add('100', 'plans', 'CREATE TABLE public.rb_plans (id int PRIMARY KEY);',
  'DROP TABLE public.rb_plans;', 'shared') IS NOT NULL AS registered;
SELECT tenant_migration_add('101', 'plan_seed', 'INSERT INTO public.rb_plans VALUES (1), (2);',
  'DELETE FROM public.rb_plans;', 'shared') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate_shared();
SELECT tenant_schema, version, rollback_sql FROM tenant_migrations WHERE tenant_schema = 'public' ORDER BY version;
SELECT version, name FROM tenant_rollback('public');
SELECT count(*) AS plans FROM public.rb_plans;
SELECT version, name FROM tenant_rollback('public', '0');
SELECT to_regclass('public.rb_plans') AS rb_plans;
SELECT count(*) AS shared_applied FROM tenant_migrations WHERE tenant_schema = 'public';
SELECT tenant_schema, version, action, status FROM tenant_migration_log
 WHERE tenant_schema = 'public' ORDER BY id;
-- tenants are not touched by a shared rollback
SELECT count(*) AS rb_applied FROM tenant_migrations WHERE tenant_schema = 'tenant_rb';

-- Dependents: a version that an applied version depends on cannot be
-- rolled back (2BP01), nothing changes
SELECT version, name FROM tenant_migrate_shared();
SELECT tenant_migration_add('102', 'account_plan', 'ALTER TABLE public.accounts ADD COLUMN plan int;',
  'ALTER TABLE public.accounts DROP COLUMN plan;', 'tenant', '{100}') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_rb');
SELECT pg_temp.try($$SELECT tenant_rollback('public', '0')$$);
SELECT count(*) AS shared_applied FROM tenant_migrations WHERE tenant_schema = 'public';
-- once the dependent is reverted, the shared one can go
SELECT version, name FROM tenant_rollback('tenant_rb');
SELECT version, name FROM tenant_rollback('public', '0');
-- within one tenant: 8 depends on 9 (registered later, applied earlier)
-- (102 is pending again, and would need 100: migrate up to 9 only)
SELECT tenant_migration_add('9', 'nine', 'CREATE TABLE public.nine (id int);', 'DROP TABLE public.nine;') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_rb', '9');
SELECT tenant_migration_add('8', 'eight', 'CREATE TABLE public.eight (id int);', 'DROP TABLE public.eight;', 'tenant', '{9}') IS NOT NULL AS registered;
SET tenant_migrate.out_of_order = on;
SELECT version, name FROM tenant_migrate('tenant_rb', '9');
RESET tenant_migrate.out_of_order;
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_rb')$$);
SELECT to_regclass('tenant_rb.nine') IS NOT NULL AS nine_kept;
-- reverting both at once is fine
SELECT version, name FROM tenant_rollback('tenant_rb', '6');

-- A dependent applied in another tenant does not block a tenant's own
-- rollback: tenant_rb2 keeps its 7 (which depends on its 6) while tenant_rb
-- reverts its 7 and 6 (tried in a transaction that is rolled back)
SELECT tenant_migration_add('7', 'seven', 'CREATE TABLE public.seven (id int);', 'DROP TABLE public.seven;', 'tenant', '{6}') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate('tenant_rb', '7');
SELECT version, name FROM tenant_migrate('tenant_rb2', '7');
BEGIN;
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_rb', '5')$$);
SELECT tenant_schema, version FROM tenant_migrations WHERE version IN ('6', '7') ORDER BY 1, 2;
ROLLBACK;

-- Clean up
SET client_min_messages = warning;
DROP SCHEMA tenant_rb, tenant_rb2 CASCADE;
DROP EXTENSION tenant_migrate CASCADE;
RESET client_min_messages;

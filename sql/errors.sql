--
-- errors: every error path of the contract in one place, with its SQLSTATE,
-- message, detail and hint.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- The same, as separate fields, with the first line of the error context
CREATE FUNCTION pg_temp.fields(cmd text,
  OUT code text, OUT message text, OUT detail text, OUT hint text, OUT context text)
LANGUAGE plpgsql AS $f$
BEGIN EXECUTE cmd; code := 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT,
                          context = PG_EXCEPTION_CONTEXT;
  context := split_part(context, E'\n', 1);
END $f$;

\pset format unaligned
\pset tuples_only on

SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY, sku text UNIQUE);', 'DROP TABLE public.items;') IS NOT NULL;
SELECT create_tenant_schema('acme', 'Acme');

--
-- Tenants: unknown (3F000; given a key, the hint names its schema), public
-- (22023), NULL (22004), empty (3F000) and oversized (42622) names
--
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_nobody')$$);
SELECT pg_temp.try($$SELECT tenant_migrate('acme')$$);
SELECT pg_temp.try($$SELECT tenant_rollback('acme')$$);
SELECT pg_temp.try($$SELECT tenant_set('acme')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('acme')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_status('acme')$$);
SELECT pg_temp.try($$SELECT tenant_set('tenant_nobody')$$);
SELECT pg_temp.try($$SELECT tenant_rollback('TENANT_ACME')$$);
SELECT pg_temp.try($$SELECT tenant_migrate('public')$$);
SELECT pg_temp.try($$SELECT tenant_set('public')$$);
SELECT pg_temp.try($$SELECT tenant_migrate(NULL)$$);
SELECT pg_temp.try($$SELECT tenant_rollback(NULL)$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan(NULL)$$);
SELECT pg_temp.try($$SELECT tenant_set(NULL)$$);
SELECT pg_temp.try($$SELECT tenant_migrate('')$$);
SELECT pg_temp.try($$SELECT tenant_migrate(repeat('t', 64))$$);
SELECT pg_temp.try($$SELECT tenant_migration_rewrite('SELECT 1', '')$$);

-- A registered tenant whose schema was dropped by hand (3F000)
SELECT create_tenant_schema('gone');
DROP SCHEMA tenant_gone CASCADE;
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_gone')$$);
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_gone')$$);
SELECT pg_temp.try($$SELECT tenant_set('tenant_gone')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant_gone')$$);
DELETE FROM tenant_migrations WHERE tenant_schema = 'tenant_gone';
DELETE FROM tenant_registry WHERE schema_name = 'tenant_gone';

--
-- Tenant keys: bad characters, empty (22023), too long for a schema name
-- (42622: 7 bytes of prefix leave 56 for the key), NULL (22004), taken
-- (42P06), a schema that exists unregistered (42P06), public or pg_*
-- (42939)
--
SELECT pg_temp.try($$SELECT create_tenant_schema('a-b')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('x y')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('acme"; DROP SCHEMA public; --')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('é')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema(repeat('k', 60))$$);
SELECT pg_temp.try($$SELECT create_tenant_schema(repeat('k', 57))$$);
SELECT create_tenant_schema(repeat('k', 56)) = 'tenant_' || repeat('k', 56);
SELECT pg_temp.try($$SELECT create_tenant_schema(NULL)$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('acme')$$);
SET tenant_migrate.schema_prefix = 'org_';
SELECT pg_temp.try($$SELECT create_tenant_schema('acme')$$);
SET tenant_migrate.schema_prefix = '';
SELECT pg_temp.try($$SELECT create_tenant_schema('public')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('pg_x')$$);
RESET tenant_migrate.schema_prefix;
SELECT pg_temp.try($$SET tenant_migrate.schema_prefix = 'a-b'$$);
CREATE SCHEMA tenant_taken;
SELECT pg_temp.try($$SELECT create_tenant_schema('taken')$$);
DROP SCHEMA tenant_taken;
-- only acme and the 56-byte key (which fits) are registered: the errors left
-- no registry row behind
SELECT string_agg(schema_name, ', ' ORDER BY schema_name) FROM tenant_registry;

--
-- Versions: a bad version or target version (22023), an unregistered
-- target (42704), versions that collide (42710)
--
SELECT pg_temp.try($$SELECT tenant_migration_add('1a', 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('', 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('1..2', 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('.1', 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('1.', 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('v1', 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('-1', 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_acme', '1.x')$$);
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_acme', 'latest')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant_acme', '')$$);
SELECT pg_temp.try($$SELECT tenant_migrate_shared('one')$$);
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_acme', '99')$$);
SELECT pg_temp.try($$SELECT tenant_migrate_shared('99')$$);
SELECT pg_temp.try($$SELECT tenant_migrate_shared('1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('01', 'x', 'SELECT 1')$$);

--
-- Registration: NULL arguments (22004), empty name or script and an
-- unknown scope (22023); nothing is registered
--
SELECT pg_temp.try($$SELECT tenant_migration_add(NULL, 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', NULL, 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', NULL)$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', NULL, NULL)$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', ' ', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', E' \n\t')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', scope => 'global')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', scope => 'Tenant')$$);

-- Malformed SQL (42601) in the up or the down script; the context names
-- the script, and the hint says what to do
SELECT * FROM pg_temp.fields($$SELECT tenant_migration_add('2', 'x', 'CREATE TABLEX public.t (id int)')$$);
SELECT * FROM pg_temp.fields($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', 'DROP TABLE public.t(')$$);
SELECT code, hint <> '' AS has_hint
  FROM pg_temp.fields($$SELECT tenant_migration_add('2', 'x', 'CREATE TABLEX public.t (id int)')$$);

-- Statements a migration may not run: transaction control (2D000), what
-- cannot run in a transaction block (25001), search_path and role changes
-- and COPY from the client (0A000); in the up or the down script, at top
-- level or in a DO block
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'BEGIN; CREATE TABLE public.t (id int); COMMIT;')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'CREATE TABLE public.t (id int); COMMIT;')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SAVEPOINT s')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', 'ROLLBACK')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'DO $d$BEGIN COMMIT; END$d$')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'CREATE INDEX CONCURRENTLY i ON public.items (sku)')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'DROP INDEX CONCURRENTLY public.i')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'VACUUM public.items')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SET search_path = public')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SET LOCAL search_path TO other')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SET ROLE postgres')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'RESET ALL')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT set_config(''search_path'', ''other'', true)')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'DO $d$BEGIN SET search_path = other; END$d$')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'COPY public.items FROM STDIN')$$);
SELECT 'registered: ' || count(*) FROM tenant_migration_scripts WHERE version <> '1';

--
-- Checksum mismatch: an applied script cannot be edited (55006), nor moved
-- to the other scope; the registered script is unchanged
--
SELECT pg_temp.try($$SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id bigint PRIMARY KEY, sku text UNIQUE);', 'DROP TABLE public.items;')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY, sku text UNIQUE);', 'DROP TABLE public.items;', 'shared')$$);
SELECT up_sql, scope FROM tenant_migration_scripts WHERE version = '1';

--
-- Dependencies: on an unregistered version (42704), on itself or on a bad
-- version (22023), NULL elements (22004); at run time, on a shared script
-- not applied yet or on a version that comes later (55000); rolling back a
-- version something applied depends on (2BP01)
--
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', depends_on => '{9}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', depends_on => '{2}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', depends_on => '{02}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', depends_on => '{x}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', depends_on => '{NULL}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'x', 'SELECT 1', depends_on => '{{1}}')$$);
SELECT tenant_migration_add('5', 'plans', 'CREATE TABLE public.err_plans (id int);', 'DROP TABLE public.err_plans;', 'shared') IS NOT NULL;
SELECT tenant_migration_add('6', 'needs_plans', 'SELECT 1', 'SELECT 1', 'tenant', '{5}') IS NOT NULL;
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_acme')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('blocked')$$);
SELECT version FROM tenant_migrate_shared();
SELECT tenant_migration_add('3', 'needs_later', 'SELECT 1', 'SELECT 1', 'tenant', '{6}') IS NOT NULL;
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_acme')$$);
SELECT pg_temp.try($$SELECT tenant_migrate_shared()$$);
SELECT version FROM tenant_migrate('tenant_acme', '1');
SELECT 'applied: ' || string_agg(version, ',') FROM tenant_migrations WHERE tenant_schema = 'tenant_acme';
DELETE FROM tenant_migration_scripts WHERE version = '3';
SELECT version FROM tenant_migrate('tenant_acme');
SELECT pg_temp.try($$SELECT tenant_rollback('public')$$);
SELECT version FROM tenant_rollback('tenant_acme');
SELECT version FROM tenant_rollback('public');
DELETE FROM tenant_migration_scripts WHERE version IN ('5', '6');

--
-- Rollback without a down script (55000), nothing rolled back
--
SELECT tenant_migration_add('7', 'no_down', 'CREATE TABLE public.no_down (id int);') IS NOT NULL;
SELECT tenant_migration_add('8', 'has_down', 'CREATE TABLE public.has_down (id int);', 'DROP TABLE public.has_down; DROP TABLE public.missing;') IS NOT NULL;
SELECT version FROM tenant_migrate('tenant_acme', '8');
SELECT pg_temp.try($$SELECT tenant_rollback('tenant_acme', '1')$$);
SELECT string_agg(version, ',' ORDER BY version) FROM tenant_migrations WHERE tenant_schema = 'tenant_acme';

--
-- A failing statement's error comes through unchanged: SQLSTATE (42P01,
-- 23505, 22012 ...), message, detail; its CONTEXT names the script, the
-- version and its name, the tenant, and the statement (number, line, a
-- snippet as rewritten)
--
SELECT tenant_migration_add('9', 'bad_table', 'CREATE TABLE public.nine (id int);
INSERT INTO public.no_such_table VALUES (1);
CREATE TABLE public.nine_b (id int);') IS NOT NULL;
SELECT * FROM pg_temp.fields($$SELECT tenant_migrate('tenant_acme')$$);
SELECT tenant_migration_add('9', 'dup_sku', $$INSERT INTO public.items VALUES (1, 'a'); INSERT INTO public.items VALUES (2, 'a');$$) IS NOT NULL;
SELECT * FROM pg_temp.fields($$SELECT tenant_migrate('tenant_acme')$$);
SELECT tenant_migration_add('9', 'zero', $$-- a comment before the statement
SELECT 1 / 0;$$) IS NOT NULL;
SELECT * FROM pg_temp.fields($$SELECT tenant_migrate('tenant_acme')$$);
-- a long statement (cut short in the CONTEXT line, see error_context)
SELECT tenant_migration_add('9', 'long', $$SELECT 1 / 0, '$$ || repeat('x', 300) || $$'$$) IS NOT NULL;
SELECT * FROM pg_temp.fields($$SELECT tenant_migrate('tenant_acme')$$);
-- nothing of version 9 was applied or recorded as applied; each of the 4
-- failed attempts is in the log, committed apart from the aborted call
SELECT format('table nine: %s, history rows: %s, log rows: %s, items: %s',
              coalesce(to_regclass('tenant_acme.nine')::text, 'none'),
              (SELECT count(*) FROM tenant_migrations WHERE version = '9'),
              (SELECT count(*) FROM tenant_migration_log WHERE version = '9'),
              (SELECT count(*) FROM tenant_acme.items));
DELETE FROM tenant_migration_scripts WHERE version = '9';
-- a failing down script (8's second statement): "down script" in the CONTEXT,
-- SQLSTATE kept, nothing rolled back
SELECT * FROM pg_temp.fields($$SELECT tenant_rollback('tenant_acme')$$);
SELECT to_regclass('tenant_acme.has_down') AS has_down;
-- a failing shared script names the schema public
SELECT tenant_migration_add('10', 'bad_shared', 'ALTER TABLE public.no_such_shared ADD COLUMN x int;', NULL, 'shared') IS NOT NULL;
SELECT * FROM pg_temp.fields($$SELECT tenant_migrate_shared()$$);
-- when the error is caught, search_path is the caller's again
SHOW search_path;

-- Clean up
SET client_min_messages = warning;
DROP SCHEMA tenant_acme CASCADE;
SELECT format('DROP SCHEMA %I CASCADE', 'tenant_' || repeat('k', 56)) \gexec
DROP EXTENSION tenant_migrate CASCADE;
RESET client_min_messages;

--
-- scripts: tenant_migration_add() -- checksums, re-registration (no-op,
-- update, checksum mismatch), argument checks, dependencies, statements
-- refused at registration, malformed SQL, and shared scripts.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- What public holds, to show that tenant scripts add nothing there
CREATE TEMP TABLE public_before AS
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) AS classes,
       (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace) AS types,
       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace) AS procs;

/*---- Checksums ----*/

-- The result is the hex SHA-256 of up_sql, as sha256() computes it
SELECT tenant_migration_add('1', 'create items',
  'CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL DEFAULT ''none'');',
  'DROP TABLE public.items;') AS checksum;
SELECT tenant_migration_add('1', 'create items',
  'CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL DEFAULT ''none'');',
  'DROP TABLE public.items;')
  = encode(sha256(convert_to('CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL DEFAULT ''none'');', 'UTF8')), 'hex')
  AS matches_sha256;
-- ... also for text beyond ASCII (the checksum is over the UTF-8 bytes)
SELECT tenant_migration_add('2', 'café', $$COMMENT ON TABLE public.items IS 'Artikel für das Café ☕'$$)
  = encode(sha256(convert_to($$COMMENT ON TABLE public.items IS 'Artikel für das Café ☕'$$, 'UTF8')), 'hex')
  AS matches_sha256;
-- ... and the stored checksum is the same
SELECT version, checksum = encode(sha256(convert_to(up_sql, 'UTF8')), 'hex') AS checksum_ok
  FROM tenant_migration_scripts ORDER BY version;

/*---- Registering again ----*/

-- Same content again is a no-op: the row is not written at all (same xmin),
-- registered_at is not touched
UPDATE tenant_migration_scripts SET registered_at = '2000-01-01 00:00:00+00' WHERE version = '1';
SELECT xmin AS xmin_1, s::text AS row_1 FROM tenant_migration_scripts s WHERE version = '1' \gset
SELECT tenant_migration_add('1', 'create items',
  'CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL DEFAULT ''none'');',
  'DROP TABLE public.items;') IS NOT NULL AS ok;
SELECT xmin::text = :'xmin_1' AS same_xmin, s::text = :'row_1' AS same_row,
       registered_at = '2000-01-01 00:00:00+00' AS registered_at_unchanged
  FROM tenant_migration_scripts s WHERE version = '1';

-- Changed up_sql of a version applied nowhere: updated, new checksum,
-- registered_at moves
UPDATE tenant_migration_scripts SET registered_at = '2000-01-01 00:00:00+00' WHERE version = '2';
SELECT tenant_migration_add('2', 'comment items', $$COMMENT ON TABLE public.items IS 'Items'$$);
SELECT version, name, up_sql, registered_at > '2000-01-01 00:00:00+00' AS registered_at_moved,
       checksum = encode(sha256(convert_to(up_sql, 'UTF8')), 'hex') AS checksum_ok
  FROM tenant_migration_scripts WHERE version = '2';
-- ... so are a changed name, down script, scope or depends_on
SELECT tenant_migration_add('2', 'comment on items', $$COMMENT ON TABLE public.items IS 'Items'$$,
  $$COMMENT ON TABLE public.items IS NULL$$, 'shared', '{1}') IS NOT NULL AS ok;
SELECT version, name, down_sql, scope, depends_on FROM tenant_migration_scripts WHERE version = '2';
SELECT tenant_migration_add('2', 'comment on items', $$COMMENT ON TABLE public.items IS 'Items'$$,
  $$COMMENT ON TABLE public.items IS NULL$$) IS NOT NULL AS ok;
SELECT version, name, down_sql, scope, depends_on FROM tenant_migration_scripts WHERE version = '2';

-- Apply both to a tenant; the table lands in the tenant, public gains nothing
SELECT create_tenant_schema('scripts_a');
SELECT tenant_schema, version, name FROM tenant_migrations ORDER BY version;
INSERT INTO tenant_scripts_a.items DEFAULT VALUES;
INSERT INTO tenant_scripts_a.items (label) VALUES ('second');
SELECT id, label FROM tenant_scripts_a.items ORDER BY id;
SELECT obj_description('tenant_scripts_a.items'::regclass, 'pg_class') AS comment;
SELECT to_regclass('public.items') AS public_items;
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) - classes AS new_classes,
       (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace) - types AS new_types,
       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace) - procs AS new_procs
  FROM public_before;

-- Changed up_sql of an applied version: 55006 checksum mismatch, row unchanged
SELECT xmin AS xmin_1, s::text AS row_1 FROM tenant_migration_scripts s WHERE version = '1' \gset
SELECT pg_temp.try($$SELECT tenant_migration_add('1', 'create items',
  'CREATE TABLE public.items (id bigserial PRIMARY KEY, label text)', 'DROP TABLE public.items;')$$);
SELECT xmin::text = :'xmin_1' AS same_xmin, s::text = :'row_1' AS same_row
  FROM tenant_migration_scripts s WHERE version = '1';
-- ... even a changed blank at the end is a change
SELECT pg_temp.try($$SELECT tenant_migration_add('1', 'create items',
  'CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL DEFAULT ''none''); ',
  'DROP TABLE public.items;')$$);

-- Only the down script of an applied version may change: allowed, the
-- checksum stays; what was recorded for the tenant stays too
SELECT tenant_migration_add('1', 'create items',
  'CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL DEFAULT ''none'');',
  'DROP TABLE IF EXISTS public.items;') AS checksum;
SELECT version, down_sql, s::text <> :'row_1' AS row_changed
  FROM tenant_migration_scripts s WHERE version = '1';
SELECT version, rollback_sql FROM tenant_migrations WHERE version = '1';

-- The scope of an applied version cannot change (55006)
SELECT pg_temp.try($$SELECT tenant_migration_add('1', 'create items',
  'CREATE TABLE public.items (id serial PRIMARY KEY, label text NOT NULL DEFAULT ''none'');',
  'DROP TABLE IF EXISTS public.items;', 'shared')$$);
SELECT version, scope FROM tenant_migration_scripts WHERE version = '1';

/*---- Bad arguments ----*/

-- Scope, name and up_sql (22023)
SELECT pg_temp.try($$SELECT tenant_migration_add('3', 'x', 'SELECT 1', scope => 'global')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', 'x', 'SELECT 1', scope => 'Tenant')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', 'x', 'SELECT 1', scope => '')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', '', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', ' 	', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', 'x', '')$$);
SELECT pg_temp.try(format('SELECT tenant_migration_add(%L, %L, %L)', '3', 'x', E'  \n\t  '));

-- NULL arguments: 22004 (null_value_not_allowed), naming the argument
SELECT pg_temp.try($$SELECT tenant_migration_add(NULL, 'x', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', NULL, 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', 'x', NULL)$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('3', 'x', 'SELECT 1', scope => NULL)$$);
-- ... a NULL down script means "none", a NULL depends_on means "no dependencies"
SELECT tenant_migration_add('3', 'nulls', 'SELECT 3', NULL, 'tenant', NULL) IS NOT NULL AS ok;
SELECT version, down_sql IS NULL AS no_down, depends_on FROM tenant_migration_scripts WHERE version = '3';

-- depends_on: a version that is not registered (42704), the script itself
-- (also spelt differently), a NULL element (22004), a bad version (22023),
-- a two-dimensional array
SELECT pg_temp.try($$SELECT tenant_migration_add('4', 'x', 'SELECT 4', depends_on => '{9}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('4', 'x', 'SELECT 4', depends_on => '{4}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('4', 'x', 'SELECT 4', depends_on => '{1,004}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('4', 'x', 'SELECT 4', depends_on => ARRAY['1', NULL])$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('4', 'x', 'SELECT 4', depends_on => '{1.x}')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('4', 'x', 'SELECT 4', depends_on => '{{1},{2}}')$$);
-- ... registered ones are fine
SELECT tenant_migration_add('4', 'x', 'SELECT 4', depends_on => '{1,3}') IS NOT NULL AS ok;
SELECT version, depends_on FROM tenant_migration_scripts WHERE version = '4';
-- ... none of the refused calls registered anything
SELECT version, name FROM tenant_migration_scripts ORDER BY tenant_version_key(version);

/*---- Statements refused at registration ----*/

-- Transaction control (2D000), search_path and role changes (0A000),
-- statements that cannot run in a transaction (25001), COPY with the client
-- (0A000); each with the statement in the detail.  Nothing is registered.
SELECT label, pg_temp.try(format('SELECT tenant_migration_add(%L, %L, %L)', '5', 'refused', sql)) AS result
  FROM (VALUES
    ('BEGIN',                      'BEGIN; CREATE TABLE public.r (id int); COMMIT;'),
    ('START TRANSACTION',          'START TRANSACTION'),
    ('COMMIT',                     'CREATE TABLE public.r (id int); COMMIT'),
    ('ROLLBACK',                   'ROLLBACK'),
    ('SAVEPOINT',                  'SAVEPOINT s1'),
    ('RELEASE SAVEPOINT',          'RELEASE SAVEPOINT s1'),
    ('ROLLBACK TO SAVEPOINT',      'ROLLBACK TO SAVEPOINT s1'),
    ('PREPARE TRANSACTION',        $q$PREPARE TRANSACTION 'x'$q$),
    ('SET search_path',            'SET search_path = other, public'),
    ('SET LOCAL search_path',      'SET LOCAL search_path TO other'),
    ('SET SEARCH_PATH (upper)',    'SET SEARCH_PATH = other'),
    ('RESET search_path',          'RESET search_path'),
    ('RESET ALL',                  'RESET ALL'),
    ('SET ROLE',                   'SET ROLE regress_someone'),
    ('RESET ROLE',                 'RESET ROLE'),
    ('SET SESSION AUTHORIZATION',  'SET SESSION AUTHORIZATION regress_someone'),
    ('set_config search_path',     $q$SELECT set_config('search_path', 'other', false)$q$),
    ('pg_catalog.set_config',      $q$SELECT pg_catalog.set_config('search_path', '', false)$q$),
    ('set_config SEARCH_PATH',     $q$SELECT set_config('SEARCH_PATH', 'other', false)$q$),
    ('set_config role',            $q$SELECT set_config('role', 'regress_someone', true)$q$),
    ('CREATE INDEX CONCURRENTLY',  'CREATE INDEX CONCURRENTLY items_label ON public.items (label)'),
    ('DROP INDEX CONCURRENTLY',    'DROP INDEX CONCURRENTLY public.items_label'),
    ('REINDEX TABLE CONCURRENTLY', 'REINDEX TABLE CONCURRENTLY public.items'),
    ('REINDEX (CONCURRENTLY)',     'REINDEX (CONCURRENTLY) INDEX public.items_pkey'),
    ('VACUUM',                     'VACUUM public.items'),
    ('VACUUM ANALYZE',             'VACUUM (ANALYZE) public.items'),
    ('COPY FROM STDIN',            'COPY public.items (label) FROM STDIN'),
    ('COPY TO STDOUT',             'COPY public.items TO STDOUT'),
    ('DO: SET search_path',        $q$DO $b$ BEGIN SET search_path = other; END $b$ $q$),
    ('DO: SET LOCAL search_path',  $q$DO $b$ BEGIN IF true THEN SET LOCAL search_path TO other; END IF; END $b$ $q$),
    ('DO: COMMIT',                 $q$DO $b$ BEGIN CREATE TABLE public.r (id int); COMMIT; END $b$ $q$),
    ('DO: ROLLBACK',               $q$DO 'BEGIN ROLLBACK; END'$q$),
    ('DO: set_config',             $q$DO $b$ BEGIN PERFORM set_config('search_path', 'other', true); END $b$ $q$),
    ('DO: SET ROLE',               $q$DO LANGUAGE plpgsql $b$ BEGIN SET ROLE regress_someone; END $b$ $q$)
  ) AS t(label, sql);
SELECT count(*) AS registered FROM tenant_migration_scripts WHERE version = '5';

-- The same statements are fine where they do not run during the migration
-- (a function body runs when called) or do not change what is refused
SELECT tenant_migration_add('5', 'allowed lookalikes', $sql$
CREATE FUNCTION public.items_path() RETURNS text LANGUAGE plpgsql
  SET search_path = public
  AS $b$ DECLARE p text := current_setting('search_path');
         BEGIN PERFORM set_config('search_path', 'pg_catalog', true); RETURN p; END $b$;
SET LOCAL statement_timeout = '10min';
ANALYZE public.items;
CREATE INDEX items_label ON public.items (label);
REINDEX TABLE public.items;
COMMENT ON TABLE public.items IS 'BEGIN; COMMIT; SET search_path = x; VACUUM';
SELECT 'set_config(''search_path'', ''x'', false)';
$sql$) IS NOT NULL AS ok;
SELECT version, name FROM tenant_migrate('tenant_scripts_a');
SELECT tenant_scripts_a.items_path();
SELECT obj_description('tenant_scripts_a.items'::regclass, 'pg_class') AS comment;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'tenant_scripts_a.items'::regclass ORDER BY 1;

-- A refused statement in the down script is refused too, naming the down script
\set VERBOSITY default
SELECT tenant_migration_add('6', 'bad down', 'SELECT 6', 'DROP TABLE public.x; COMMIT;');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT tenant_migration_add('6', 'bad down', 'SELECT 6', 'VACUUM');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;

-- Malformed SQL: 42601 at registration, the context names the script and
-- the position points into it
SELECT tenant_migration_add('6', 'malformed', 'CREATE TABLE public.m (id int);
CREATE TABLE public.n (id int,);');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT tenant_migration_add('6', 'malformed', 'SELECT 1; SELEC 2');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
SELECT tenant_migration_add('6', 'malformed', 'SELECT ''unterminated');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
-- ... and in the down script
SELECT tenant_migration_add('6', 'malformed down', 'SELECT 6', 'DROP TABLE public.x,');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
\set VERBOSITY terse
SELECT count(*) AS registered FROM tenant_migration_scripts WHERE version = '6';

/*---- Shared scripts ----*/

-- Registered with scope 'shared'; tenant runs leave them alone
SELECT tenant_migration_add('7', 'plans', $$
CREATE TABLE public.plans (id serial PRIMARY KEY, code text UNIQUE NOT NULL);
CREATE TABLE shared_notes (id int REFERENCES public.plans (id));
INSERT INTO public.plans (code) VALUES ('free'), ('pro');
$$, 'DROP TABLE public.shared_notes; DROP TABLE public.plans;', 'shared') IS NOT NULL AS ok;
SELECT version, name FROM tenant_migrate('tenant_scripts_a');
SELECT version, name FROM tenant_migration_plan('tenant_scripts_a');
-- ... the plan for public shows them as written: no rewriting
SELECT version, name, sql FROM tenant_migration_plan('public');
-- ... tenant_migrate_shared applies them once, to public
SELECT version, name FROM tenant_migrate_shared();
SELECT version, name FROM tenant_migrate_shared();
SELECT c.relnamespace::regnamespace AS schema, c.relname
  FROM pg_class c
 WHERE c.relname IN ('plans', 'shared_notes') AND c.relkind = 'r'
 ORDER BY 2;
SELECT code FROM public.plans ORDER BY id;
SELECT pg_temp.try($$INSERT INTO public.shared_notes VALUES (99)$$);
SELECT tenant_schema, version, name, rollback_sql FROM tenant_migrations WHERE version = '7';
-- ... and not to the tenant
SELECT to_regclass('tenant_scripts_a.plans') AS tenant_plans;
-- ... a shared script, once applied, cannot be edited either
SELECT pg_temp.try($$SELECT tenant_migration_add('7', 'plans', 'CREATE TABLE public.plans (id int)', NULL, 'shared')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('7', 'plans', $s$
CREATE TABLE public.plans (id serial PRIMARY KEY, code text UNIQUE NOT NULL);
CREATE TABLE shared_notes (id int REFERENCES public.plans (id));
INSERT INTO public.plans (code) VALUES ('free'), ('pro');
$s$, NULL, 'tenant')$$);
-- ... refused statements are refused for shared scripts as well
SELECT pg_temp.try($$SELECT tenant_migration_add('8', 'x', 'VACUUM public.plans', scope => 'shared')$$);

-- Clean up
SET client_min_messages = warning;
DROP SCHEMA tenant_scripts_a CASCADE;
DROP TABLE public.shared_notes, public.plans;
RESET client_min_messages;
DELETE FROM tenant_migrations;
DELETE FROM tenant_migration_log;
DELETE FROM tenant_registry;
DELETE FROM tenant_migration_scripts;

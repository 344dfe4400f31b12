--
-- nontx: histories that need commits between scripts.  An enum value
-- added by one migration and used by a later one, and CONCURRENTLY index
-- steps, in fleet runs (leader and workers) and in CALL create_tenant();
-- the refusals of tenant_migrate() and create_tenant_schema().
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

SET client_min_messages = warning;
SET tenant_migrate.progress_interval = 0;

SELECT tenant_migration_add('1', 'items',
  'CREATE TYPE public.mood AS ENUM (''sad'');
   CREATE TABLE public.items (id int PRIMARY KEY, m public.mood, note text);') IS NOT NULL AS added;
SELECT create_tenant_schema('a'), create_tenant_schema('b'), create_tenant_schema('c');

-- Prisma's way: the value in one migration, its use in the next
SELECT tenant_migration_add('2', 'add happy', 'ALTER TYPE "public"."mood" ADD VALUE ''happy'';') IS NOT NULL AS added;
SELECT tenant_migration_add('3', 'use happy',
  'INSERT INTO public.items VALUES (1, ''happy'', ''x'');
   ALTER TABLE public.items ALTER COLUMN m SET DEFAULT ''happy'';') IS NOT NULL AS added;

-- tenant_migrate() applies all in one transaction: refused by PostgreSQL, with a hint
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_a')$$);
SELECT count(*) AS a_applied FROM tenant_migrations WHERE tenant_schema = 'tenant_a';

-- a fleet run commits after the enum-adding script: in this session ...
CALL tenant_migrate_all(tenants => ARRAY['tenant_a', 'tenant_b'], workers => 0);
-- ... and in background workers
CALL tenant_migrate_all(workers => 2);
SELECT tenant_schema, string_agg(version, ',' ORDER BY version) AS applied
  FROM tenant_migrations GROUP BY 1 ORDER BY 1;
SELECT m, note FROM tenant_a.items;
SELECT m, note FROM tenant_c.items;
SELECT tenant_schema, version, status, step FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_c' ORDER BY id;

-- create_tenant_schema() cannot: one transaction; the hint names create_tenant
SELECT pg_temp.try($$SELECT create_tenant_schema('d')$$);
SELECT count(*) AS d_left FROM tenant_registry WHERE schema_name = 'tenant_d';

-- create_tenant: not inside a transaction block
BEGIN;
CALL create_tenant('d');
ROLLBACK;
SELECT pg_temp.try($$CALL create_tenant('d')$$);
CALL create_tenant(NULL);
CALL create_tenant('a');

-- a DO block (not atomic) may call it
DO $$ BEGIN CALL create_tenant('d', 'Dee'); END $$;
SELECT schema_name, tenant_key, display_name, status FROM tenant_registry WHERE schema_name = 'tenant_d';
SELECT string_agg(version, ',' ORDER BY version) AS d_applied FROM tenant_migrations WHERE tenant_schema = 'tenant_d';
SELECT m, note FROM tenant_d.items;

-- CONCURRENTLY steps
SELECT tenant_migration_add('4', 'index note',
  '-- CreateIndex
CREATE INDEX CONCURRENTLY "items_note_idx" ON "public"."items"("note");
UPDATE public.items SET note = note || ''!'';
DROP INDEX CONCURRENTLY IF EXISTS public.no_such_idx;
REINDEX (CONCURRENTLY) INDEX public.items_note_idx;
REINDEX INDEX CONCURRENTLY public.items_pkey;',
  'DROP INDEX public.items_note_idx;') IS NOT NULL AS added;

-- the calls that run in the caller's transaction refuse it, with a hint
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_a')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_a', '3')$$);
SELECT pg_temp.try($$SELECT create_tenant_schema('e')$$);
SELECT * FROM tenant_migration_plan('tenant_a');

-- an existing tenant: statement by statement outside a transaction block
CALL tenant_migrate_all(tenants => ARRAY['tenant_a'], workers => 0);
CALL tenant_migrate_all(workers => 2);
SELECT n.nspname, c.relname, i.indisvalid, i.indisready
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN (SELECT schema_name FROM tenant_registry) ORDER BY 1, 2;
SELECT tenant_schema, version, rollback_sql FROM tenant_migrations WHERE version = '4' ORDER BY 1;
SELECT note FROM tenant_b.items;
SELECT version, action, status, step, error FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_a' AND version = '4' ORDER BY id;

-- a new tenant: the plain statements, in one transaction
CALL create_tenant('e');
SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = 'tenant_e'::regnamespace ORDER BY 1;
SELECT version, status, step FROM tenant_migration_log WHERE tenant_schema = 'tenant_e' ORDER BY id;

-- a failing CONCURRENTLY step: a unique index over duplicate rows
INSERT INTO tenant_b.items VALUES (2, 'sad', 'x!');
SELECT tenant_migration_add('5', 'unique note',
  'CREATE UNIQUE INDEX CONCURRENTLY items_note_key ON public.items (note);',
  'DROP INDEX public.items_note_key;') IS NOT NULL AS added;
CALL tenant_migrate_all(workers => 0);
-- the index it left INVALID, the history unrecorded, the failed step logged
SELECT n.nspname, c.relname, i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'items_note_key' AND n.nspname IN (SELECT schema_name FROM tenant_registry) ORDER BY 1;
SELECT tenant_schema FROM tenant_migrations WHERE version = '5' ORDER BY 1;
SELECT status, step, split_part(error, E'\n', 1) AS error FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_b' AND version = '5' ORDER BY id;
SELECT tenant_schema, current_version, pending, split_part(last_error, E'\n', 1) AS last_error
  FROM tenant_migration_status() WHERE tenant_schema = 'tenant_b';

-- fixed data, run again: the INVALID index is dropped first, then built
DELETE FROM tenant_b.items WHERE id = 2;
CALL tenant_migrate_all(workers => 2);
SELECT n.nspname, c.relname, i.indisvalid
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relname = 'items_note_key' AND n.nspname IN (SELECT schema_name FROM tenant_registry) ORDER BY 1;
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;
SELECT tenant_schema FROM tenant_migrations WHERE version = '5' ORDER BY 1;
SELECT status, step FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_b' AND version = '5' ORDER BY id;

-- a failing create_tenant: registered, what succeeded applied, logged, error raised
SELECT tenant_migration_add('6', 'bad', 'INSERT INTO public.items VALUES (1, ''sad'', ''dup'');
  INSERT INTO public.items VALUES (1, ''sad'', ''dup'');') IS NOT NULL AS added;
CALL create_tenant('f');
SELECT schema_name FROM tenant_registry WHERE schema_name = 'tenant_f';
SELECT string_agg(version, ',' ORDER BY version) AS f_applied FROM tenant_migrations WHERE tenant_schema = 'tenant_f';
SELECT version, status, split_part(error, E'\n', 1) AS error FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_f' AND status = 'failed';
SELECT count(*) AS f_items FROM tenant_f.items;

-- tenant_verify replays in one transaction: an enum value used by a later
-- migration is a limit it names
DELETE FROM tenant_migration_scripts WHERE version = '6';
SELECT tenant_schema, problem, split_part(detail, E'\n', 1) AS detail FROM tenant_verify('tenant_a');

-- CONCURRENTLY steps it replays as the plain statements
DROP FUNCTION pg_temp.try(text);
\i :setup
SET client_min_messages = warning;
SELECT tenant_migration_add('1', 't', 'CREATE TABLE public.t (id int, v text);') IS NOT NULL AS added;
SELECT create_tenant_schema('v');
SELECT tenant_migration_add('2', 'ix', 'CREATE INDEX CONCURRENTLY t_v_idx ON public.t (v);
REINDEX TABLE CONCURRENTLY public.t;') IS NOT NULL AS added;
CALL tenant_migrate_all(workers => 0);
SELECT * FROM tenant_verify('tenant_v');
DROP INDEX tenant_v.t_v_idx;
SELECT tenant_schema, problem FROM tenant_verify('tenant_v');

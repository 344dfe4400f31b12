--
-- containment: while a tenant script runs, the server refuses to create,
-- alter or drop anything in public or in another registered tenant's
-- schema (guard.c), however the statement got there; shared scripts,
-- extension members, tenant_migrate.shared_objects and plain sessions are
-- not restricted.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- SQLSTATE and message only, for the long ones
CREATE FUNCTION pg_temp.msg(cmd text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text; msg text;
BEGIN EXECUTE cmd; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  RETURN st || ': ' || msg;
END $f$;

-- Registers script v, applies it to tenant, unregisters it again if it
-- failed; returns 'ok' or the error
CREATE FUNCTION pg_temp.attempt(v text, up text, tenant text DEFAULT 'tenant_a',
                                full_error boolean DEFAULT false)
RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  cmd text := format('SELECT count(*) FROM tenant_migrate(%L)', tenant);
  r text;
BEGIN
  PERFORM tenant_migration_add(v, 'attempt ' || v, up);
  r := CASE WHEN full_error THEN pg_temp.try(cmd) ELSE pg_temp.msg(cmd) END;
  IF r <> 'ok' THEN
    DELETE FROM tenant_migration_scripts WHERE version = v;
  END IF;
  RETURN r;
END $f$;

-- What must stay as it is: public (without the extension's own tables)
-- and tenant_b, down to columns, indexes, triggers and grants
CREATE FUNCTION pg_temp.shape(s text) RETURNS SETOF text LANGUAGE sql AS $f$
SELECT c.relkind::text || ' ' || c.relname || coalesce(' ' || c.relacl::text, '')
       || coalesce(' (' || (SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                             WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) || ')', '')
  FROM pg_class c
 WHERE c.relnamespace = s::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
   AND c.relname NOT LIKE 'tenant\_%'
UNION ALL
SELECT 'trigger ' || tgname || ' on ' || tgrelid::regclass::text FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = s::regnamespace
   AND c.relname NOT LIKE 'tenant\_%'
UNION ALL
SELECT 'function ' || proname FROM pg_proc p WHERE p.pronamespace = s::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1
$f$;

SET tenant_migrate.progress_interval = 0;

-- Shared tables, two tenants with one table each
CREATE TABLE public.legacy_settings (k text, v text);
INSERT INTO public.legacy_settings VALUES ('theme', 'dark');
CREATE TABLE public.plans (id int PRIMARY KEY, name text);
INSERT INTO public.plans VALUES (1, 'free');
CREATE TABLE public.audit_events (tenant text, msg text);
CREATE TABLE public.old_shared (a int);
CREATE SCHEMA other;
SELECT create_tenant_schema('a'), create_tenant_schema('b');
SELECT tenant_migration_add('1', 'widgets', 'CREATE TABLE public.widgets (id int);') IS NOT NULL AS added;
SELECT version, name FROM tenant_migrate('tenant_a');
SELECT version, name FROM tenant_migrate('tenant_b');

CREATE TEMP TABLE before_public AS SELECT * FROM pg_temp.shape('public');
CREATE TEMP TABLE before_b AS SELECT * FROM pg_temp.shape('tenant_b');
SELECT * FROM before_public;

--
-- The reported case: the tenant has no legacy_settings, search_path falls
-- through to public.  Full error: message, detail (statement, reason), hint.
--
SELECT pg_temp.attempt('10', 'DROP TABLE IF EXISTS legacy_settings;', full_error => true);

--
-- Bypasses the text checks cannot see; each one would put or change
-- something in public or in tenant_b
--
-- dynamic SQL in a DO block
SELECT pg_temp.attempt('11', $s$DO $$ BEGIN EXECUTE 'CREATE TABLE public' || '.x1 (a int)'; END $$;$s$);
-- search_path set with a computed setting name, then an unqualified name
SELECT pg_temp.attempt('12', $s$SELECT set_config('search' || '_path', 'public', true); CREATE TABLE x2 (a int);$s$);
-- a function created in the tenant, then called
SELECT pg_temp.attempt('13', $s$
CREATE FUNCTION public.make_x3() RETURNS void LANGUAGE plpgsql AS $f$
BEGIN EXECUTE 'CREATE TABLE public.x3 (a int)'; END $f$;
SELECT public.make_x3();$s$);
-- the same for a function in public
SELECT pg_temp.attempt('14', $s$DO $$ BEGIN EXECUTE 'CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS ''SELECT 1'''; END $$;$s$);
-- ALTER TABLE of a public table: a new column, a rename, a default
SELECT pg_temp.attempt('15', $s$DO $$ BEGIN EXECUTE 'ALTER TABLE public.plans ADD COLUMN z int'; END $$;$s$);
SELECT pg_temp.attempt('16', $s$DO $$ BEGIN EXECUTE 'ALTER TABLE public.plans RENAME TO plans_old'; END $$;$s$);
SELECT pg_temp.attempt('17', $s$DO $$ BEGIN EXECUTE 'ALTER TABLE public.plans ALTER COLUMN name SET DEFAULT ''x'''; END $$;$s$);
-- an index, a trigger, a grant on a public table
SELECT pg_temp.attempt('18', $s$DO $$ BEGIN EXECUTE 'CREATE INDEX plans_name_idx ON public.plans (name)'; END $$;$s$);
SELECT pg_temp.attempt('19', $s$DO $$ BEGIN EXECUTE 'CREATE TRIGGER no_dup BEFORE UPDATE ON public.plans FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()'; END $$;$s$);
SELECT pg_temp.attempt('20', $s$DO $$ BEGIN EXECUTE 'GRANT SELECT ON public.plans TO PUBLIC'; END $$;$s$);
-- a table with a primary key, dropped by its unqualified name
SELECT pg_temp.attempt('21', 'DROP TABLE plans;');
-- a tenant table moved into public
SELECT pg_temp.attempt('22', $s$CREATE TABLE public.mover (a int);
DO $$ BEGIN EXECUTE 'ALTER TABLE ' || current_schema() || '.mover SET SCHEMA public'; END $$;$s$);
-- the schema itself
SELECT pg_temp.attempt('23', $s$DO $$ BEGIN EXECUTE 'ALTER SCHEMA public RENAME TO old_public'; END $$;$s$);

-- Another tenant's schema: create (full error), drop, drop the schema
SELECT pg_temp.attempt('24', $s$DO $$ BEGIN EXECUTE 'CREATE TABLE tenant_b.y (a int)'; END $$;$s$, full_error => true);
SELECT pg_temp.attempt('25', $s$DO $$ BEGIN EXECUTE 'DROP TABLE tenant_b.widgets'; END $$;$s$);
SELECT pg_temp.attempt('26', $s$DO $$ BEGIN EXECUTE 'DROP SCHEMA tenant_b CASCADE'; END $$;$s$);
-- unregistering tenant_b first does not help: the registry is read as it
-- was when the script started
SELECT pg_temp.attempt('27', $s$DELETE FROM tenant_registry WHERE schema_name = 'tenant_b';
DO $$ BEGIN EXECUTE 'DROP TABLE tenant_b.widgets'; END $$;$s$);
-- a tenant script running another tenant's migrations stays bound by its guard
SELECT tenant_migration_add('28', 'for b', 'CREATE TABLE public.b_only (a int);') IS NOT NULL AS added;
SELECT pg_temp.attempt('29', $s$SELECT count(*) FROM tenant_migrate('tenant_b');$s$);
DELETE FROM tenant_migration_scripts WHERE version = '28';

-- Nothing changed in public or in tenant_b, and the guard is gone
SELECT * FROM pg_temp.shape('public') EXCEPT ALL SELECT * FROM before_public;
SELECT * FROM before_public EXCEPT ALL SELECT * FROM pg_temp.shape('public');
SELECT * FROM pg_temp.shape('tenant_b') EXCEPT ALL SELECT * FROM before_b;
SELECT * FROM before_b EXCEPT ALL SELECT * FROM pg_temp.shape('tenant_b');
SELECT schema_name FROM tenant_registry ORDER BY 1;
SELECT * FROM legacy_settings;

--
-- What a tenant script may do
--
-- its own schema: create, alter, drop; a foreign key to a shared table
SELECT pg_temp.attempt('30', $s$
ALTER TABLE public.widgets ADD COLUMN note text;
CREATE INDEX widgets_note_idx ON public.widgets (note);
CREATE TABLE public.scratch (a int);
DROP TABLE public.scratch;
CREATE TABLE public.subscriptions (id int PRIMARY KEY, plan_id int REFERENCES plans (id));
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$;
CREATE TRIGGER touch BEFORE UPDATE ON public.widgets FOR EACH ROW EXECUTE FUNCTION public.touch();$s$);
-- rows in public tables
SELECT pg_temp.attempt('31', $s$INSERT INTO audit_events SELECT current_schema(), 'migrated';
UPDATE legacy_settings SET v = 'light' WHERE k = 'theme';$s$);
-- names in tenant_migrate.shared_objects (and what hangs off them)
SET tenant_migrate.shared_objects = 'legacy_settings';
SELECT pg_temp.attempt('32', $s$ALTER TABLE public.legacy_settings ADD COLUMN IF NOT EXISTS note text;
CREATE INDEX IF NOT EXISTS legacy_settings_k_idx ON public.legacy_settings (k);$s$);
-- an extension created by the script, and used right after
SELECT pg_temp.attempt('33', $s$CREATE EXTENSION IF NOT EXISTS citext SCHEMA public;
CREATE TABLE public.emails (e public.citext);$s$);
-- a schema that is neither public nor a tenant, and temporary tables
SELECT pg_temp.attempt('34', $s$CREATE TABLE IF NOT EXISTS other.t (a int);
CREATE TEMP TABLE tmp_rows (a int) ON COMMIT DROP;
INSERT INTO tmp_rows VALUES (1);$s$);
-- a tenant's own migrations can be undone: the foreign key's triggers on
-- public.plans go with the tenant's table
SELECT pg_temp.attempt('35', 'DROP TABLE public.subscriptions;');
-- COMMENT ON, SECURITY LABEL and GRANT on a type or domain call no object
-- access hook: they are checked before they run
CREATE DOMAIN public.shared_code AS text;
SELECT pg_temp.attempt('36', $s$DO $$ BEGIN EXECUTE 'COMMENT ON TABLE public.plans IS ''mine'''; END $$;$s$);
SELECT pg_temp.attempt('37', $s$DO $$ BEGIN EXECUTE 'COMMENT ON COLUMN tenant_b.widgets.id IS ''mine'''; END $$;$s$);
SELECT pg_temp.attempt('38', $s$DO $$ BEGIN EXECUTE 'SECURITY LABEL ON TABLE public.plans IS ''x'''; END $$;$s$);
SELECT pg_temp.attempt('39', $s$DO $$ BEGIN EXECUTE 'GRANT USAGE ON DOMAIN public.shared_code TO PUBLIC'; END $$;$s$);
-- the tenant's own objects stay free to comment on, as pg_dump output does
SELECT pg_temp.attempt('41', $s$COMMENT ON TABLE public.widgets IS 'the widgets';
COMMENT ON COLUMN public.widgets.id IS 'its id';$s$);
-- the guard remembers the schema of a table it has judged once (its
-- defaults, indexes and triggers go by it): a move forgets it, so the
-- table is judged where it is now
SELECT pg_temp.attempt('42', $s$CREATE TABLE public.memo (a int DEFAULT 1, b int);
CREATE INDEX memo_b ON public.memo (b);
DO $$ BEGIN EXECUTE 'ALTER TABLE ' || current_schema() || '.memo SET SCHEMA other'; END $$;
DO $$ BEGIN EXECUTE 'CREATE TRIGGER memo_trg BEFORE UPDATE ON other.memo FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()'; END $$;
DO $$ BEGIN EXECUTE 'ALTER TABLE other.memo SET SCHEMA public'; END $$;$s$);
SELECT obj_description('public.plans'::regclass, 'pg_class') AS plans_comment,
       col_description('tenant_b.widgets'::regclass, 1) AS b_widgets_id_comment,
       (SELECT typacl FROM pg_type WHERE oid = 'public.shared_code'::regtype) AS shared_code_acl,
       obj_description('tenant_a.widgets'::regclass, 'pg_class') AS a_widgets_comment,
       col_description('tenant_a.widgets'::regclass, 1) AS a_widgets_id_comment;

SELECT * FROM pg_temp.shape('public') EXCEPT ALL SELECT * FROM before_public ORDER BY 1;
SELECT * FROM pg_temp.shape('tenant_a') ORDER BY 1;
SELECT * FROM audit_events;
SELECT * FROM other.t;

-- Shared scripts are not restricted
SELECT tenant_migration_add('40', 'shared table', 'CREATE TABLE public.shared_new (a int); DROP TABLE public.old_shared;',
                            NULL, 'shared') IS NOT NULL AS added;
SELECT version, name FROM tenant_migrate_shared();

-- Plain sessions are not restricted
CREATE TABLE public.free (a int);
ALTER TABLE public.free ADD COLUMN b int;
CREATE TABLE tenant_b.free (a int);
DROP TABLE public.free, tenant_b.free;

--
-- A fleet run hits the same guard: tenant_c fails with a WARNING, the
-- others are migrated
--
SET client_min_messages = warning;
SELECT create_tenant_schema('c');
SELECT tenant_migration_add('50', 'c leaks', $s$DO $$ BEGIN
  IF current_schema() = 'tenant_c' THEN EXECUTE 'CREATE TABLE public.c_only (a int)'; END IF;
END $$;
CREATE TABLE public.fleet_done (a int);$s$) IS NOT NULL AS added;
\set VERBOSITY terse
CALL tenant_migrate_all();
\set VERBOSITY default
RESET client_min_messages;
SELECT tenant_schema, version FROM tenant_migrations WHERE version = '50' ORDER BY 1;
SELECT tenant_schema, status, split_part(error, E'\n', 1) AS error
  FROM tenant_migration_log WHERE version = '50' ORDER BY 1;
RESET tenant_migrate.shared_objects;
SELECT to_regclass('public.c_only') IS NULL AS no_c_only,
       to_regclass('tenant_c.fleet_done') IS NULL AS c_rolled_back;

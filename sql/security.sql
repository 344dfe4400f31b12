--
-- security: the attacks of the security review, each shown to fail, with
-- the legitimate use next to it still working.
--
-- Roles as in the review: app_owner owns the database (not superuser);
-- migrator has what tenant_migrate_grant() gives plus CREATE on the
-- database; the superuser running this file stands for an operator or a
-- pg_cron job.  Every "evil" function records the role it ran as in
-- evil_calls; it must stay empty, and nobody may become superuser.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup
SELECT current_database() AS dbname \gset
SET tenant_migrate.progress_interval = 0;
-- the closing NOTICE of a fleet run holds a duration
SET client_min_messages = warning;

CREATE ROLE regress_tm_app_owner;
CREATE ROLE regress_tm_migrator;
SELECT tenant_migrate_grant('regress_tm_migrator') > 0 AS granted;
GRANT CREATE ON DATABASE :"dbname" TO regress_tm_migrator;
ALTER DATABASE :"dbname" OWNER TO regress_tm_app_owner;

CREATE TABLE public.evil_calls (who name, what text);
GRANT INSERT ON public.evil_calls TO PUBLIC;
CREATE FUNCTION pg_temp.superusers() RETURNS text LANGUAGE sql AS
$$ SELECT coalesce(string_agg(rolname, ',' ORDER BY rolname), 'none') FROM pg_roles
    WHERE rolsuper AND rolname LIKE 'regress_tm%' $$;

--
-- 1. Operator capture: app_owner (owner of the database, and so of public)
-- plants public.= for numeric[], the type of the version sort key.  None
-- of the superuser's calls may run it.
--
SET ROLE regress_tm_app_owner;
CREATE FUNCTION public.evil_eq(numeric[], numeric[]) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.evil_calls VALUES (current_user, 'evil_eq');
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER ROLE regress_tm_app_owner SUPERUSER;
  END IF;
  RETURN $1::text = $2::text;
END $$;
CREATE OPERATOR public.= (LEFTARG = numeric[], RIGHTARG = numeric[], FUNCTION = public.evil_eq);
CREATE OPERATOR public.<= (LEFTARG = numeric[], RIGHTARG = numeric[], FUNCTION = public.evil_eq);
CREATE OPERATOR public.> (LEFTARG = numeric[], RIGHTARG = numeric[], FUNCTION = public.evil_eq);
RESET ROLE;
SHOW search_path;
SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int)', 'DROP TABLE public.items') IS NOT NULL AS added;
SELECT tenant_migration_add('2', 'tags', 'CREATE TABLE public.tags (id int)', 'DROP TABLE public.tags') IS NOT NULL AS added;
SELECT create_tenant_schema('sec_a');
SELECT tenant_migration_add('3', 'notes', 'CREATE TABLE public.notes (id int)', 'DROP TABLE public.notes',
                            depends_on => '{2}') IS NOT NULL AS added;
SELECT version FROM tenant_migration_plan('tenant_sec_a', '3');
SELECT version FROM tenant_migrate('tenant_sec_a', '3');
SELECT version FROM tenant_rollback('tenant_sec_a', '2');
CALL tenant_migrate_all('3');
CALL tenant_rollback_all('2');
SELECT version FROM tenant_migrations WHERE tenant_schema = 'tenant_sec_a' ORDER BY version;
SELECT count(*) AS evil_calls FROM public.evil_calls;
SELECT pg_temp.superusers() AS superusers;

--
-- 2. The audit writer: a database-level search_path leading to a domain
-- "name" whose CHECK escalates.  A failing one-tenant call writes its log
-- row through a background worker, which must not resolve anything there.
--
SET ROLE regress_tm_app_owner;
CREATE SCHEMA evil;
CREATE FUNCTION evil.check_name(text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.evil_calls VALUES (current_user, 'check_name');
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER ROLE regress_tm_app_owner SUPERUSER;
  END IF;
  RETURN true;
END $$;
CREATE DOMAIN evil.name AS text CHECK (evil.check_name(VALUE));
GRANT USAGE ON SCHEMA evil TO PUBLIC;
ALTER DATABASE :"dbname" SET search_path = evil, pg_catalog, public;
RESET ROLE;
SELECT version FROM tenant_migrate('tenant_sec_a');
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('4', 'fails', 'INSERT INTO public.no_such_table VALUES (1)') IS NOT NULL AS added;
\set VERBOSITY terse
SELECT * FROM tenant_migrate('tenant_sec_a');
\set VERBOSITY default
RESET ROLE;
SELECT version, action, status, performed_by FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_sec_a' AND status = 'failed' ORDER BY id;
SELECT count(*) AS evil_calls FROM public.evil_calls;
SELECT pg_temp.superusers() AS superusers;
ALTER DATABASE :"dbname" RESET search_path;

-- start again from nothing for the migration role
DROP SCHEMA tenant_sec_a CASCADE;
DELETE FROM tenant_migrations;
DELETE FROM tenant_registry;
DELETE FROM tenant_migration_scripts;

--
-- 3. Scripts run as the role that registered them.  migrator's script
-- would escalate if a superuser ran it; run by the superuser's fleet run it
-- runs as migrator.  (migrator cannot run the superuser's scripts, see
-- below, and nobody can edit a script or a recorded rollback but through
-- the functions: sql/privileges.sql.)
--
SET ROLE regress_tm_migrator;
SELECT create_tenant_schema('sec_m');
SELECT tenant_migration_add('5', 'who_runs_me', $$
DO $do$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER ROLE regress_tm_migrator SUPERUSER;
  END IF;
END $do$;
CREATE TABLE public.who AS SELECT current_user AS who, session_user AS via;
$$, 'DROP TABLE public.who') IS NOT NULL AS added;
RESET ROLE;
CALL tenant_migrate_all();
SELECT who, via FROM tenant_sec_m.who;
SELECT pg_temp.superusers() AS superusers;
-- ... the author's SET ROLE way out is closed too
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('6', 'set_role', $$SELECT set_config('ro' || 'le', 'postgres', true)$$) IS NOT NULL AS added;
RESET ROLE;
\set VERBOSITY terse
SELECT * FROM tenant_migrate('tenant_sec_m');
\set VERBOSITY default
DELETE FROM tenant_migration_scripts WHERE version = '6';
-- A script text changed behind the extension's back is not run: the
-- checksum is computed again before every apply
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('7', 'tampered', 'CREATE TABLE public.t7 (id int)') IS NOT NULL AS added;
RESET ROLE;
UPDATE tenant_migration_scripts SET up_sql = 'DROP TABLE public.who' WHERE version = '7';
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_sec_m')$$);
SELECT to_regclass('tenant_sec_m.who') IS NOT NULL AS who_still_there;
DELETE FROM tenant_migration_scripts WHERE version = '7';
-- Only the author (or a member of it) changes a script; it runs as the
-- author whoever changes it
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('8', 'mine', 'CREATE TABLE public.t8 (id int)') IS NOT NULL AS added;
RESET ROLE;
SELECT tenant_migration_add('8', 'mine', 'CREATE TABLE public.t8 (id int, note text)') IS NOT NULL AS superuser_edit;
SELECT version, registered_by FROM tenant_migration_scripts WHERE version = '8';
SET ROLE regress_tm_app_owner;
SELECT pg_temp.try($$SELECT tenant_migration_add('8', 'mine', 'DROP TABLE public.who')$$);
RESET ROLE;
DELETE FROM tenant_migration_scripts WHERE version = '8';
-- ... and a role that lacks the author's rights cannot run its scripts
SELECT tenant_migration_add('9', 'superuser_only', 'CREATE TABLE public.t9 (id int)') IS NOT NULL AS added;
SET ROLE regress_tm_migrator;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_sec_m')$$);
RESET ROLE;

--
-- 5. The owner of a tenant schema cannot capture a more privileged
-- author: migrator owns tenant_sec_m and plants tenant_sec_m.lower(varchar);
-- the superuser's script 9 (and a routine data migration) is refused there.
--
SET ROLE regress_tm_migrator;
CREATE TABLE tenant_sec_m.users (email varchar);
CREATE FUNCTION tenant_sec_m.lower(varchar) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.evil_calls VALUES (current_user, 'lower');
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    ALTER ROLE regress_tm_migrator SUPERUSER;
  END IF;
  RETURN pg_catalog.lower($1);
END $$;
RESET ROLE;
SELECT tenant_migration_add('10', 'lower_emails', 'UPDATE public.users SET email = lower(email)') IS NOT NULL AS added;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_sec_m')$$);
SELECT count(*) AS evil_calls FROM public.evil_calls;
SELECT pg_temp.superusers() AS superusers;
-- the same holds for a role that was granted CREATE on the tenant schema:
-- migrator's own scripts no longer run there
DELETE FROM tenant_migration_scripts WHERE version IN ('9', '10');
DROP FUNCTION tenant_sec_m.lower(varchar);
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('11', 'mine_too', 'CREATE TABLE public.t11 (id int)') IS NOT NULL AS added;
GRANT CREATE ON SCHEMA tenant_sec_m TO regress_tm_app_owner;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_sec_m')$$);
REVOKE CREATE ON SCHEMA tenant_sec_m FROM regress_tm_app_owner;
SELECT version FROM tenant_migrate('tenant_sec_m');
RESET ROLE;

--
-- 4. Tenant schema names: only letters, digits and underscores, wherever
-- they come from
--
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key)
                     VALUES ('x''::text));ALTER ROLE regress_tm_migrator SUPERUSER;--', 'x')$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('pg_temp_1', 'y')$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('information_schema', 'z')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('x''::text));ALTER ROLE regress_tm_migrator SUPERUSER;--')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant a')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_rollback('pg_catalog')$$);
SELECT pg_temp.try($$SELECT tenant_set('information_schema')$$);

--
-- 13. Audit rows name the role that called the extension, even when the
-- failing statement runs inside a SECURITY DEFINER function of another role
--
SET ROLE regress_tm_app_owner;
CREATE FUNCTION public.boom() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN RAISE EXCEPTION 'boom as %', current_user; END $$;
GRANT EXECUTE ON FUNCTION public.boom() TO regress_tm_migrator;
RESET ROLE;
SET tenant_migrate.shared_objects = 'boom';
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('12', 'boom', 'SELECT public.boom()') IS NOT NULL AS added;
\set VERBOSITY terse
SELECT * FROM tenant_migrate('tenant_sec_m');
\set VERBOSITY default
RESET ROLE;
RESET tenant_migrate.shared_objects;
SELECT version, action, status, performed_by, split_part(error, E'\n', 1) AS error
  FROM tenant_migration_log WHERE version = '12' ORDER BY id;

-- (from here on, no tenant scripts and no tenants)
DROP SCHEMA tenant_sec_m CASCADE;
DELETE FROM tenant_migrations;
DELETE FROM tenant_registry;
DELETE FROM tenant_migration_scripts;

--
-- 9. A fleet run over a list of 20,000 tenants is a few set operations:
-- it returns at once (no tenant script is registered, so every tenant is
-- up to date), well within a statement_timeout the old per-name scan
-- (35 s, not cancellable) ran past
--
INSERT INTO tenant_registry (schema_name, tenant_key)
SELECT 'tenant_n' || i, 'n' || i FROM generate_series(1, 20000) i;
SELECT array_agg('tenant_n' || i)::text AS names FROM generate_series(1, 20000) i \gset
SET statement_timeout = '5s';
CALL tenant_migrate_all(tenants => :'names');
-- one name that is not a tenant: nothing is done, and the error names it
\set VERBOSITY terse
CALL tenant_migrate_all(tenants => (:'names'::text[] || '{tenant_nope}'::text[]));
\set VERBOSITY default
RESET statement_timeout;
SELECT count(*) AS log_rows FROM tenant_migration_log WHERE tenant_schema LIKE 'tenant\_n%';
DELETE FROM tenant_registry WHERE schema_name LIKE 'tenant\_n%';

-- Clean up
SET client_min_messages = warning;
ALTER DATABASE :"dbname" OWNER TO CURRENT_USER;
DROP SCHEMA IF EXISTS evil CASCADE;
DROP TABLE public.evil_calls;
DROP FUNCTION public.boom();
DROP OPERATOR public.= (numeric[], numeric[]);
DROP OPERATOR public.<= (numeric[], numeric[]);
DROP OPERATOR public.> (numeric[], numeric[]);
DROP FUNCTION public.evil_eq(numeric[], numeric[]);
DELETE FROM tenant_migration_log;
REVOKE CREATE ON DATABASE :"dbname" FROM regress_tm_migrator;
DROP OWNED BY regress_tm_app_owner, regress_tm_migrator;
DROP ROLE regress_tm_app_owner, regress_tm_migrator;
RESET client_min_messages;

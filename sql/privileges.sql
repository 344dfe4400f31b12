--
-- privileges: who may do what, function by function and table by table.
--
-- The model (README.md, "Security model"): nothing is granted to PUBLIC; a
-- migration role gets exactly the extension's objects from
-- tenant_migrate_grant() (EXECUTE on its functions and procedures, SELECT
-- on its tables and view); nobody but the tables' owner (the superuser who
-- created the extension) can write the tables directly, so history,
-- recorded rollback SQL and log change only through the functions; scripts
-- run as the role that registered them.
--
-- Roles, as in the security review: app_owner owns the database objects of
-- the application (not superuser); migrator has what tenant_migrate_grant()
-- gives plus CREATE on the database; nobody has nothing; tenant is an
-- application role that uses one tenant schema.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

CREATE ROLE regress_tm_app_owner;
CREATE ROLE regress_tm_migrator;
CREATE ROLE regress_tm_nobody;
CREATE ROLE regress_tm_tenant;

-- tenant_migrate_grant() grants exactly the extension's objects: a
-- function of another extension that was revoked stays revoked
CREATE FUNCTION public.other_ext_like_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
REVOKE ALL ON FUNCTION public.other_ext_like_fn() FROM PUBLIC;
SELECT tenant_migrate_grant('regress_tm_migrator') AS objects_granted;
SELECT has_function_privilege('regress_tm_migrator', 'public.other_ext_like_fn()', 'EXECUTE') AS other_fn;
DROP FUNCTION public.other_ext_like_fn();
-- ... but not itself: a migration role cannot hand rights on
SET ROLE regress_tm_migrator;
SELECT pg_temp.try($$SELECT tenant_migrate_grant('regress_tm_nobody')$$);
RESET ROLE;
GRANT CREATE ON DATABASE contrib_regression TO regress_tm_migrator;

-- A call of every function (CALL for procedures) of the extension, with
-- harmless non-NULL arguments of the right types
CREATE TEMP VIEW ext_calls AS
SELECT p.proname,
       pg_get_function_identity_arguments(p.oid) AS args,
       format(CASE p.prokind WHEN 'p' THEN 'CALL %s(%s)' ELSE 'SELECT * FROM %s(%s)' END,
              p.oid::regproc,
              coalesce((SELECT string_agg(CASE t WHEN 'boolean'::regtype THEN 'false'
                                                 WHEN 'text[]'::regtype THEN '''{}''::text[]'
                                                 WHEN 'regrole'::regtype THEN '''regress_tm_nobody''::regrole'
                                                 ELSE '''1''::' || format_type(t, NULL) END,
                                          ', ' ORDER BY n)
                          FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n)), '')) AS call
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate');
GRANT SELECT ON ext_calls TO PUBLIC;

-- only the SQLSTATE of an error, or ok: the matrix below is about rights
CREATE FUNCTION pg_temp.state(cmd text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text;
BEGIN EXECUTE cmd; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE;
  RETURN st;
END $f$;

-- Something to protect: a script, a tenant, its history -- all made by the
-- migration role, which therefore owns the tenant schema
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('1', 'secret', 'CREATE TABLE public.secrets (v text)',
                            'DROP TABLE public.secrets') IS NOT NULL AS ok;
SELECT create_tenant_schema('priv_a');
GRANT USAGE ON SCHEMA tenant_priv_a TO regress_tm_tenant;
RESET ROLE;

-- No PUBLIC grant on any object of the extension but tenant_version_key
-- (an immutable sort key that reads no table)
SELECT c.relname, c.relkind,
       NOT EXISTS (SELECT 1 FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x
                    WHERE x.grantee = 0) AS no_public_grant
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
 ORDER BY c.relname;
SELECT p.proname,
       NOT EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x
                    WHERE x.grantee = 0) AS no_public_grant
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
 ORDER BY p.proname;

-- Every function and procedure, as each role: ok, or the SQLSTATE.
-- 42501 is "no EXECUTE"; for migrator the calls run and fail (or not) on
-- their harmless arguments, never on a privilege of the extension's tables.
CREATE TEMP TABLE call_matrix (proname name, args text, role text, result text);
GRANT INSERT ON call_matrix TO PUBLIC;
SET ROLE regress_tm_nobody;
INSERT INTO call_matrix SELECT proname, args, 'nobody', pg_temp.state(call) FROM ext_calls;
RESET ROLE;
SET ROLE regress_tm_tenant;
INSERT INTO call_matrix SELECT proname, args, 'tenant', pg_temp.state(call) FROM ext_calls;
RESET ROLE;
SET ROLE regress_tm_app_owner;
INSERT INTO call_matrix SELECT proname, args, 'app_owner', pg_temp.state(call) FROM ext_calls;
RESET ROLE;
SET ROLE regress_tm_migrator;
INSERT INTO call_matrix SELECT proname, args, 'migrator', pg_temp.state(call) FROM ext_calls;
RESET ROLE;
SELECT proname, args,
       max(result) FILTER (WHERE role = 'nobody') AS nobody,
       max(result) FILTER (WHERE role = 'tenant') AS tenant,
       max(result) FILTER (WHERE role = 'app_owner') AS app_owner,
       max(result) FILTER (WHERE role = 'migrator') AS migrator
  FROM call_matrix GROUP BY 1, 2 ORDER BY 1, 2;

-- Every table, the view and the sequence, as each role: which privileges
-- it holds.  migrator reads; nobody writes but the owner.
SELECT c.relname, r.role,
       has_table_privilege(r.role, c.oid, 'SELECT') AS sel,
       has_table_privilege(r.role, c.oid, 'INSERT') AS ins,
       has_table_privilege(r.role, c.oid, 'UPDATE') AS upd,
       has_table_privilege(r.role, c.oid, 'DELETE') AS del,
       has_table_privilege(r.role, c.oid, 'TRUNCATE') AS trunc
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  CROSS JOIN (VALUES ('regress_tm_nobody'), ('regress_tm_tenant'),
                     ('regress_tm_app_owner'), ('regress_tm_migrator')) AS r(role)
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
   AND c.relkind IN ('r', 'v', 'S')
 ORDER BY c.relname, r.role;

-- The writes a migration role could use to escalate are refused
SET ROLE regress_tm_migrator;
SELECT pg_temp.try($$UPDATE tenant_migrations SET rollback_sql = 'DROP TABLE tenant_priv_a.secrets'$$);
SELECT pg_temp.try($$UPDATE tenant_migration_scripts SET up_sql = 'DROP TABLE public.secrets'$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('tenant_x', 'x')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_log (tenant_schema, action, status) VALUES ('tenant_x', 'up', 'ok')$$);
SELECT pg_temp.try($$DELETE FROM tenant_migration_log$$);
-- ... while reading works
SELECT count(*) AS scripts FROM tenant_migration_scripts;
RESET ROLE;

-- nobody and the tenant role see neither the history nor the tenant's tables
SET ROLE regress_tm_nobody;
SELECT pg_temp.try('SELECT * FROM tenant_migrations');
SELECT pg_temp.try('SELECT * FROM tenant_priv_a.secrets');
RESET ROLE;
SET ROLE regress_tm_tenant;
SELECT pg_temp.try('SELECT * FROM tenant_migration_log');
RESET ROLE;

-- The legitimate path for the migration role, end to end: register,
-- create a tenant, migrate, roll back; its scripts run as itself
SET ROLE regress_tm_migrator;
SELECT tenant_migration_add('2', 'mig_notes', 'CREATE TABLE public.mig_notes (id int)',
                            'DROP TABLE public.mig_notes') IS NOT NULL AS registered;
SELECT create_tenant_schema('priv_m');
SELECT version FROM tenant_migrate('tenant_priv_a');
SELECT version FROM tenant_rollback('tenant_priv_m');
RESET ROLE;
-- a superuser (pg_cron, an operator) runs the migration role's scripts:
-- they still run as the migration role, which owns what they create
SET tenant_migrate.progress_interval = 0;
SET client_min_messages = warning;
CALL tenant_migrate_all();
RESET client_min_messages;
SELECT c.oid::regclass AS relation, pg_get_userbyid(c.relowner) AS owner
  FROM pg_class c
 WHERE c.relnamespace IN ('tenant_priv_a'::regnamespace, 'tenant_priv_m'::regnamespace)
 ORDER BY 1;
SELECT tenant_schema, version, applied_by FROM tenant_migrations ORDER BY 1, 2;
-- (a fleet run's rows in tenant order: its workers commit in any order)
SELECT tenant_schema, version, action, status, performed_by FROM tenant_migration_log
 ORDER BY run_id NULLS FIRST, CASE WHEN run_id IS NULL THEN id END, tenant_schema, id;

-- Clean up
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS tenant_priv_a, tenant_priv_m, tenant_1 CASCADE;
DELETE FROM tenant_migrations;
DELETE FROM tenant_migration_log;
DELETE FROM tenant_registry;
DELETE FROM tenant_migration_scripts;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_tm_migrator;
DROP OWNED BY regress_tm_app_owner, regress_tm_migrator, regress_tm_nobody, regress_tm_tenant;
DROP ROLE regress_tm_app_owner, regress_tm_migrator, regress_tm_nobody, regress_tm_tenant;
RESET client_min_messages;

--
-- install: CREATE EXTENSION, the control file's promises, comments, table
-- constraints, pg_dump marking, the function signatures and the settings.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- The extension is installed in public, at version 1.0, not relocatable
SELECT e.extname, n.nspname AS schema, e.extversion, e.extrelocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'tenant_migrate';

-- ... so it cannot be moved to another schema (and stays in public)
CREATE SCHEMA regress_tm_elsewhere;
SELECT pg_temp.try('ALTER EXTENSION tenant_migrate SET SCHEMA regress_tm_elsewhere');
SELECT n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'tenant_migrate';
DROP SCHEMA regress_tm_elsewhere;

-- Every object that belongs to the extension, all of them in public
SELECT pg_describe_object(d.classid, d.objid, 0) AS object,
       coalesce(c.relnamespace, p.pronamespace)::regnamespace AS schema
  FROM pg_depend d
  LEFT JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
  LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
 WHERE d.deptype = 'e'
   AND d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
 ORDER BY 1;

-- Every function (with its argument list, so a signature change shows up
-- here) and what it returns
SELECT p.proname,
       pg_get_function_identity_arguments(p.oid) AS identity_args,
       pg_get_function_result(p.oid) AS result,
       p.provolatile, p.proisstrict, p.prosecdef
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
 ORDER BY p.proname, 2;

-- Defaults of the arguments, as callers see them
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
   AND p.pronargdefaults > 0
 ORDER BY p.proname;

-- The four tables' columns, types, nullability and defaults
SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, pg_get_expr(ad.adbin, ad.adrelid) AS "default"
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
 WHERE c.relnamespace = 'public'::regnamespace
   AND c.relname IN ('tenant_registry', 'tenant_migration_scripts',
                     'tenant_migrations', 'tenant_migration_log')
 ORDER BY c.relname, a.attnum;

-- ... and their constraints
SELECT conrelid::regclass AS "table", conname, contype,
       pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE conrelid IN ('public.tenant_registry'::regclass,
                    'public.tenant_migration_scripts'::regclass,
                    'public.tenant_migrations'::regclass,
                    'public.tenant_migration_log'::regclass)
 ORDER BY conrelid::regclass::text, conname;

-- Comments: every table, every table column, every function and the view
-- has one (the query lists what has none; expected: no rows)
WITH ext AS (
  SELECT classid, objid
    FROM pg_depend
   WHERE deptype = 'e'
     AND refclassid = 'pg_extension'::regclass
     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
), objs AS (
  SELECT e.classid, e.objid, 0 AS objsubid
    FROM ext e
    LEFT JOIN pg_class c ON e.classid = 'pg_class'::regclass AND c.oid = e.objid
   WHERE e.classid = 'pg_proc'::regclass OR c.relkind IN ('r', 'v')
  UNION ALL
  SELECT e.classid, e.objid, a.attnum
    FROM ext e
    JOIN pg_class c ON e.classid = 'pg_class'::regclass AND c.oid = e.objid AND c.relkind = 'r'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
)
SELECT pg_describe_object(o.classid, o.objid, o.objsubid) AS without_comment
  FROM objs o
  LEFT JOIN pg_description d
    ON d.classoid = o.classid AND d.objoid = o.objid AND d.objsubid = o.objsubid
 WHERE d.description IS NULL OR d.description = ''
 ORDER BY 1;

-- ... and how many comments there are (tables and the view, table columns,
-- functions and procedures)
SELECT count(*) FILTER (WHERE d.objsubid = 0 AND d.classoid = 'pg_class'::regclass) AS relations,
       count(*) FILTER (WHERE d.objsubid > 0) AS columns,
       count(*) FILTER (WHERE d.classoid = 'pg_proc'::regclass) AS functions
  FROM pg_description d
  JOIN pg_depend e ON e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e'
 WHERE e.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate');

-- pg_dump keeps the tables' contents (and the log's sequence): extconfig
-- lists them, with no filter condition
SELECT u.rel::regclass AS config_relation, u.cond AS condition
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(rel, cond)
 WHERE e.extname = 'tenant_migrate'
 ORDER BY u.rel::regclass::text;

-- ... every table of the extension is among them, but tenant_verify's cache
SELECT c.relname AS table_not_dumped
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
   AND c.relkind IN ('r', 'S')
   AND c.oid NOT IN (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'tenant_migrate');

-- Constraints hold for rows written directly, bypassing the functions.
-- tenant_registry: status, key format, public is no tenant, unique key
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key, status) VALUES ('tenant_a', 'a', 'deleted')$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('tenant_a', 'a-b')$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('public', 'p')$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key, status) VALUES ('tenant_a', 'a', NULL)$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('tenant_a', 'a'), ('tenant_b', 'a')$$);
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('tenant_a', 'a'), ('tenant_a', 'b')$$);
-- ... defaults: active, empty metadata, a creation time
INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('tenant_a', 'a');
SELECT schema_name, tenant_key, display_name, status, metadata, created_at IS NOT NULL AS has_created_at
  FROM tenant_registry;
DELETE FROM tenant_registry;

-- tenant_migration_scripts: version format, scope, checksum format, name
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum) VALUES ('v1', 'n', 'SELECT 1', repeat('a', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum) VALUES ('1..2', 'n', 'SELECT 1', repeat('a', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum, scope) VALUES ('1', 'n', 'SELECT 1', repeat('a', 64), 'global')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum) VALUES ('1', 'n', 'SELECT 1', 'abc')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum) VALUES ('1', 'n', 'SELECT 1', repeat('A', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum) VALUES ('1', NULL, 'SELECT 1', repeat('a', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum) VALUES ('1', 'n', NULL, repeat('a', 64))$$);
-- ... defaults: scope tenant, no dependencies, registered now by the current role
BEGIN;
INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum)
VALUES ('1', 'n', 'SELECT 1', repeat('a', 64));
SELECT version, scope, depends_on, down_sql, registered_at = now() AS registered_now,
       registered_by = current_user AS registered_by_me
  FROM tenant_migration_scripts;
COMMIT;

-- tenant_migrations: the version must be registered; one row per schema and version
SELECT pg_temp.try($$INSERT INTO tenant_migrations (tenant_schema, version, name, checksum) VALUES ('tenant_a', '2', 'n', repeat('a', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migrations (tenant_schema, version, name, checksum) VALUES ('tenant_a', '1', 'n', repeat('a', 64)), ('tenant_a', '1', 'n', repeat('a', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migrations (tenant_schema, version, name, checksum) VALUES (NULL, '1', 'n', repeat('a', 64))$$);
-- ... and a registered script that is applied cannot be deleted
INSERT INTO tenant_migrations (tenant_schema, version, name, checksum)
VALUES ('tenant_a', '1', 'n', repeat('a', 64));
SELECT pg_temp.try($$DELETE FROM tenant_migration_scripts WHERE version = '1'$$);
SELECT tenant_schema, version, applied_by = current_user AS applied_by_me, duration_ms
  FROM tenant_migrations;
DELETE FROM tenant_migrations;
DELETE FROM tenant_migration_scripts;

-- tenant_migration_log: action and status
SELECT pg_temp.try($$INSERT INTO tenant_migration_log (tenant_schema, version, action, status) VALUES ('tenant_a', '1', 'sideways', 'ok')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_log (tenant_schema, version, action, status) VALUES ('tenant_a', '1', 'up', 'done')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_log (tenant_schema, version, action, status) VALUES ('tenant_a', '1', NULL, 'ok')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_log (tenant_schema, version, action, status) VALUES ('tenant_a', '1', 'up', NULL)$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_log (tenant_schema, version, action, status) VALUES ('tenant_a', '1', 'up', 'ok'), ('tenant_a', '1', 'down', 'failed'), ('tenant_a', NULL, 'baseline', 'skipped')$$);
SELECT count(*) AS log_rows FROM tenant_migration_log;

-- The settings: loading the library (any C function of the extension does)
-- defines the five of them with their defaults
SELECT tenant_migration_rewrite('SELECT 1', 'tenant_x');
SHOW tenant_migrate.schema_prefix;
SHOW tenant_migrate.shared_objects;
SHOW tenant_migrate.lock_timeout;
SHOW tenant_migrate.lock_retries;
SHOW tenant_migrate.progress_interval;
SELECT name, setting, unit, vartype, context, boot_val, min_val, max_val
  FROM pg_settings
 WHERE name LIKE 'tenant_migrate.%'
 ORDER BY name;

-- The prefix ends up inside identifiers and literals: only letters, digits
-- and underscores, and it must leave room for a key
SELECT pg_temp.try($$SET tenant_migrate.schema_prefix = 'tenant-'$$);
SELECT pg_temp.try($$SET tenant_migrate.schema_prefix = 'ten"ant_'$$);
SELECT pg_temp.try($$SET tenant_migrate.schema_prefix = 'ten''ant_'$$);
SELECT pg_temp.try($$SET tenant_migrate.schema_prefix = 'tenant _'$$);
SELECT pg_temp.try($$SET tenant_migrate.schema_prefix = 'tenant.'$$);
SELECT pg_temp.try(format('SET tenant_migrate.schema_prefix = %L', repeat('p', 63)));
SHOW tenant_migrate.schema_prefix;
-- ... 62 bytes leave room for a one-byte key
SELECT pg_temp.try(format('SET tenant_migrate.schema_prefix = %L', repeat('p', 62)));
SELECT length(current_setting('tenant_migrate.schema_prefix')) AS prefix_length;
RESET tenant_migrate.schema_prefix;
-- ... a good one is taken, and used by create_tenant_schema
SET tenant_migrate.schema_prefix = 'org_';
SHOW tenant_migrate.schema_prefix;
SELECT create_tenant_schema('acme');
SELECT schema_name, tenant_key FROM tenant_registry;
SELECT nspname FROM pg_namespace WHERE nspname IN ('org_acme', 'tenant_acme');
RESET tenant_migrate.schema_prefix;
-- ... refused through set_config() too; the other settings check their
-- values as well
SELECT pg_temp.try($$SELECT set_config('tenant_migrate.schema_prefix', 'x-', false)$$);
SELECT pg_temp.try($$SET tenant_migrate.shared_objects = 'a,,b'$$);
SELECT pg_temp.try($$SET tenant_migrate.lock_timeout = -1$$);
SELECT pg_temp.try($$SET tenant_migrate.lock_retries = 101$$);
SELECT pg_temp.try($$SET tenant_migrate.progress_interval = '2d'$$);
-- ... and the prefix is reserved: a misspelt setting is an error, not a placeholder
SELECT pg_temp.try($$SET tenant_migrate.schema_prefx = 'x_'$$);

-- shared_objects widens what every tenant script may change in public, so
-- only a superuser sets it (42501 for anyone else, also through set_config()
-- and ALTER ROLE ... SET); a superuser may set it for a role or a database
CREATE ROLE regress_tm_guc_user;
SET ROLE regress_tm_guc_user;
SELECT pg_temp.try($$SET tenant_migrate.shared_objects = 'plans'$$);
SELECT pg_temp.try($$SELECT set_config('tenant_migrate.shared_objects', 'plans', false)$$);
SELECT pg_temp.try($$ALTER ROLE regress_tm_guc_user SET tenant_migrate.shared_objects = 'plans'$$);
SHOW tenant_migrate.shared_objects;
RESET ROLE;
SET tenant_migrate.shared_objects = 'plans, public.feature_flags';
SHOW tenant_migrate.shared_objects;
RESET tenant_migrate.shared_objects;
ALTER ROLE regress_tm_guc_user SET tenant_migrate.shared_objects = 'plans';
SELECT unnest(setconfig) AS role_setting
  FROM pg_db_role_setting
 WHERE setrole = 'regress_tm_guc_user'::regrole;
DROP ROLE regress_tm_guc_user;

-- Upgrade path: 1.0 is the only version so far, nothing to update from
SELECT version FROM pg_available_extension_versions
 WHERE name = 'tenant_migrate' ORDER BY version;

-- Clean up
DROP SCHEMA org_acme CASCADE;
DELETE FROM tenant_registry;
DELETE FROM tenant_migration_log;

-- Installing takes a superuser (the control file says superuser = true: the
-- install script creates C functions).  A role that owns the database and
-- may create in public gets the standard 42501; a superuser succeeds.  In
-- one transaction that is rolled back, so the extension installed by the
-- setup stays as it was.
SELECT current_database() AS dbname \gset
BEGIN;
CREATE ROLE regress_tm_app_owner;
ALTER DATABASE :"dbname" OWNER TO regress_tm_app_owner;
GRANT CREATE ON SCHEMA public TO regress_tm_app_owner;
DROP EXTENSION tenant_migrate;
SET ROLE regress_tm_app_owner;
SELECT pg_temp.try('CREATE EXTENSION tenant_migrate');
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'tenant_migrate';
RESET ROLE;
CREATE EXTENSION tenant_migrate;
SELECT e.extname, r.rolsuper AS owner_is_superuser
  FROM pg_extension e JOIN pg_roles r ON r.oid = e.extowner
 WHERE e.extname = 'tenant_migrate';
ROLLBACK;
SELECT count(*) AS roles_left FROM pg_roles WHERE rolname = 'regress_tm_app_owner';
SELECT extname, extversion FROM pg_extension WHERE extname = 'tenant_migrate';

-- A value a non-superuser set before the library was loaded (a placeholder
-- then) is dropped with a warning when the library defines the setting.
-- A new connection has not loaded it yet.
\c
CREATE ROLE regress_tm_guc_user;
GRANT EXECUTE ON FUNCTION tenant_migration_rewrite(text, text) TO regress_tm_guc_user;
SET ROLE regress_tm_guc_user;
SET tenant_migrate.shared_objects = 'plans';
SELECT tenant_migration_rewrite('SELECT * FROM public.plans', 'tenant_x');
SHOW tenant_migrate.shared_objects;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION tenant_migration_rewrite(text, text) FROM regress_tm_guc_user;
DROP ROLE regress_tm_guc_user;

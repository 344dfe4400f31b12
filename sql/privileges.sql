--
-- privileges: a role that was granted nothing can neither run the
-- extension's functions that change or reveal anything nor touch its tables;
-- EXECUTE alone does not open the tables; nothing is granted to PUBLIC.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- A call of every function (CALL for procedures) of the extension, with
-- harmless non-NULL arguments of the right types
CREATE TEMP VIEW ext_calls AS
SELECT p.proname,
       pg_get_function_identity_arguments(p.oid) AS args,
       format(CASE p.prokind WHEN 'p' THEN 'CALL %s(%s)' ELSE 'SELECT * FROM %s(%s)' END,
              p.oid::regproc,
              coalesce((SELECT string_agg(CASE t WHEN 'boolean'::regtype THEN 'false'
                                                 WHEN 'text[]'::regtype THEN '''{}''::text[]'
                                                 ELSE '''1''::' || format_type(t, NULL) END,
                                          ', ' ORDER BY n)
                          FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, n)), '')) AS call
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate');
GRANT SELECT ON ext_calls TO PUBLIC;

-- Something to protect: a script, a tenant, its history
SELECT tenant_migration_add('1', 'secret', 'CREATE TABLE public.secrets (v text)') IS NOT NULL AS ok;
SELECT create_tenant_schema('priv_a');

-- No PUBLIC grant: the tables, the log's sequence and the view have an ACL
-- without a PUBLIC entry; so do the functions and procedures, all but
-- tenant_version_key: an immutable sort key that reads no table, which
-- DESIGN.md leaves open (only "the functions that change things" are closed)
SELECT c.relname, c.relkind, c.relacl IS NOT NULL AS has_acl,
       NOT EXISTS (SELECT 1 FROM aclexplode(c.relacl) x WHERE x.grantee = 0) AS no_public_grant
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
 ORDER BY c.relname;
SELECT p.proname, p.proacl IS NOT NULL AS has_acl,
       NOT EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x
                    WHERE x.grantee = 0) AS no_public_grant
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
 ORDER BY p.proname;

-- A role that was granted nothing
CREATE ROLE regress_tm_nobody;
SET ROLE regress_tm_nobody;

-- Every function and procedure of the extension refuses EXECUTE (42501),
-- but the sort key tenant_version_key (see above)
SELECT proname, args, pg_temp.try(call) AS result FROM ext_calls ORDER BY proname, args;

-- Every table and the view refuse SELECT and INSERT; so does the sequence
SELECT pg_temp.try('SELECT * FROM tenant_registry');
SELECT pg_temp.try('SELECT * FROM tenant_migration_scripts');
SELECT pg_temp.try('SELECT * FROM tenant_migrations');
SELECT pg_temp.try('SELECT * FROM tenant_migration_log');
SELECT pg_temp.try('SELECT * FROM tenant_migration_overview');
SELECT pg_temp.try($$INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('tenant_x', 'x')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_scripts (version, name, up_sql, checksum) VALUES ('9', 'x', 'SELECT 1', repeat('a', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migrations (tenant_schema, version, name, checksum) VALUES ('tenant_x', '1', 'x', repeat('a', 64))$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_log (tenant_schema, action, status) VALUES ('tenant_x', 'up', 'ok')$$);
SELECT pg_temp.try($$INSERT INTO tenant_migration_overview VALUES (1, 1, 0, 0, '1')$$);
SELECT pg_temp.try($$UPDATE tenant_migration_scripts SET up_sql = 'DROP TABLE public.secrets'$$);
SELECT pg_temp.try($$DELETE FROM tenant_migrations$$);
SELECT pg_temp.try($$SELECT nextval('tenant_migration_log_id_seq')$$);
-- ... the view is not updatable anyway (55000), and no privilege on any
-- relation of the extension is held by the role
SELECT c.relname,
       has_table_privilege(c.oid, 'SELECT') AS sel, has_table_privilege(c.oid, 'INSERT') AS ins,
       has_table_privilege(c.oid, 'UPDATE') AS upd, has_table_privilege(c.oid, 'DELETE') AS del,
       has_table_privilege(c.oid, 'TRUNCATE') AS trunc
  FROM pg_class c
  JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
   AND c.relkind IN ('r', 'v')
 ORDER BY c.relname;
-- ... and the tenant's schema is not theirs either
SELECT pg_temp.try('SELECT * FROM tenant_priv_a.secrets');
RESET ROLE;

-- EXECUTE on tenant_migration_add alone is not enough: the tables stay
-- closed, so registering fails with 42501 and nothing is written
GRANT EXECUTE ON FUNCTION tenant_migration_add(text, text, text, text, text, text[]) TO regress_tm_nobody;
SET ROLE regress_tm_nobody;
SELECT pg_temp.try($$SELECT tenant_migration_add('2', 'sneaky', 'DROP TABLE public.secrets')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('1', 'secret', 'DROP TABLE public.secrets')$$);
RESET ROLE;
SELECT version, name, up_sql FROM tenant_migration_scripts ORDER BY version;
-- ... likewise for running migrations
GRANT EXECUTE ON FUNCTION tenant_migrate(text, text) TO regress_tm_nobody;
SET ROLE regress_tm_nobody;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_priv_a')$$);
RESET ROLE;

-- The grants made above are the only ones
SELECT p.proname, x.grantee::regrole, x.privilege_type
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  CROSS JOIN LATERAL aclexplode(p.proacl) x
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenant_migrate')
   AND x.grantee <> p.proowner
 ORDER BY 1, 2;

-- Clean up
DROP OWNED BY regress_tm_nobody;
DROP ROLE regress_tm_nobody;
SET client_min_messages = warning;
DROP SCHEMA tenant_priv_a CASCADE;
RESET client_min_messages;
DELETE FROM tenant_migrations;
DELETE FROM tenant_migration_log;
DELETE FROM tenant_registry;
DELETE FROM tenant_migration_scripts;

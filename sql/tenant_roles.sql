--
-- tenant_roles: create_tenant_role(), drop_tenant_role(), the settings
-- tenant_migrate.create_tenant_roles and tenant_migrate.tenant_role_group.
--
-- Roles: regress_tr_migrator registers the scripts and creates the tenants
-- (so it owns their schemas and tables) and has CREATEROLE;
-- regress_tr_nocreaterole is the same without CREATEROLE;
-- regress_tr_other owns nothing.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup
\set VERBOSITY terse
SET tenant_migrate.progress_interval = 0;

CREATE ROLE regress_tr_migrator CREATEROLE;
CREATE ROLE regress_tr_nocreaterole;
CREATE ROLE regress_tr_other;
CREATE ROLE regress_tr_author;
SELECT tenant_migrate_grant(r) > 0 AS granted
  FROM unnest('{regress_tr_migrator,regress_tr_nocreaterole,regress_tr_other,regress_tr_author}'::regrole[]) r;
GRANT CREATE ON DATABASE contrib_regression TO regress_tr_migrator;
GRANT regress_tr_migrator TO regress_tr_nocreaterole;

SET ROLE regress_tr_migrator;
SELECT tenant_migration_add('1', 'accounts',
  $$CREATE TABLE public.accounts (id serial PRIMARY KEY, name text);
    CREATE VIEW public.account_names AS SELECT name FROM public.accounts;$$,
  $$DROP VIEW public.account_names; DROP TABLE public.accounts;$$) IS NOT NULL AS registered;
SELECT create_tenant_schema('tr_a');
SELECT create_tenant_schema('tr_b');
SELECT create_tenant_schema('org_AbC');

-- The role: NOLOGIN, named after the schema, nothing but its tenant
SELECT create_tenant_role('tenant_tr_a');
SELECT create_tenant_role('tenant_tr_b');
SELECT create_tenant_role('tenant_org_AbC');
RESET ROLE;
SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls,
       shobj_description(oid, 'pg_authid') AS comment
  FROM pg_roles WHERE rolname LIKE 'tenant\_%' ORDER BY 1;
SELECT r.rolname, d.datname, s.setconfig
  FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase
 WHERE r.rolname LIKE 'tenant\_%' ORDER BY 1;
-- privileges: USAGE on its schema only, no CREATE anywhere, DML on its tables
SELECT n.nspname,
       has_schema_privilege('tenant_tr_a_role', n.oid, 'USAGE') AS usage,
       has_schema_privilege('tenant_tr_a_role', n.oid, 'CREATE') AS create
  FROM pg_namespace n WHERE n.nspname IN ('public', 'tenant_tr_a', 'tenant_tr_b', 'tenant_org_AbC') ORDER BY 1;
SELECT c.oid::regclass AS rel,
       has_table_privilege('tenant_tr_a_role', c.oid, 'SELECT') AS sel,
       has_table_privilege('tenant_tr_a_role', c.oid, 'INSERT') AS ins,
       has_table_privilege('tenant_tr_a_role', c.oid, 'UPDATE') AS upd,
       has_table_privilege('tenant_tr_a_role', c.oid, 'DELETE') AS del,
       has_table_privilege('tenant_tr_a_role', c.oid, 'TRUNCATE') AS trunc,
       has_table_privilege('tenant_tr_a_role', c.oid, 'REFERENCES') AS refs,
       has_table_privilege('tenant_tr_a_role', c.oid, 'TRIGGER') AS trig
  FROM pg_class c WHERE c.relnamespace IN ('tenant_tr_a'::regnamespace, 'tenant_tr_b'::regnamespace)
   AND c.relkind IN ('r', 'v') ORDER BY 1;
SELECT c.oid::regclass AS seq,
       has_sequence_privilege('tenant_tr_a_role', c.oid, 'USAGE') AS usage,
       has_sequence_privilege('tenant_tr_a_role', c.oid, 'SELECT') AS sel,
       has_sequence_privilege('tenant_tr_a_role', c.oid, 'UPDATE') AS upd
  FROM pg_class c WHERE c.relnamespace IN ('tenant_tr_a'::regnamespace, 'tenant_tr_b'::regnamespace)
   AND c.relkind = 'S' ORDER BY 1;
-- default privileges for the roles whose tables land in the schema
SELECT defaclrole::regrole, defaclnamespace::regnamespace, defaclobjtype, defaclacl
  FROM pg_default_acl WHERE defaclnamespace = 'tenant_tr_a'::regnamespace ORDER BY 3;

-- As the tenant role: its tenant works, every other tenant is 42501
SET ROLE tenant_tr_a_role;
SET search_path = tenant_tr_a;
INSERT INTO accounts (name) VALUES ('alice');
SELECT * FROM accounts;
SELECT * FROM account_names;
UPDATE accounts SET name = 'alice b';
SELECT pg_temp.try($$SELECT * FROM tenant_tr_b.accounts$$);
SELECT pg_temp.try($$INSERT INTO tenant_tr_b.accounts (name) VALUES ('mallory')$$);
SELECT pg_temp.try($$SELECT * FROM "tenant_org_AbC".accounts$$);
SELECT pg_temp.try($$CREATE TABLE tenant_tr_a.mine (x int)$$);
SELECT pg_temp.try($$CREATE TABLE public.mine (x int)$$);
SELECT pg_temp.try($$TRUNCATE accounts$$);
SELECT pg_temp.try($$SELECT * FROM public.tenant_registry$$);
SELECT pg_temp.try($$SELECT public.create_tenant_role('tenant_tr_b')$$);
RESET search_path;
RESET ROLE;

-- A later migration, applied by a fleet run: the new tables are the role's
-- too (default privileges), and still nobody else's
SET ROLE regress_tr_migrator;
SELECT tenant_migration_add('2', 'invoices',
  $$CREATE TABLE public.invoices (id bigserial PRIMARY KEY, account_id int REFERENCES public.accounts, total int);$$,
  $$DROP TABLE public.invoices;$$) IS NOT NULL AS registered;
RESET ROLE;
SET client_min_messages = warning;
CALL tenant_migrate_all();
RESET client_min_messages;
SET ROLE tenant_tr_a_role;
INSERT INTO tenant_tr_a.invoices (account_id, total) SELECT id, 42 FROM tenant_tr_a.accounts;
SELECT total FROM tenant_tr_a.invoices;
SELECT pg_temp.try($$SELECT * FROM tenant_tr_b.invoices$$);
RESET ROLE;
SET ROLE tenant_tr_b_role;
SELECT count(*) AS b_invoices FROM tenant_tr_b.invoices;
SELECT pg_temp.try($$SELECT * FROM tenant_tr_a.invoices$$);
RESET ROLE;

-- Idempotent: a second call returns the same role and changes nothing
SET ROLE regress_tr_migrator;
SELECT create_tenant_role('tenant_tr_a');
RESET ROLE;
SELECT count(*) AS default_acl_rows FROM pg_default_acl WHERE defaclnamespace = 'tenant_tr_a'::regnamespace;

-- Refusals
SET ROLE regress_tr_migrator;
SELECT pg_temp.try($$SELECT create_tenant_role('tenant_nope')$$);
SELECT pg_temp.try($$SELECT create_tenant_role('tr_a')$$);
SELECT pg_temp.try($$SELECT create_tenant_role('public')$$);
SELECT pg_temp.try($$SELECT create_tenant_role(NULL)$$);
SELECT pg_temp.try($$SELECT create_tenant_role('tenant_"x')$$);
RESET ROLE;
-- a role of that name that is not this tenant's is neither taken over nor dropped
SET ROLE regress_tr_migrator;
SELECT create_tenant_schema('tr_c');
RESET ROLE;
CREATE ROLE tenant_tr_c_role;
SET ROLE regress_tr_migrator;
SELECT pg_temp.try($$SELECT create_tenant_role('tenant_tr_c')$$);
SELECT pg_temp.try($$SELECT drop_tenant_role('tenant_tr_c')$$);
RESET ROLE;
DROP ROLE tenant_tr_c_role;
-- the schema's owner, CREATEROLE, and the rights of every script author are needed
SET ROLE regress_tr_other;
SELECT pg_temp.try($$SELECT create_tenant_role('tenant_tr_c')$$);
RESET ROLE;
SET ROLE regress_tr_nocreaterole;
SELECT pg_temp.try($$SELECT create_tenant_role('tenant_tr_c')$$);
RESET ROLE;
SET ROLE regress_tr_author;
SELECT tenant_migration_add('3', 'by_author', 'SELECT 1') IS NOT NULL AS registered;
RESET ROLE;
SET ROLE regress_tr_migrator;
SELECT pg_temp.try($$SELECT create_tenant_role('tenant_tr_c')$$);
RESET ROLE;
DELETE FROM tenant_migration_scripts WHERE version = '3';
SELECT count(*) AS tr_c_role FROM pg_roles WHERE rolname = 'tenant_tr_c_role';

-- Length-safe names: a 63-byte schema gets a 63-byte role with a hash
SET ROLE regress_tr_migrator;
SELECT create_tenant_schema(repeat('k', 56)) AS long_schema \gset
SELECT create_tenant_role(:'long_schema') AS long_role \gset
RESET ROLE;
SELECT length(:'long_schema') AS schema_bytes, length(:'long_role') AS role_bytes,
       :'long_role' = left(:'long_schema', 49) || '_' || left(encode(sha256(convert_to(:'long_schema', 'UTF8')), 'hex'), 8) || '_role' AS derived;
SET ROLE regress_tr_migrator;
SELECT create_tenant_schema(repeat('k', 55)) AS long_schema2 \gset
SELECT create_tenant_role(:'long_schema2') AS long_role2 \gset
RESET ROLE;
SELECT :'long_role2' <> :'long_role' AS distinct_roles, length(:'long_role2') AS role_bytes;
SET ROLE regress_tr_migrator;
SELECT create_tenant_schema('tr_58chars' || repeat('x', 41)) AS s58 \gset
SELECT create_tenant_role(:'s58') AS r58 \gset
RESET ROLE;
SELECT length(:'s58') AS schema_bytes, :'r58' = :'s58' || '_role' AS plain_suffix, length(:'r58') AS role_bytes;

-- The group that every tenant role joins: what all tenants may use in public
CREATE ROLE regress_tr_tenants;
CREATE TABLE public.tr_plans (code text);
GRANT SELECT ON public.tr_plans TO regress_tr_tenants;
GRANT regress_tr_tenants TO regress_tr_migrator WITH ADMIN OPTION;
SET tenant_migrate.tenant_role_group = 'regress_tr_tenants';
SET ROLE regress_tr_migrator;
SELECT create_tenant_role('tenant_tr_c');
RESET ROLE;
SELECT pg_has_role('tenant_tr_c_role', 'regress_tr_tenants', 'MEMBER') AS member_c,
       pg_has_role('tenant_tr_a_role', 'regress_tr_tenants', 'MEMBER') AS member_a;
SET ROLE tenant_tr_c_role;
SELECT count(*) AS plans FROM public.tr_plans;
RESET ROLE;
SET tenant_migrate.tenant_role_group = 'regress_tr_missing';
SELECT pg_temp.try($$SELECT create_tenant_role('tenant_tr_a')$$);
RESET tenant_migrate.tenant_role_group;

-- tenant_migrate.create_tenant_roles: create_tenant_schema makes the role too,
-- all or nothing
SET tenant_migrate.create_tenant_roles = on;
SET ROLE regress_tr_migrator;
SELECT create_tenant_schema('tr_d');
RESET ROLE;
SELECT rolname FROM pg_roles WHERE rolname = 'tenant_tr_d_role';
SET ROLE tenant_tr_d_role;
SELECT count(*) AS d_invoices FROM tenant_tr_d.invoices;
RESET ROLE;
ALTER ROLE regress_tr_migrator NOCREATEROLE;
SET ROLE regress_tr_migrator;
SELECT pg_temp.try($$SELECT create_tenant_schema('tr_e')$$);
RESET ROLE;
ALTER ROLE regress_tr_migrator CREATEROLE;
SELECT count(*) AS tr_e_left FROM tenant_registry WHERE schema_name = 'tenant_tr_e';
RESET tenant_migrate.create_tenant_roles;
SHOW tenant_migrate.create_tenant_roles;
SHOW tenant_migrate.tenant_role_group;

-- drop_tenant_role: revokes what the role got, its default privileges, drops it
SET ROLE regress_tr_migrator;
SELECT drop_tenant_role('tenant_tr_a');
RESET ROLE;
SELECT count(*) AS role_left FROM pg_roles WHERE rolname = 'tenant_tr_a_role';
SELECT count(*) AS default_acl_left FROM pg_default_acl WHERE defaclnamespace = 'tenant_tr_a'::regnamespace;
SELECT count(*) AS setting_left FROM pg_db_role_setting s
 WHERE s.setrole <> 0 AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = s.setrole);
SET ROLE regress_tr_migrator;
SELECT drop_tenant_role('tenant_tr_a');
SELECT pg_temp.try($$SELECT drop_tenant_role('tenant_"x')$$);
-- ... also after the schema is gone (it took the grants with it)
DROP SCHEMA tenant_tr_b CASCADE;
RESET ROLE;
DELETE FROM tenant_registry WHERE schema_name = 'tenant_tr_b';
SET ROLE regress_tr_migrator;
SELECT drop_tenant_role('tenant_tr_b');
RESET ROLE;
SELECT count(*) AS role_left FROM pg_roles WHERE rolname = 'tenant_tr_b_role';
-- the plain SQL way
DROP OWNED BY "tenant_org_AbC_role";
DROP ROLE "tenant_org_AbC_role";

-- clean up
SELECT left(schema_name, 20) AS schema, drop_tenant_role(schema_name) AS dropped
  FROM tenant_registry ORDER BY schema_name;
DROP SCHEMA tenant_tr_a, "tenant_org_AbC", tenant_tr_c, tenant_tr_d,
  :"long_schema", :"long_schema2", :"s58" CASCADE;
DELETE FROM tenant_registry;
DROP TABLE public.tr_plans;
DROP EXTENSION tenant_migrate CASCADE;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_tr_migrator;
DROP ROLE regress_tr_migrator, regress_tr_nocreaterole, regress_tr_other, regress_tr_author,
  regress_tr_tenants;

--
-- status: tenant_migration_status(), the tenant_migration_overview view and
-- tenant_migration_plan(), on small scripts registered here.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- The columns and types of the status function and of the overview view
SELECT a.ord, a.name, a.mode, a.type::regtype
  FROM pg_proc p,
       unnest(p.proargnames, p.proargmodes::text[], p.proallargtypes) WITH ORDINALITY AS a(name, mode, type, ord)
 WHERE p.oid = 'tenant_migration_status(text)'::regprocedure
 ORDER BY a.ord;
SELECT attnum, attname, atttypid::regtype FROM pg_attribute
 WHERE attrelid = 'tenant_migration_overview'::regclass AND attnum > 0 ORDER BY attnum;

-- No tenants yet: no rows, and an overview of zeros
SELECT * FROM tenant_migration_status();
SELECT * FROM tenant_migration_overview;

-- Versions 1.9 and 1.10: 1.10 is the newer one
SELECT tenant_migration_add('1.9', 'widgets', 'CREATE TABLE public.widgets (id int PRIMARY KEY);', 'DROP TABLE public.widgets;') IS NOT NULL AS registered;
SELECT tenant_migration_add('1.10', 'gadgets', 'CREATE TABLE public.gadgets (id int PRIMARY KEY, widget_id int REFERENCES public.widgets);', 'DROP TABLE public.gadgets;') IS NOT NULL AS registered;
-- a shared script counts for no tenant
SELECT tenant_migration_add('0.5', 'shared_thing', 'CREATE TABLE public.st_shared (id int);', 'DROP TABLE public.st_shared;', 'shared') IS NOT NULL AS registered;
SELECT version, name FROM tenant_migrate_shared();

-- A tenant with no migrations applied yet shows NULL version and no
-- attempt; the others are up to date
SELECT create_tenant_schema('one', 'One');
SELECT create_tenant_schema('two', 'Two');
INSERT INTO tenant_registry (schema_name, tenant_key, display_name, status)
VALUES ('tenant_three', 'three', 'Three', 'suspended');
CREATE SCHEMA tenant_three;
SELECT tenant_schema, tenant_key, status, current_version, applied, pending,
       last_error IS NULL AS no_error, last_attempt_at IS NOT NULL AS attempted
  FROM tenant_migration_status();
SELECT * FROM tenant_migration_overview;

-- Migrating up to 1.9 only: current_version 1.9, one pending
SELECT version, name FROM tenant_migrate('tenant_three', '1.9');
SELECT tenant_schema, current_version, applied, pending
  FROM tenant_migration_status('tenant_three');
SELECT version, name FROM tenant_migrate('tenant_three');
-- 1.10 sorts after 1.9 (not as text, where '1.10' < '1.9')
SELECT tenant_schema, current_version, applied, pending
  FROM tenant_migration_status('tenant_three');

-- One tenant by name; the key instead of the schema and an unknown tenant
-- are errors; public is the shared scripts' state (see verify.sql)
SELECT tenant_schema, tenant_key, status, current_version, applied, pending
  FROM tenant_migration_status('tenant_one');
SELECT pg_temp.try($$SELECT * FROM tenant_migration_status('one')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_status('tenant_nobody')$$);
SELECT tenant_schema, tenant_key, status, current_version, applied, pending, last_error
  FROM tenant_migration_status('public');

-- A new script: every tenant is behind by one
SELECT tenant_migration_add('2', 'sprockets', $$CREATE TABLE public.sprockets (id int PRIMARY KEY, gadget_id int REFERENCES public.gadgets, made_at date DEFAULT '2024-01-01');$$, 'DROP TABLE public.sprockets;') IS NOT NULL AS registered;
SELECT tenant_schema, current_version, applied, pending FROM tenant_migration_status();
SELECT * FROM tenant_migration_overview;

-- The plan: the exact rewritten SQL tenant_migrate would run, in order, up
-- to a target, and nothing is applied by looking
SELECT tenant_migration_add('2.1', 'sprocket_idx', 'CREATE INDEX sprockets_gadget_idx ON public.sprockets (gadget_id);', 'DROP INDEX public.sprockets_gadget_idx;') IS NOT NULL AS registered;
SELECT version, name, sql FROM tenant_migration_plan('tenant_one');
SELECT version, name, sql FROM tenant_migration_plan('tenant_one', '2');
SELECT version, name, sql FROM tenant_migration_plan('tenant_one', '2.1');
SELECT tenant_schema, current_version, applied, pending FROM tenant_migration_status('tenant_one');
SELECT to_regclass('tenant_one.sprockets') AS sprockets;
-- the plan is what tenant_migrate then applies
SELECT version, name FROM tenant_migrate('tenant_one');
SELECT version, name, sql FROM tenant_migration_plan('tenant_one');
-- a target that tenant_migrate refuses is refused by the plan too
SELECT pg_temp.try($$SELECT tenant_migrate('tenant_two', '3')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant_two', '3')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant_two', 'x')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('two')$$);
-- mixed-case tenants get a quoted schema name in the plan
SELECT create_tenant_schema('Mixed') IS NOT NULL AS created;
SELECT version FROM tenant_rollback('tenant_Mixed', '1.9');
SELECT version, sql FROM tenant_migration_plan('tenant_Mixed');

-- The plan for public shows pending shared scripts, as written
SELECT tenant_migration_add('3', 'shared_more', 'CREATE TABLE public.st_more (id int); INSERT INTO public.st_more VALUES (1);', 'DROP TABLE public.st_more;', 'shared') IS NOT NULL AS registered;
SELECT version, name, sql FROM tenant_migration_plan('public');
SELECT count(*) AS applied FROM tenant_migrations WHERE tenant_schema = 'public' AND version = '3';
SELECT version, name FROM tenant_migrate_shared();
SELECT version, name, sql FROM tenant_migration_plan('public');

-- last_error: a failure recorded in the log (as a fleet run records it) is
-- shown until a newer attempt succeeds; the overview counts it as failing
INSERT INTO tenant_migration_log (tenant_schema, version, action, status, error, duration_ms)
VALUES ('tenant_two', '2', 'up', 'failed',
        'apply of migration 2 (sprockets) failed on tenant "tenant_two": canceling statement due to lock timeout', 5000);
SELECT tenant_schema, current_version, pending, last_error, last_attempt_at IS NOT NULL AS attempted
  FROM tenant_migration_status() ORDER BY tenant_schema;
SELECT * FROM tenant_migration_overview;
SELECT version, name FROM tenant_migrate('tenant_two');
SELECT tenant_schema, current_version, pending, last_error
  FROM tenant_migration_status('tenant_two');
SELECT * FROM tenant_migration_overview;

-- Everyone up to date
SELECT count(*) > 0 AS migrated FROM tenant_migrate('tenant_three');
SELECT count(*) > 0 AS migrated FROM tenant_migrate('tenant_Mixed');
SELECT tenant_schema, tenant_key, status, current_version, applied, pending,
       last_error IS NULL AS no_error, last_attempt_at IS NOT NULL AS attempted
  FROM tenant_migration_status();
SELECT * FROM tenant_migration_overview;
SELECT version, name, sql FROM tenant_migration_plan('tenant_three');

-- Clean up
SET client_min_messages = warning;
DROP SCHEMA tenant_one, tenant_two, tenant_three, "tenant_Mixed" CASCADE;
DROP TABLE public.st_shared, public.st_more;
DROP EXTENSION tenant_migrate CASCADE;
RESET client_min_messages;

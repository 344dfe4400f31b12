--
-- retire: tenant_archive(), tenant_set_status() (suspended tenants and the
-- way back to active), fleet runs skipping them, drop_tenant_schema() and
-- every refusal.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup
-- Earlier suites leave tenant schemas behind (the extension was dropped
-- under them): start from none, so tenant_verify() sees only this file's.
\set drop_tenants :abs_srcdir '/test/drop_tenants.sql'
\i :drop_tenants
SET tenant_migrate.progress_interval = 0;

SELECT tenant_migration_add('001', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY);',
                            'DROP TABLE public.items;') IS NOT NULL AS registered;
SELECT create_tenant_schema('a1');
SELECT create_tenant_schema('a2');
SELECT create_tenant_schema('a3');

-- archive and suspend return the schema; status and overview say so
SELECT tenant_archive('tenant_a2');
SELECT tenant_set_status('tenant_a3', 'suspended');
SELECT tenant_schema, status FROM tenant_migration_status() ORDER BY 1;
SELECT tenants, up_to_date, behind, failing, suspended, archived FROM tenant_migration_overview;

-- a fleet run skips them, and says so
SELECT tenant_migration_add('002', 'more', 'CREATE TABLE public.more (id int);',
                            'DROP TABLE public.more;') IS NOT NULL AS registered;
-- (the NOTICE naming the skipped tenants is checked in t/006_verify_after_crash.pl:
-- the run's closing NOTICE holds a duration)
SET client_min_messages = warning;
CALL tenant_migrate_all();
CALL tenant_migrate_all(tenants => '{tenant_a2,tenant_a3}');
RESET client_min_messages;
SELECT tenant_schema, status, current_version, pending FROM tenant_migration_status() ORDER BY 1;
SELECT tenants, up_to_date, behind, suspended, archived FROM tenant_migration_overview;
-- a one-tenant call is explicit: it still migrates an archived tenant
SELECT version FROM tenant_migrate('tenant_a2');
SELECT version FROM tenant_rollback('tenant_a2');

-- back to active: the next fleet run migrates them
SELECT tenant_set_status('tenant_a2', 'active');
SELECT tenant_set_status('tenant_a3', 'active');
SET client_min_messages = warning;
CALL tenant_migrate_all();
RESET client_min_messages;
SELECT tenant_schema, status, current_version, pending FROM tenant_migration_status() ORDER BY 1;

-- refusals of status changes
SELECT pg_temp.try($$SELECT tenant_set_status('tenant_a1', 'deleted')$$);
SELECT pg_temp.try($$SELECT tenant_set_status('tenant_a1', NULL)$$);
SELECT pg_temp.try($$SELECT tenant_archive('tenant_nope')$$);
SELECT pg_temp.try($$SELECT tenant_archive('a1')$$);
SELECT pg_temp.try($$SELECT tenant_archive(NULL)$$);
SELECT pg_temp.try($$SELECT tenant_archive('public')$$);

/*---- drop_tenant_schema ----*/

SELECT count(*) AS log_rows_before FROM tenant_migration_log WHERE tenant_schema = 'tenant_a1';
SELECT drop_tenant_schema('tenant_a1');
SELECT count(*) AS schema_left FROM pg_namespace WHERE nspname = 'tenant_a1';
SELECT count(*) AS registry_left FROM tenant_registry WHERE schema_name = 'tenant_a1';
SELECT count(*) AS history_left FROM tenant_migrations WHERE tenant_schema = 'tenant_a1';
-- the log keeps the tenant's past and records the drop, by whom
SELECT version, action, status, performed_by = current_user AS by_me
  FROM tenant_migration_log WHERE tenant_schema = 'tenant_a1' ORDER BY id;
SELECT * FROM tenant_verify();
-- the key is free again
SELECT create_tenant_schema('a1');

-- inside a transaction: rolled back with it
BEGIN;
SELECT drop_tenant_schema('tenant_a1');
ROLLBACK;
SELECT schema_name FROM tenant_registry WHERE schema_name = 'tenant_a1';
SELECT count(*) AS history FROM tenant_migrations WHERE tenant_schema = 'tenant_a1';

-- refusals: public, a schema that is not a tenant, nothing at all, bad
-- names, NULL
SELECT pg_temp.try($$SELECT drop_tenant_schema('public')$$);
CREATE SCHEMA tenant_stray;
SELECT pg_temp.try($$SELECT drop_tenant_schema('tenant_stray')$$);
SELECT count(*) AS stray_kept FROM pg_namespace WHERE nspname = 'tenant_stray';
DROP SCHEMA tenant_stray;
SELECT pg_temp.try($$SELECT drop_tenant_schema('tenant_nope')$$);
SELECT pg_temp.try($$SELECT drop_tenant_schema('pg_catalog')$$);
SELECT pg_temp.try($$SELECT drop_tenant_schema('x;DROP SCHEMA public')$$);
SELECT pg_temp.try($$SELECT drop_tenant_schema(NULL)$$);

-- a migration role may call it, but DROP SCHEMA runs as the caller: a
-- schema it does not own is refused and nothing changes
CREATE ROLE regress_tm_dropper;
SELECT tenant_migrate_grant('regress_tm_dropper') > 0 AS granted;
SET ROLE regress_tm_dropper;
SELECT pg_temp.try($$SELECT drop_tenant_schema('tenant_a2')$$);
RESET ROLE;
SELECT schema_name FROM tenant_registry WHERE schema_name = 'tenant_a2';
SELECT count(*) AS drops_logged FROM tenant_migration_log WHERE tenant_schema = 'tenant_a2' AND action = 'drop';
-- nor without EXECUTE
CREATE ROLE regress_tm_nobody2;
SET ROLE regress_tm_nobody2;
SELECT pg_temp.try($$SELECT drop_tenant_schema('tenant_a2')$$);
SELECT pg_temp.try($$SELECT tenant_archive('tenant_a2')$$);
RESET ROLE;
DROP OWNED BY regress_tm_dropper;
DROP ROLE regress_tm_dropper;
DROP ROLE regress_tm_nobody2;

-- the log's action check admits drop, and nothing else new
SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'tenant_migration_log_action_check';

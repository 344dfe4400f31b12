--
-- versions: what a migration version may look like, how versions are
-- ordered (tenant_version_key, the plan, the runner), collisions between
-- spellings of one version, and target_version.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- Valid versions: digits with optional single . or _ separators
SELECT v AS version,
       pg_temp.try(format('SELECT tenant_migration_add(%L, %L, %L)', v, 'valid', 'SELECT 1')) AS result
  FROM unnest(ARRAY['001', '2', '1.10', '20231201120000', '1_2_3']) AS v;
SELECT version FROM tenant_migration_scripts ORDER BY version;

-- Invalid versions are refused with 22023 and the same message, detail and hint
\set VERBOSITY default
SELECT tenant_migration_add('v1', 'invalid', 'SELECT 1');
\set VERBOSITY terse
SELECT quote_literal(v) AS version,
       pg_temp.try(format('SELECT tenant_migration_add(%L, %L, %L)', v, 'invalid', 'SELECT 1')) AS result
  FROM unnest(ARRAY['', 'a', '1.', '.1', '1..2', '1-2', ' 1', '1 ', 'v1', '1.a', '1._2',
                    '١', '+1', '-1', '1e3', '0x10']) AS v;
-- ... none of them was registered: only the five valid ones are there
SELECT count(*) AS registered FROM tenant_migration_scripts;

-- The SQL sort key agrees: parts compared as numbers
SELECT v, tenant_version_key(v)
  FROM unnest(ARRAY['001', '1.10', '1_2_3', '20231201120000', '0', '00', '1.0']) AS v
 ORDER BY tenant_version_key(v), v;
DELETE FROM tenant_migration_scripts;

-- Collisions: two spellings of one place in the order are refused (42710),
-- the first one stays
SELECT tenant_migration_add('001', 'first', 'SELECT 1');
SELECT pg_temp.try($$SELECT tenant_migration_add('1', 'second', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('0001', 'second', 'SELECT 1')$$);
SELECT tenant_migration_add('1.5', 'first', 'SELECT 1');
SELECT pg_temp.try($$SELECT tenant_migration_add('1_5', 'second', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('1.05', 'second', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('001.005', 'second', 'SELECT 1')$$);
-- ... but 1.0 is not 1 (it has one more part), and 1.50 is not 1.5
SELECT pg_temp.try($$SELECT tenant_migration_add('1.0', 'other', 'SELECT 1')$$);
SELECT pg_temp.try($$SELECT tenant_migration_add('1.50', 'other', 'SELECT 1')$$);
-- ... and a collision is reported for shared scripts too: one version sequence
SELECT pg_temp.try($$SELECT tenant_migration_add('01.5', 'second', 'SELECT 1', scope => 'shared')$$);
SELECT version, name, scope FROM tenant_migration_scripts
 ORDER BY tenant_version_key(version);
DELETE FROM tenant_migration_scripts;

-- Length: at most 63 bytes, like a name (fleet runs hand the target version
-- to their workers as one).  63 bytes are registered, 64 are refused (22023)
-- without echoing the version
SELECT tenant_migration_add(repeat('1', 63), 'longest', 'SELECT 1') IS NOT NULL AS ok;
SELECT tenant_migration_add('2.' || repeat('0', 60) || '1', 'longest dotted', 'SELECT 1') IS NOT NULL AS ok;
\set VERBOSITY default
SELECT tenant_migration_add(repeat('1', 64), 'too long', 'SELECT 1');
\set VERBOSITY terse
SELECT pg_temp.try(format('SELECT tenant_migration_add(%L, %L, %L)', '3.' || repeat('0', 61) || '1', 'too long', 'SELECT 1'));
SELECT pg_temp.try(format('SELECT tenant_migration_add(%L, %L, %L)', repeat('9', 100000), 'huge', 'SELECT 1'));
-- ... a dependency too
SELECT pg_temp.try(format('SELECT tenant_migration_add(%L, %L, %L, depends_on => %L)',
                          '5', 'dep', 'SELECT 1', ARRAY[repeat('1', 64)]));
SELECT length(version) AS length, name FROM tenant_migration_scripts ORDER BY 1, 2;
DELETE FROM tenant_migration_scripts;

-- Ordering.  A tenant that exists before the scripts are registered
SELECT create_tenant_schema('order_a');

-- Version 1 creates a log table in the tenant; every other script writes its
-- version into it, so the log shows the order they were applied in.
-- Registered in a scrambled order on purpose.
SELECT tenant_migration_add('1', 'log table',
  'CREATE TABLE public.applied (n serial PRIMARY KEY, version text NOT NULL)') IS NOT NULL AS ok;
SELECT tenant_migration_add(v, 'log ' || v,
         format('INSERT INTO public.applied (version) VALUES (%L)', v)) IS NOT NULL AS ok
  FROM unnest(ARRAY['10', '1.10', '20231201120000', '2', '1_5', '1.9', '1.100', '9']) AS v;

-- Text order would be wrong; tenant_version_key orders part by part
SELECT version FROM tenant_migration_scripts ORDER BY version;
SELECT version, tenant_version_key(version) FROM tenant_migration_scripts
 ORDER BY tenant_version_key(version);

-- The plan lists them in the same order (1.9 before 1.10 before 1.100)
SELECT version, name FROM tenant_migration_plan('tenant_order_a');

-- target_version is inclusive: up to 1.10 applies 1, 1_5, 1.9 and 1.10
SELECT version, name FROM tenant_migration_plan('tenant_order_a', '1.10');
SELECT version, name FROM tenant_migrate('tenant_order_a', '1.10');
SELECT n, version FROM tenant_order_a.applied ORDER BY n;

-- A target at or below what is applied does nothing (no error, no rows)
SELECT version, name FROM tenant_migrate('tenant_order_a', '1.10');
SELECT version, name FROM tenant_migrate('tenant_order_a', '1_5');
SELECT version, name FROM tenant_migrate('tenant_order_a', '1');
SELECT version, name FROM tenant_migration_plan('tenant_order_a', '1_5');
SELECT count(*) AS log_rows FROM tenant_order_a.applied;

-- A target must be a valid, registered tenant version
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_order_a', '1.x')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_order_a', '3')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_order_a', '')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant_order_a', '1.x')$$);
-- ... and the plan, showing what tenant_migrate would do, refuses the same
-- unregistered target instead of listing scripts that would never run
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant_order_a', '3')$$);
-- ... and at most 63 bytes long, also where 0 (everything) is allowed
SELECT pg_temp.try(format('SELECT * FROM tenant_migrate(%L, %L)', 'tenant_order_a', repeat('0', 70) || '2'));
SELECT pg_temp.try(format('SELECT * FROM tenant_migration_plan(%L, %L)', 'tenant_order_a', repeat('0', 70) || '2'));
SELECT pg_temp.try(format('SELECT * FROM tenant_rollback(%L, %L)', 'tenant_order_a', repeat('0', 70) || '2'));
SELECT pg_temp.try(format('SELECT * FROM tenant_migrate_shared(%L)', repeat('0', 70) || '2'));

-- ... a shared script's version is no target for a tenant, nor the reverse
SELECT tenant_migration_add('1.99', 'shared one', 'SELECT 1', scope => 'shared') IS NOT NULL AS ok;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_order_a', '1.99')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migrate_shared('1.10')$$);
SELECT version, name FROM tenant_migrate_shared('1.99');
-- ... nothing was applied to the tenant by any of these
SELECT count(*) AS log_rows FROM tenant_order_a.applied;

-- The rest, in order: 1.100, 2, 9, 10, 20231201120000
SELECT version, name FROM tenant_migrate('tenant_order_a');
SELECT n, version FROM tenant_order_a.applied ORDER BY n;
-- ... recorded once each; nothing left to do
SELECT count(*) AS applied_versions FROM tenant_migrations WHERE tenant_schema = 'tenant_order_a';
SELECT version, name FROM tenant_migrate('tenant_order_a');
SELECT version, name FROM tenant_migration_plan('tenant_order_a');

-- A tenant created now gets every script in one call, in the same order
SELECT create_tenant_schema('order_b');
SELECT n, version FROM tenant_order_b.applied ORDER BY n;

-- A new version that sorts before applied ones is still pending (the
-- history is per version, not a high-water mark): registering it warns, the
-- out-of-order guard refuses it, and with tenant_migrate.out_of_order = on
-- the next run applies it
SELECT tenant_migration_add('1.95', 'late', $$INSERT INTO public.applied (version) VALUES ('1.95')$$) IS NOT NULL AS ok;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_order_b')$$);
SET tenant_migrate.out_of_order = on;
SELECT version, name FROM tenant_migration_plan('tenant_order_b');
-- ... a target below it leaves it pending, a target at it applies it
SELECT version, name FROM tenant_migrate('tenant_order_b', '1.9');
SELECT version, name FROM tenant_migrate('tenant_order_b', '1.95');
RESET tenant_migrate.out_of_order;
SELECT n, version FROM tenant_order_b.applied WHERE n > 8 ORDER BY n;

-- The runner and the SQL key agree on every tenant's history
SELECT tenant_schema, string_agg(version, ' ' ORDER BY tenant_version_key(version)) AS versions
  FROM tenant_migrations GROUP BY tenant_schema ORDER BY 1;

-- A fleet target longer than 63 bytes is refused before any tenant is
-- touched.  (Workers used to get it cut to 63 bytes, so 000...0002 became
-- 000...0: every tenant rolled back to nothing.)  Every script gets a down
-- script first, so that a rollback could really happen.
SELECT count(tenant_migration_add(version, name, up_sql, 'SELECT 1', scope)) AS with_down
  FROM tenant_migration_scripts;
\set VERBOSITY default
CALL tenant_rollback_all(repeat('0', 70) || '2');
\set VERBOSITY terse
CALL tenant_rollback_all(repeat('0', 70) || '2', '{tenant_order_a}');
CALL tenant_migrate_all(repeat('9', 64));
-- ... nothing was rolled back or attempted
SELECT tenant_schema, string_agg(version, ' ' ORDER BY tenant_version_key(version)) AS versions
  FROM tenant_migrations GROUP BY tenant_schema ORDER BY 1;
SELECT count(*) AS down_attempts FROM tenant_migration_log WHERE action = 'down';

-- Clean up
DROP SCHEMA tenant_order_a CASCADE;
DROP SCHEMA tenant_order_b CASCADE;
DELETE FROM tenant_migrations;
DELETE FROM tenant_migration_log;
DELETE FROM tenant_registry;
DELETE FROM tenant_migration_scripts;

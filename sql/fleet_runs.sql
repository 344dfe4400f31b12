--
-- fleet_runs: the workers argument, the run records in
-- tenant_migration_runs, run_id on every log row of a run, interrupted
-- runs, and the 1.0 procedures still working while ALTER EXTENSION UPDATE
-- is pending.  (Parallel behaviour itself: specs/fleet_workers.spec and
-- the TAP tests.)
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

SET client_min_messages = warning;
SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY);', 'DROP TABLE public.items;') IS NOT NULL AS added;
SELECT count(create_tenant_schema(format('f%s', i))) AS tenants FROM generate_series(1, 12) i;
SELECT tenant_migration_add('2', 'col', 'ALTER TABLE public.items ADD COLUMN note text;', 'ALTER TABLE public.items DROP COLUMN note;') IS NOT NULL AS added;

-- workers: NULL (tenant_migrate.max_workers), 0 (this session), or more
SHOW tenant_migrate.max_workers;
CALL tenant_migrate_all(workers => -1);
CALL tenant_rollback_all('1', workers => -2);
SELECT count(*) AS runs FROM tenant_migration_runs;

-- Two workers take the twelve tenants from one queue
CALL tenant_migrate_all(workers => 2);
SELECT id, action, target_version, tenants, workers, status, total, done, failed, skipped,
       started_by = current_user AS by_me, finished_at >= started_at AS ended,
       current_tenant IS NOT NULL AS has_current
  FROM tenant_migration_runs ORDER BY id;
SELECT count(*) FILTER (WHERE run_id = 1) AS rows_of_run_1,
       count(*) FILTER (WHERE run_id IS NULL AND version = '2') AS rows_without_run
  FROM tenant_migration_log;

-- Nothing left to do: done counts the tenants up to date, no worker starts
CALL tenant_migrate_all();
SELECT id, workers, status, total, done, failed, skipped FROM tenant_migration_runs ORDER BY id;

-- A listed rollback in this session (workers => 0)
CALL tenant_rollback_all('1', tenants => '{tenant_f1,tenant_f2,tenant_f3}', workers => 0);
SELECT id, action, target_version, tenants, workers, status, total, done, failed
  FROM tenant_migration_runs WHERE id = 3;
SELECT tenant_schema, version, action, status FROM tenant_migration_log WHERE run_id = 3
 ORDER BY tenant_schema;

-- Refusals record no run
CALL tenant_migrate_all(tenants => '{tenant_f1,tenant_nope}');
CALL tenant_migrate_all(target_version => '99');
SELECT count(*) AS runs FROM tenant_migration_runs;

-- max_failures reached: the run is recorded as failed, with the failure
-- row carrying its run id; in this session, so exactly one tenant failed
SELECT tenant_migration_add('3', 'f2 fails', $$DO $d$
BEGIN
  IF current_schema() = 'tenant_f2' THEN RAISE EXCEPTION 'f2 is broken'; END IF;
END $d$;$$) IS NOT NULL AS added;
CALL tenant_migrate_all(max_failures => 1, workers => 0);
SELECT id, status, total, done, failed, skipped FROM tenant_migration_runs WHERE id = 4;
SELECT tenant_schema, status, split_part(error, E'\n', 1) AS error
  FROM tenant_migration_log WHERE run_id = 4 AND status = 'failed';

-- A run whose session is gone (crash, kill) shows as interrupted at the
-- next status call or run; a live run's lock keeps it running.  (Faked:
-- a row nobody's lock covers.)
INSERT INTO tenant_migration_runs (action, workers, started_by) VALUES ('migrate', 2, current_user);
SELECT status FROM tenant_migration_runs WHERE id = 5;
SELECT count(*) > 0 AS tenants FROM tenant_migration_status();
SELECT status, finished_at IS NOT NULL AS ended FROM tenant_migration_runs WHERE id = 5;
-- ... not in a read-only transaction, where the status call still works
INSERT INTO tenant_migration_runs (action, workers, started_by) VALUES ('migrate', 2, current_user);
BEGIN TRANSACTION READ ONLY;
SELECT count(*) > 0 AS tenants FROM tenant_migration_status();
COMMIT;
SELECT status FROM tenant_migration_runs WHERE id = 6;
CALL tenant_rollback_all('2', tenants => '{tenant_f5}');
SELECT id, status FROM tenant_migration_runs WHERE id >= 6 ORDER BY id;

-- max_failures across two workers: tenant_f2 fails again, the workers take
-- no further tenant (how many others they finished varies, so only the
-- record is shown)
SET client_min_messages = error;
CALL tenant_migrate_all(max_failures => 1, workers => 2);
SET client_min_messages = warning;
SELECT status, workers, failed, done < total AS stopped_early
  FROM tenant_migration_runs ORDER BY id DESC LIMIT 1;

-- A migration role sees the runs (SELECT via tenant_migrate_grant), and
-- its runs are recorded as started by it
CREATE ROLE regress_tm_runner;
SELECT tenant_migrate_grant('regress_tm_runner') > 0 AS granted;
SET ROLE regress_tm_runner;
SELECT count(*) > 0 AS sees_runs FROM tenant_migration_runs;
UPDATE tenant_migration_runs SET status = 'finished';
RESET ROLE;

-- 1.0 installed, its update pending: the new library runs the 1.0
-- procedures (three and two arguments), without run records
DROP EXTENSION tenant_migrate CASCADE;
DROP SCHEMA tenant_f1, tenant_f2, tenant_f3, tenant_f4, tenant_f5, tenant_f6,
            tenant_f7, tenant_f8, tenant_f9, tenant_f10, tenant_f11, tenant_f12 CASCADE;
DROP ROLE regress_tm_runner;
CREATE EXTENSION tenant_migrate VERSION '1.0';
SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY);', 'DROP TABLE public.items;') IS NOT NULL AS added;
SELECT create_tenant_schema('old1') IS NOT NULL AS created;
SELECT tenant_migration_add('2', 'col', 'ALTER TABLE public.items ADD COLUMN note text;', 'ALTER TABLE public.items DROP COLUMN note;') IS NOT NULL AS added;
SELECT pg_get_function_identity_arguments('tenant_migrate_all'::regproc) AS args_1_0;
CALL tenant_migrate_all(NULL, NULL, NULL);
CALL tenant_rollback_all('1', NULL);
SELECT tenant_schema, version, action, status FROM tenant_migration_log ORDER BY id;
ALTER EXTENSION tenant_migrate UPDATE TO '1.1';
CALL tenant_migrate_all(workers => 1);
SELECT id, status, total, done FROM tenant_migration_runs;
SELECT tenant_schema, version, action, status, run_id FROM tenant_migration_log ORDER BY id;
DROP SCHEMA tenant_old1 CASCADE;
RESET client_min_messages;

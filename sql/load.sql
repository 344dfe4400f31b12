--
-- tenant_migrations_load(): registering a migration folder from the server.
-- The fixtures are in test/fixtures/load/.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

\set fixtures :abs_srcdir '/test/fixtures/load'
-- for the DO blocks below, which cannot see psql variables
SELECT set_config('tm_test.fixtures', :'fixtures', false) IS NOT NULL AS ok;

\set VERBOSITY terse

-- Every layout at once: .up.sql/.down.sql pairs, dbmate sections, Prisma
-- folders, a shared/ subfolder; README.md, migration_lock.toml, seeds/ and a
-- Prisma folder without migration.sql are ignored.  10 new scripts.
SELECT tenant_migrations_load(:'fixtures' || '/mixed');

-- Loading the same folder again changes nothing
SELECT tenant_migrations_load(:'fixtures' || '/mixed');

-- Names split into version and name; 4.9 comes before 4.10; the 4.10 dbmate
-- file has an empty down section, so it has no down script
SELECT version, name, scope, down_sql IS NOT NULL AS has_down
  FROM tenant_migration_scripts
 ORDER BY tenant_version_key(version), version;

-- dbmate: text before the first marker and the marker lines are dropped,
-- "transaction:false" after the marker is ignored
SELECT up_sql, down_sql
  FROM tenant_migration_scripts
 WHERE version = '003';

-- The byte order mark at the start of 002 is gone
SELECT version, up_sql LIKE 'CREATE TABLE%' AS starts_with_create
  FROM tenant_migration_scripts
 WHERE version = '002';

-- Prisma: migration.sql is the up script, down.sql the down script
SELECT version, up_sql, down_sql
  FROM tenant_migration_scripts
 WHERE version IN ('20240101_120000', '20240102120000')
 ORDER BY tenant_version_key(version);

-- A changed script counts too (001 is applied nowhere, so it may change)
SELECT tenant_migrations_load(:'fixtures' || '/changed');
SELECT up_sql FROM tenant_migration_scripts WHERE version = '001';

-- A .sql file whose name has no version: warning, skipped, the rest loads
SELECT tenant_migrations_load(:'fixtures' || '/no_version');
SELECT version, name FROM tenant_migration_scripts
 WHERE version = '0500' OR name = 'notes';

-- The same version twice: error naming both files, nothing registered
SELECT pg_temp.try(format('SELECT tenant_migrations_load(%L)', :'fixtures' || '/dup_version'));
-- ... also across shared/ and the top folder, and 610 equals 0610
SELECT pg_temp.try(format('SELECT tenant_migrations_load(%L)', :'fixtures' || '/dup_shared'));
SELECT count(*) AS registered FROM tenant_migration_scripts
 WHERE version IN ('0600', '0610', '610');

-- A .down.sql without its .up.sql
SELECT pg_temp.try(format('SELECT tenant_migrations_load(%L)', :'fixtures' || '/orphan_down'));
SELECT count(*) AS registered FROM tenant_migration_scripts
 WHERE version IN ('0700', '0701');

-- A dbmate file with a down section but no up section
SELECT pg_temp.try(format('SELECT tenant_migrations_load(%L)', :'fixtures' || '/bad_dbmate'));
SELECT count(*) AS registered FROM tenant_migration_scripts WHERE version = '0800';

-- A script the registration refuses: the whole load is undone, and the
-- error says which file it came from
DO $$
DECLARE
	ctx text;
BEGIN
	PERFORM tenant_migrations_load(current_setting('tm_test.fixtures') || '/bad_sql');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
	RAISE NOTICE 'loading bad_sql failed with SQLSTATE %; context mentions the file: %',
		SQLSTATE,
		position('while loading migration file "'
				 || current_setting('tm_test.fixtures')
				 || '/bad_sql/0901_commit.sql"' IN ctx) > 0;
END;
$$;
SELECT count(*) AS registered FROM tenant_migration_scripts
 WHERE version IN ('0900', '0901');

-- A NUL byte is refused whatever the database encoding
DO $$
DECLARE
	ctx text;
BEGIN
	PERFORM tenant_migrations_load(current_setting('tm_test.fixtures') || '/bad_encoding');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
	RAISE NOTICE 'loading bad_encoding failed with SQLSTATE %; context mentions the file: %',
		SQLSTATE,
		position('/bad_encoding/0950_nul.sql"' IN ctx) > 0;
END;
$$;

-- A missing folder, an empty path
SELECT pg_temp.try($$SELECT tenant_migrations_load('/nonexistent/tenant_migrate/migrations')$$);
SELECT pg_temp.try($$SELECT tenant_migrations_load('')$$);

-- A relative path is taken relative to the data directory, like
-- pg_read_file(): pg_tblspc exists there and holds no migrations,
-- PG_VERSION is a file
SELECT tenant_migrations_load('pg_tblspc');
SELECT pg_temp.try($$SELECT tenant_migrations_load('PG_VERSION')$$);
SELECT pg_temp.try($$SELECT tenant_migrations_load('no_such_folder')$$);

-- Privileges: EXECUTE is not granted to PUBLIC, and even with EXECUTE a role
-- needs the privileges of pg_read_server_files.  Everything is rolled back,
-- so the test leaves no role behind.
BEGIN;
CREATE ROLE regress_tm_load_user;
SET ROLE regress_tm_load_user;
SELECT pg_temp.try(format('SELECT tenant_migrations_load(%L)', :'fixtures' || '/mixed'));
RESET ROLE;
GRANT EXECUTE ON FUNCTION tenant_migrations_load(text) TO regress_tm_load_user;
SET ROLE regress_tm_load_user;
SELECT pg_temp.try(format('SELECT tenant_migrations_load(%L)', :'fixtures' || '/mixed'));
RESET ROLE;
-- with pg_read_server_files the folder is opened (and found missing here,
-- before any table is touched)
GRANT pg_read_server_files TO regress_tm_load_user;
SET ROLE regress_tm_load_user;
SELECT pg_temp.try($$SELECT tenant_migrations_load('no_such_folder')$$);
RESET ROLE;
ROLLBACK;
SELECT count(*) AS roles_left FROM pg_roles WHERE rolname = 'regress_tm_load_user';

-- Nothing above changed the scripts registered from mixed/ (10, 001 changed
-- by changed/) and no_version/ (1)
SELECT count(*) AS scripts FROM tenant_migration_scripts;

-- A version longer than 63 bytes is refused, and the error context names the
-- file; nothing of the folder is registered
DO $$
DECLARE
	msg text;
	ctx text;
BEGIN
	PERFORM tenant_migrations_load(current_setting('tm_test.fixtures') || '/long_version');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, ctx = PG_EXCEPTION_CONTEXT;
	RAISE NOTICE '%: %; context mentions the file: %', SQLSTATE, msg,
		position('/long_version/' || repeat('1', 64) || '_too_long.sql"' IN ctx) > 0;
END;
$$;
SELECT count(*) AS registered FROM tenant_migration_scripts WHERE version = '1100';

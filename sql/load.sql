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
-- ... and the error says where the bad byte is, but never quotes the file
-- (it could be anything, not a migration at all)
DO $$
DECLARE
	msg text;
	det text;
BEGIN
	PERFORM tenant_migrations_load(current_setting('tm_test.fixtures') || '/bad_utf8');
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
	RAISE NOTICE '%: % DETAIL: %', SQLSTATE,
		replace(msg, current_setting('tm_test.fixtures'), '<fixtures>'), det;
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

-- Symbolic links.  A file or folder the loader reads must lie inside the
-- folder given, after following links; a link out of it is refused (42501)
-- and the error names the link, never what it leads to.  The links are made
-- here, by the server, in a scratch folder of the build directory.
\set links :abs_srcdir '/tmp_load_links'
SELECT set_config('tm_test.links', :'links', false) IS NOT NULL AS ok;
CREATE FUNCTION pg_temp.sh(cmd text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	EXECUTE format('COPY (SELECT 1) TO PROGRAM %L', cmd);
END
$f$;
-- pg_temp.try() on loading a folder of the scratch folder, its path shortened
CREATE FUNCTION pg_temp.try_load(folder text) RETURNS text LANGUAGE sql AS $f$
	SELECT replace(pg_temp.try(format('SELECT tenant_migrations_load(%L)',
									  current_setting('tm_test.links') || '/' || folder)),
				   current_setting('tm_test.links'), '<links>')
$f$;
SELECT pg_temp.sh(format($sh$
set -e
rm -rf '%1$s'
mkdir '%1$s'
cd '%1$s'
mkdir file_out
ln -s /etc/passwd file_out/7001_passwd.sql
mkdir down_out
echo 'SELECT 1;' > down_out/7001_x.up.sql
ln -s /etc/passwd down_out/7001_x.down.sql
mkdir -p prisma_out/7001_x
ln -s /etc/passwd prisma_out/7001_x/migration.sql
mkdir -p prisma_down_out/7001_x
echo 'SELECT 1;' > prisma_down_out/7001_x/migration.sql
ln -s /etc/passwd prisma_down_out/7001_x/down.sql
mkdir dir_out
ln -s '%2$s/mixed/20240101_120000_add_orders' dir_out/7002_orders
mkdir shared_out
ln -s '%2$s/mixed/shared' shared_out/shared
mkdir shared_loop
ln -s . shared_loop/shared
mkdir -p inside/docs inside/shared_scripts
echo 'CREATE TABLE public.linked (id int);' > inside/docs/create_linked.txt
ln -s docs/create_linked.txt inside/1001_linked.sql
echo 'SELECT 1;' > inside/shared_scripts/1002_shared_linked.sql
ln -s shared_scripts inside/shared
ln -s /etc/passwd inside/README.md
ln -s inside root_link
$sh$, :'links', :'fixtures'));

-- A script file linked to a server file: up, down, dbmate, Prisma
SELECT pg_temp.try_load('file_out');
SELECT pg_temp.try_load('down_out');
SELECT pg_temp.try_load('prisma_out');
SELECT pg_temp.try_load('prisma_down_out');
-- ... a Prisma folder or shared/ linked to a folder outside (here: another
-- fixture, whose scripts would otherwise load without a word)
SELECT pg_temp.try_load('dir_out');
SELECT pg_temp.try_load('shared_out');
-- ... shared/ linked to the folder itself is outside it too
SELECT pg_temp.try_load('shared_loop');
SELECT count(*) AS registered FROM tenant_migration_scripts
 WHERE version LIKE '7%' OR up_sql LIKE '%root:%' OR down_sql LIKE '%root:%';

-- Links that stay inside the folder work (a script file, shared/); a link
-- the loader never reads (README.md) is ignored like any README.md; and the
-- folder given may itself be a link
SELECT pg_temp.try_load('inside');
SELECT version, scope, up_sql FROM tenant_migration_scripts
 WHERE version IN ('1001', '1002') ORDER BY version;
SELECT pg_temp.try_load('root_link');
SELECT tenant_migrations_load(:'links' || '/root_link') AS changed;

SELECT pg_temp.sh(format('rm -rf %L', :'links'));
DELETE FROM tenant_migration_scripts WHERE version IN ('1001', '1002');
SELECT count(*) AS scripts FROM tenant_migration_scripts;

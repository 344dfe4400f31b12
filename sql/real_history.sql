--
-- A real history (issue 7): ten Prisma-layout migrations written the way
-- Prisma (enum changes, BEGIN/COMMIT), Rails/pg_dump (structure.sql) and
-- Supabase (db pull) write them, with COPY seed data, loaded from a folder
-- with the stray files those tools leave.  Applied to three tenants one
-- version per tenant_migrate() call (an enum value added by one migration
-- is used by the next: PostgreSQL allows that only after a commit), and
-- compared with the same files run by psql in a plain database.  The last
-- three build indexes CONCURRENTLY and add an enum value used by the next.
-- Applied to three tenants by fleet runs (CALL tenant_migrate_all(): a
-- commit after each enum-adding script, CONCURRENTLY scripts statement by
-- statement outside a transaction block), and to a new tenant by CALL
-- create_tenant(); every one compared with the same files run by psql in a
-- plain database.  Then the one-tenant refusals.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup
\set fixtures :abs_srcdir '/test/fixtures/real'

-- Tenants that exist before the history is registered
SELECT create_tenant_schema(k) FROM unnest('{h1,h2,h3}'::text[]) k ORDER BY 1;

-- 11, 14: the folder loads: .DS_Store, migration_lock.toml and meta/*.json
-- are ignored, a timestamp-only folder name and an empty name part load,
-- rollback.sql is the down script, the empty migration registers
SELECT tenant_migrations_load(:'fixtures' || '/history') AS loaded;
SELECT version, name, down_sql IS NOT NULL AS has_down FROM tenant_migration_scripts ORDER BY version;
-- two folders with one version are refused, naming both
SELECT tenant_migrations_load(:'fixtures' || '/dup');

-- 4: all pending scripts in one transaction: PostgreSQL refuses the value
-- added by 20240104000000 in 20240105000000; the hint says what to do
SELECT version FROM tenant_migrate('tenant_h1', '20240110000000');
-- create_tenant_schema applies everything in one transaction: it fails on
-- such a history with a hint naming CALL create_tenant
SELECT create_tenant_schema('h4');
SELECT count(*) AS h4_exists FROM pg_namespace WHERE nspname = 'tenant_h4';

-- Fleet runs: one tenant in this session, the others in two workers; a
-- new tenant with create_tenant
SET client_min_messages = warning;
CALL tenant_migrate_all(tenants => '{tenant_h1}', workers => 0);
CALL tenant_migrate_all(workers => 2);
CALL create_tenant('h4');
RESET client_min_messages;
SELECT tenant_schema, count(*) AS applied FROM tenant_migrations GROUP BY 1 ORDER BY 1;
SELECT tenant_schema, count(*) FILTER (WHERE step IS NOT NULL) AS step_rows,
       count(*) FILTER (WHERE status <> 'ok') AS not_ok
  FROM tenant_migration_log WHERE tenant_schema LIKE 'tenant_h_' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS invalid_indexes FROM pg_index WHERE NOT indisvalid;

-- The reference: the same files run by psql, one by one, in a plain
-- database's public
SELECT current_database() AS maindb \gset
CREATE DATABASE regress_real_ref;
\c regress_real_ref
\set QUIET on
\set ECHO none
SET client_min_messages = warning;
\set f :fixtures '/history/20240101000000_init/migration.sql'
\i :f
\set f :fixtures '/history/20240102000000/migration.sql'
\i :f
\set f :fixtures '/history/20240103000000_/migration.sql'
\i :f
\set f :fixtures '/history/20240104000000_add_role_value/migration.sql'
\i :f
\set f :fixtures '/history/20240105000000_use_role_value/migration.sql'
\i :f
\set f :fixtures '/history/20240106000000_recreate_enum/migration.sql'
\i :f
\set f :fixtures '/history/20240107000000_structure/migration.sql'
\i :f
\set f :fixtures '/history/20240108000000_supabase_pull/migration.sql'
\i :f
\set f :fixtures '/history/20240109000000_seed/migration.sql'
\i :f
\set f :fixtures '/history/20240110000000_empty/migration.sql'
\i :f
\set f :fixtures '/history/20240111000000_post_title_index/migration.sql'
\i :f
\set f :fixtures '/history/20240112000000_add_role_guest/migration.sql'
\i :f
\set f :fixtures '/history/20240113000000_guest_index/migration.sql'
\i :f
RESET ALL;
\set f :fixtures '/catalog.sql'
\i :f
\set QUIET off
\set ECHO all
SELECT pg_temp.regress_catalog('public') AS reference \gset
SELECT md5(:'reference') AS reference_md5 \gset
SELECT count(*) AS reference_objects FROM regexp_split_to_table(:'reference', E'\n');
SELECT id, email, role FROM "User" ORDER BY id;
\c :maindb
\set QUIET on
\set ECHO none
\i :f
\set QUIET off
\set ECHO all

-- Every tenant's catalog equals the reference, its name read as public
SELECT t, md5(pg_temp.regress_catalog(t)) = :'reference_md5' AS same_as_reference
  FROM unnest('{tenant_h1,tenant_h2,tenant_h3,tenant_h4}'::name[]) t ORDER BY t;
-- (what differs, if anything)
SELECT x FROM regexp_split_to_table(pg_temp.regress_catalog('tenant_h2'), E'\n') x
EXCEPT SELECT regexp_split_to_table(:'reference', E'\n');
SELECT x FROM regexp_split_to_table(pg_temp.regress_catalog('tenant_h4'), E'\n') x
EXCEPT SELECT regexp_split_to_table(:'reference', E'\n');
SELECT id, email, role FROM tenant_h3."User" ORDER BY id;
SELECT tenant_h3.post_count(1) AS posts;
-- public gained none of it
SELECT count(*) AS in_public FROM pg_class
 WHERE relnamespace = 'public'::regnamespace AND relname IN ('User', 'Post', 'comments', 'profiles');

-- Rolling the first migration back uses rollback.sql (after the others)
SELECT count(*) > 0 AS has_rollback FROM tenant_migration_scripts
 WHERE version = '20240101000000' AND down_sql LIKE 'DROP TABLE "User"%';

--
-- 5: a CONCURRENTLY step registers (flagged as non-transactional); the
-- one-tenant calls, which run in the caller's transaction, refuse it
-- before anything runs, with a hint naming the procedure to use
--
SELECT tenant_migration_add('20240120000000', 'concurrent_index',
  E'-- CreateIndex\nCREATE INDEX CONCURRENTLY "Post_title_idx" ON "Post"("title");\n') IS NOT NULL AS registered;
SELECT version FROM tenant_migrate('tenant_h1');
SELECT version, name FROM tenant_migration_plan('tenant_h1');
SELECT create_tenant_schema('h5');
SELECT count(*) AS h5_exists FROM pg_namespace WHERE nspname = 'tenant_h5';
SELECT tenant_migration_add('20240121000000', 'reindex',
  E'REINDEX TABLE CONCURRENTLY "Post";\nDROP INDEX CONCURRENTLY "Post_title_idx";\n', scope => 'tenant') IS NOT NULL AS registered;
SELECT version FROM tenant_migrate('tenant_h2', '20240113000000');
DROP DATABASE regress_real_ref;

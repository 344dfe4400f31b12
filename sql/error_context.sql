--
-- error_context: a failing migration script's error comes through
-- unchanged (SQLSTATE, message, detail, hint); where it happened -- script,
-- version and name, tenant, statement number, line and a short snippet --
-- is one CONTEXT line, added the way PL/pgSQL adds its own, and the
-- statement is not printed a second time.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- Every field of an error, the CONTEXT line by line (without the line
-- of this helper itself, whose schema name varies)
CREATE FUNCTION pg_temp.err(cmd text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE code text; msg text; det text; hint text; ctx text;
BEGIN
  EXECUTE cmd;
  RETURN NEXT 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT,
                          ctx = PG_EXCEPTION_CONTEXT;
  RETURN NEXT 'code:    ' || code;
  RETURN NEXT 'message: ' || msg;
  IF det <> '' THEN RETURN NEXT 'detail:  ' || det; END IF;
  IF hint <> '' THEN RETURN NEXT 'hint:    ' || hint; END IF;
  RETURN QUERY SELECT 'context: ' || l
                 FROM regexp_split_to_table(ctx, E'\n') WITH ORDINALITY AS c(l, n)
                WHERE l !~ '^PL/pgSQL function pg_temp' ORDER BY n;
END $f$;

\pset format unaligned
\pset tuples_only on

SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY, sku text UNIQUE);', 'DROP TABLE public.items;') IS NOT NULL;
SELECT create_tenant_schema('acme');
SELECT create_tenant_schema('beta');

-- The third statement fails: comments and blank lines before it count in
-- its line number, not in its snippet
SELECT tenant_migration_add('2', 'three steps', $$CREATE TABLE public.two (id int);
-- a comment

/* and another */ INSERT INTO public.two VALUES (1);
   -- the failing one:
   INSERT INTO public.no_such_table
     VALUES (1);$$) IS NOT NULL;
SELECT * FROM pg_temp.err($$SELECT tenant_migrate('tenant_acme')$$);

-- The log row holds the same: message, then the CONTEXT line
SELECT error FROM tenant_migration_log WHERE version = '2' ORDER BY id DESC LIMIT 1;

-- An error with a detail (unique violation): detail kept as it was
SELECT tenant_migration_add('2', 'dup', $$INSERT INTO public.items VALUES (1, 'a');
INSERT INTO public.items VALUES (2, 'a');$$) IS NOT NULL;
SELECT * FROM pg_temp.err($$SELECT tenant_migrate('tenant_acme')$$);

-- A script's own RAISE with SQLSTATE and hint: kept; the DO block's own
-- context line comes first, then the script's
SELECT tenant_migration_add('2', 'raise', $$DO $d$
BEGIN
  RAISE EXCEPTION 'custom failure %', 42 USING ERRCODE = 'P0042', HINT = 'Do something else.';
END $d$;$$) IS NOT NULL;
SELECT * FROM pg_temp.err($$SELECT tenant_migrate('tenant_acme')$$);

-- A function the script calls fails: its context, then the script's
SELECT tenant_migration_add('2', 'nested', $$CREATE FUNCTION public.explode(int) RETURNS int
  LANGUAGE plpgsql AS $f$ BEGIN RETURN 1 / $1; END $f$;
SELECT public.explode(0);$$) IS NOT NULL;
SELECT * FROM pg_temp.err($$SELECT tenant_migrate('tenant_acme')$$);

-- A long statement is cut short in the snippet
SELECT tenant_migration_add('2', 'long', $$SELECT 1 / 0, '$$ || repeat('x', 300) || $$'$$) IS NOT NULL;
SELECT * FROM pg_temp.err($$SELECT tenant_migrate('tenant_acme')$$);

-- The caught error of a PL/pgSQL caller: same SQLSTATE and message as the
-- statement itself would give
DO $$
BEGIN
  PERFORM tenant_migrate('tenant_acme');
EXCEPTION WHEN division_by_zero THEN
  RAISE NOTICE 'caught %: %', SQLSTATE, SQLERRM;
END $$;

-- A down script: "down script", the recorded (rewritten) statement
DELETE FROM tenant_migration_scripts WHERE version = '2';
SELECT tenant_migration_add('3', 'bad down', 'CREATE TABLE public.three (id int);',
  $$DROP TABLE public.three;
DROP TABLE public.missing;$$) IS NOT NULL;
SELECT count(*) FROM tenant_migrate('tenant_acme');
SELECT * FROM pg_temp.err($$SELECT tenant_rollback('tenant_acme')$$);

-- A shared script names the schema public
SELECT tenant_migration_add('4', 'bad shared', 'ALTER TABLE public.no_such_shared ADD COLUMN x int;', NULL, 'shared') IS NOT NULL;
SELECT * FROM pg_temp.err($$SELECT tenant_migrate_shared()$$);
DELETE FROM tenant_migration_scripts WHERE version = '4';

-- A fleet run: the tenant's failure is a WARNING with the tenant error's
-- SQLSTATE, detail and CONTEXT line; the run goes on with the other tenant
SELECT tenant_migration_add('5', 'beta fails', $$DO $d$
BEGIN
  IF current_schema() = 'tenant_beta' THEN
    INSERT INTO items VALUES (1, 'a'), (2, 'a');
  END IF;
END $d$;$$) IS NOT NULL;
\pset tuples_only off
\pset format aligned
SET client_min_messages = warning;
\set VERBOSITY sqlstate
CALL tenant_migrate_all(workers => 1);
\set VERBOSITY default
\set SHOW_CONTEXT always
CALL tenant_migrate_all(workers => 1);
\set SHOW_CONTEXT errors
SELECT tenant_schema, version, status FROM tenant_migration_log WHERE version = '5' ORDER BY id;
RESET client_min_messages;
SET client_min_messages = warning;
DROP SCHEMA tenant_acme, tenant_beta CASCADE;
RESET client_min_messages;

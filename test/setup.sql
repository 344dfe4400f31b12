-- test/setup.sql: run first by every pg_regress suite, so that each one
-- starts from a fresh extension, alone or after the others.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS tenant_migrate CASCADE;
CREATE EXTENSION tenant_migrate;
RESET client_min_messages;

-- SQLSTATE, message, detail and hint of an error, or 'ok'; a detail that
-- quotes the failing row is left out (it holds timestamps)
CREATE FUNCTION pg_temp.try(cmd text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text; msg text; det text; hint text;
BEGIN EXECUTE cmd; RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                          det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  IF det LIKE 'Failing row contains%' THEN det := NULL; END IF;
  RETURN st || ': ' || msg || coalesce(' DETAIL: ' || nullif(det, ''), '')
         || coalesce(' HINT: ' || nullif(hint, ''), '');
END $f$;

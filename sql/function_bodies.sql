--
-- function_bodies: a process validates the functions of a tenant script
-- (check_function_bodies) the first time it applies that script, and not
-- for the next tenants that get the same text (tenant_migrate.
-- recheck_function_bodies off, the default); with the setting on, every
-- tenant's are validated.  The session's own check_function_bodies is
-- never changed.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

SELECT tenant_migration_add('1', 'thing', 'CREATE TABLE public.thing (id int);', 'DROP TABLE public.thing;') IS NOT NULL;
SELECT count(create_tenant_schema(s)) FROM unnest('{fb_a,fb_b,fb_c,fb_d}'::text[]) s;
-- drift by hand: b, c and d lose the table the next script's function reads
DROP TABLE tenant_fb_b.thing, tenant_fb_c.thing, tenant_fb_d.thing;

-- a SQL function's body is parsed against the schema when it is validated
SELECT tenant_migration_add('2', 'counter',
  $$CREATE FUNCTION public.thing_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM public.thing';$$,
  'DROP FUNCTION public.thing_count();') IS NOT NULL;

-- validated: b fails, so the script is not known good yet; a passes
SELECT pg_temp.try($$SELECT count(*) FROM tenant_migrate('tenant_fb_b')$$);
SELECT count(*) FROM tenant_migrate('tenant_fb_a');
SELECT tenant_fb_a.thing_count();
-- known good now: c gets the same text unchecked, and its function fails
-- when it runs (tenant_verify reports the drift)
SELECT count(*) FROM tenant_migrate('tenant_fb_c');
SELECT pg_temp.try('SELECT tenant_fb_c.thing_count()');
SELECT problem, detail FROM tenant_verify('tenant_fb_c') ORDER BY 1, 2;
SHOW check_function_bodies;

-- recheck on: d is validated, and refused
SET tenant_migrate.recheck_function_bodies = on;
SELECT pg_temp.try($$SELECT count(*) FROM tenant_migrate('tenant_fb_d')$$);
RESET tenant_migrate.recheck_function_bodies;
SHOW check_function_bodies;

-- the session's check_function_bodies = off is kept (nothing validated)
SET check_function_bodies = off;
SELECT count(*) FROM tenant_migrate('tenant_fb_b');
SHOW check_function_bodies;
RESET check_function_bodies;

SELECT tenant_schema, version, status FROM tenant_migration_log
 WHERE action = 'up' ORDER BY id;

\set cleanup :abs_srcdir '/test/drop_tenants.sql'
\i :cleanup

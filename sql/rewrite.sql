--
-- tenant_migration_rewrite(): which "public" the rewriter replaces with the
-- tenant schema and which it keeps (DESIGN.md, "Rewriting public for a
-- tenant").  One case per line; nothing here is registered or run.
-- sql/rewrite_apply.sql applies full pg_dump and Prisma scripts and checks
-- that the result behaves.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- Extensions whose members live in public: their names must stay public.
-- (uuid-ossp: functions; citext: a type; pg_trgm: operators and operator classes)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" SCHEMA public;
CREATE EXTENSION IF NOT EXISTS citext SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
RESET client_min_messages;

-- One result per line, without headers
\pset format unaligned
\pset tuples_only on

--
-- Qualifiers: public / PUBLIC / "public" followed by "." in every spelling
--
-- lower case qualifier
SELECT tenant_migration_rewrite($q$SELECT * FROM public.t$q$, 'tenant_x');
-- upper case qualifier (the same unquoted identifier)
SELECT tenant_migration_rewrite($q$SELECT * FROM PUBLIC.t$q$, 'tenant_x');
-- quoted schema and table
SELECT tenant_migration_rewrite($q$SELECT * FROM "public"."t"$q$, 'tenant_x');
-- quoted schema, plain table
SELECT tenant_migration_rewrite($q$SELECT * FROM "public".t$q$, 'tenant_x');
-- blanks and tabs around the dot
SELECT tenant_migration_rewrite($q$SELECT * FROM public . t JOIN public	.	u USING (id)$q$, 'tenant_x');
-- three-part column reference
SELECT tenant_migration_rewrite($q$SELECT public.t.col FROM public.t$q$, 'tenant_x');
-- quoted object name with a blank
SELECT tenant_migration_rewrite($q$SELECT * FROM public."Weird Name"$q$, 'tenant_x');
-- a mixed-case tenant schema is spliced in quoted
SELECT tenant_migration_rewrite($q$SELECT * FROM public.t JOIN "public"."U" USING (id)$q$, 'tenant_AbC');
-- casts to a type of the tenant
SELECT tenant_migration_rewrite($q$SELECT 'a'::public.mytype, CAST('b' AS public.mytype)$q$, 'tenant_x');
-- an operator of the tenant (not an extension's)
SELECT tenant_migration_rewrite($q$SELECT 1 OPERATOR(public.===) 2$q$, 'tenant_x');
-- several statements in one script
SELECT tenant_migration_rewrite($q$CREATE TABLE public.a (id int); CREATE VIEW public.v AS SELECT * FROM public.a;$q$, 'tenant_x');

--
-- "public" as a schema name after SCHEMA
--
-- ON SCHEMA public
SELECT tenant_migration_rewrite($q$GRANT USAGE ON SCHEMA public TO regress_rw_reader$q$, 'tenant_x');
-- IN SCHEMA public (GRANT ... ON ALL TABLES)
SELECT tenant_migration_rewrite($q$GRANT SELECT ON ALL TABLES IN SCHEMA public TO regress_rw_reader$q$, 'tenant_x');
-- IN SCHEMA public (default privileges); TO PUBLIC, the role, is kept
SELECT tenant_migration_rewrite($q$ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC$q$, 'tenant_x');
-- SET SCHEMA public
SELECT tenant_migration_rewrite($q$ALTER TABLE staging_t SET SCHEMA public$q$, 'tenant_x');
-- CREATE SCHEMA IF NOT EXISTS "public", as Prisma writes it
SELECT tenant_migration_rewrite($q$CREATE SCHEMA IF NOT EXISTS "public"$q$, 'tenant_AbC');
-- COMMENT ON SCHEMA public; the comment text is an ordinary literal
SELECT tenant_migration_rewrite($q$COMMENT ON SCHEMA public IS 'standard public schema'$q$, 'tenant_x');
-- a schema in a list after ON SCHEMA is a schema name too
SELECT tenant_migration_rewrite($q$GRANT USAGE ON SCHEMA regress_rw_other, public TO regress_rw_reader$q$, 'tenant_x');

--
-- Regclass-style literals
--
-- nextval() default as pg_dump writes it
SELECT tenant_migration_rewrite($q$SELECT nextval('public.t_id_seq'::regclass)$q$, 'tenant_x');
-- ::regclass literal
SELECT tenant_migration_rewrite($q$SELECT 'public.t'::regclass$q$, 'tenant_x');
-- quoted schema inside the literal, mixed-case tenant
SELECT tenant_migration_rewrite($q$SELECT '"public".t'::regclass$q$, 'tenant_AbC');
-- ::pg_catalog.regclass
SELECT tenant_migration_rewrite($q$SELECT 'public.t'::pg_catalog.regclass$q$, 'tenant_x');
-- ::regproc and ::regprocedure
SELECT tenant_migration_rewrite($q$SELECT 'public.f'::regproc, 'public.f(integer)'::regprocedure$q$, 'tenant_x');
-- ::regtype
SELECT tenant_migration_rewrite($q$SELECT 'public.typ'::regtype$q$, 'tenant_x');
-- ::regnamespace names the schema itself
SELECT tenant_migration_rewrite($q$SELECT 'public'::regnamespace$q$, 'tenant_AbC');
-- setval() as pg_dump writes it
SELECT tenant_migration_rewrite($q$SELECT pg_catalog.setval('public.t_id_seq', 1, false)$q$, 'tenant_x');
-- to_regclass() and currval() take a regclass-style first argument
SELECT tenant_migration_rewrite($q$SELECT to_regclass('public.t'), currval('public.t_id_seq')$q$, 'tenant_x');
-- a CAST(... AS regclass) literal is the same regclass literal
SELECT tenant_migration_rewrite($q$SELECT CAST('public.t' AS regclass)$q$, 'tenant_x');
-- ::text and a plain literal are ordinary strings: kept
SELECT tenant_migration_rewrite($q$SELECT 'public.t'::text, 'public.t', length('public.t')$q$, 'tenant_x');

--
-- Function, procedure and DO bodies
--
-- PL/pgSQL in a custom dollar quote: RETURNS SETOF, %ROWTYPE, body; the EXECUTE string is an ordinary literal
SELECT tenant_migration_rewrite($q$CREATE FUNCTION public.f() RETURNS SETOF public.t LANGUAGE plpgsql AS $fn$ DECLARE r public.t%ROWTYPE; BEGIN EXECUTE 'ANALYZE public.x'; FOR r IN SELECT * FROM public.t LOOP RETURN NEXT r; END LOOP; END $fn$$q$, 'tenant_x');
-- SQL body in single quotes: doubled quotes inside; a regclass literal rewritten, a plain literal kept
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM public.t WHERE name <> ''public.x'' AND id < nextval(''public.s'')'$q$, 'tenant_x');
-- SQL-standard BEGIN ATOMIC body (it contains semicolons)
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT 1 FROM public.a; SELECT count(*) FROM public.t; END$q$, 'tenant_x');
-- SQL-standard RETURN body
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM public.t)$q$, 'tenant_x');
-- DO block without a LANGUAGE clause
SELECT tenant_migration_rewrite($q$DO $$ BEGIN INSERT INTO public.t VALUES (nextval('public.t_id_seq')); END $$$q$, 'tenant_x');
-- DO block with LANGUAGE before and after the body
SELECT tenant_migration_rewrite($q$DO LANGUAGE plpgsql $$ BEGIN DELETE FROM public.t; END $$; DO $d$ BEGIN DELETE FROM public.u; END $d$ LANGUAGE plpgsql$q$, 'tenant_x');
-- a procedure; COMMIT inside a procedure body is not the migration's
SELECT tenant_migration_rewrite($q$CREATE PROCEDURE public.purge() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM public.t; COMMIT; END $$$q$, 'tenant_x');
-- a PL/Python body is not SQL: kept; the signature outside it is rewritten
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS SETOF public.t LANGUAGE plpython3u AS $$ return plpy.execute("SELECT * FROM public.t") $$$q$, 'tenant_x');
-- a C function's link symbol is not SQL: kept
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f(int) RETURNS int LANGUAGE c AS 'regress_lib', 'public.f'$q$, 'tenant_x');
-- the function's own SET search_path = public, pg_temp
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = public, pg_temp AS $$ SELECT 1 $$$q$, 'tenant_x');
-- SET search_path TO 'public', 'pg_temp' as pg_dump quotes it, in ALTER FUNCTION
SELECT tenant_migration_rewrite($q$ALTER FUNCTION f() SET search_path TO 'public', 'pg_temp'$q$, 'tenant_AbC');
-- one string is ONE schema name to PostgreSQL ("public, pg_temp"), not public: kept
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = 'public, pg_temp' AS $$ SELECT 1 $$$q$, 'tenant_x');
-- a body in an escape string literal is a body too
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS E'SELECT count(*) FROM public.t'$q$, 'tenant_x');

--
-- Kept as public
--
-- functions of an extension in public (uuid-ossp)
SELECT tenant_migration_rewrite($q$CREATE TABLE public.t (id uuid DEFAULT public.uuid_generate_v4() PRIMARY KEY)$q$, 'tenant_x');
-- a type of an extension in public (citext)
SELECT tenant_migration_rewrite($q$ALTER TABLE public.t ADD COLUMN email public.citext, ADD COLUMN alt text DEFAULT 'a'::public.citext$q$, 'tenant_x');
-- an operator and a function of an extension in public (pg_trgm)
SELECT tenant_migration_rewrite($q$SELECT name OPERATOR(public.%) 'abc', public.similarity(name, 'abc') FROM public.t$q$, 'tenant_x');
-- an operator class of an extension in public, as pg_dump writes it (pg_trgm)
SELECT tenant_migration_rewrite($q$CREATE INDEX t_name_trgm ON public.t USING gin (name public.gin_trgm_ops)$q$, 'tenant_x');
-- the extension's own tables, also in regclass literals
SELECT tenant_migration_rewrite($q$SELECT * FROM public.tenant_migrations JOIN public.tenant_registry r ON true WHERE 'public.tenant_migrations'::regclass IS NOT NULL$q$, 'tenant_x');
-- names in tenant_migrate.shared_objects ("name" or "public.name"); other names still rewritten
SET tenant_migrate.shared_objects = 'plans, public.feature_flags';
SELECT tenant_migration_rewrite($q$SELECT * FROM public.plans, "public"."feature_flags", public.other WHERE 'public.plans'::regclass IS NOT NULL$q$, 'tenant_x');
RESET tenant_migrate.shared_objects;
-- after RESET, plans is an ordinary name again
SELECT tenant_migration_rewrite($q$SELECT * FROM public.plans$q$, 'tenant_x');
-- TO PUBLIC and FROM PUBLIC name the role
SELECT tenant_migration_rewrite($q$GRANT SELECT ON public.t TO PUBLIC; REVOKE ALL ON public.t FROM PUBLIC$q$, 'tenant_x');
-- "Public" is another schema
SELECT tenant_migration_rewrite($q$SELECT * FROM "Public".t$q$, 'tenant_x');
-- a column named public
SELECT tenant_migration_rewrite($q$SELECT public, t.public FROM public.t$q$, 'tenant_x');
-- string literals and both kinds of comments
SELECT tenant_migration_rewrite($q$SELECT 'public.t', $s$public.t$s$ /* public.t */ -- public.t$q$, 'tenant_x');
-- CREATE EXTENSION ... SCHEMA public
SELECT tenant_migration_rewrite($q$CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA public$q$, 'tenant_x');
-- CREATE EXTENSION ... SCHEMA public inside a DO block, by the same rule
SELECT tenant_migration_rewrite($q$DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public; END $$$q$, 'tenant_x');

--
-- Refused before anything runs (same compile as registration)
--
-- transaction control
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('CREATE TABLE public.a (id int); COMMIT;', 'tenant_x')$q$);
-- changing search_path
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SET search_path = public', 'tenant_x')$q$);
-- changing search_path with set_config(), as pg_dump's header does
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SELECT pg_catalog.set_config(''search_path'', '''', false)', 'tenant_x')$q$);
-- transaction control inside a DO block, which runs during the migration
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN DELETE FROM public.t; COMMIT; END $$', 'tenant_x')$q$);

-- Clean up
\pset tuples_only off
\pset format aligned
SET client_min_messages = warning;
DROP EXTENSION pg_trgm;
DROP EXTENSION citext;
DROP EXTENSION "uuid-ossp";
RESET client_min_messages;

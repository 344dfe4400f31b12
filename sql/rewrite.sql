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
-- The tenant name stays a token of its own: a blank goes in where the
-- byte next to the span would join it to a neighbour
--
-- a keyword right before a quoted "public"
SELECT tenant_migration_rewrite($q$SELECT v FROM"public".t$q$, 'tenant_acme');
-- a keyword right after it
SELECT tenant_migration_rewrite($q$DROP SCHEMA IF EXISTS "public"CASCADE$q$, 'tenant_a');
-- nothing to separate: no blank
SELECT tenant_migration_rewrite($q$SELECT v FROM x,"public".t$q$, 'tenant_acme');
-- inside a function body, by the same rule
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM"public".t'$q$, 'tenant_acme');
-- the results parse and name the tenant's objects: the SELECT reads
-- tenant_acme.t, the DROP drops tenant_a with what is in it
SET client_min_messages = warning;
CREATE SCHEMA tenant_acme;
CREATE TABLE tenant_acme.t (v text);
INSERT INTO tenant_acme.t VALUES ('row of tenant_acme');
CREATE SCHEMA tenant_a;
CREATE TABLE tenant_a.t (v text);
RESET client_min_messages;
SELECT tenant_migration_rewrite($q$SELECT v FROM"public".t$q$, 'tenant_acme') \gexec
SELECT tenant_migration_rewrite($q$DROP SCHEMA IF EXISTS "public"CASCADE$q$, 'tenant_a') \gexec
SELECT count(*) AS tenant_a_left FROM pg_namespace WHERE nspname = 'tenant_a';
DROP SCHEMA tenant_acme CASCADE;

--
-- A name spliced into a string literal is escaped as a literal.  Tenant
-- names are letters, digits and underscores, but tenant_migration_rewrite()
-- takes any schema name, so these use names with ' and \
--
-- regclass literal: ' doubled
SELECT tenant_migration_rewrite($q$SELECT nextval('public.t_id_seq'::regclass)$q$, 'o''brien');
-- escape string literal: ' and \ doubled
SELECT tenant_migration_rewrite($q$SELECT E'public.t'::regclass$q$, 'a\b''c');
-- a plain literal without standard_conforming_strings is an escape string too
SET standard_conforming_strings = off;
SELECT tenant_migration_rewrite($q$SELECT 'public.t'::regclass$q$, E'a\\b''c');
RESET standard_conforming_strings;
-- a regclass literal inside a '...' function body: escaped for both literals;
-- a qualifier in the body: escaped for the body
SELECT tenant_migration_rewrite($q$CREATE FUNCTION f() RETURNS regclass LANGUAGE sql AS 'SELECT ''public.t''::regclass FROM public.t'$q$, 'a\b''c');
-- a dollar quote cannot escape anything: a name with $ is refused there
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN DELETE FROM public.t; END $$', 'a$b')$q$);
-- the results parse and mean that schema
SET client_min_messages = warning;
CREATE SCHEMA "a\b'c";
CREATE TABLE "a\b'c".t (id int);
RESET client_min_messages;
SELECT tenant_migration_rewrite($q$SELECT E'public.t'::regclass$q$, 'a\b''c') \gexec
SELECT tenant_migration_rewrite($q$CREATE FUNCTION pg_temp.f() RETURNS regclass LANGUAGE sql AS 'SELECT ''public.t''::regclass FROM public.t UNION ALL SELECT ''public.t''::regclass'$q$, 'a\b''c') \gexec
SELECT pg_temp.f();
DROP SCHEMA "a\b'c" CASCADE;

--
-- Large inputs: every scan is linear (300,000 names in one GRANT took
-- minutes when each name walked back over the list) and can be cancelled
--
SET statement_timeout = '20s';
SELECT tenant_migration_rewrite('GRANT USAGE ON SCHEMA public' || repeat(', public', 299999) || ' TO regress_rw_reader', 'tenant_x')
       = 'GRANT USAGE ON SCHEMA tenant_x' || repeat(', tenant_x', 299999) || ' TO regress_rw_reader' AS rewritten;
RESET statement_timeout;
CREATE TEMP TABLE big_script AS
  SELECT 'GRANT USAGE ON SCHEMA public' || repeat(', public', 499999) || ' TO regress_rw_reader' AS sql;
\set VERBOSITY terse
SET statement_timeout = '10ms';
SELECT length(tenant_migration_rewrite(sql, 'tenant_x')) FROM big_script;
RESET statement_timeout;
\set VERBOSITY default
DROP TABLE big_script;

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
-- setting names are case-insensitive, quoted or not
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SET "Search_Path" = public', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SET LOCAL "search_path" TO other', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('RESET "Search_Path"', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SET "Role" TO regress_rw_reader', 'tenant_x')$q$);
-- the role in any spelling
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('set local role regress_rw_reader', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SET SESSION AUTHORIZATION regress_rw_reader', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SET "SESSION_AUTHORIZATION" = regress_rw_reader', 'tenant_x')$q$);
-- set_config(): the decoded name, in any case, also passed by name
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SELECT set_config(''Search_Path'', ''other'', false)', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SELECT set_config(U&''search\005fpath'', ''other'', false)', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SELECT set_config(U&''!0052ole'' UESCAPE ''!'', ''x'', true)', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SELECT set_config(setting_name => ''ROLE'', new_value => ''x'', is_local => true)', 'tenant_x')$q$);
-- settings stored for a role or a database outlive the migration
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('ALTER ROLE CURRENT_USER SET search_path = public', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('ALTER ROLE regress_rw_reader IN DATABASE regression SET role = postgres', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('ALTER USER regress_rw_reader RESET ALL', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('ALTER DATABASE regression SET search_path = public', 'tenant_x')$q$);
-- the same inside a DO block
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN SET "Search_Path" = public; END $$', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN SET U&"rol\0065" TO postgres; END $$', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN SET SCHEMA ''other''; END $$', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN PERFORM set_config(U&''Search\005FPath'', ''other'', true); END $$', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN ALTER ROLE CURRENT_USER IN DATABASE regression SET search_path = public; END $$', 'tenant_x')$q$);
-- still allowed: other settings, the value 'role', user mappings
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('SET LOCAL statement_timeout = ''5s''; SELECT set_config(''app.kind'', ''role'', true)', 'tenant_x')$q$);
SELECT pg_temp.try($q$SELECT tenant_migration_rewrite('DO $$ BEGIN ALTER USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (SET host ''h''); END $$', 'tenant_x')$q$);

-- Clean up
\pset tuples_only off
\pset format aligned
SET client_min_messages = warning;
DROP EXTENSION pg_trgm;
DROP EXTENSION citext;
DROP EXTENSION "uuid-ossp";
RESET client_min_messages;

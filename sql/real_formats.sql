--
-- Real migration files as their tools write them (issue 7): tool
-- boilerplate neutralised with a NOTICE, balanced BEGIN/COMMIT, psql
-- meta-commands of current pg_dump, COPY ... FROM stdin with its rows,
-- CREATE EXTENSION landing in public, empty scripts, every refusal at once
-- with its line, the rewriter's gaps, and scripts that touch other schemas.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- Earlier suites may have left the extensions this one creates
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS citext, pg_trgm CASCADE;
RESET client_min_messages;

-- What public holds before any tenant exists (compared at the end)
-- (extension members and their array types aside)
CREATE FUNCTION pg_temp.public_objects() RETURNS bigint LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pg_class c WHERE relnamespace = 'public'::regnamespace
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e'))
       + (SELECT count(*) FROM pg_type t WHERE typnamespace = 'public'::regnamespace
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid IN (t.oid, t.typelem) AND d.deptype = 'e'))
       + (SELECT count(*) FROM pg_proc p WHERE pronamespace = 'public'::regnamespace
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e'))
$$;
SELECT pg_temp.public_objects() AS before \gset

-- A tenant that exists before the scripts are registered, to plan them
SELECT create_tenant_schema('fa') AS tenant;

--
-- 1, 12, 13: a data-and-schema dump as pg_dump 17 writes it (August 2025
-- minor releases and later: \restrict / \unrestrict, transaction_timeout),
-- with its COPY data section
--
SELECT tenant_migration_add('001', 'pg_dump', $dump$--
-- PostgreSQL database dump
--

\restrict 4Hc9Qx1bT2vZk8Lm0pQrStUvWxYz3aBcDeFgHiJkLmNoPq

-- Dumped from database version 17.6
-- Dumped by pg_dump version 17.6

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET transaction_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: items; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.items (
    id integer NOT NULL,
    name text NOT NULL,
    note text
);

CREATE SEQUENCE public.items_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.items_id_seq OWNED BY public.items.id;

ALTER TABLE ONLY public.items ALTER COLUMN id SET DEFAULT nextval('public.items_id_seq'::regclass);

--
-- Data for Name: items; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.items (id, name, note) FROM stdin;
1	apple	\N
2	O'Brien's pear	tab\there
3	public.items	-- not a comment; not rewritten
\.


--
-- Name: items_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.items_id_seq', 3, true);

ALTER TABLE ONLY public.items
    ADD CONSTRAINT items_pkey PRIMARY KEY (id);

--
-- PostgreSQL database dump complete
--

\unrestrict 4Hc9Qx1bT2vZk8Lm0pQrStUvWxYz3aBcDeFgHiJkLmNoPq

$dump$) IS NOT NULL AS registered;

--
-- 1: Rails' structure.sql (older pg_dump header, search_path line at the
-- end) and 2: Prisma's balanced BEGIN; ... COMMIT;, 13: COPY in CSV
--
SELECT tenant_migration_add('002', 'rails_structure', $rails$SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SET check_function_bodies = false;
SET client_min_messages = warning;

SET search_path = public, pg_catalog;

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

COPY public.schema_migrations (version) FROM stdin WITH (FORMAT csv, HEADER true);
version
20240101000000
"20240102000000"
\.
SET search_path TO "$user", public;

INSERT INTO "schema_migrations" (version) VALUES
('20240103000000');

$rails$) IS NOT NULL AS registered;

SELECT tenant_migration_add('003', 'prisma_enum', $prisma$-- AlterEnum
BEGIN;
CREATE TYPE "Role_new" AS ENUM ('USER', 'ADMIN');
ALTER TABLE "items" ADD COLUMN "role" "Role_new" NOT NULL DEFAULT 'USER';
ALTER TYPE "Role_new" RENAME TO "Role";
COMMIT;
RESET ALL;
$prisma$) IS NOT NULL AS registered;

-- 6: empty and comment-only scripts register and apply as no-ops
SELECT tenant_migration_add('004', 'empty', '') IS NOT NULL AS registered;
SELECT tenant_migration_add('005', 'comment_only', E'-- This is an empty migration.\n/* nothing */\n') IS NOT NULL AS registered;
-- registering again is silent
SELECT tenant_migration_add('005', 'comment_only', E'-- This is an empty migration.\n/* nothing */\n') IS NOT NULL AS registered;

-- The plan shows exactly what runs: skipped lines as comments, the rows of
-- COPY as written
SELECT version, sql FROM tenant_migration_plan('tenant_fa', '003') ORDER BY version;
SELECT version FROM tenant_migrate('tenant_fa');
SELECT create_tenant_schema('fb') AS tenant;

-- The rows landed in each tenant's table, public gained nothing
SELECT id, name, note FROM tenant_fa.items ORDER BY id;
SELECT id, name, role FROM tenant_fb.items ORDER BY id;
SELECT version FROM tenant_fb.schema_migrations ORDER BY version;
SELECT nextval('tenant_fb.items_id_seq') AS next_id;
SELECT count(*) AS public_items FROM pg_class WHERE relname IN ('items', 'schema_migrations') AND relnamespace = 'public'::regnamespace;
SELECT tenant_schema, version FROM tenant_migrations WHERE tenant_schema = 'tenant_fb' ORDER BY version;
-- settings the scripts changed are back as they were
SHOW search_path;
SHOW client_min_messages;

--
-- 7: every refused statement at once, each with its line
--
\set VERBOSITY default
SELECT tenant_migration_add('010', 'refused', $bad$CREATE TABLE public.ok (id int);
SAVEPOINT a;
SET search_path = other;
VACUUM public.ok;
DO $$ BEGIN COMMIT; END $$;
SELECT set_config('search_path', 'x', true);
SET ROLE postgres;
\connect otherdb
ROLLBACK;
$bad$);
-- unbalanced and nested pairs
SELECT tenant_migration_add('010', 'refused', E'BEGIN;\nCREATE TABLE public.t1 (id int);\n');
SELECT tenant_migration_add('010', 'refused', E'CREATE TABLE public.t1 (id int);\nCOMMIT;\n');
SELECT tenant_migration_add('010', 'refused', E'BEGIN;\nBEGIN;\nCOMMIT;\nCOMMIT;\n');
SELECT tenant_migration_add('010', 'refused', E'BEGIN ISOLATION LEVEL SERIALIZABLE;\nCOMMIT;\n');
-- rows of COPY that never end, a meta-command inside a statement
SELECT tenant_migration_add('010', 'refused', E'CREATE TABLE public.t1 (id int);\nCOPY public.t1 FROM stdin;\n1\n2\n');
SELECT tenant_migration_add('010', 'refused', E'CREATE TABLE public.t1 (\n\\restrict abc\nid int);\n');
-- other search_path values are still refused
SELECT tenant_migration_add('010', 'refused', E'SET search_path = public;\n');
SELECT tenant_migration_add('010', 'refused', E'SELECT pg_catalog.set_config(''search_path'', '''', true);\n');
SELECT count(*) AS registered FROM tenant_migration_scripts WHERE version = '010';

--
-- 3, 8: CREATE EXTENSION without SCHEMA in a tenant script lands in public;
-- the plan, before the extension exists, already keeps public.citext
--
SELECT extname FROM pg_extension WHERE extname IN ('citext', 'pg_trgm');
SELECT tenant_migration_add('011', 'extensions', $ext$CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS "pg_trgm";
CREATE TABLE public.users (
    id serial PRIMARY KEY,
    email public.citext NOT NULL,
    name text NOT NULL
);
CREATE INDEX users_name_trgm ON public.users USING gin (name public.gin_trgm_ops);
$ext$) IS NOT NULL AS registered;
SELECT tenant_migration_add('012', 'uses_citext', $use$CREATE TABLE public.aliases (alias public.citext PRIMARY KEY);
CREATE FUNCTION public.same_email(a public.citext, b public.citext) RETURNS boolean
    LANGUAGE sql AS $$ SELECT a OPERATOR(public.=) b $$;
$use$) IS NOT NULL AS registered;
SELECT version, sql FROM tenant_migration_plan('tenant_fa') ORDER BY version;
SELECT tenant_migration_rewrite('CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE public.x (e public.citext, n public.items);', 'tenant_fa');
SELECT version FROM tenant_migrate('tenant_fa');
SELECT version FROM tenant_migrate('tenant_fb');
SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname IN ('citext', 'pg_trgm') ORDER BY 1;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'tenant_fb.users'::regclass AND attname = 'email';
INSERT INTO tenant_fb.users (email, name) VALUES ('A@X.org', 'alice');
SELECT tenant_fb.same_email(email, 'a@x.ORG') FROM tenant_fb.users;
SELECT count(*) AS in_tenant_schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE n.nspname LIKE 'tenant_%';

--
-- 9: rewriter gaps
--
SELECT tenant_migration_rewrite($q$SELECT 'public.f(public.mood, integer)'::regprocedure, 'public.<>(public.citext, public.citext)'::regoperator, 'public.<>(public.mood,public.mood)'::regoperator;
SELECT to_regprocedure('public.g("public".mood)');
SELECT public.id, public.name FROM public.items AS public;
SELECT public.id FROM public.items public WHERE public.id > 0;
SELECT * FROM U&"public".items, U&"p\0075blic".items, U&"p!0075blic" UESCAPE '!'.items;
SELECT 'public.items'::text::regclass, 'public.items'::varchar::pg_catalog.regclass;
SELECT email FROM public.users WHERE email OPERATOR(public.<>) 'x' AND email OPERATOR(public.!=) 'y';
SELECT 1 OPERATOR(public.===) 2;
$q$, 'tenant_fa');

--
-- 10: statements that change another schema warn at registration, with
-- the line; the second tenant's failure says why
--
CREATE SCHEMA auth;
CREATE TABLE auth.users (id int);
SELECT tenant_migration_add('013', 'touch_auth', $auth$CREATE FUNCTION public.on_signup() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;

CREATE TRIGGER on_signup AFTER INSERT ON auth.users
    FOR EACH ROW EXECUTE FUNCTION public.on_signup();
CREATE SCHEMA IF NOT EXISTS "public";
$auth$) IS NOT NULL AS registered;
SELECT version FROM tenant_migrate('tenant_fa');
SELECT version FROM tenant_migrate('tenant_fb');
SELECT tenant_schema, version, status, error FROM tenant_migration_log
 WHERE version = '013' ORDER BY id;

-- DROP of a trigger on another schema's table warns too
SELECT tenant_migration_add('014', 'drop_auth_trigger', 'DROP TRIGGER on_signup ON auth.users;') IS NOT NULL AS registered;

-- public gained nothing but the extensions' members
SELECT pg_temp.public_objects() - :before AS public_gained_non_extension;

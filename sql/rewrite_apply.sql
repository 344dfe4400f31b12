--
-- Rewritten scripts at work: a pg_dump-style and a Prisma-style migration,
-- registered once, are applied to two tenants (one with a mixed-case schema
-- name).  The objects land in each tenant schema and behave (sequences,
-- foreign keys, triggers, function bodies, RLS, extension defaults), public
-- gains nothing, and rolling back to 0 empties the tenant schemas again.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- uuid_generate_v4() lives in public as a member of uuid-ossp
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" SCHEMA public;
RESET client_min_messages;

-- A shared table in public that tenant tables reference; listed in
-- tenant_migrate.shared_objects, so public.regress_plans stays public
CREATE TABLE public.regress_plans (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO public.regress_plans VALUES (1, 'free'), (2, 'pro');
SET tenant_migrate.shared_objects = 'public.regress_plans';

-- What public holds before any tenant exists (compared at the end)
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) AS pub_class,
       (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace) AS pub_type,
       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace) AS pub_proc
\gset before_

--
-- Migration 001 as pg_dump --schema-only writes it
--
SELECT $up$
--
-- PostgreSQL database dump
--

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: touch_updated_at(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

--
-- Name: accounts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.accounts (
    id integer NOT NULL,
    name text NOT NULL,
    plan_id integer NOT NULL,
    api_key uuid DEFAULT public.uuid_generate_v4() NOT NULL,
    updated_at timestamp with time zone
);

--
-- Name: TABLE accounts; Type: COMMENT; Schema: public; Owner: -
--

COMMENT ON TABLE public.accounts IS 'Customer accounts (public.accounts in the dump)';

--
-- Name: accounts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.accounts_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.accounts_id_seq OWNED BY public.accounts.id;

--
-- Name: invoices; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.invoices (
    id integer NOT NULL,
    account_id integer NOT NULL,
    amount numeric(12,2) NOT NULL
);

CREATE SEQUENCE public.invoices_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.invoices_id_seq OWNED BY public.invoices.id;

--
-- Name: account_total(integer); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.account_total(p_account integer) RETURNS numeric
    LANGUAGE sql STABLE
    AS $$SELECT coalesce(sum(i.amount), 0) FROM public.invoices i WHERE i.account_id = p_account$$;

ALTER TABLE ONLY public.accounts ALTER COLUMN id SET DEFAULT nextval('public.accounts_id_seq'::regclass);

ALTER TABLE ONLY public.invoices ALTER COLUMN id SET DEFAULT nextval('public.invoices_id_seq'::regclass);

SELECT pg_catalog.setval('public.accounts_id_seq', 1, false);

SELECT pg_catalog.setval('public.invoices_id_seq', 1, false);

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.invoices
    ADD CONSTRAINT invoices_pkey PRIMARY KEY (id);

CREATE INDEX invoices_account_id_idx ON public.invoices USING btree (account_id);

CREATE TRIGGER accounts_touch BEFORE INSERT OR UPDATE ON public.accounts FOR EACH ROW EXECUTE FUNCTION public.touch_updated_at();

ALTER TABLE ONLY public.accounts
    ADD CONSTRAINT accounts_plan_id_fkey FOREIGN KEY (plan_id) REFERENCES public.regress_plans(id);

ALTER TABLE ONLY public.invoices
    ADD CONSTRAINT invoices_account_id_fkey FOREIGN KEY (account_id) REFERENCES public.accounts(id);

ALTER TABLE public.invoices ENABLE ROW LEVEL SECURITY;

CREATE POLICY invoices_nonnegative ON public.invoices USING ((amount >= (0)::numeric));

--
-- PostgreSQL database dump complete
--
$up$ AS up, $down$
DROP FUNCTION public.account_total(integer);
DROP TABLE public.invoices;
DROP TABLE public.accounts;
DROP FUNCTION public.touch_updated_at();
$down$ AS down
\gset dump_

--
-- Migration 002 as Prisma Migrate writes it
--
SELECT $up$-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "public"."Role" AS ENUM ('USER', 'ADMIN');

-- CreateTable
CREATE TABLE "public"."User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "role" "public"."Role" NOT NULL DEFAULT 'USER',
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "public"."Post" (
    "id" SERIAL NOT NULL,
    "title" TEXT NOT NULL,
    "authorId" INTEGER NOT NULL,

    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "public"."User"("email");

-- AddForeignKey
ALTER TABLE "public"."Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "public"."User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
$up$ AS up, $down$-- DropForeignKey
ALTER TABLE "public"."Post" DROP CONSTRAINT "Post_authorId_fkey";

-- DropTable
DROP TABLE "public"."Post";

-- DropTable
DROP TABLE "public"."User";

-- DropEnum
DROP TYPE "public"."Role";
$down$ AS down
\gset prisma_

--
-- The rewritten scripts, previewed (mixed-case tenant: every qualifier
-- becomes "tenant_AbC"; uuid_generate_v4, regress_plans and the literals
-- and comments keep public)
--
\pset format unaligned
\pset tuples_only on
SELECT tenant_migration_rewrite(:'dump_up', 'tenant_AbC');
SELECT tenant_migration_rewrite(:'prisma_up', 'tenant_AbC');
SELECT tenant_migration_rewrite(:'prisma_down', 'tenant_x');
\pset tuples_only off
\pset format aligned

-- Register both with their down scripts; the checksum is the SHA-256 of up_sql
SELECT tenant_migration_add('001', 'pg_dump accounts', :'dump_up', :'dump_down')
       = encode(sha256(convert_to(:'dump_up', 'UTF8')), 'hex') AS checksum_ok;
SELECT tenant_migration_add('002', 'prisma users', :'prisma_up', :'prisma_down')
       = encode(sha256(convert_to(:'prisma_up', 'UTF8')), 'hex') AS checksum_ok;

-- Two tenants, each migrated on creation; Prisma's CREATE SCHEMA IF NOT
-- EXISTS "public" now names the tenant schema, which exists (NOTICE)
SELECT create_tenant_schema('x', 'Tenant X');
SELECT create_tenant_schema('AbC', 'Mixed Case Inc');
SELECT tenant_schema, version, name FROM tenant_migrations ORDER BY 1, 2;

-- search_path is back to normal after the migrations
SHOW search_path;

--
-- The objects are in each tenant schema
--
SELECT c.relnamespace::regnamespace AS schema, c.relname, c.relkind
  FROM pg_class c
 WHERE c.relnamespace IN ('tenant_x'::regnamespace, '"tenant_AbC"'::regnamespace)
 ORDER BY c.relnamespace::regnamespace::text, c.relname;
SELECT table_schema, table_name, column_name, data_type, udt_schema, udt_name
  FROM information_schema.columns
 WHERE table_schema IN ('tenant_x', 'tenant_AbC')
 ORDER BY table_schema, table_name, ordinal_position;
SELECT t.typnamespace::regnamespace AS schema, t.typname, t.typtype
  FROM pg_type t
 WHERE t.typnamespace IN ('tenant_x'::regnamespace, '"tenant_AbC"'::regnamespace)
   AND t.typtype IN ('e', 'd')
 ORDER BY 1, 2;
SELECT p.pronamespace::regnamespace AS schema, p.proname
  FROM pg_proc p
 WHERE p.pronamespace IN ('tenant_x'::regnamespace, '"tenant_AbC"'::regnamespace)
 ORDER BY p.pronamespace::regnamespace::text, p.proname;
-- the table comment, with its literal untouched
SELECT obj_description('"tenant_AbC".accounts'::regclass, 'pg_class') AS comment;

-- The function body was rewritten to the tenant's own table
SELECT p.pronamespace::regnamespace AS schema, p.prosrc
  FROM pg_proc p
 WHERE p.proname = 'account_total'
 ORDER BY p.pronamespace::regnamespace::text;

-- Each serial column's sequence is the tenant's own
SELECT pg_get_serial_sequence('tenant_x.accounts', 'id') AS x_accounts,
       pg_get_serial_sequence('"tenant_AbC".accounts', 'id') AS abc_accounts,
       pg_get_serial_sequence('"tenant_AbC"."User"', 'id') AS abc_user;

-- Foreign keys point at the tenant's table, or at the shared one in public
SELECT conrelid::regclass AS tbl, conname, confrelid::regclass AS references_tbl
  FROM pg_constraint
 WHERE contype = 'f'
   AND connamespace IN ('tenant_x'::regnamespace, '"tenant_AbC"'::regnamespace)
 ORDER BY connamespace::regnamespace::text, conname;

-- The uuid default calls public's extension function
SELECT c.relnamespace::regnamespace AS schema, p.pronamespace::regnamespace AS fn_schema, p.proname
  FROM pg_attrdef d
  JOIN pg_class c ON c.oid = d.adrelid
  JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
  JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
                    AND dep.refclassid = 'pg_proc'::regclass
  JOIN pg_proc p ON p.oid = dep.refobjid
 WHERE c.relname = 'accounts' AND a.attname = 'api_key'
 ORDER BY c.relnamespace::regnamespace::text;

-- Row level security and the policy are on each tenant's table
SELECT c.relnamespace::regnamespace AS schema, c.relname, c.relrowsecurity
  FROM pg_class c
 WHERE c.relname = 'invoices'
 ORDER BY c.relnamespace::regnamespace::text;
SELECT schemaname, tablename, policyname, qual
  FROM pg_policies
 WHERE policyname = 'invoices_nonnegative'
 ORDER BY schemaname;

-- The trigger is on each tenant's table and calls the tenant's function
SELECT tgrelid::regclass AS tbl, tgname, tgfoid::regproc AS fn
  FROM pg_trigger
 WHERE tgname = 'accounts_touch'
 ORDER BY tgrelid::regclass::text;

--
-- The objects behave
--
-- Both tenants' ids start at 1 (own sequences); the uuid default and the trigger fire
INSERT INTO tenant_x.accounts (name, plan_id) VALUES ('x one', 1), ('x two', 2)
RETURNING id, name, api_key IS NOT NULL AS has_api_key, updated_at IS NOT NULL AS touched;
INSERT INTO "tenant_AbC".accounts (name, plan_id) VALUES ('abc one', 2)
RETURNING id, name, api_key IS NOT NULL AS has_api_key, updated_at IS NOT NULL AS touched;
INSERT INTO tenant_x.invoices (account_id, amount) VALUES (1, 10), (1, 5), (2, 7) RETURNING id;
INSERT INTO "tenant_AbC".invoices (account_id, amount) VALUES (1, 100) RETURNING id;

-- The trigger fires on UPDATE too
UPDATE "tenant_AbC".accounts SET updated_at = NULL, name = 'abc renamed' RETURNING id, updated_at IS NOT NULL AS touched;

-- Foreign keys reject bad rows: the tenant's own table (account 2 exists
-- only in tenant_x, so "tenant_AbC" rejects it) and the shared table
SELECT pg_temp.try($$INSERT INTO tenant_x.invoices (account_id, amount) VALUES (999, 1)$$);
SELECT pg_temp.try($$INSERT INTO "tenant_AbC".invoices (account_id, amount) VALUES (2, 1)$$);
SELECT pg_temp.try($$INSERT INTO tenant_x.accounts (name, plan_id) VALUES ('bad plan', 99)$$);

-- The function reads its own tenant's invoices, called qualified...
SELECT tenant_x.account_total(1) AS x_total, "tenant_AbC".account_total(1) AS abc_total;
-- ... and unqualified after tenant_set()
SELECT tenant_set('tenant_AbC');
SELECT account_total(1) AS abc_total, current_setting('app.current_tenant_id') AS tenant_id;
SELECT tenant_set('tenant_x');
SELECT account_total(1) AS x_total, current_setting('app.current_tenant_id') AS tenant_id;
RESET search_path;
RESET app.current_tenant_id;

-- Prisma: enum default of the tenant's type, ids from 1 in each tenant
INSERT INTO tenant_x."User" (email) VALUES ('a@x.test') RETURNING id, role, pg_typeof(role);
INSERT INTO "tenant_AbC"."User" (email, role) VALUES ('a@abc.test', 'ADMIN') RETURNING id, role, pg_typeof(role);
INSERT INTO "tenant_AbC"."Post" (title, "authorId") VALUES ('hello', 1) RETURNING id, "authorId";
-- the same email in another tenant is fine; in the same tenant the unique index rejects it
INSERT INTO "tenant_AbC"."User" (email) VALUES ('a@x.test') RETURNING id;
SELECT pg_temp.try($$INSERT INTO tenant_x."User" (email) VALUES ('a@x.test')$$);
-- the foreign key rejects a missing author, cascades updates, restricts deletes
SELECT pg_temp.try($$INSERT INTO tenant_x."Post" (title, "authorId") VALUES ('orphan', 999)$$);
UPDATE "tenant_AbC"."User" SET id = 10 WHERE id = 1;
SELECT id, title, "authorId" FROM "tenant_AbC"."Post";
SELECT pg_temp.try($$DELETE FROM "tenant_AbC"."User" WHERE id = 10$$);

-- The down scripts were recorded rewritten for each tenant
SELECT tenant_schema, version, rollback_sql
  FROM tenant_migrations
 WHERE tenant_schema = 'tenant_AbC'
 ORDER BY version;

-- public gained no table, sequence, index, type or function
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) = :before_pub_class AS same_classes,
       (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace) = :before_pub_type AS same_types,
       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace) = :before_pub_proc AS same_functions;
SELECT count(*) AS tenant_named_objects_in_public
  FROM pg_class
 WHERE relnamespace = 'public'::regnamespace
   AND relname IN ('accounts', 'accounts_id_seq', 'invoices', 'invoices_id_seq', 'User', 'Post', 'User_id_seq', 'Post_id_seq');

--
-- Roll everything back to 0: newest first, each tenant schema empty again
--
SELECT version, name FROM tenant_rollback('tenant_x', '0');
SELECT version, name FROM tenant_rollback('tenant_AbC', '0');
SELECT n.nspname,
       (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid) AS classes,
       (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid) AS types,
       (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid) AS functions,
       (SELECT count(*) FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid WHERE c.relnamespace = n.oid) AS policies
  FROM pg_namespace n
 WHERE n.nspname IN ('tenant_x', 'tenant_AbC')
 ORDER BY n.nspname;
SELECT count(*) AS applied FROM tenant_migrations WHERE tenant_schema IN ('tenant_x', 'tenant_AbC');
-- public still has what it had, and the shared table is untouched
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) = :before_pub_class AS same_classes,
       (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace) = :before_pub_type AS same_types,
       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace) = :before_pub_proc AS same_functions;
SELECT * FROM public.regress_plans ORDER BY id;

-- Clean up
RESET tenant_migrate.shared_objects;
DROP SCHEMA tenant_x CASCADE;
DROP SCHEMA "tenant_AbC" CASCADE;
DELETE FROM tenant_registry WHERE schema_name IN ('tenant_x', 'tenant_AbC');
DROP TABLE public.regress_plans;
SET client_min_messages = warning;
DROP EXTENSION "uuid-ossp";
RESET client_min_messages;

--
-- verify: tenant_verify() finds every problem code (each made by hand here),
-- tenant_baseline() adopts schemas (matching and drifting), the
-- out-of-order guard both ways, status and overview of shared scripts.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup
-- Earlier suites leave tenant schemas behind (the extension was dropped
-- under them): start from none, so tenant_verify() sees only this file's.
\set drop_tenants :abs_srcdir '/test/drop_tenants.sql'
\i :drop_tenants
SET tenant_migrate.progress_interval = 0;

-- A history that makes one of each kind of object fingerprinted
SELECT tenant_migration_add('0.1', 'plans', 'CREATE TABLE public.v_plans (id int PRIMARY KEY);',
                            'DROP TABLE public.v_plans;', 'shared') IS NOT NULL AS registered;
SELECT version FROM tenant_migrate_shared();
SELECT tenant_migration_add('001', 'core', $up$
CREATE TYPE public.customer_status AS ENUM ('new', 'active', 'gone');
CREATE TABLE public.customers (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    status public.customer_status NOT NULL DEFAULT 'new',
    code int GENERATED ALWAYS AS IDENTITY,
    name_lower text GENERATED ALWAYS AS (lower(name)) STORED,
    CONSTRAINT customers_name_check CHECK (name <> '')
);
CREATE INDEX customers_name_idx ON public.customers (name);
CREATE TABLE public.orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES public.customers (id),
    amount numeric(10,2) NOT NULL
);
CREATE SEQUENCE public.invoice_no START 1000;
CREATE FUNCTION public.order_total(c bigint) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(amount), 0) FROM public.orders WHERE customer_id = c $$;
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.amount := round(NEW.amount, 2); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON public.orders
    FOR EACH ROW EXECUTE FUNCTION public.touch();
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY orders_positive ON public.orders USING (amount >= 0);
CREATE VIEW public.big_orders AS SELECT id, amount FROM public.orders WHERE amount > 100;
CREATE DOMAIN public.email AS text CHECK (VALUE LIKE '%@%');
$up$, $down$
DROP DOMAIN public.email;
DROP VIEW public.big_orders;
DROP TABLE public.orders;
DROP TABLE public.customers;
DROP FUNCTION public.order_total(bigint);
DROP FUNCTION public.touch();
DROP SEQUENCE public.invoice_no;
DROP TYPE public.customer_status;
$down$) IS NOT NULL AS registered;
SELECT tenant_migration_add('002', 'notes', 'CREATE TABLE public.notes (id int PRIMARY KEY, body text);',
                            'DROP TABLE public.notes;') IS NOT NULL AS registered;
SELECT tenant_migration_add('003', 'customer_email', 'ALTER TABLE public.customers ADD COLUMN email public.email;',
                            'ALTER TABLE public.customers DROP COLUMN email;') IS NOT NULL AS registered;
SELECT create_tenant_schema('acme');
SELECT create_tenant_schema('beta');
SELECT create_tenant_schema('gamma');

-- The shape of the result, and a healthy fleet: no rows
SELECT a.ord, a.name, a.mode, a.type::regtype
  FROM pg_proc p,
       unnest(p.proargnames, p.proargmodes::text[], p.proallargtypes) WITH ORDINALITY AS a(name, mode, type, ord)
 WHERE p.oid = 'tenant_verify(text)'::regprocedure
 ORDER BY a.ord;
SELECT * FROM tenant_verify();
SELECT * FROM tenant_verify('tenant_acme');
SELECT * FROM tenant_verify('public');
-- the replay left nothing behind
SELECT count(*) AS scratch_schemas FROM pg_namespace WHERE nspname LIKE 'tm_verify_%';

-- A tenant that is nothing at all, and bad names
SELECT pg_temp.try($$SELECT * FROM tenant_verify('tenant_nope')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_verify('acme')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_verify('')$$);

/*---- schema_drift, one kind of object at a time, each fixed again ----*/

-- a column's type, nullability and default
ALTER TABLE tenant_acme.orders ALTER COLUMN amount TYPE numeric(12,2);
ALTER TABLE tenant_acme.orders ALTER COLUMN amount DROP NOT NULL;
ALTER TABLE tenant_acme.customers ALTER COLUMN status SET DEFAULT 'active';
SELECT * FROM tenant_verify();
ALTER TABLE tenant_acme.orders ALTER COLUMN amount TYPE numeric(10,2);
ALTER TABLE tenant_acme.orders ALTER COLUMN amount SET NOT NULL;
ALTER TABLE tenant_acme.customers ALTER COLUMN status SET DEFAULT 'new';
SELECT count(*) AS problems FROM tenant_verify();

-- a dropped index, an index made by hand, a constraint changed
DROP INDEX tenant_beta.customers_name_idx;
CREATE INDEX orders_amount_idx ON tenant_beta.orders (amount);
ALTER TABLE tenant_beta.customers DROP CONSTRAINT customers_name_check,
    ADD CONSTRAINT customers_name_check CHECK (length(name) > 1);
SELECT * FROM tenant_verify();
CREATE INDEX customers_name_idx ON tenant_beta.customers (name);
DROP INDEX tenant_beta.orders_amount_idx;
ALTER TABLE tenant_beta.customers DROP CONSTRAINT customers_name_check,
    ADD CONSTRAINT customers_name_check CHECK (name <> '');
SELECT count(*) AS problems FROM tenant_verify();

-- a function body, a trigger disabled, a policy and the RLS flags changed
CREATE OR REPLACE FUNCTION tenant_gamma.touch() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN RETURN NEW; END $$;
ALTER TABLE tenant_gamma.orders DISABLE TRIGGER orders_touch;
ALTER POLICY orders_positive ON tenant_gamma.orders USING (amount > 0);
ALTER TABLE tenant_gamma.orders FORCE ROW LEVEL SECURITY;
SELECT * FROM tenant_verify('tenant_gamma');
CREATE OR REPLACE FUNCTION tenant_gamma.touch() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.amount := round(NEW.amount, 2); RETURN NEW; END $$;
ALTER TABLE tenant_gamma.orders ENABLE TRIGGER orders_touch;
ALTER POLICY orders_positive ON tenant_gamma.orders USING (amount >= 0);
ALTER TABLE tenant_gamma.orders NO FORCE ROW LEVEL SECURITY;
SELECT count(*) AS problems FROM tenant_verify();

-- an enum label, a sequence, a view, a domain, a table made by hand
ALTER TYPE tenant_acme.customer_status ADD VALUE 'vip';
ALTER SEQUENCE tenant_acme.invoice_no INCREMENT 10;
CREATE OR REPLACE VIEW tenant_acme.big_orders AS SELECT id, amount FROM tenant_acme.orders WHERE amount > 1000;
ALTER DOMAIN tenant_acme.email SET NOT NULL;
CREATE TABLE tenant_acme.scratchpad (x int);
SELECT * FROM tenant_verify('tenant_acme');
DROP TABLE tenant_acme.scratchpad;
ALTER DOMAIN tenant_acme.email DROP NOT NULL;
CREATE OR REPLACE VIEW tenant_acme.big_orders AS SELECT id, amount FROM tenant_acme.orders WHERE amount > 100;
ALTER SEQUENCE tenant_acme.invoice_no INCREMENT 1;
-- an enum label cannot be removed: the tenant is repaired by recreating the type
ALTER TABLE tenant_acme.customers ALTER COLUMN status DROP DEFAULT,
    ALTER COLUMN status TYPE text;
DROP TYPE tenant_acme.customer_status;
CREATE TYPE tenant_acme.customer_status AS ENUM ('new', 'active', 'gone');
ALTER TABLE tenant_acme.customers
    ALTER COLUMN status TYPE tenant_acme.customer_status USING status::tenant_acme.customer_status,
    ALTER COLUMN status SET DEFAULT 'new';
SELECT count(*) AS problems FROM tenant_verify();

/*---- the books ----*/

-- checksum_drift: a recorded checksum changed, and a registered text
-- edited in place (tenant_migration_scripts written directly)
UPDATE tenant_migrations SET checksum = repeat('0', 64) WHERE tenant_schema = 'tenant_beta' AND version = '002';
UPDATE tenant_migration_scripts SET up_sql = up_sql || ' ' WHERE version = '003';
SELECT * FROM tenant_verify();
UPDATE tenant_migrations m SET checksum = s.checksum FROM tenant_migration_scripts s
 WHERE m.version = s.version AND m.tenant_schema = 'tenant_beta' AND m.version = '002';
UPDATE tenant_migration_scripts SET up_sql = rtrim(up_sql) WHERE version = '003';
SELECT count(*) AS problems FROM tenant_verify();

-- shared history: tenant_verify('public') checks it the same way
UPDATE tenant_migrations SET checksum = repeat('1', 64) WHERE tenant_schema = 'public';
SELECT * FROM tenant_verify('public');
SELECT * FROM tenant_verify() WHERE tenant_schema = 'public';
UPDATE tenant_migrations m SET checksum = s.checksum FROM tenant_migration_scripts s
 WHERE m.version = s.version AND m.tenant_schema = 'public';

-- history_gap: a deleted history row (the tenant's schema still has what
-- 002 made, so its objects are reported as not made by the rest)
DELETE FROM tenant_migrations WHERE tenant_schema = 'tenant_beta' AND version = '002';
SELECT * FROM tenant_verify();
-- ...which the out-of-order guard will not silently re-apply
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_beta')$$);
SELECT pg_temp.try($$SELECT * FROM tenant_migration_plan('tenant_beta')$$);
-- repaired by dropping what 002 made and applying it again, out of order on purpose
DROP TABLE tenant_beta.notes;
SET tenant_migrate.out_of_order = on;
SELECT version FROM tenant_migrate('tenant_beta');
RESET tenant_migrate.out_of_order;
SELECT count(*) AS problems FROM tenant_verify();

-- history_unknown_version: a tenant row for a shared version, and a row
-- for a version that is no longer registered (foreign key bypassed)
INSERT INTO tenant_migrations (tenant_schema, version, name, checksum)
SELECT 'tenant_gamma', version, name, checksum FROM tenant_migration_scripts WHERE version = '0.1';
SET session_replication_role = replica;
INSERT INTO tenant_migrations (tenant_schema, version, name, checksum)
VALUES ('tenant_gamma', '999', 'ghost', repeat('2', 64));
RESET session_replication_role;
SELECT * FROM tenant_verify();
DELETE FROM tenant_migrations WHERE tenant_schema = 'tenant_gamma' AND version IN ('0.1', '999');

-- registry_missing_schema, schema_not_registered, history_orphan
INSERT INTO tenant_registry (schema_name, tenant_key) VALUES ('tenant_lost', 'lost');
CREATE SCHEMA tenant_x;
CREATE SCHEMA other_schema;
INSERT INTO tenant_migrations (tenant_schema, version, name, checksum)
SELECT 'tenant_ghost', version, name, checksum FROM tenant_migration_scripts WHERE version = '001';
SELECT * FROM tenant_verify();
SELECT * FROM tenant_verify('tenant_lost');
SELECT * FROM tenant_verify('tenant_x');
-- a schema without the prefix is reported when named
SELECT * FROM tenant_verify('other_schema');
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_lost')$$);
-- repairs: drop_tenant_schema() cleans up a tenant whose schema is gone
SELECT drop_tenant_schema('tenant_lost');
DROP SCHEMA tenant_x;
DROP SCHEMA other_schema;
DELETE FROM tenant_migrations WHERE tenant_schema = 'tenant_ghost';
SELECT count(*) AS problems FROM tenant_verify();

/*---- out of order, both ways ----*/

-- registering a version below one applied somewhere warns
SELECT tenant_migration_add('002.5', 'late', 'CREATE TABLE public.late (id int);', 'DROP TABLE public.late;')
       IS NOT NULL AS registered;
-- tenants that already have 003 report it; the guard refuses it
SELECT * FROM tenant_verify();
SELECT pg_temp.try($$SELECT * FROM tenant_migrate('tenant_acme')$$);
SELECT tenant_schema, pending FROM tenant_migration_status() ORDER BY 1;
-- a fleet run fails those tenants, logged, and goes on (one worker: the
-- warnings come in tenant order)
SET client_min_messages = warning;
CALL tenant_migrate_all(workers => 1);
RESET client_min_messages;
SELECT tenant_schema, version, status, error FROM tenant_migration_log WHERE status = 'failed' ORDER BY tenant_schema, id;
-- allowed with the setting: applied, and no longer reported
SET tenant_migrate.out_of_order = on;
SELECT version FROM tenant_migrate('tenant_acme');
SET client_min_messages = warning;
CALL tenant_migrate_all();
RESET client_min_messages;
RESET tenant_migrate.out_of_order;
SELECT count(*) AS problems FROM tenant_verify();
-- a new tenant gets everything in order; a higher version does not warn
SELECT create_tenant_schema('delta');
SELECT tenant_migration_add('004', 'tags', 'CREATE TABLE public.tags (id int);', 'DROP TABLE public.tags;')
       IS NOT NULL AS registered;
SELECT count(*) AS problems FROM tenant_verify();
SELECT version FROM tenant_migrate('tenant_delta');

/*---- tenant_baseline ----*/

-- a schema made outside the extension, exactly as 001 and 002 make it
CREATE SCHEMA legacy_shop;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT up_sql FROM tenant_migration_scripts WHERE version IN ('001', '002') ORDER BY version LOOP
    EXECUTE tenant_migration_rewrite(r.up_sql, 'legacy_shop');
  END LOOP;
END $$;
SELECT * FROM tenant_verify('legacy_shop');
SELECT tenant_baseline('legacy_shop', '002');
SELECT schema_name, tenant_key, status FROM tenant_registry WHERE schema_name = 'legacy_shop';
SELECT version, applied_by = current_user AS by_me, duration_ms, rollback_sql IS NOT NULL AS has_rollback
  FROM tenant_migrations WHERE tenant_schema = 'legacy_shop' ORDER BY version;
SELECT version, action, status, performed_by = current_user AS by_me
  FROM tenant_migration_log WHERE tenant_schema = 'legacy_shop' ORDER BY id;
-- it matches what its recorded migrations make
SELECT * FROM tenant_verify('legacy_shop');
-- and migrates on from there
SELECT version FROM tenant_migrate('legacy_shop');
SELECT * FROM tenant_verify('legacy_shop');
-- rollback works with the recorded rollback SQL
SELECT version FROM tenant_rollback('legacy_shop', '001');
SELECT * FROM tenant_verify('legacy_shop');

-- a drifting one, adopted with a key of its own
CREATE SCHEMA tenant_old;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT up_sql FROM tenant_migration_scripts WHERE version = '001' LOOP
    EXECUTE tenant_migration_rewrite(r.up_sql, 'tenant_old');
  END LOOP;
END $$;
ALTER TABLE tenant_old.customers DROP COLUMN name_lower;
DROP POLICY orders_positive ON tenant_old.orders;
SELECT tenant_baseline('tenant_old', '1', 'old_one');
SELECT schema_name, tenant_key FROM tenant_registry WHERE schema_name = 'tenant_old';
SELECT * FROM tenant_verify('tenant_old');

-- refusals
SELECT pg_temp.try($$SELECT tenant_baseline('tenant_acme', '001')$$);
SELECT pg_temp.try($$SELECT tenant_baseline('no_such_schema', '001')$$);
SELECT pg_temp.try($$SELECT tenant_baseline('public', '001')$$);
CREATE SCHEMA tenant_new;
SELECT pg_temp.try($$SELECT tenant_baseline('tenant_new', '7')$$);
SELECT pg_temp.try($$SELECT tenant_baseline('tenant_new', '0.1')$$);
SELECT pg_temp.try($$SELECT tenant_baseline('tenant_new', 'x1')$$);
SELECT pg_temp.try($$SELECT tenant_baseline('tenant_new', NULL)$$);
SELECT pg_temp.try($$SELECT tenant_baseline('tenant_new', '001', 'acme')$$);
SELECT pg_temp.try($$SELECT tenant_baseline('tenant_new', '001', 'bad-key')$$);
SELECT pg_temp.try($$SELECT tenant_baseline('bad-name', '001')$$);
-- nothing was registered by the refusals
SELECT count(*) AS registered FROM tenant_registry WHERE schema_name = 'tenant_new';
DROP SCHEMA tenant_new;
SELECT drop_tenant_schema('tenant_old');
SELECT drop_tenant_schema('legacy_shop');

/*---- a tenant whose name needs quotes (the scratch schema's does not) ----*/

SELECT create_tenant_schema('Mixed_Case');
SELECT * FROM tenant_verify('tenant_Mixed_Case');
ALTER TABLE "tenant_Mixed_Case".orders ALTER COLUMN amount DROP NOT NULL;
SELECT * FROM tenant_verify('tenant_Mixed_Case');
SELECT drop_tenant_schema('tenant_Mixed_Case');

/*---- who may replay: scripts run as their author ----*/

CREATE ROLE regress_tm_verifier;
SELECT tenant_migrate_grant('regress_tm_verifier') > 0 AS granted;
-- no reference kept: every set is replayed
TRUNCATE tenant_verify_reference;
SET ROLE regress_tm_verifier;
-- the books are checked; the replay needs to create a schema...
SELECT * FROM tenant_verify();
RESET ROLE;
SELECT format('GRANT CREATE ON DATABASE %I TO regress_tm_verifier', current_database()) \gexec
-- ...and the privileges of the scripts' author, as the runner does
SET ROLE regress_tm_verifier;
SELECT * FROM tenant_verify('tenant_delta');
RESET ROLE;
SELECT format('REVOKE CREATE ON DATABASE %I FROM regress_tm_verifier', current_database()) \gexec
DROP OWNED BY regress_tm_verifier;
DROP ROLE regress_tm_verifier;

/*---- shared scripts in status and overview ----*/

SELECT tenant_schema, tenant_key, status, current_version, applied, pending, last_error
  FROM tenant_migration_status('public');
SELECT tenants, up_to_date, behind, failing, newest_version, suspended, archived, shared_pending, shared_failing
  FROM tenant_migration_overview;
SELECT tenant_migration_add('0.2', 'shared_more', 'CREATE TABLE public.v_more (id int);', NULL, 'shared') IS NOT NULL AS registered;
SELECT tenant_migration_add('0.3', 'shared_bad', 'SELECT 1/0;', NULL, 'shared') IS NOT NULL AS registered;
SELECT tenant_schema, tenant_key, status, current_version, applied, pending, last_error
  FROM tenant_migration_status('public');
SELECT shared_pending, shared_failing FROM tenant_migration_overview;
SELECT pg_temp.try($$SELECT * FROM tenant_migrate_shared()$$);
SELECT tenant_schema, status, current_version, applied, pending, last_error IS NOT NULL AS failed
  FROM tenant_migration_status('public');
SELECT shared_pending, shared_failing FROM tenant_migration_overview;

/*---- every kind of trigger, printed as pg_get_triggerdef prints it ----*/

SELECT tenant_migration_add('9', 'trigger_kinds', $$
CREATE TABLE public.tk (a int, "B c" int);
CREATE FUNCTION public.tk_f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER tk_upd BEFORE INSERT OR UPDATE OF a, "B c" ON public.tk FOR EACH ROW EXECUTE FUNCTION public.tk_f();
CREATE TRIGGER "TK stmt" AFTER DELETE OR TRUNCATE ON public.tk FOR EACH STATEMENT EXECUTE FUNCTION public.tk_f();
CREATE TRIGGER tk_ref AFTER UPDATE ON public.tk REFERENCING OLD TABLE AS o NEW TABLE AS "N t" FOR EACH STATEMENT EXECUTE FUNCTION public.tk_f();
CREATE CONSTRAINT TRIGGER tk_con AFTER UPDATE ON public.tk DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.tk_f();
CREATE TRIGGER tk_when AFTER UPDATE ON public.tk FOR EACH ROW WHEN (OLD.a IS DISTINCT FROM NEW.a) EXECUTE FUNCTION public.tk_f('x', 'y''s');
CREATE TRIGGER tk_sys BEFORE UPDATE ON public.tk FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE VIEW public.tk_v AS SELECT * FROM public.tk;
CREATE TRIGGER tk_instead INSTEAD OF INSERT ON public.tk_v FOR EACH ROW EXECUTE FUNCTION public.tk_f();
$$) IS NOT NULL AS registered;
SELECT create_tenant_schema('trig') AS created;
SELECT * FROM tenant_verify('tenant_trig');
-- each trigger changed by hand: the actual text is what pg_get_triggerdef says
DROP TRIGGER tk_upd ON tenant_trig.tk;
CREATE TRIGGER tk_upd BEFORE INSERT OR UPDATE OF a ON tenant_trig.tk FOR EACH ROW EXECUTE FUNCTION tenant_trig.tk_f();
DROP TRIGGER tk_con ON tenant_trig.tk;
CREATE CONSTRAINT TRIGGER tk_con AFTER UPDATE ON tenant_trig.tk NOT DEFERRABLE FOR EACH ROW EXECUTE FUNCTION tenant_trig.tk_f();
DROP TRIGGER tk_ref ON tenant_trig.tk;
CREATE TRIGGER tk_ref AFTER UPDATE ON tenant_trig.tk REFERENCING NEW TABLE AS "N t" FOR EACH STATEMENT EXECUTE FUNCTION tenant_trig.tk_f();
DROP TRIGGER tk_when ON tenant_trig.tk;
CREATE TRIGGER tk_when AFTER UPDATE ON tenant_trig.tk FOR EACH ROW WHEN (OLD.a IS DISTINCT FROM NEW.a) EXECUTE FUNCTION tenant_trig.tk_f('x');
SELECT v.detail, (SELECT count(*) FROM pg_trigger g
                   WHERE g.tgrelid = 'tenant_trig.tk'::regclass
                     AND v.detail LIKE '%; actual: ' || pg_get_triggerdef(g.oid)) AS same_as_core
  FROM tenant_verify('tenant_trig') v ORDER BY 1;
SET client_min_messages = warning;
SELECT drop_tenant_schema('tenant_trig');
RESET client_min_messages;

/*---- references kept between calls ----*/

TRUNCATE tenant_verify_reference;
SELECT * FROM tenant_verify('tenant_acme');
-- the replay of acme's versions is kept, once
SELECT versions, cardinality(entries) > 10 AS has_entries, built_at <= now() AS built
  FROM tenant_verify_reference;
SELECT * FROM tenant_verify('tenant_acme');
SELECT count(*) FROM tenant_verify_reference;
-- and used instead of a replay: an object added to it (by hand, as its
-- owner) is reported missing from the tenant
UPDATE tenant_verify_reference SET entries = entries || ARRAY['table zz', 'planted'];
SELECT * FROM tenant_verify('tenant_acme');
-- what the replay depends on changes: a new shared migration applied
SELECT tenant_migration_add('0.4', 'shared_four', 'CREATE TABLE public.v_four (id int);', NULL, 'shared') IS NOT NULL AS registered;
DELETE FROM tenant_migration_scripts WHERE version = '0.3';
SELECT count(*) FROM tenant_migrate_shared();
SELECT * FROM tenant_verify('tenant_acme');
-- the older reference of the same versions is replaced, not kept beside
SELECT count(*), bool_and(NOT ('planted' = ANY (entries))) AS replayed FROM tenant_verify_reference;
-- a read-only transaction (a standby) cannot replay, but compares with a
-- kept reference
BEGIN READ ONLY;
SELECT * FROM tenant_verify('tenant_acme');
COMMIT;
TRUNCATE tenant_verify_reference;
BEGIN READ ONLY;
SELECT problem FROM tenant_verify('tenant_acme');
COMMIT;
SELECT count(*) FROM tenant_verify_reference;

-- Clean up: the tenant schemas (the next suite drops the extension)
\i :drop_tenants

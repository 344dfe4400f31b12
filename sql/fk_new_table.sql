--
-- fk_new_table: a foreign key that a script adds with ALTER TABLE to a
-- table the same transaction created, and that has no rows yet, is
-- created valid without the query that checks existing rows (as CREATE
-- TABLE creates its own); it is enforced all the same.  A table with
-- rows, or one from an earlier migration, is checked as always.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

SELECT count(create_tenant_schema(s)) FROM unnest('{fk_a,fk_b,fk_c}'::text[]) s;

-- pg_dump's way: tables first, keys after
SELECT tenant_migration_add('1', 'orders', $$
CREATE TABLE public.customers (id integer NOT NULL);
CREATE TABLE public.orders (id integer NOT NULL, customer_id integer NOT NULL);
ALTER TABLE ONLY public.customers ADD CONSTRAINT customers_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.orders ADD CONSTRAINT orders_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES public.customers(id);
$$) IS NOT NULL;
SELECT tenant_migration_add('2', 'order key dropped', $$
ALTER TABLE public.orders DROP CONSTRAINT orders_customer_id_fkey;
$$) IS NOT NULL;
SELECT tenant_migration_add('3', 'order key back', $$
ALTER TABLE ONLY public.orders ADD CONSTRAINT orders_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES public.customers(id);
$$) IS NOT NULL;
-- seed rows before the key, in the same script
SELECT tenant_migration_add('4', 'order lines', $$
CREATE TABLE public.order_lines (order_id integer NOT NULL, n integer NOT NULL);
INSERT INTO public.order_lines VALUES (7, 1);
ALTER TABLE ONLY public.order_lines ADD CONSTRAINT order_lines_order_id_fkey
    FOREIGN KEY (order_id) REFERENCES public.customers(id);
$$) IS NOT NULL;

-- the same DDL sent by a client: the check query reads orders once
BEGIN;
CREATE SCHEMA fk_plain;
CREATE TABLE fk_plain.customers (id integer NOT NULL);
CREATE TABLE fk_plain.orders (id integer NOT NULL, customer_id integer NOT NULL);
ALTER TABLE ONLY fk_plain.customers ADD CONSTRAINT customers_pkey PRIMARY KEY (id);
ALTER TABLE ONLY fk_plain.orders ADD CONSTRAINT orders_customer_id_fkey
    FOREIGN KEY (customer_id) REFERENCES fk_plain.customers(id);
SELECT relname, seq_scan, idx_scan FROM pg_stat_xact_user_tables
 WHERE schemaname = 'fk_plain' AND relname = 'orders';
ROLLBACK;
-- through the extension, new and empty: it did not run
BEGIN;
SELECT version FROM tenant_migrate('tenant_fk_a', '1');
SELECT relname, seq_scan, idx_scan FROM pg_stat_xact_user_tables
 WHERE schemaname = 'tenant_fk_a' AND relname = 'orders';
COMMIT;
SELECT conname, convalidated FROM pg_constraint
 WHERE conrelid = 'tenant_fk_a.orders'::regclass AND contype = 'f';
-- and the key holds
SELECT pg_temp.try('INSERT INTO tenant_fk_a.orders VALUES (1, 42)');
INSERT INTO tenant_fk_a.customers VALUES (42);
INSERT INTO tenant_fk_a.orders VALUES (1, 42);

-- a table from an earlier migration, with an orphan row: checked, refused
SELECT version FROM tenant_migrate('tenant_fk_c', '2');
INSERT INTO tenant_fk_c.orders VALUES (1, 1);
SELECT pg_temp.try($$SELECT count(*) FROM tenant_migrate('tenant_fk_c', '3')$$);

-- rows in the new table before the key: checked, refused
SELECT version FROM tenant_migrate('tenant_fk_b', '3');
SELECT pg_temp.try($$SELECT count(*) FROM tenant_migrate('tenant_fk_b')$$);
SELECT version FROM tenant_migrations WHERE tenant_schema = 'tenant_fk_b' ORDER BY 1;

-- test/drop_tenants.sql: drops every tenant schema (and legacy_shop) that
-- a suite left behind; the extension itself is dropped by setup.sql.
SET client_min_messages = warning;
DO $$
DECLARE s name;
BEGIN
  FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\_%' OR nspname = 'legacy_shop' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
END $$;
RESET client_min_messages;

-- migrate:up
-- Row level security on the shared row-per-tenant table billing_events
-- (scope: shared, so it may change public; a tenant script may not). After
-- this, a session sees and writes only the rows of the tenant in
-- app.current_tenant_id (set by tenant_set()), the owner included (FORCE);
-- no tenant set means no rows. New rows take the session's tenant key.
-- Runs as the role that registered it, which owns the table (0002).

ALTER TABLE public.billing_events
    ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.current_tenant_id', true), '');

SELECT public.tenant_enable_rls('public.billing_events');

-- migrate:down
SELECT public.tenant_disable_rls('public.billing_events');

ALTER TABLE public.billing_events ALTER COLUMN tenant_id DROP DEFAULT;

-- migrate:up
-- Shared row-per-tenant table: one row per billing event of any tenant,
-- keyed by tenant_id (the tenant key, e.g. 'org_xyz'). Scope: shared.
-- 0012 isolates it per tenant with row level security (tenant_enable_rls).

CREATE TABLE public.billing_events (
    id           bigserial PRIMARY KEY,
    tenant_id    text NOT NULL,
    event_type   text NOT NULL,
    plan_code    text REFERENCES public.plans (code) ON UPDATE CASCADE ON DELETE RESTRICT,
    amount_cents integer NOT NULL DEFAULT 0,
    currency     char(3) NOT NULL DEFAULT 'USD',
    external_ref text,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_events_event_type_check CHECK (event_type IN (
        'subscription_started', 'plan_changed', 'invoice_paid',
        'invoice_failed', 'refund', 'subscription_cancelled')),
    CONSTRAINT billing_events_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT billing_events_external_ref_key UNIQUE (external_ref)
);

CREATE INDEX billing_events_tenant_id_idx
    ON public.billing_events USING btree (tenant_id, occurred_at DESC);

-- migrate:down
DROP TABLE public.billing_events;

-- Shared catalog of subscription plans (scope: shared, lives in public once).
-- Applied by tenant_migrate_shared() / tenant_migrate_all() without rewriting.

CREATE TABLE public.plans (
    code                text PRIMARY KEY,
    name                text NOT NULL,
    monthly_price_cents integer NOT NULL,
    max_seats           integer,
    max_open_jobs       integer,
    features            jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_public           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT plans_code_format CHECK (code ~ '^[a-z][a-z0-9_]*$'),
    CONSTRAINT plans_price_nonnegative CHECK (monthly_price_cents >= 0),
    CONSTRAINT plans_limits_positive CHECK (
        (max_seats IS NULL OR max_seats > 0)
        AND (max_open_jobs IS NULL OR max_open_jobs > 0)
    )
);

COMMENT ON TABLE public.plans IS 'Subscription plans offered to employer accounts (shared by all tenants).';

INSERT INTO public.plans (code, name, monthly_price_cents, max_seats, max_open_jobs, features, is_public) VALUES
    ('starter',    'Starter',        4900,    3,    5, '{"careers_page": true, "scorecards": false, "sso": false, "api_access": false}', true),
    ('growth',     'Growth',        19900,   15,   50, '{"careers_page": true, "scorecards": true,  "sso": false, "api_access": true}',  true),
    ('business',   'Business',      59900,  100,  250, '{"careers_page": true, "scorecards": true,  "sso": true,  "api_access": true}',  true),
    ('enterprise', 'Enterprise',        0, NULL, NULL, '{"careers_page": true, "scorecards": true,  "sso": true,  "api_access": true, "custom_contract": true}', false);

-- migrate:up
-- Enum types for the hiring pipeline, used by later scripts
-- (0005_job_postings, 0007_applications, 0011_application_stage_history).

CREATE TYPE public.application_stage AS ENUM (
    'applied',
    'screening',
    'interviewing',
    'offer',
    'hired',
    'rejected',
    'withdrawn'
);

CREATE TYPE public.employment_type AS ENUM (
    'full_time',
    'part_time',
    'contract',
    'internship',
    'temporary'
);

CREATE TYPE public.posting_status AS ENUM (
    'draft',
    'open',
    'paused',
    'closed'
);

-- migrate:down
DROP TYPE public.posting_status;
DROP TYPE public.employment_type;
DROP TYPE public.application_stage;

-- Reverses 0005_job_postings.up.sql. The sequences are OWNED BY their id
-- columns, and indexes, triggers and constraints belong to their tables,
-- so dropping the two tables removes everything the up script made.
DROP TABLE public.job_postings;
DROP TABLE public.departments;

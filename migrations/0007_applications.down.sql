-- Reverses 0007_applications.up.sql, in reverse order.
DROP TABLE public.applications;
DROP FUNCTION public.sync_job_posting_applications_count();
ALTER TABLE ONLY public.job_postings DROP CONSTRAINT job_postings_applications_count_check;
ALTER TABLE ONLY public.job_postings DROP COLUMN applications_count;

-- Reverses 0010_job_posting_slugs.up.sql, in reverse order. Slugs are
-- derived from title and id, so applying the up script again rebuilds them.
DROP TRIGGER job_postings_default_slug ON public.job_postings;
DROP FUNCTION public.job_postings_default_slug();
ALTER TABLE public.job_postings DROP CONSTRAINT job_postings_slug_check;
ALTER TABLE public.job_postings DROP CONSTRAINT job_postings_slug_key;
ALTER TABLE public.job_postings DROP COLUMN slug;
DROP FUNCTION public.slugify(text);

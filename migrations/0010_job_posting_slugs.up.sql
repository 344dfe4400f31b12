-- Tenant script, data migration: public careers-page URLs need a stable slug
-- per job posting. Add the column as nullable, backfill it from the existing
-- title and id, then make it NOT NULL and UNIQUE. New postings get one from
-- a BEFORE INSERT trigger when the application does not supply it.

CREATE FUNCTION public.slugify(value text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT btrim(regexp_replace(lower(value), '[^a-z0-9]+', '-', 'g'), '-') $$;

ALTER TABLE public.job_postings ADD COLUMN slug text;

-- Backfill existing rows: "Senior Backend Engineer (Go)" #42 -> senior-backend-engineer-go-42
UPDATE public.job_postings
   SET slug = concat_ws('-', NULLIF(public.slugify(title), ''), id::text)
 WHERE slug IS NULL;

ALTER TABLE public.job_postings ALTER COLUMN slug SET NOT NULL;

ALTER TABLE public.job_postings
    ADD CONSTRAINT job_postings_slug_key UNIQUE (slug);

ALTER TABLE public.job_postings
    ADD CONSTRAINT job_postings_slug_check CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$');

CREATE FUNCTION public.job_postings_default_slug() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF NEW.slug IS NULL THEN
        NEW.slug := concat_ws('-', NULLIF(public.slugify(NEW.title), ''), NEW.id::text);
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER job_postings_default_slug
    BEFORE INSERT ON public.job_postings
    FOR EACH ROW EXECUTE FUNCTION public.job_postings_default_slug();

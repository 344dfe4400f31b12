-- Tenant script: applications (a candidate applying to a job posting).
-- Uses the application_stage enum from 0004, adds a denormalized
-- applications_count to job_postings and keeps it right with a plpgsql
-- trigger function whose body refers to public.job_postings.

ALTER TABLE ONLY public.job_postings
    ADD COLUMN applications_count integer DEFAULT 0 NOT NULL;

ALTER TABLE ONLY public.job_postings
    ADD CONSTRAINT job_postings_applications_count_check CHECK ((applications_count >= 0));

CREATE TABLE public.applications (
    id bigint NOT NULL,
    job_posting_id integer NOT NULL,
    candidate_id integer NOT NULL,
    owner_id bigint,
    stage public.application_stage DEFAULT 'applied'::public.application_stage NOT NULL,
    rejection_reason text,
    cover_letter text,
    answers jsonb DEFAULT '{}'::jsonb NOT NULL,
    rating smallint,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT applications_rating_check CHECK (((rating IS NULL) OR ((rating >= 1) AND (rating <= 5)))),
    CONSTRAINT applications_rejection_reason_check CHECK (((stage = 'rejected'::public.application_stage) OR (rejection_reason IS NULL))),
    CONSTRAINT applications_answers_check CHECK ((jsonb_typeof(answers) = 'object'::text))
);

ALTER TABLE public.applications ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.applications_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_job_posting_id_candidate_id_key UNIQUE (job_posting_id, candidate_id);

CREATE INDEX applications_candidate_id_idx ON public.applications USING btree (candidate_id);

CREATE INDEX applications_stage_idx ON public.applications USING btree (job_posting_id, stage);

CREATE INDEX applications_owner_id_idx ON public.applications USING btree (owner_id) WHERE (owner_id IS NOT NULL);

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_job_posting_id_fkey FOREIGN KEY (job_posting_id) REFERENCES public.job_postings(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_candidate_id_fkey FOREIGN KEY (candidate_id) REFERENCES public.candidates(id) ON DELETE CASCADE;

ALTER TABLE ONLY public.applications
    ADD CONSTRAINT applications_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.users(id) ON DELETE SET NULL;

-- Keeps job_postings.applications_count equal to the number of applications.
CREATE FUNCTION public.sync_job_posting_applications_count() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE public.job_postings
           SET applications_count = applications_count + 1
         WHERE id = NEW.job_posting_id;
        RETURN NEW;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE public.job_postings
           SET applications_count = applications_count - 1
         WHERE id = OLD.job_posting_id;
        RETURN OLD;
    ELSIF NEW.job_posting_id IS DISTINCT FROM OLD.job_posting_id THEN
        UPDATE public.job_postings
           SET applications_count = applications_count - 1
         WHERE id = OLD.job_posting_id;
        UPDATE public.job_postings
           SET applications_count = applications_count + 1
         WHERE id = NEW.job_posting_id;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER applications_sync_count
    AFTER INSERT OR DELETE OR UPDATE OF job_posting_id ON public.applications
    FOR EACH ROW EXECUTE FUNCTION public.sync_job_posting_applications_count();

CREATE TRIGGER applications_set_updated_at
    BEFORE UPDATE ON public.applications
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

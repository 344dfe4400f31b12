-- Tenant script: departments and job postings, in the style pg_dump emits
-- (explicit sequences, nextval('public.x_id_seq'::regclass) defaults,
-- ALTER TABLE ONLY ... ADD CONSTRAINT). Uses the posting_status and
-- employment_type enums from 0004.

CREATE TABLE public.departments (
    id integer NOT NULL,
    name text NOT NULL,
    cost_center text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE SEQUENCE public.departments_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.departments_id_seq OWNED BY public.departments.id;

CREATE TABLE public.job_postings (
    id integer NOT NULL,
    department_id integer,
    hiring_manager_id bigint,
    recruiter_id bigint,
    title text NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    location text,
    remote_policy text DEFAULT 'onsite'::text NOT NULL,
    employment_type public.employment_type DEFAULT 'full_time'::public.employment_type NOT NULL,
    status public.posting_status DEFAULT 'draft'::public.posting_status NOT NULL,
    salary_min integer,
    salary_max integer,
    salary_currency character(3) DEFAULT 'USD'::bpchar NOT NULL,
    openings smallint DEFAULT 1 NOT NULL,
    tags text[] DEFAULT '{}'::text[] NOT NULL,
    search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, COALESCE(title, ''::text)), 'A'::"char")
        || setweight(to_tsvector('english'::regconfig, COALESCE(description, ''::text)), 'B'::"char")
    ) STORED,
    published_at timestamp with time zone,
    closes_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT job_postings_remote_policy_check CHECK ((remote_policy = ANY (ARRAY['onsite'::text, 'hybrid'::text, 'remote'::text]))),
    CONSTRAINT job_postings_salary_check CHECK (((salary_min IS NULL) OR (salary_max IS NULL) OR (salary_min <= salary_max))),
    CONSTRAINT job_postings_salary_min_check CHECK (((salary_min IS NULL) OR (salary_min >= 0))),
    CONSTRAINT job_postings_openings_check CHECK ((openings > 0)),
    CONSTRAINT job_postings_published_check CHECK (((status = 'draft'::public.posting_status) OR (published_at IS NOT NULL))),
    CONSTRAINT job_postings_closes_after_published_check CHECK (((closes_at IS NULL) OR (published_at IS NULL) OR (closes_at > published_at)))
);

CREATE SEQUENCE public.job_postings_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.job_postings_id_seq OWNED BY public.job_postings.id;

ALTER TABLE ONLY public.departments ALTER COLUMN id SET DEFAULT nextval('public.departments_id_seq'::regclass);

ALTER TABLE ONLY public.job_postings ALTER COLUMN id SET DEFAULT nextval('public.job_postings_id_seq'::regclass);

ALTER TABLE ONLY public.departments
    ADD CONSTRAINT departments_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.departments
    ADD CONSTRAINT departments_name_key UNIQUE (name);

ALTER TABLE ONLY public.job_postings
    ADD CONSTRAINT job_postings_pkey PRIMARY KEY (id);

CREATE INDEX job_postings_department_id_idx ON public.job_postings USING btree (department_id);

CREATE INDEX job_postings_status_published_at_idx ON public.job_postings USING btree (status, published_at DESC);

CREATE INDEX job_postings_search_vector_idx ON public.job_postings USING gin (search_vector);

CREATE INDEX job_postings_tags_idx ON public.job_postings USING gin (tags);

CREATE TRIGGER departments_set_updated_at BEFORE UPDATE ON public.departments FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

CREATE TRIGGER job_postings_set_updated_at BEFORE UPDATE ON public.job_postings FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

ALTER TABLE ONLY public.job_postings
    ADD CONSTRAINT job_postings_department_id_fkey FOREIGN KEY (department_id) REFERENCES public.departments(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.job_postings
    ADD CONSTRAINT job_postings_hiring_manager_id_fkey FOREIGN KEY (hiring_manager_id) REFERENCES public.users(id) ON DELETE SET NULL;

ALTER TABLE ONLY public.job_postings
    ADD CONSTRAINT job_postings_recruiter_id_fkey FOREIGN KEY (recruiter_id) REFERENCES public.users(id) ON DELETE SET NULL;

-- migrate:up
-- Notes that recruiters and hiring managers leave on a candidate (optionally
-- tied to one application). 'team' notes are visible to every portal user of
-- the tenant; 'private' notes only to their author. The application sets
--   SET LOCAL app.current_user_id = '<users.id>'
-- per request; the row level security policies below read it.
-- RLS is ENABLEd (not FORCEd): it binds the application's roles (e.g. the one
-- from create_tenant_role()), while the table owner that runs migrations and
-- superusers are not filtered.

CREATE FUNCTION public.current_app_user_id() RETURNS bigint
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.current_user_id', true), '')::bigint $$;

CREATE TABLE public.notes (
    id bigserial PRIMARY KEY,
    candidate_id integer NOT NULL REFERENCES public.candidates (id) ON DELETE CASCADE,
    application_id bigint REFERENCES public.applications (id) ON DELETE CASCADE,
    author_id bigint NOT NULL DEFAULT public.current_app_user_id()
        REFERENCES public.users (id) ON DELETE RESTRICT,
    visibility text NOT NULL DEFAULT 'team',
    body text NOT NULL,
    pinned boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notes_visibility_check CHECK (visibility IN ('team', 'private')),
    CONSTRAINT notes_body_check CHECK (length(btrim(body)) BETWEEN 1 AND 20000)
);

CREATE INDEX notes_candidate_id_created_at_idx ON public.notes USING btree (candidate_id, created_at DESC);
CREATE INDEX notes_application_id_idx ON public.notes USING btree (application_id) WHERE application_id IS NOT NULL;
CREATE INDEX notes_author_id_idx ON public.notes USING btree (author_id);

CREATE TRIGGER notes_set_updated_at
    BEFORE UPDATE ON public.notes
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at();

ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY;

-- TO PUBLIC here is the role PUBLIC, which the extension leaves alone.
CREATE POLICY notes_select ON public.notes FOR SELECT TO PUBLIC
    USING (visibility = 'team' OR author_id = public.current_app_user_id());

CREATE POLICY notes_insert ON public.notes FOR INSERT TO PUBLIC
    WITH CHECK (author_id = public.current_app_user_id());

CREATE POLICY notes_update ON public.notes FOR UPDATE TO PUBLIC
    USING (author_id = public.current_app_user_id())
    WITH CHECK (author_id = public.current_app_user_id());

CREATE POLICY notes_delete ON public.notes FOR DELETE TO PUBLIC
    USING (author_id = public.current_app_user_id());

-- migrate:down
DROP TABLE public.notes;
DROP FUNCTION public.current_app_user_id();

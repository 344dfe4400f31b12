/* tenant_migrate--1.0--1.1.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION tenant_migrate UPDATE TO '1.1'" to load this file. \quit

/*
 * Second release.  Operators are qualified: an extension script runs with
 * public on its search_path, where another role may have put look-alikes.
 */

/*---- Security: names that can be spliced into scripts safely ----*/

-- A tenant schema name is what create_tenant_schema() makes: letters,
-- digits and underscores, never a system schema.  The runner checks the
-- same at every lookup.
ALTER TABLE public.tenant_registry
	ADD CONSTRAINT tenant_registry_schema_name_check
	CHECK (schema_name OPERATOR(pg_catalog.~) '^[A-Za-z0-9_]+$'
		   AND schema_name OPERATOR(pg_catalog.!~) '^pg_'
		   AND schema_name OPERATOR(pg_catalog.<>) 'information_schema');

COMMENT ON CONSTRAINT tenant_registry_schema_name_check ON public.tenant_registry IS
	'Tenant schema names contain only letters, digits and underscores and are never a system schema.';

-- Versions are passed whole between processes: at most 63 bytes.
ALTER TABLE public.tenant_migration_scripts
	ADD CONSTRAINT tenant_migration_scripts_version_length_check
	CHECK (pg_catalog.octet_length(version) OPERATOR(pg_catalog.<=) 63);

COMMENT ON CONSTRAINT tenant_migration_scripts_version_length_check ON public.tenant_migration_scripts IS
	'A version is at most 63 bytes.';

COMMENT ON COLUMN public.tenant_migration_scripts.registered_by IS
	'Role that first registered the script; its up and down scripts run as this role.';

/*---- Granting a migration role exactly the extension's objects ----*/

-- GRANT ... ON ALL FUNCTIONS IN SCHEMA public would also re-grant other
-- extensions' functions that were revoked on purpose (dblink_connect_u...).
CREATE FUNCTION public.tenant_migrate_grant(grantee regrole)
RETURNS integer
LANGUAGE plpgsql STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	obj record;
	n integer := 0;
BEGIN
	FOR obj IN
		SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END AS kind,
			   p.oid::regprocedure::text AS name
		  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
		 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		   AND d.refobjid = (SELECT e.oid FROM pg_extension e WHERE e.extname = 'tenant_migrate')
		   AND p.proname <> 'tenant_migrate_grant'
		UNION ALL
		SELECT 'TABLE', c.oid::regclass::text
		  FROM pg_depend d JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid
		 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
		   AND d.refobjid = (SELECT e.oid FROM pg_extension e WHERE e.extname = 'tenant_migrate')
		   AND c.relkind IN ('r', 'v')
		 ORDER BY 1, 2
	LOOP
		IF obj.kind = 'TABLE' THEN
			EXECUTE format('GRANT SELECT ON TABLE %s TO %s', obj.name, grantee);
		ELSE
			EXECUTE format('GRANT EXECUTE ON %s %s TO %s', obj.kind, obj.name, grantee);
		END IF;
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;

REVOKE ALL ON FUNCTION public.tenant_migrate_grant(regrole) FROM PUBLIC;

COMMENT ON FUNCTION public.tenant_migrate_grant(regrole) IS
	'Grants a migration role EXECUTE on every function and procedure of tenant_migrate (but this one) and SELECT on its tables and view, nothing else; returns how many objects.';

/*---- Row level security and tenant roles ----*/

-- These run as the caller (no SECURITY DEFINER): only a table's owner can
-- change its row level security, only a CREATEROLE role create a role.
CREATE FUNCTION public.tenant_enable_rls(
	rel regclass,
	tenant_column name DEFAULT 'tenant_id',
	setting text DEFAULT 'app.current_tenant_id')
RETURNS boolean
AS 'MODULE_PATHNAME', 'tenant_enable_rls'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_enable_rls(regclass, name, text) IS
	'Enables and forces row level security on a shared row-per-tenant table, with a policy tenant_isolation limiting rows to the tenant in setting; false if already so.';

CREATE FUNCTION public.tenant_disable_rls(rel regclass)
RETURNS boolean
AS 'MODULE_PATHNAME', 'tenant_disable_rls'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_disable_rls(regclass) IS
	'Removes what tenant_enable_rls made on a table (its policy, and row level security if it turned it on); false if there was nothing.';

CREATE FUNCTION public.tenant_add_tenant_column(
	rel regclass,
	default_tenant text,
	tenant_column name DEFAULT 'tenant_id')
RETURNS boolean
AS 'MODULE_PATHNAME', 'tenant_add_tenant_column'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_add_tenant_column(regclass, text, name) IS
	'Adds a NOT NULL text tenant column to a table, existing rows set to default_tenant, new rows defaulting to the session''s tenant, and an index on it; false if already complete.';

CREATE FUNCTION public.create_tenant_role(tenant_schema text)
RETURNS name
AS 'MODULE_PATHNAME', 'create_tenant_role'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.create_tenant_role(text) IS
	'Creates (or completes) the NOLOGIN role of a tenant: use of its schema, DML on its tables and sequences now and later, search_path set to it; returns its name.';

CREATE FUNCTION public.drop_tenant_role(tenant_schema text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'drop_tenant_role'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.drop_tenant_role(text) IS
	'Revokes what the tenant role of a schema was granted and drops it; false if it did not exist.';

REVOKE ALL ON FUNCTION public.tenant_enable_rls(regclass, name, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_disable_rls(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_add_tenant_column(regclass, text, name) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.create_tenant_role(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.drop_tenant_role(text) FROM PUBLIC;

COMMENT ON FUNCTION public.tenant_set(text, boolean) IS
	'Sets search_path to the tenant then public, and the setting named by tenant_migrate.tenant_setting (app.current_tenant_id) to its key.';

/*---- Trust: verify the whole fleet against its history, adopt existing schemas, retire tenants ----*/

-- Dropping a tenant is logged; the log keeps the tenant's past.
ALTER TABLE public.tenant_migration_log
	DROP CONSTRAINT tenant_migration_log_action_check,
	ADD CONSTRAINT tenant_migration_log_action_check
	CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY['up', 'down', 'baseline', 'drop']::pg_catalog.text[]));

COMMENT ON TABLE public.tenant_migration_log IS
	'Append-only audit of every attempt to apply, revert or baseline a migration, and of every dropped tenant.';
COMMENT ON COLUMN public.tenant_migration_log.action IS
	'up, down, baseline (recorded as applied without running, tenant_baseline) or drop (drop_tenant_schema; version is NULL).';

CREATE FUNCTION public.tenant_verify(tenant_schema text DEFAULT NULL)
RETURNS TABLE (tenant_schema name, problem text, detail text)
AS 'MODULE_PATHNAME', 'tenant_verify'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION public.tenant_verify(text) FROM PUBLIC;

COMMENT ON FUNCTION public.tenant_verify(text) IS
	'Checks every tenant (or one, or public''s shared history) against its recorded migrations: checksums, history, registry and schema drift; no rows = healthy.';

CREATE FUNCTION public.tenant_baseline(
	tenant_schema text,
	version text,
	tenant_key text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'tenant_baseline'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION public.tenant_baseline(text, text, text) FROM PUBLIC;

COMMENT ON FUNCTION public.tenant_baseline(text, text, text) IS
	'Adopts an existing schema: registers it and records every tenant migration up to version as applied, without running them; returns how many.';

CREATE FUNCTION public.drop_tenant_schema(tenant_schema text)
RETURNS name
AS 'MODULE_PATHNAME', 'drop_tenant_schema'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION public.drop_tenant_schema(text) FROM PUBLIC;

COMMENT ON FUNCTION public.drop_tenant_schema(text) IS
	'Drops a tenant: its schema, registry row and history rows, in the caller''s transaction, and logs it; returns the schema name.';

CREATE FUNCTION public.tenant_archive(tenant_schema text)
RETURNS name
AS 'MODULE_PATHNAME', 'tenant_archive'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION public.tenant_archive(text) FROM PUBLIC;

COMMENT ON FUNCTION public.tenant_archive(text) IS
	'Marks a tenant archived: fleet runs skip it; tenant_set_status(schema, ''active'') brings it back. Returns the schema name.';

CREATE FUNCTION public.tenant_set_status(tenant_schema text, status text)
RETURNS name
AS 'MODULE_PATHNAME', 'tenant_set_status'
LANGUAGE C VOLATILE;

REVOKE ALL ON FUNCTION public.tenant_set_status(text, text) FROM PUBLIC;

COMMENT ON FUNCTION public.tenant_set_status(text, text) IS
	'Sets a tenant''s status to active, suspended or archived (fleet runs migrate only active tenants); returns the schema name.';

-- The overview counts only active tenants as up to date, behind or
-- failing, and says how many are suspended or archived and how many
-- shared scripts are pending or failed.
CREATE OR REPLACE VIEW public.tenant_migration_overview AS
SELECT pg_catalog.count(*) AS tenants,
	   pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) 'active'
								   AND s.pending OPERATOR(pg_catalog.=) 0) AS up_to_date,
	   pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) 'active'
								   AND s.pending OPERATOR(pg_catalog.>) 0) AS behind,
	   pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) 'active'
								   AND s.last_error IS NOT NULL) AS failing,
	   (SELECT m.version
		  FROM public.tenant_migration_scripts m
		 WHERE m.scope OPERATOR(pg_catalog.=) 'tenant'
		 ORDER BY public.tenant_version_key(m.version) DESC, m.version DESC
		 LIMIT 1) AS newest_version,
	   pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) 'suspended') AS suspended,
	   pg_catalog.count(*) FILTER (WHERE s.status OPERATOR(pg_catalog.=) 'archived') AS archived,
	   (SELECT p.pending FROM public.tenant_migration_status('public') p) AS shared_pending,
	   (SELECT pg_catalog.count(*)
		  FROM public.tenant_migration_scripts m
		 WHERE m.scope OPERATOR(pg_catalog.=) 'shared'
		   AND NOT EXISTS (SELECT 1 FROM public.tenant_migrations a
							WHERE a.tenant_schema OPERATOR(pg_catalog.=) 'public'
							  AND a.version OPERATOR(pg_catalog.=) m.version)
		   AND (SELECT g.status FROM public.tenant_migration_log g
				 WHERE g.tenant_schema OPERATOR(pg_catalog.=) 'public'
				   AND g.version OPERATOR(pg_catalog.=) m.version
				 ORDER BY g.id DESC LIMIT 1) OPERATOR(pg_catalog.=) 'failed') AS shared_failing
  FROM public.tenant_migration_status() s;

COMMENT ON COLUMN public.tenant_migration_overview.tenants IS
	'Registered tenants, whatever their status.';
COMMENT ON COLUMN public.tenant_migration_overview.up_to_date IS
	'Active tenants with no pending tenant migration.';
COMMENT ON COLUMN public.tenant_migration_overview.behind IS
	'Active tenants with pending tenant migrations.';
COMMENT ON COLUMN public.tenant_migration_overview.failing IS
	'Active tenants whose latest attempt failed.';
COMMENT ON COLUMN public.tenant_migration_overview.suspended IS
	'Suspended tenants (skipped by fleet runs).';
COMMENT ON COLUMN public.tenant_migration_overview.archived IS
	'Archived tenants (skipped by fleet runs).';
COMMENT ON COLUMN public.tenant_migration_overview.shared_pending IS
	'Shared migrations not yet applied to public.';
COMMENT ON COLUMN public.tenant_migration_overview.shared_failing IS
	'Pending shared migrations whose latest attempt failed.';

COMMENT ON VIEW public.tenant_migration_overview IS
	'Fleet summary: tenants; active ones up to date, behind and failing; suspended and archived ones; the newest tenant version; pending and failed shared scripts.';

/*---- Fleet runs at full speed: parallel workers, an honest message channel, run records ----*/

CREATE TABLE public.tenant_migration_runs (
	id bigserial PRIMARY KEY,
	action text NOT NULL
		CONSTRAINT tenant_migration_runs_action_check
		CHECK (action IN ('migrate', 'rollback')),
	target_version text,
	tenants text[],
	workers integer NOT NULL,
	started_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	finished_at timestamptz,
	started_by name NOT NULL,
	status text NOT NULL DEFAULT 'running'
		CONSTRAINT tenant_migration_runs_status_check
		CHECK (status IN ('running', 'finished', 'failed', 'cancelled', 'interrupted')),
	total integer NOT NULL DEFAULT 0,
	done integer NOT NULL DEFAULT 0,
	failed integer NOT NULL DEFAULT 0,
	skipped integer NOT NULL DEFAULT 0,
	current_tenant name
);

REVOKE ALL ON TABLE public.tenant_migration_runs FROM PUBLIC;
REVOKE ALL ON SEQUENCE public.tenant_migration_runs_id_seq FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('public.tenant_migration_runs', '');
SELECT pg_catalog.pg_extension_config_dump('public.tenant_migration_runs_id_seq', '');

COMMENT ON TABLE public.tenant_migration_runs IS
	'One row per fleet run (tenant_migrate_all, tenant_rollback_all), updated as it goes: watch a run from another session.';
COMMENT ON COLUMN public.tenant_migration_runs.id IS
	'Run number, increasing; tenant_migration_log.run_id points here.';
COMMENT ON COLUMN public.tenant_migration_runs.action IS
	'migrate (tenant_migrate_all) or rollback (tenant_rollback_all).';
COMMENT ON COLUMN public.tenant_migration_runs.target_version IS
	'The target_version argument (NULL: every registered script).';
COMMENT ON COLUMN public.tenant_migration_runs.tenants IS
	'The tenants argument (NULL: every active tenant).';
COMMENT ON COLUMN public.tenant_migration_runs.workers IS
	'Background workers the run got (0: the calling session did the work itself).';
COMMENT ON COLUMN public.tenant_migration_runs.started_at IS
	'When the run started.';
COMMENT ON COLUMN public.tenant_migration_runs.finished_at IS
	'When the run ended, or when it was found interrupted; NULL while running.';
COMMENT ON COLUMN public.tenant_migration_runs.started_by IS
	'Role that called the procedure.';
COMMENT ON COLUMN public.tenant_migration_runs.status IS
	'running, finished (every tenant attempted), failed (stopped by max_failures or an error), cancelled, or interrupted (its session ended without finishing it: crash, kill, terminate).';
COMMENT ON COLUMN public.tenant_migration_runs.total IS
	'Active tenants the run considers.';
COMMENT ON COLUMN public.tenant_migration_runs.done IS
	'Tenants dealt with (migrated, already up to date, failed or skipped); each is committed with the tenant''s own transaction.';
COMMENT ON COLUMN public.tenant_migration_runs.failed IS
	'Tenants whose migration failed (after lock-timeout retries).';
COMMENT ON COLUMN public.tenant_migration_runs.skipped IS
	'Tenants skipped because another session was migrating them.';
COMMENT ON COLUMN public.tenant_migration_runs.current_tenant IS
	'The tenant committed last.';

ALTER TABLE public.tenant_migration_log
	ADD COLUMN run_id bigint REFERENCES public.tenant_migration_runs (id);

CREATE INDEX tenant_migration_log_run_idx
	ON public.tenant_migration_log (run_id) WHERE run_id IS NOT NULL;

COMMENT ON COLUMN public.tenant_migration_log.run_id IS
	'The fleet run (tenant_migration_runs.id) the attempt belongs to; NULL for one-schema calls.';

-- CREATE OR REPLACE cannot add arguments: drop and create again.  The C
-- entry points accept the 1.0 argument lists too, so a database whose
-- ALTER EXTENSION UPDATE is pending keeps working.
DROP PROCEDURE public.tenant_migrate_all(text, text[], integer);

CREATE PROCEDURE public.tenant_migrate_all(
	target_version text DEFAULT NULL,
	tenants text[] DEFAULT NULL,
	max_failures integer DEFAULT NULL,
	workers integer DEFAULT NULL)
AS 'MODULE_PATHNAME', 'tenant_migrate_all'
LANGUAGE C;

REVOKE ALL ON PROCEDURE public.tenant_migrate_all(text, text[], integer, integer) FROM PUBLIC;

COMMENT ON PROCEDURE public.tenant_migrate_all(text, text[], integer, integer) IS
	'Applies pending shared scripts, then migrates every active tenant (or the listed ones) with background workers taking tenants from one queue, committing after each.';

DROP PROCEDURE public.tenant_rollback_all(text, text[]);

CREATE PROCEDURE public.tenant_rollback_all(
	target_version text,
	tenants text[] DEFAULT NULL,
	workers integer DEFAULT NULL)
AS 'MODULE_PATHNAME', 'tenant_rollback_all'
LANGUAGE C;

REVOKE ALL ON PROCEDURE public.tenant_rollback_all(text, text[], integer) FROM PUBLIC;

COMMENT ON PROCEDURE public.tenant_rollback_all(text, text[], integer) IS
	'Rolls every active tenant (or the listed ones) back to target_version with background workers taking tenants from one queue, committing after each.';

/*---- Real migration histories: commits between scripts, CONCURRENTLY steps, create_tenant ----*/

ALTER TABLE public.tenant_migration_log
	ADD COLUMN step text;

COMMENT ON COLUMN public.tenant_migration_log.step IS
	'For a script run outside a transaction block (CREATE INDEX CONCURRENTLY...), the step this row is about: statement number, line and text, or the INVALID index dropped before a retry; NULL for rows about a whole script.';

CREATE PROCEDURE public.create_tenant(
	tenant_key text,
	display_name text DEFAULT NULL)
AS 'MODULE_PATHNAME', 'create_tenant'
LANGUAGE C;

REVOKE ALL ON PROCEDURE public.create_tenant(text, text) FROM PUBLIC;

COMMENT ON PROCEDURE public.create_tenant(text, text) IS
	'Creates and registers a tenant schema like create_tenant_schema(), commits, then applies every tenant migration committing after each script that adds enum values; CONCURRENTLY steps run as plain statements (the tables are new). On failure the tenant stays registered with what succeeded applied, the failure is logged, and the error is raised.';

/*---- tenant_verify: references kept between calls ----*/

CREATE TABLE public.tenant_verify_reference (
	signature text PRIMARY KEY,
	versions text NOT NULL,
	entries text[] NOT NULL,
	built_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

REVOKE ALL ON TABLE public.tenant_verify_reference FROM PUBLIC;

COMMENT ON TABLE public.tenant_verify_reference IS
	'A cache of tenant_verify: the fingerprint its replay of a set of applied tenant migrations produced, kept so that later calls compare against it instead of replaying. Not dumped; safe to empty (TRUNCATE) at any time.';
COMMENT ON COLUMN public.tenant_verify_reference.signature IS
	'Hash of everything the replay depends on: the versions, the texts and authors of their scripts, the shared history, the installed extensions, tenant_migrate.shared_objects, the server version and the fingerprint query.';
COMMENT ON COLUMN public.tenant_verify_reference.versions IS
	'The applied tenant versions replayed, comma-separated in version order.';
COMMENT ON COLUMN public.tenant_verify_reference.entries IS
	'The fingerprint: object key and definition, alternately, sorted by key, with the schema name replaced by a placeholder.';
COMMENT ON COLUMN public.tenant_verify_reference.built_at IS
	'When the replay ran.';

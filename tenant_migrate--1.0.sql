/* tenant_migrate--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION tenant_migrate" to load this file. \quit

/*---- Catalog ----*/

CREATE TABLE public.tenant_registry (
	schema_name name PRIMARY KEY,
	tenant_key text UNIQUE
		CONSTRAINT tenant_registry_key_check CHECK (tenant_key ~ '^[A-Za-z0-9_]+$'),
	display_name text,
	status text NOT NULL DEFAULT 'active'
		CONSTRAINT tenant_registry_status_check
		CHECK (status IN ('active', 'suspended', 'archived')),
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
	CONSTRAINT tenant_registry_not_public CHECK (schema_name <> 'public')
);

COMMENT ON TABLE public.tenant_registry IS
	'One row per tenant schema managed by tenant_migrate.';
COMMENT ON COLUMN public.tenant_registry.schema_name IS
	'The tenant''s schema (tenant_migrate.schema_prefix followed by the key).';
COMMENT ON COLUMN public.tenant_registry.tenant_key IS
	'The tenant''s key; tenant_set() puts it in app.current_tenant_id.';
COMMENT ON COLUMN public.tenant_registry.display_name IS
	'Human-readable tenant name.';
COMMENT ON COLUMN public.tenant_registry.status IS
	'active, suspended or archived; only active tenants are migrated by fleet runs.';
COMMENT ON COLUMN public.tenant_registry.created_at IS
	'When the tenant was registered.';
COMMENT ON COLUMN public.tenant_registry.metadata IS
	'Free-form tenant attributes kept for the application.';

CREATE TABLE public.tenant_migration_scripts (
	version text PRIMARY KEY
		CONSTRAINT tenant_migration_scripts_version_check
		CHECK (version ~ '^[0-9]+([._][0-9]+)*$'),
	name text NOT NULL,
	scope text NOT NULL DEFAULT 'tenant'
		CONSTRAINT tenant_migration_scripts_scope_check
		CHECK (scope IN ('tenant', 'shared')),
	up_sql text NOT NULL,
	down_sql text,
	checksum text NOT NULL
		CONSTRAINT tenant_migration_scripts_checksum_check
		CHECK (checksum ~ '^[0-9a-f]{64}$'),
	depends_on text[] NOT NULL DEFAULT '{}',
	registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	registered_by name NOT NULL DEFAULT CURRENT_USER
);

COMMENT ON TABLE public.tenant_migration_scripts IS
	'Registered migration scripts, applied in version order.';
COMMENT ON COLUMN public.tenant_migration_scripts.version IS
	'Digits with optional . or _ separators, ordered part by part numerically.';
COMMENT ON COLUMN public.tenant_migration_scripts.name IS
	'Short description of the migration.';
COMMENT ON COLUMN public.tenant_migration_scripts.scope IS
	'tenant: applied to every tenant schema with public rewritten; shared: applied once to public.';
COMMENT ON COLUMN public.tenant_migration_scripts.up_sql IS
	'The migration, written with public. qualifiers.';
COMMENT ON COLUMN public.tenant_migration_scripts.down_sql IS
	'The script that reverts it, or NULL if it cannot be rolled back.';
COMMENT ON COLUMN public.tenant_migration_scripts.checksum IS
	'Hex SHA-256 of up_sql.';
COMMENT ON COLUMN public.tenant_migration_scripts.depends_on IS
	'Versions that must be applied before this one.';
COMMENT ON COLUMN public.tenant_migration_scripts.registered_at IS
	'When the script was registered or last changed.';
COMMENT ON COLUMN public.tenant_migration_scripts.registered_by IS
	'Role that registered it.';

CREATE TABLE public.tenant_migrations (
	tenant_schema name NOT NULL,
	version text NOT NULL
		REFERENCES public.tenant_migration_scripts (version),
	name text NOT NULL,
	checksum text NOT NULL,
	rollback_sql text,
	applied_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	applied_by name NOT NULL DEFAULT CURRENT_USER,
	duration_ms float8 NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_schema, version)
);

CREATE INDEX tenant_migrations_version_idx
	ON public.tenant_migrations (version);

COMMENT ON TABLE public.tenant_migrations IS
	'Migrations applied now, one row per schema and version; shared ones under tenant_schema = public.';
COMMENT ON COLUMN public.tenant_migrations.tenant_schema IS
	'The tenant schema, or public for shared migrations.';
COMMENT ON COLUMN public.tenant_migrations.version IS
	'The applied script''s version.';
COMMENT ON COLUMN public.tenant_migrations.name IS
	'The applied script''s name.';
COMMENT ON COLUMN public.tenant_migrations.checksum IS
	'Checksum of up_sql when it was applied.';
COMMENT ON COLUMN public.tenant_migrations.rollback_sql IS
	'The down script as rewritten for this tenant when applied.';
COMMENT ON COLUMN public.tenant_migrations.applied_at IS
	'When it was applied.';
COMMENT ON COLUMN public.tenant_migrations.applied_by IS
	'Role that applied it.';
COMMENT ON COLUMN public.tenant_migrations.duration_ms IS
	'How long the script took, in milliseconds.';

CREATE TABLE public.tenant_migration_log (
	id bigserial PRIMARY KEY,
	tenant_schema name NOT NULL,
	version text,
	action text NOT NULL
		CONSTRAINT tenant_migration_log_action_check
		CHECK (action IN ('up', 'down', 'baseline')),
	status text NOT NULL
		CONSTRAINT tenant_migration_log_status_check
		CHECK (status IN ('ok', 'failed', 'skipped')),
	error text,
	started_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	duration_ms float8,
	performed_by name NOT NULL DEFAULT CURRENT_USER
);

CREATE INDEX tenant_migration_log_tenant_idx
	ON public.tenant_migration_log (tenant_schema, id);

COMMENT ON TABLE public.tenant_migration_log IS
	'Append-only audit of every attempt to apply, revert or baseline a migration.';
COMMENT ON COLUMN public.tenant_migration_log.id IS
	'Attempt number, increasing.';
COMMENT ON COLUMN public.tenant_migration_log.tenant_schema IS
	'The tenant schema, or public for shared migrations.';
COMMENT ON COLUMN public.tenant_migration_log.version IS
	'The script''s version (NULL when the attempt failed before picking one).';
COMMENT ON COLUMN public.tenant_migration_log.action IS
	'up, down or baseline.';
COMMENT ON COLUMN public.tenant_migration_log.status IS
	'ok, failed or skipped.';
COMMENT ON COLUMN public.tenant_migration_log.error IS
	'The error message of a failed attempt.';
COMMENT ON COLUMN public.tenant_migration_log.started_at IS
	'When the attempt started.';
COMMENT ON COLUMN public.tenant_migration_log.duration_ms IS
	'How long it took, in milliseconds.';
COMMENT ON COLUMN public.tenant_migration_log.performed_by IS
	'Role that made the attempt.';

-- pg_dump keeps the contents of the extension's tables
SELECT pg_catalog.pg_extension_config_dump('public.tenant_registry', '');
SELECT pg_catalog.pg_extension_config_dump('public.tenant_migration_scripts', '');
SELECT pg_catalog.pg_extension_config_dump('public.tenant_migrations', '');
SELECT pg_catalog.pg_extension_config_dump('public.tenant_migration_log', '');
SELECT pg_catalog.pg_extension_config_dump('public.tenant_migration_log_id_seq', '');

/*---- Versions ----*/

CREATE FUNCTION public.tenant_version_key(version text)
RETURNS numeric[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.string_to_array(pg_catalog.translate($1, '_', '.'), '.')::pg_catalog.numeric[] $$;

COMMENT ON FUNCTION public.tenant_version_key(text) IS
	'Sort key of a migration version: ORDER BY tenant_version_key(version) orders 1.9 before 1.10.';

/*---- Scripts ----*/

CREATE FUNCTION public.tenant_migration_add(
	version text,
	name text,
	up_sql text,
	down_sql text DEFAULT NULL,
	scope text DEFAULT 'tenant',
	depends_on text[] DEFAULT '{}')
RETURNS text
AS 'MODULE_PATHNAME', 'tenant_migration_add'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_migration_add(text, text, text, text, text, text[]) IS
	'Registers a migration script and returns its checksum; unchanged content is a no-op.';

CREATE FUNCTION public.tenant_migrations_load(directory text)
RETURNS integer
AS 'MODULE_PATHNAME', 'tenant_migrations_load'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION public.tenant_migrations_load(text) IS
	'Registers every migration script in a server-side folder; returns how many were new or changed.';

/*---- Tenants ----*/

CREATE FUNCTION public.create_tenant_schema(
	tenant_key text,
	display_name text DEFAULT NULL)
RETURNS name
AS 'MODULE_PATHNAME', 'create_tenant_schema'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.create_tenant_schema(text, text) IS
	'Creates and registers a tenant schema and applies every tenant migration to it.';

CREATE FUNCTION public.tenant_set(
	tenant_schema text,
	is_local boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'tenant_set'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_set(text, boolean) IS
	'Sets search_path to the tenant then public, and app.current_tenant_id to its key.';

/*---- Applying and rolling back ----*/

CREATE FUNCTION public.tenant_migrate(
	tenant_schema text,
	target_version text DEFAULT NULL)
RETURNS TABLE (version text, name text, duration_ms float8)
AS 'MODULE_PATHNAME', 'tenant_migrate'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_migrate(text, text) IS
	'Applies a tenant''s pending migrations up to target_version in the caller''s transaction.';

CREATE FUNCTION public.tenant_migrate_shared(
	target_version text DEFAULT NULL)
RETURNS TABLE (version text, name text, duration_ms float8)
AS 'MODULE_PATHNAME', 'tenant_migrate_shared'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_migrate_shared(text) IS
	'Applies pending shared migrations to public, without rewriting.';

CREATE FUNCTION public.tenant_rollback(
	tenant_schema text,
	target_version text DEFAULT NULL)
RETURNS TABLE (version text, name text, duration_ms float8)
AS 'MODULE_PATHNAME', 'tenant_rollback'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_rollback(text, text) IS
	'Reverts, newest first, the applied migrations newer than target_version (NULL: the newest one).';

/*---- Fleet runs: every tenant, one commit per tenant ----*/

CREATE PROCEDURE public.tenant_migrate_all(
	target_version text DEFAULT NULL,
	tenants text[] DEFAULT NULL,
	max_failures integer DEFAULT NULL)
AS 'MODULE_PATHNAME', 'tenant_migrate_all'
LANGUAGE C;

COMMENT ON PROCEDURE public.tenant_migrate_all(text, text[], integer) IS
	'Applies pending shared scripts, then migrates every active tenant (or the listed ones), committing after each.';

CREATE PROCEDURE public.tenant_rollback_all(
	target_version text,
	tenants text[] DEFAULT NULL)
AS 'MODULE_PATHNAME', 'tenant_rollback_all'
LANGUAGE C;

COMMENT ON PROCEDURE public.tenant_rollback_all(text, text[]) IS
	'Rolls every active tenant (or the listed ones) back to target_version, committing after each.';

/*---- Inspecting ----*/

CREATE FUNCTION public.tenant_migration_plan(
	tenant_schema text,
	target_version text DEFAULT NULL)
RETURNS TABLE (version text, name text, sql text)
AS 'MODULE_PATHNAME', 'tenant_migration_plan'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_migration_plan(text, text) IS
	'The rewritten SQL tenant_migrate() would run for a tenant, without running it.';

CREATE FUNCTION public.tenant_migration_rewrite(
	sql text,
	tenant_schema text)
RETURNS text
AS 'MODULE_PATHNAME', 'tenant_migration_rewrite'
LANGUAGE C VOLATILE STRICT;

COMMENT ON FUNCTION public.tenant_migration_rewrite(text, text) IS
	'Shows how a script would be rewritten for a tenant schema, without registering or running it.';

-- The input parameter cannot share the name of the tenant_schema output column.
CREATE FUNCTION public.tenant_migration_status(
	tenant text DEFAULT NULL)
RETURNS TABLE (
	tenant_schema name,
	tenant_key text,
	status text,
	current_version text,
	applied integer,
	pending integer,
	last_error text,
	last_attempt_at timestamptz)
AS 'MODULE_PATHNAME', 'tenant_migration_status'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION public.tenant_migration_status(text) IS
	'Per-tenant migration state: current version, applied and pending counts, last error.';

CREATE VIEW public.tenant_migration_overview AS
SELECT pg_catalog.count(*) AS tenants,
	   pg_catalog.count(*) FILTER (WHERE s.pending = 0) AS up_to_date,
	   pg_catalog.count(*) FILTER (WHERE s.pending > 0) AS behind,
	   pg_catalog.count(*) FILTER (WHERE s.last_error IS NOT NULL) AS failing,
	   (SELECT m.version
		  FROM public.tenant_migration_scripts m
		 WHERE m.scope = 'tenant'
		 ORDER BY public.tenant_version_key(m.version) DESC, m.version DESC
		 LIMIT 1) AS newest_version
  FROM public.tenant_migration_status() s;

COMMENT ON VIEW public.tenant_migration_overview IS
	'Fleet summary: tenants, up to date, behind, failing, and the newest registered tenant version.';
COMMENT ON COLUMN public.tenant_migration_overview.tenants IS
	'Registered tenants.';
COMMENT ON COLUMN public.tenant_migration_overview.up_to_date IS
	'Tenants with no pending tenant migration.';
COMMENT ON COLUMN public.tenant_migration_overview.behind IS
	'Tenants with pending tenant migrations.';
COMMENT ON COLUMN public.tenant_migration_overview.failing IS
	'Tenants whose latest attempt failed.';
COMMENT ON COLUMN public.tenant_migration_overview.newest_version IS
	'The newest registered tenant migration.';

/*---- Privileges: nothing for PUBLIC ----*/

REVOKE ALL ON TABLE public.tenant_registry FROM PUBLIC;
REVOKE ALL ON TABLE public.tenant_migration_scripts FROM PUBLIC;
REVOKE ALL ON TABLE public.tenant_migrations FROM PUBLIC;
REVOKE ALL ON TABLE public.tenant_migration_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE public.tenant_migration_log_id_seq FROM PUBLIC;
REVOKE ALL ON TABLE public.tenant_migration_overview FROM PUBLIC;

REVOKE ALL ON FUNCTION public.tenant_migration_add(text, text, text, text, text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_migrations_load(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.create_tenant_schema(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_set(text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_migrate(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_migrate_shared(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_rollback(text, text) FROM PUBLIC;
REVOKE ALL ON PROCEDURE public.tenant_migrate_all(text, text[], integer) FROM PUBLIC;
REVOKE ALL ON PROCEDURE public.tenant_rollback_all(text, text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_migration_plan(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_migration_rewrite(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION public.tenant_migration_status(text) FROM PUBLIC;

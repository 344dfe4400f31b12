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

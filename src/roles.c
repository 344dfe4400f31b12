/*-------------------------------------------------------------------------
 *
 * src/roles.c
 *		Tenant roles: create_tenant_role(), drop_tenant_role(), the settings
 *		tenant_migrate.create_tenant_roles and tenant_migrate.tenant_role_group,
 *		and the default privileges that keep a tenant role complete as
 *		migrations add tables.
 *
 * A tenant role is a NOLOGIN role with USAGE on its tenant's schema,
 * SELECT/INSERT/UPDATE/DELETE on its tables, USAGE/SELECT on its
 * sequences, search_path = its schema (in this database), and nothing
 * else.  Applications log in as their own role and SET ROLE to it (or are
 * granted it).
 *
 * Name: the schema name followed by "_role" (tenant_acme -> tenant_acme_role).
 * When that does not fit in 63 bytes, the schema name is cut to 49 bytes
 * and "_" plus the first 8 hex digits of the SHA-256 of the whole schema
 * name are put before "_role": always 63 bytes or less, different schemas
 * get different roles, and the same schema always the same role.
 *
 * Roles belong to the whole cluster, schemas to one database.  A tenant
 * role carries a comment naming its schema and database; a role of the
 * same name without that comment (another application's role, or the same
 * tenant's role in another database) is never taken over nor dropped.
 *
 * Future tables.  The tables a migration creates are owned by the role the
 * script runs as: the role that registered it (registered_by, see
 * runner.c).  So the role gets default privileges FOR ROLE each role that
 * registered a tenant script, and FOR ROLE the schema's owner, IN SCHEMA
 * its tenant: whatever a later fleet run creates there is granted to it
 * as it is created.  A role that registers tenant scripts later is covered
 * once create_tenant_role() runs again (it is idempotent, and adds what is
 * missing).
 *
 * Everything runs as the caller, who needs CREATEROLE (to create, comment
 * and alter the role), ownership of the schema (to grant on it and its
 * tables) and the privileges of each role above (ALTER DEFAULT PRIVILEGES
 * FOR ROLE); a superuser has all of that.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type_d.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(create_tenant_role);
PG_FUNCTION_INFO_V1(drop_tenant_role);

#define TM_ROLE_SUFFIX		"_role"
#define TM_ROLE_HASH_LEN	8

/*---- Settings ----*/

bool		tm_create_tenant_roles = false;
char	   *tm_tenant_role_group = NULL;

/*---- Local functions ----*/

static char *role_mark(const char *schema);
static char *role_comment(Oid roleid);
static void check_own_role(const char *role, Oid roleid, const char *schema);
static bool name_in_list(List *names, const char *name);

void
tm_roles_init(void)
{
	DefineCustomBoolVariable("tenant_migrate.create_tenant_roles",
							 gettext_noop("Whether create_tenant_schema() also creates the tenant's role (create_tenant_role())."),
							 NULL,
							 &tm_create_tenant_roles,
							 false,
							 PGC_USERSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomStringVariable("tenant_migrate.tenant_role_group",
							   gettext_noop("Role that create_tenant_role() makes every tenant role a member of; empty for none."),
							   gettext_noop("Grant this role what all tenants may use in public."),
							   &tm_tenant_role_group,
							   "",
							   PGC_USERSET,
							   0,
							   NULL,
							   NULL,
							   NULL);
}

/*---- Names ----*/

char *
tm_tenant_role_name(const char *schema)
{
	size_t		len = strlen(schema);
	char	   *hash;

	if (len + strlen(TM_ROLE_SUFFIX) < NAMEDATALEN)
		return psprintf("%s" TM_ROLE_SUFFIX, schema);
	hash = tm_checksum(schema, len);
	return psprintf("%.*s_%.*s" TM_ROLE_SUFFIX,
					(int) (NAMEDATALEN - 1 - strlen(TM_ROLE_SUFFIX) - 1 - TM_ROLE_HASH_LEN), schema,
					TM_ROLE_HASH_LEN, hash);
}

/* The comment that marks the role as this database's tenant role of schema */
static char *
role_mark(const char *schema)
{
	return psprintf("tenant_migrate: tenant role of schema %s in database %s",
					schema, get_database_name(MyDatabaseId));
}

static char *
role_comment(Oid roleid)
{
	Oid			argtype = OIDOID;
	Datum		arg = ObjectIdGetDatum(roleid);

	tm_catalog_exec("SELECT pg_catalog.shobj_description($1, 'pg_authid')",
					1, &argtype, &arg, NULL, SPI_OK_SELECT);
	return SPI_processed > 0 ? tm_spi_getstr(0, 1) : NULL;
}

static void
check_own_role(const char *role, Oid roleid, const char *schema)
{
	char	   *comment = role_comment(roleid);
	char	   *mark = role_mark(schema);

	if (comment == NULL || strcmp(comment, mark) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("role \"%s\" exists and is not the tenant role of \"%s\"", role, schema),
				 comment ? errdetail("Its comment says: %s", comment) :
				 errdetail("Tenant roles carry the comment \"%s\"; this one has none.", mark),
				 errhint("Rename or drop role \"%s\"; tenant_migrate neither takes over nor drops a role it did not create for this tenant.",
						 role)));
}

static bool
name_in_list(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp((const char *) lfirst(lc), name) == 0)
			return true;
	return false;
}

/*---- Creating ----*/

char *
tm_create_tenant_role(const char *schema, Oid nspoid)
{
	char	   *role = tm_tenant_role_name(schema);
	char	   *qrole = pstrdup(quote_identifier(role));
	char	   *qschema = pstrdup(quote_identifier(schema));
	Oid			roleid = get_role_oid(role, true);
	Oid			owner;
	HeapTuple	tup;
	List	   *authors = NIL;
	ListCell   *lc;
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(TM_SCOPE_TENANT);
	uint64		i;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nspoid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for schema %u", nspoid);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);

	/* refuse before changing anything */
	if (!pg_namespace_ownercheck(nspoid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of schema %s to create its tenant role", qschema),
				 errdetail("The tenant role is granted the schema and its tables, which only their owner can grant."),
				 errhint("Run it as role \"%s\", which owns the schema, or as a superuser.",
						 GetUserNameFromId(owner, false))));
	if (!OidIsValid(roleid) && !has_createrole_privilege(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to create tenant role \"%s\"", role),
				 errdetail("Creating a role needs the CREATEROLE attribute."),
				 errhint("Run it as a role with CREATEROLE, or as a superuser.")));

	/* the roles whose new tables in the schema it must get */
	authors = lappend(authors, GetUserNameFromId(owner, false));
	tm_catalog_exec("SELECT DISTINCT registered_by::pg_catalog.text FROM public.tenant_migration_scripts"
					" WHERE scope = $1 ORDER BY 1",
					1, &argtype, &arg, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		char	   *a = tm_spi_getstr(i, 1);

		if (a != NULL && OidIsValid(get_role_oid(a, true)) && !name_in_list(authors, a))
			authors = lappend(authors, a);
	}
	foreach(lc, authors)
	{
		const char *a = (const char *) lfirst(lc);

		if (!has_privs_of_role(GetUserId(), get_role_oid(a, false)))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to set default privileges for role \"%s\"", a),
					 errdetail("Tables that migrations create in %s are owned by role \"%s\"; the tenant role gets them through default privileges for that role.",
							   qschema, a),
					 errhint("Run it as a member of role \"%s\", or as a superuser.", a)));
	}

	if (OidIsValid(roleid))
		check_own_role(role, roleid, schema);
	else
	{
		tm_exec_as_caller(psprintf("CREATE ROLE %s NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT",
						  qrole));
		tm_exec_as_caller(psprintf("COMMENT ON ROLE %s IS %s", qrole, quote_literal_cstr(role_mark(schema))));
	}
	tm_exec_as_caller(psprintf("ALTER ROLE %s IN DATABASE %s SET search_path TO %s",
					  qrole, quote_identifier(get_database_name(MyDatabaseId)), qschema));
	tm_exec_as_caller(psprintf("GRANT USAGE ON SCHEMA %s TO %s", qschema, qrole));
	tm_exec_as_caller(psprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s", qschema, qrole));
	tm_exec_as_caller(psprintf("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %s TO %s", qschema, qrole));
	foreach(lc, authors)
	{
		const char *a = (const char *) lfirst(lc);

		tm_exec_as_caller(psprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %s",
						  quote_identifier(a), qschema, qrole));
		tm_exec_as_caller(psprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s GRANT USAGE, SELECT ON SEQUENCES TO %s",
						  quote_identifier(a), qschema, qrole));
	}
	if (tm_tenant_role_group != NULL && tm_tenant_role_group[0] != '\0')
	{
		if (!OidIsValid(get_role_oid(tm_tenant_role_group, true)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("role \"%s\" named by tenant_migrate.tenant_role_group does not exist", tm_tenant_role_group),
					 errhint("Create it (CREATE ROLE %s NOLOGIN) or reset the setting.", quote_identifier(tm_tenant_role_group))));
		tm_exec_as_caller(psprintf("GRANT %s TO %s", quote_identifier(tm_tenant_role_group), qrole));
	}
	return role;
}

/*---- Dropping ----*/

/*
 * Drops the tenant role of schema (see tenant_migrate.h).  What it was
 * granted in the schema, if the schema still exists, is revoked first,
 * default privileges included; a dropped schema took those with it.
 */
void
tm_drop_tenant_role(const char *schema, bool missing_ok)
{
	char	   *role = tm_tenant_role_name(schema);
	char	   *qrole = pstrdup(quote_identifier(role));
	Oid			roleid = get_role_oid(role, true);
	Oid			nspoid = get_namespace_oid(schema, true);

	if (!OidIsValid(roleid))
	{
		if (missing_ok)
			return;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("tenant role \"%s\" of \"%s\" does not exist", role, schema),
				 errhint("Create it with create_tenant_role('%s').", schema)));
	}
	check_own_role(role, roleid, schema);

	if (OidIsValid(nspoid))
	{
		char	   *qschema = pstrdup(quote_identifier(schema));
		Oid			argtypes[2] = {OIDOID, OIDOID};
		Datum		values[2] = {ObjectIdGetDatum(nspoid), ObjectIdGetDatum(roleid)};
		List	   *defacl = NIL;
		ListCell   *lc;
		uint64		i;

		tm_catalog_exec("SELECT DISTINCT r.rolname::pg_catalog.text,"
						"       CASE d.defaclobjtype WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'"
						"            WHEN 'T' THEN 'TYPES' ELSE 'TABLES' END"
						"  FROM pg_catalog.pg_default_acl d"
						"  JOIN pg_catalog.pg_authid r ON r.oid OPERATOR(pg_catalog.=) d.defaclrole"
						"  CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) a"
						" WHERE d.defaclnamespace OPERATOR(pg_catalog.=) $1"
						"   AND a.grantee OPERATOR(pg_catalog.=) $2",
						2, argtypes, values, NULL, SPI_OK_SELECT);
		for (i = 0; i < SPI_processed; i++)
			defacl = lappend(defacl, psprintf("ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %s REVOKE ALL ON %s FROM %s",
											  quote_identifier(tm_spi_getstr(i, 1)), qschema,
											  tm_spi_getstr(i, 2), qrole));
		foreach(lc, defacl)
			tm_exec_as_caller((char *) lfirst(lc));
		tm_exec_as_caller(psprintf("REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM %s", qschema, qrole));
		tm_exec_as_caller(psprintf("REVOKE ALL ON ALL SEQUENCES IN SCHEMA %s FROM %s", qschema, qrole));
		tm_exec_as_caller(psprintf("REVOKE ALL ON SCHEMA %s FROM %s", qschema, qrole));
	}
	tm_exec_as_caller(psprintf("DROP ROLE %s", qrole));
}

/*---- SQL-callable ----*/

/* create_tenant_role(tenant_schema text) RETURNS name */
Datum
create_tenant_role(PG_FUNCTION_ARGS)
{
	char	   *schema = tm_schema_arg(fcinfo);
	TmTenant	tenant;
	Name		result = (Name) palloc0(NAMEDATALEN);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	tm_tenant_lookup(schema, &tenant);
	namestrcpy(result, tm_create_tenant_role(tenant.schema, tenant.nspoid));
	SPI_finish();
	PG_RETURN_NAME(result);
}

/*
 * drop_tenant_role(tenant_schema text) RETURNS boolean
 *
 * Works also after the tenant is gone from the registry; false if there
 * is no such role.
 */
Datum
drop_tenant_role(PG_FUNCTION_ARGS)
{
	char	   *schema = tm_schema_arg(fcinfo);
	bool		existed;

	tm_check_schema_name(schema, true);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	existed = OidIsValid(get_role_oid(tm_tenant_role_name(schema), true));
	tm_drop_tenant_role(schema, true);
	SPI_finish();
	PG_RETURN_BOOL(existed);
}

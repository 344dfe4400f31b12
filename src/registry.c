/*-------------------------------------------------------------------------
 *
 * src/registry.c
 *		Tenants: validating names, looking them up in public.tenant_registry,
 *		create_tenant_schema() and tenant_set(); the lifecycle after that:
 *		tenant_archive(), tenant_set_status() and drop_tenant_schema().
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "catalog/namespace.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(create_tenant_schema);
PG_FUNCTION_INFO_V1(tenant_set);
PG_FUNCTION_INFO_V1(tenant_archive);
PG_FUNCTION_INFO_V1(tenant_set_status);
PG_FUNCTION_INFO_V1(drop_tenant_schema);

/*---- Local functions ----*/

static void check_tenant_key(const char *key);

/*---- Names ----*/

void
tm_check_schema_name(const char *schema, bool strict)
{
	if (schema[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_SCHEMA_NAME),
				 errmsg("tenant schema name must not be empty"),
				 errhint("Pass a tenant schema such as \"%sacme\".", tm_schema_prefix)));
	if (strlen(schema) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("tenant schema name \"%s\" is too long", schema),
				 errdetail("Schema names are at most %d bytes.", NAMEDATALEN - 1),
				 errhint("Pass the schema name as it appears in tenant_registry.")));

	/*
	 * Prefix and key are letters, digits and underscores: anything else did
	 * not come from create_tenant_schema(), and would need escaping where
	 * the name is spliced into a script.
	 */
	if (strict && !tm_schema_name_is_valid(schema))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_SCHEMA_NAME),
				 errmsg("invalid tenant schema name \"%s\"", schema),
				 errdetail("A tenant schema name contains only letters, digits and underscores, and does not start with pg_ or name information_schema."),
				 errhint("Pass the schema name as it appears in tenant_registry.")));
}

bool
tm_schema_name_is_valid(const char *schema)
{
	const char *p;

	if (schema[0] == '\0' || strlen(schema) >= NAMEDATALEN)
		return false;
	for (p = schema; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return strncmp(schema, "pg_", 3) != 0 && strcmp(schema, "information_schema") != 0;
}

static void
check_tenant_key(const char *key)
{
	const char *p;

	if (key[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant key must not be empty"),
				 errhint("Use a key such as \"org_acme\".")));
	for (p = key; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid tenant key \"%s\"", key),
					 errdetail("A tenant key may contain only letters, digits and underscores."),
					 errhint("Use a key such as \"org_acme\".")));
	}
	if (strlen(tm_schema_prefix) + strlen(key) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("tenant schema name \"%s%s\" is too long", tm_schema_prefix, key),
				 errdetail("The schema name (prefix \"%s\" and the key) must fit in %d bytes.",
						   tm_schema_prefix, NAMEDATALEN - 1),
				 errhint("Use a tenant key of at most %d bytes.",
						 (int) (NAMEDATALEN - 1 - strlen(tm_schema_prefix)))));
}

/*---- Lookup ----*/

void
tm_tenant_lookup(const char *schema, TmTenant *tenant)
{
	Oid			argtype = TEXTOID;
	Datum		arg;

	tm_check_schema_name(schema, true);
	if (strcmp(schema, TM_SHARED_SCHEMA) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("schema \"public\" is not a tenant"),
				 errdetail("Shared migrations are applied to public once, not per tenant."),
				 errhint("Use tenant_migrate_shared() for shared migrations.")));

	arg = CStringGetTextDatum(schema);
	tm_catalog_exec("SELECT r.schema_name::pg_catalog.text, r.tenant_key, r.status, n.oid"
				"  FROM public.tenant_registry r"
				"  LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema_name"
				" WHERE r.schema_name = $1::pg_catalog.name",
				1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		char	   *guess = psprintf("%s%s", tm_schema_prefix, schema);

		/* A tenant key instead of its schema is the likely mistake */
		arg = CStringGetTextDatum(schema);
		tm_catalog_exec("SELECT schema_name::pg_catalog.text FROM public.tenant_registry WHERE tenant_key = $1",
					1, &argtype, &arg, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			guess = tm_spi_getstr(0, 1);
		else
			guess = NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("tenant \"%s\" does not exist", schema),
				 guess ? errhint("Tenants are named by schema: did you mean \"%s\"?", guess) :
				 errhint("Create it with create_tenant_schema(), or see the tenants in tenant_registry.")));
	}

	tenant->schema = tm_spi_getstr(0, 1);
	tenant->key = tm_spi_getstr(0, 2);
	tenant->status = tm_spi_getstr(0, 3);
	tenant->nspoid = InvalidOid;
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);

		if (!isnull)
			tenant->nspoid = DatumGetObjectId(d);
	}
	if (!OidIsValid(tenant->nspoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema of tenant \"%s\" is missing", schema),
				 errdetail("The tenant is registered in tenant_registry, but the schema does not exist."),
				 errhint("Recreate the schema, or remove the tenant from tenant_registry.")));
}

/*---- SQL-callable ----*/

/*
 * The first part of create_tenant_schema() and create_tenant(): checks
 * the key (NULL: refused), creates the schema as the caller and registers
 * it (display_name may be NULL).  Returns the schema name and its OID.
 * SPI must be connected.
 */
char *
tm_tenant_create(const char *key, text *display_name, Oid *nspoid)
{
	char	   *schema;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	if (key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_key must not be null"),
				 errhint("Use a key such as \"org_acme\".")));
	check_tenant_key(key);
	schema = psprintf("%s%s", tm_schema_prefix, key);
	if (strcmp(schema, TM_SHARED_SCHEMA) == 0 || strncmp(schema, "pg_", 3) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_RESERVED_NAME),
				 errmsg("tenant schema name \"%s\" is reserved", schema),
				 errdetail("The name public and names starting with pg_ are reserved."),
				 errhint("Use another tenant key, or set tenant_migrate.schema_prefix.")));

	values[0] = CStringGetTextDatum(schema);
	values[1] = CStringGetTextDatum(key);
	tm_catalog_exec("SELECT schema_name::pg_catalog.text FROM public.tenant_registry"
				" WHERE schema_name = $1::pg_catalog.name OR tenant_key = $2",
				2, argtypes, values, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("tenant \"%s\" already exists", key),
				 errdetail("It is registered as schema \"%s\".", tm_spi_getstr(0, 1)),
				 errhint("Use another tenant key, or migrate the existing tenant with tenant_migrate().")));
	if (OidIsValid(get_namespace_oid(schema, true)))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_SCHEMA),
				 errmsg("schema \"%s\" already exists", schema),
				 errdetail("The schema exists but is not registered as a tenant."),
				 errhint("Use another tenant key, or drop the schema first.")));

	/* as the caller, who owns the new schema */
	tm_exec_as_caller(psprintf("CREATE SCHEMA %s", quote_identifier(schema)));
	*nspoid = get_namespace_oid(schema, false);

	if (display_name != NULL)
		values[2] = PointerGetDatum(display_name);
	else
		nulls[2] = 'n';
	tm_catalog_exec("INSERT INTO public.tenant_registry (schema_name, tenant_key, display_name)"
				" VALUES ($1::pg_catalog.name, $2, $3)",
				3, argtypes, values, nulls, SPI_OK_INSERT);
	return schema;
}

/*
 * create_tenant_schema(tenant_key text, display_name text DEFAULT NULL)
 *		RETURNS name
 *
 * Creates the schema, registers it and applies every tenant migration, all
 * in the caller's transaction: an error leaves nothing behind.
 */
Datum
create_tenant_schema(PG_FUNCTION_ARGS)
{
	char	   *schema;
	Oid			nspoid;
	Name		result;
	TmKeepSet  *keep;
	TmScriptCache cache;
	const char *create_tenant_hint = "create_tenant_schema() applies every script in the caller's one transaction; create the tenant with CALL create_tenant(tenant_key, display_name), which commits between scripts.";

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	schema = tm_tenant_create(PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
							  PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1),
							  &nspoid);
	/* in the caller's context: SPI_finish frees ours */
	result = (Name) SPI_palloc(NAMEDATALEN);
	memset(result, 0, NAMEDATALEN);
	namestrcpy(result, schema);

	/*
	 * A history that needs commits between its scripts (a CONCURRENTLY
	 * step, an enum value added by one script and used by a later one)
	 * cannot be applied in the caller's one transaction.
	 */
	keep = tm_keepset_build();
	cache.cxt = CurrentMemoryContext;
	cache.entries = NIL;
	tm_refuse_non_transactional(tm_pending_scripts(schema, false, NULL, keep, &cache),
								schema, create_tenant_hint);
	PG_TRY();
	{
		(void) tm_apply_pending(schema, nspoid, false, NULL, keep, &cache);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cache.cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE)
			PG_RE_THROW();
		FlushErrorState();
		edata->hint = pstrdup(create_tenant_hint);
		ReThrowError(edata);
	}
	PG_END_TRY();
	if (tm_create_tenant_roles)
		(void) tm_create_tenant_role(schema, nspoid);

	SPI_finish();
	PG_RETURN_NAME(result);
}

/*
 * tenant_set(tenant_schema text, is_local boolean DEFAULT false)
 *
 * search_path = tenant, public and the setting named by
 * tenant_migrate.tenant_setting (app.current_tenant_id) = its key, for the
 * session or (is_local) the transaction, as set_config() would.
 */
Datum
tenant_set(PG_FUNCTION_ARGS)
{
	char	   *schema;
	bool		is_local = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	TmTenant	tenant;
	char	   *path;
	char	   *key;
	GucAction	action = is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET;
	GucContext	context = superuser() ? PGC_SUSET : PGC_USERSET;

	schema = tm_schema_arg(fcinfo);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	tm_tenant_lookup(schema, &tenant);
	path = psprintf("%s, public", quote_identifier(tenant.schema));
	key = pstrdup(tenant.key ? tenant.key : "");

	(void) set_config_option("search_path", path, context, PGC_S_SESSION,
							 action, true, 0, false);
	(void) set_config_option(tm_tenant_setting, key, context, PGC_S_SESSION,
							 action, true, 0, false);
	SPI_finish();
	PG_RETURN_VOID();
}

/*---- Lifecycle: status and drop ----*/

/*
 * Sets a registered tenant's status (its schema may be missing) and
 * returns the tenant schema.  Fleet runs migrate only active tenants.
 */
static Datum
set_status(FunctionCallInfo fcinfo, const char *status)
{
	char	   *schema = tm_schema_arg(fcinfo);
	Name		result;

	if (strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
		strcmp(status, "archived") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tenant status \"%s\"", status),
				 errdetail("A tenant is active, suspended or archived."),
				 errhint("Pass 'active', 'suspended' or 'archived'.")));
	tm_check_schema_name(schema, true);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	tm_catalog_exec("UPDATE public.tenant_registry SET status = $2"
					" WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name"
					" RETURNING schema_name::pg_catalog.text",
					2, (Oid[]) {TEXTOID, TEXTOID},
					(Datum[]) {CStringGetTextDatum(schema), CStringGetTextDatum(status)},
					NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
	{
		TmTenant	tenant;

		tm_tenant_lookup(schema, &tenant);	/* the usual error and hint */
		elog(ERROR, "tenant \"%s\" was not updated", schema);
	}
	result = (Name) palloc0(NAMEDATALEN);
	namestrcpy(result, schema);
	SPI_finish();
	PG_RETURN_NAME(result);
}

/* tenant_archive(tenant_schema text) RETURNS name */
Datum
tenant_archive(PG_FUNCTION_ARGS)
{
	return set_status(fcinfo, "archived");
}

/* tenant_set_status(tenant_schema text, status text) RETURNS name */
Datum
tenant_set_status(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("status must not be null"),
				 errhint("Pass 'active', 'suspended' or 'archived'.")));
	return set_status(fcinfo, text_to_cstring(PG_GETARG_TEXT_PP(1)));
}

/*
 * drop_tenant_schema(tenant_schema text) RETURNS name
 *
 * Drops a registered tenant in the caller's transaction: its schema (with
 * everything in it; as the caller, who must be allowed to drop it), its
 * registry row and its history rows, and appends a "drop" row to the log,
 * which keeps the tenant's past.  Refused for public, for anything that
 * is not a registered tenant, and for a tenant another session is
 * migrating (its lock is tried without waiting; once taken it is held to
 * the end of the transaction, so no migration starts on it meanwhile).
 * A registered tenant whose schema is already gone is cleaned up.
 */
Datum
drop_tenant_schema(PG_FUNCTION_ARGS)
{
	char	   *schema = tm_schema_arg(fcinfo);
	char	   *invoker = tm_catalog_invoker();
	Name		result;
	Oid			nspoid;
	Datum		arg;
	Oid			argtype = TEXTOID;

	tm_check_schema_name(schema, false);
	if (strcmp(schema, TM_SHARED_SCHEMA) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot drop schema \"public\""),
				 errdetail("public holds the shared tables and is not a tenant."),
				 errhint("Pass the schema of a registered tenant.")));
	tm_check_schema_name(schema, true);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* the registry row, locked: a concurrent drop or status change waits */
	arg = CStringGetTextDatum(schema);
	tm_catalog_exec("SELECT r.schema_name::pg_catalog.text FROM public.tenant_registry r"
					" WHERE r.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name FOR UPDATE",
					1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		bool		exists = OidIsValid(get_namespace_oid(schema, true));

		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("tenant \"%s\" does not exist", schema),
				 exists ? errdetail("Schema \"%s\" exists but is not a registered tenant; drop_tenant_schema() drops only tenants.", schema) : 0,
				 exists ? errhint("Drop it with DROP SCHEMA, or adopt it with tenant_baseline().") :
				 errhint("See the tenants in tenant_registry.")));
	}

	nspoid = get_namespace_oid(schema, true);
	if (OidIsValid(nspoid))
	{
		if (!tm_lock_schema(schema, nspoid, true))
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("cannot drop tenant \"%s\": another session is migrating it", schema),
					 errdetail("Nothing was dropped."),
					 errhint("Try again when that migration has finished.")));
		/* as the caller, who must own the schema (or be a superuser) */
		if (SPI_execute(psprintf("DROP SCHEMA %s CASCADE", quote_identifier(schema)), false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "DROP SCHEMA failed");
	}

	/* its tenant role goes with it, in this transaction (roles.c) */
	tm_drop_tenant_role(schema, true);

	tm_catalog_exec("DELETE FROM public.tenant_migrations WHERE tenant_schema OPERATOR(pg_catalog.=) $1::pg_catalog.name",
					1, &argtype, &arg, NULL, SPI_OK_DELETE);
	tm_catalog_exec("DELETE FROM public.tenant_registry WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name",
					1, &argtype, &arg, NULL, SPI_OK_DELETE);
	tm_log_attempt(schema, NULL, "drop", "ok", NULL, 0, 0, invoker);

	result = (Name) palloc0(NAMEDATALEN);
	namestrcpy(result, schema);
	SPI_finish();
	PG_RETURN_NAME(result);
}

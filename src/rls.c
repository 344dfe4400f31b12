/*-------------------------------------------------------------------------
 *
 * src/rls.c
 *		Row level security for shared row-per-tenant tables:
 *		tenant_enable_rls(), tenant_disable_rls(), tenant_add_tenant_column(),
 *		the settings tenant_migrate.tenant_setting and
 *		tenant_migrate.current_tenant, and the tenant context the runner sets
 *		while a tenant's scripts run.
 *
 * These functions run as the caller (C functions without SECURITY
 * DEFINER): only the owner of a table (or a superuser) can change its row
 * level security, and that is checked first, with a clear error, before
 * any lock is taken.  The statements they run are built from catalog
 * names (quote_identifier, schema-qualified), a validated setting name
 * and quoted literals, never from pasted input, and run with search_path
 * pinned to pg_catalog, pg_temp so nothing on the caller's path is
 * picked up.
 *
 * What tenant_enable_rls() made is recorded in the comment of the policy
 * it creates ("tenant_enable_rls: column ..., setting ...; it turned on:
 * ..."): a second call compares against it (idempotence), and
 * tenant_disable_rls() reads it to undo exactly that much.  A policy named
 * tenant_isolation without that comment is somebody else's and is left
 * alone (with an error).
 *
 * Locks: a call that finds everything in place takes no lock; otherwise
 * the table is locked ACCESS EXCLUSIVE (as ALTER TABLE ... ROW LEVEL
 * SECURITY and CREATE POLICY do anyway) and its state read again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/htup_details.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_type_d.h"
#include "commands/comment.h"
#include "commands/policy.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(tenant_enable_rls);
PG_FUNCTION_INFO_V1(tenant_disable_rls);
PG_FUNCTION_INFO_V1(tenant_add_tenant_column);

#define TM_POLICY_NAME		"tenant_isolation"
#define TM_POLICY_MARK		"tenant_enable_rls: "
#define TM_POLICY_TURNED_ON	"; it turned on: "

/*---- Settings ----*/

char	   *tm_tenant_setting = NULL;
char	   *tm_current_tenant = NULL;

/* A table as these functions see it */
typedef struct RlsTarget
{
	Oid			relid;
	char	   *qualname;		/* quoted, schema-qualified */
	char		relkind;
	Oid			owner;
	bool		rowsecurity;
	bool		forcerowsecurity;
} RlsTarget;

/*---- Local functions ----*/

static bool check_tenant_setting(char **newval, void **extra, GucSource source);
static const char *setting_name_problem(const char *name);
static void read_target(RlsTarget *t, Oid relid, const char *fn);
static AttrNumber target_column(const RlsTarget *t, const char *column,
								Oid *atttype, bool missing_ok);
static char *tenant_expr(const char *column, Oid atttype, const char *setting);
static Oid	policy_oid(Oid relid);
static char *policy_turned_on(const char *comment);
static bool other_policies(Oid relid, bool permissive_only);
static bool column_has_leading_index(Oid relid, AttrNumber attnum);
static bool column_is_complete(Oid relid, AttrNumber attnum);

void
tm_rls_init(void)
{
	DefineCustomStringVariable("tenant_migrate.tenant_setting",
							   gettext_noop("Setting that holds the tenant key while a tenant's scripts run, and that tenant_set() sets."),
							   gettext_noop("A custom setting name such as app.current_tenant_id."),
							   &tm_tenant_setting,
							   "app.current_tenant_id",
							   PGC_USERSET,
							   0,
							   check_tenant_setting,
							   NULL,
							   NULL);

	/*
	 * Read only for everybody: only the runner sets it, at the nesting level
	 * of a tenant script, so a trigger can trust it.
	 */
	DefineCustomStringVariable("tenant_migrate.current_tenant",
							   gettext_noop("Schema of the tenant whose migration script is running now; empty otherwise."),
							   gettext_noop("Set by tenant_migrate while a tenant script runs; cannot be changed."),
							   &tm_current_tenant,
							   "",
							   PGC_INTERNAL,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							   NULL,
							   NULL,
							   NULL);
}

/*
 * NULL if name can name a custom setting (placeholder) that tenant_set()
 * and the policies may use: identifiers joined by dots, at least one dot,
 * not in the reserved tenant_migrate prefix; else what is wrong with it.
 */
static const char *
setting_name_problem(const char *name)
{
	const char *p;
	bool		dot = false;
	bool		start = true;

	if (name[0] == '\0')
		return "The setting name is empty.";
	if (strlen(name) >= NAMEDATALEN)
		return "The setting name is longer than 63 bytes.";
	for (p = name; *p; p++)
	{
		if (*p == '.')
		{
			if (start)
				return "Each part of the setting name must start with a letter or underscore.";
			dot = true;
			start = true;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			  (!start && *p >= '0' && *p <= '9')))
			return "A setting name contains only letters, digits, underscores and dots, and each part starts with a letter or underscore.";
		start = false;
	}
	if (start || !dot)
		return "A custom setting name has two or more parts joined by dots, such as app.current_tenant_id.";
	if (pg_strncasecmp(name, "tenant_migrate.", 15) == 0)
		return "Names starting with tenant_migrate. are the extension's own settings.";
	return NULL;
}

static bool
check_tenant_setting(char **newval, void **extra, GucSource source)
{
	const char *problem = setting_name_problem(*newval);

	if (problem != NULL)
	{
		GUC_check_errdetail("%s", problem);
		return false;
	}
	return true;
}

/*
 * Sets the tenant context at the current GUC nesting level (the runner's,
 * for one script): tenant_migrate.tenant_setting's setting = key and
 * tenant_migrate.current_tenant = schema; both empty for shared scripts.
 * The end of the nesting level puts both back.
 */
void
tm_rls_set_context(const char *schema, const char *key, GucContext context)
{
	(void) set_config_option(tm_tenant_setting, key ? key : "", context,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("tenant_migrate.current_tenant", schema ? schema : "",
							 PGC_INTERNAL, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*---- Checks ----*/

/*
 * Reads the table and refuses what these functions cannot work on: a
 * missing relation, anything but an ordinary or partitioned table, a
 * partition, a system catalog, a table the caller does not own.
 */
static void
read_target(RlsTarget *t, Oid relid, const char *fn)
{
	HeapTuple	tup;
	Form_pg_class cls;
	char	   *relname;
	char	   *nspname;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("Pass an existing table, such as '%s'.", "public.orders")));
	cls = (Form_pg_class) GETSTRUCT(tup);
	relname = pstrdup(NameStr(cls->relname));
	nspname = get_namespace_name(cls->relnamespace);
	t->relid = relid;
	t->qualname = quote_qualified_identifier(nspname, relname);
	t->relkind = cls->relkind;
	t->owner = cls->relowner;
	t->rowsecurity = cls->relrowsecurity;
	t->forcerowsecurity = cls->relforcerowsecurity;

	if (cls->relkind == RELKIND_VIEW || cls->relkind == RELKIND_MATVIEW)
	{
		ReleaseSysCache(tup);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s: \"%s\" is a %s, not a table", fn, t->qualname,
						t->relkind == RELKIND_VIEW ? "view" : "materialized view"),
				 errdetail("Row level security applies to tables; a view reads its tables with its owner's rights unless it is created WITH (security_invoker = true)."),
				 errhint("Call %s on the tables the view reads.", fn)));
	}
	if (cls->relkind != RELKIND_RELATION && cls->relkind != RELKIND_PARTITIONED_TABLE)
	{
		ReleaseSysCache(tup);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s: \"%s\" is not a table", fn, t->qualname),
				 errdetail("Only ordinary and partitioned tables are supported."),
				 errhint("Pass a table.")));
	}
	if (cls->relispartition)
	{
		Oid			parent;

		ReleaseSysCache(tup);
		parent = get_partition_parent(relid, true);
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("%s: \"%s\" is a partition of \"%s\"", fn, t->qualname,
						get_rel_name(parent)),
				 errdetail("Queries through a partitioned table are filtered by the parent's policies alone; a partition queried directly uses its own."),
				 errhint("Call %s on the partitioned table, and let applications reach the data only through it.", fn)));
	}
	ReleaseSysCache(tup);

	if (IsCatalogRelationOid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s: \"%s\" is a system catalog", fn, t->qualname),
				 errhint("Pass a table of the application.")));
	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s: must be owner of table %s", fn, t->qualname),
				 errdetail("%s runs as the calling role, and only the owner of a table (or a superuser) can change it.", fn),
				 errhint("Run it as role \"%s\", which owns the table, or as a member of it.",
						 GetUserNameFromId(t->owner, false))));
}

/* The column's number and type; InvalidAttrNumber if missing_ok and absent */
static AttrNumber
target_column(const RlsTarget *t, const char *column, Oid *atttype,
			  bool missing_ok)
{
	HeapTuple	tup;
	Form_pg_attribute att;
	AttrNumber	attnum;

	tup = SearchSysCacheAttName(t->relid, column);
	if (!HeapTupleIsValid(tup))
	{
		if (missing_ok)
			return InvalidAttrNumber;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table %s does not exist", column, t->qualname),
				 errhint("Add it with tenant_add_tenant_column('%s', '<default tenant key>'), or pass the name of the column that holds the tenant key.",
						 t->qualname)));
	}
	att = (Form_pg_attribute) GETSTRUCT(tup);
	attnum = att->attnum;
	*atttype = att->atttypid;
	ReleaseSysCache(tup);
	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is a system column of table %s", column, t->qualname),
				 errhint("Pass the name of the column that holds the tenant key.")));
	return attnum;
}

/*
 * column = NULLIF(current_setting(setting, true), '')::type, every name
 * qualified.  NULLIF: a setting that was set and then reset reads as ''
 * (not NULL), which must mean "no tenant", and which a uuid or integer
 * cast would reject with an error.
 */
static char *
tenant_expr(const char *column, Oid atttype, const char *setting)
{
	TypeCacheEntry *tce = lookup_type_cache(getBaseType(atttype), TYPECACHE_EQ_OPR);
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *opname;

	if (!OidIsValid(tce->eq_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("column \"%s\" has type %s, which has no equality operator", column,
						format_type_be(atttype)),
				 errhint("Use a column of type text, uuid, integer or bigint for the tenant key.")));
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tce->eq_opr));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", tce->eq_opr);
	op = (Form_pg_operator) GETSTRUCT(tup);
	opname = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);

	return psprintf("%s %s NULLIF(pg_catalog.current_setting(%s, true), '')::%s",
					quote_identifier(column), opname, quote_literal_cstr(setting),
					format_type_be_qualified(atttype));
}

static Oid
policy_oid(Oid relid)
{
	return get_relation_policy_oid(relid, TM_POLICY_NAME, true);
}

/* What the comment says enable turned on, or NULL if it is not ours */
static char *
policy_turned_on(const char *comment)
{
	const char *p;
	const char *last = NULL;

	if (comment == NULL || strncmp(comment, TM_POLICY_MARK, strlen(TM_POLICY_MARK)) != 0)
		return NULL;
	for (p = comment; (p = strstr(p, TM_POLICY_TURNED_ON)) != NULL; p++)
		last = p;
	return last ? pstrdup(last + strlen(TM_POLICY_TURNED_ON)) : NULL;
}

/* true if the table has a policy other than ours (permissive ones only) */
static bool
other_policies(Oid relid, bool permissive_only)
{
	Oid			argtypes[2] = {OIDOID, BOOLOID};
	Datum		values[2] = {ObjectIdGetDatum(relid), BoolGetDatum(permissive_only)};

	tm_catalog_exec("SELECT 1 FROM pg_catalog.pg_policy"
					" WHERE polrelid OPERATOR(pg_catalog.=) $1"
					"   AND polname OPERATOR(pg_catalog.<>) 'tenant_isolation'"
					"   AND (polpermissive OR NOT $2)",
					2, argtypes, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

static bool
column_has_leading_index(Oid relid, AttrNumber attnum)
{
	Oid			argtypes[2] = {OIDOID, INT2OID};
	Datum		values[2] = {ObjectIdGetDatum(relid), Int16GetDatum(attnum)};

	tm_catalog_exec("SELECT 1 FROM pg_catalog.pg_index"
					" WHERE indrelid OPERATOR(pg_catalog.=) $1"
					"   AND indkey[0] OPERATOR(pg_catalog.=) $2 AND indisvalid",
					2, argtypes, values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/* NOT NULL, a default, and an index leading with it */
static bool
column_is_complete(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCacheAttNum(relid, attnum);
	bool		complete;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for column %d of relation %u", attnum, relid);
	complete = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull &&
		((Form_pg_attribute) GETSTRUCT(tup))->atthasdef;
	ReleaseSysCache(tup);
	return complete && column_has_leading_index(relid, attnum);
}

static char *
name_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what),
				 errhint("Pass the name of the column that holds the tenant key, such as tenant_id.")));
	return pstrdup(NameStr(*PG_GETARG_NAME(argno)));
}

static Oid
rel_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("rel must not be null"),
				 errhint("Pass a table, such as 'public.orders'.")));
	return PG_GETARG_OID(0);
}

/*---- SQL-callable ----*/

/*
 * tenant_enable_rls(rel regclass, tenant_column name DEFAULT 'tenant_id',
 *					 setting text DEFAULT 'app.current_tenant_id')
 *		RETURNS boolean
 *
 * ENABLE and FORCE row level security and a policy tenant_isolation
 * USING and WITH CHECK (column = the setting, cast to the column's type).
 * Returns false (with a NOTICE) if all of that was already in place.
 * setting NULL: tenant_migrate.tenant_setting.
 */
Datum
tenant_enable_rls(PG_FUNCTION_ARGS)
{
	Oid			relid = rel_arg(fcinfo);
	char	   *column = name_arg(fcinfo, 1, "tenant_column");
	char	   *setting;
	const char *problem;
	RlsTarget	t;
	Oid			atttype;
	Oid			polid;
	char	   *mark;
	char	   *comment = NULL;
	char	   *turned_on = NULL;
	char	   *expr;
	bool		replace = false;

	setting = PG_ARGISNULL(2) ? pstrdup(tm_tenant_setting) : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if ((problem = setting_name_problem(setting)) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid setting name \"%s\"", setting),
				 errdetail("%s", problem),
				 errhint("Pass the setting the application sets to the tenant key, such as app.current_tenant_id.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	read_target(&t, relid, "tenant_enable_rls");
	(void) target_column(&t, column, &atttype, false);
	mark = psprintf(TM_POLICY_MARK "column %s, setting %s", quote_identifier(column), setting);

	/* everything in place: say so, take no lock */
	polid = policy_oid(relid);
	if (OidIsValid(polid) && t.rowsecurity && t.forcerowsecurity)
	{
		comment = GetComment(polid, PolicyRelationId, 0);
		if (comment && policy_turned_on(comment) &&
			strncmp(comment, mark, strlen(mark)) == 0 &&
			strncmp(comment + strlen(mark), TM_POLICY_TURNED_ON, strlen(TM_POLICY_TURNED_ON)) == 0)
		{
			ereport(NOTICE,
					(errmsg("row level security by tenant is already enabled on %s, nothing changed", t.qualname)));
			SPI_finish();
			PG_RETURN_BOOL(false);
		}
	}

	LockRelationOid(relid, AccessExclusiveLock);
	read_target(&t, relid, "tenant_enable_rls");
	(void) target_column(&t, column, &atttype, false);
	polid = policy_oid(relid);
	if (OidIsValid(polid))
	{
		comment = GetComment(polid, PolicyRelationId, 0);
		turned_on = policy_turned_on(comment);
		if (turned_on == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("policy \"%s\" on table %s was not created by tenant_enable_rls", TM_POLICY_NAME, t.qualname),
					 errdetail("tenant_enable_rls leaves policies it did not create alone."),
					 errhint("Rename or drop that policy, then call tenant_enable_rls again.")));
		replace = !(strncmp(comment, mark, strlen(mark)) == 0 &&
					strncmp(comment + strlen(mark), TM_POLICY_TURNED_ON, strlen(TM_POLICY_TURNED_ON)) == 0);
		if (replace)
		{
			ereport(NOTICE,
					(errmsg("replacing policy \"%s\" on %s", TM_POLICY_NAME, t.qualname),
					 errdetail("It was made with other arguments (%s).", comment + strlen(TM_POLICY_MARK))));
			tm_exec_as_caller(psprintf("DROP POLICY %s ON %s", TM_POLICY_NAME, t.qualname));
		}
	}
	else
	{
		/* record what this call turns on, for tenant_disable_rls */
		turned_on = psprintf("%s", !t.rowsecurity && !t.forcerowsecurity ? "row level security, force" :
							 !t.rowsecurity ? "row level security" :
							 !t.forcerowsecurity ? "force" : "nothing");
	}

	if (!t.rowsecurity || !t.forcerowsecurity)
		tm_exec_as_caller(psprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY",
						 t.qualname));
	if (!OidIsValid(polid) || replace)
	{
		expr = tenant_expr(column, atttype, setting);
		tm_exec_as_caller(psprintf("CREATE POLICY %s ON %s AS PERMISSIVE FOR ALL TO PUBLIC USING (%s) WITH CHECK (%s)",
						 TM_POLICY_NAME, t.qualname, expr, expr));
		tm_exec_as_caller(psprintf("COMMENT ON POLICY %s ON %s IS %s", TM_POLICY_NAME, t.qualname,
						 quote_literal_cstr(psprintf("%s%s%s", mark, TM_POLICY_TURNED_ON, turned_on))));
	}

	/* Permissive policies are ORed: another one can show other tenants' rows */
	if (other_policies(relid, true))
		ereport(WARNING,
				(errmsg("table %s has other permissive policies", t.qualname),
				 errdetail("Permissive policies are combined with OR: a row another one allows is visible whatever its tenant."),
				 errhint("Make the other policies AS RESTRICTIVE, or include the tenant condition in them.")));
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/*
 * tenant_disable_rls(rel regclass) RETURNS boolean
 *
 * Drops the tenant_isolation policy tenant_enable_rls made and turns off
 * what it turned on (row level security stays enabled while other policies
 * remain).  false (with a NOTICE) if there is nothing to undo.
 */
Datum
tenant_disable_rls(PG_FUNCTION_ARGS)
{
	Oid			relid = rel_arg(fcinfo);
	RlsTarget	t;
	Oid			polid;
	char	   *comment;
	char	   *turned_on;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	read_target(&t, relid, "tenant_disable_rls");
	if (!OidIsValid(policy_oid(relid)))
	{
		ereport(NOTICE,
				(errmsg("table %s has no policy \"%s\", nothing changed", t.qualname, TM_POLICY_NAME)));
		SPI_finish();
		PG_RETURN_BOOL(false);
	}

	LockRelationOid(relid, AccessExclusiveLock);
	read_target(&t, relid, "tenant_disable_rls");
	polid = policy_oid(relid);
	if (!OidIsValid(polid))
	{
		ereport(NOTICE,
				(errmsg("table %s has no policy \"%s\", nothing changed", t.qualname, TM_POLICY_NAME)));
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	comment = GetComment(polid, PolicyRelationId, 0);
	turned_on = policy_turned_on(comment);
	if (turned_on == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("policy \"%s\" on table %s was not created by tenant_enable_rls", TM_POLICY_NAME, t.qualname),
				 errdetail("tenant_disable_rls removes only what tenant_enable_rls made."),
				 errhint("Drop that policy with DROP POLICY if it is no longer wanted.")));

	tm_exec_as_caller(psprintf("DROP POLICY %s ON %s", TM_POLICY_NAME, t.qualname));
	if (strstr(turned_on, "force") != NULL && t.forcerowsecurity)
		tm_exec_as_caller(psprintf("ALTER TABLE %s NO FORCE ROW LEVEL SECURITY", t.qualname));
	if (strstr(turned_on, "row level security") != NULL && t.rowsecurity)
	{
		if (other_policies(relid, false))
			ereport(NOTICE,
					(errmsg("row level security stays enabled on %s", t.qualname),
					 errdetail("The table has other policies, which disabling it would switch off.")));
		else
			tm_exec_as_caller(psprintf("ALTER TABLE %s DISABLE ROW LEVEL SECURITY", t.qualname));
	}
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/*
 * tenant_add_tenant_column(rel regclass, default_tenant text,
 *							tenant_column name DEFAULT 'tenant_id')
 *		RETURNS boolean
 *
 * Adds the column as text (the type of tenant_registry.tenant_key), NOT
 * NULL, every existing row holding default_tenant, then makes its default
 * the session's tenant setting (tenant_migrate.tenant_setting) and creates
 * an index on it unless one leads with it.  An existing column is
 * completed: NULLs set to default_tenant, NOT NULL, the default, the index.
 *
 * A new column costs no rewrite and no backfill pass: ADD COLUMN with a
 * constant default stores the default once in the catalog (PostgreSQL 11
 * and later), and every existing row reads it; the index build is what
 * holds the ACCESS EXCLUSIVE lock for a time that grows with the table
 * (bench/README.md).  false (with a NOTICE) if nothing was missing.
 */
Datum
tenant_add_tenant_column(PG_FUNCTION_ARGS)
{
	Oid			relid = rel_arg(fcinfo);
	char	   *column = name_arg(fcinfo, 2, "tenant_column");
	char	   *default_tenant;
	RlsTarget	t;
	AttrNumber	attnum;
	Oid			atttype;
	const char *qcol = quote_identifier(column);
	char	   *default_expr;
	bool		notnull = false;
	bool		hasdef = false;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("default_tenant must not be null"),
				 errhint("Pass the key of the tenant that owns the rows already in the table, such as 'acme'.")));
	default_tenant = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (default_tenant[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("default_tenant must not be empty"),
				 errhint("Pass the key of the tenant that owns the rows already in the table, such as 'acme'.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	read_target(&t, relid, "tenant_add_tenant_column");

	/* everything in place: say so, take no lock */
	attnum = target_column(&t, column, &atttype, true);
	if (attnum != InvalidAttrNumber && column_is_complete(relid, attnum))
	{
		ereport(NOTICE,
				(errmsg("column %s of %s is already NOT NULL with a default and an index, nothing changed",
						qcol, t.qualname)));
		SPI_finish();
		PG_RETURN_BOOL(false);
	}

	LockRelationOid(relid, AccessExclusiveLock);
	read_target(&t, relid, "tenant_add_tenant_column");

	default_expr = psprintf("NULLIF(pg_catalog.current_setting(%s, true), '')",
							quote_literal_cstr(tm_tenant_setting));
	attnum = target_column(&t, column, &atttype, true);
	if (attnum == InvalidAttrNumber)
	{
		tm_exec_as_caller(psprintf("ALTER TABLE %s ADD COLUMN %s pg_catalog.text NOT NULL DEFAULT %s",
						 t.qualname, qcol, quote_literal_cstr(default_tenant)));
		tm_exec_as_caller(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s",
						 t.qualname, qcol, default_expr));
		attnum = target_column(&t, column, &atttype, false);
		if (!column_has_leading_index(relid, attnum))
			tm_exec_as_caller(psprintf("CREATE INDEX ON %s (%s)", t.qualname, qcol));
		SPI_finish();
		PG_RETURN_BOOL(true);
	}
	else
	{
		HeapTuple	tup = SearchSysCacheAttNum(relid, attnum);
		bool		changed = false;
		char	   *type = format_type_be_qualified(atttype);

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for column %d of relation %u", attnum, relid);
		notnull = ((Form_pg_attribute) GETSTRUCT(tup))->attnotnull;
		hasdef = ((Form_pg_attribute) GETSTRUCT(tup))->atthasdef;
		ReleaseSysCache(tup);

		if (!notnull)
		{
			/* the backfill: existing rows without a tenant get the default one */
			tm_exec_as_caller(psprintf("UPDATE %s SET %s = %s::%s WHERE %s IS NULL",
							 t.qualname, qcol, quote_literal_cstr(default_tenant), type, qcol));
			tm_exec_as_caller(psprintf("ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", t.qualname, qcol));
			changed = true;
		}
		if (!hasdef)
		{
			tm_exec_as_caller(psprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s::%s",
							 t.qualname, qcol, default_expr, type));
			changed = true;
		}
		if (!column_has_leading_index(relid, attnum))
		{
			tm_exec_as_caller(psprintf("CREATE INDEX ON %s (%s)", t.qualname, qcol));
			changed = true;
		}
		if (!changed)
			ereport(NOTICE,
					(errmsg("column %s of %s is already NOT NULL with a default and an index, nothing changed",
							qcol, t.qualname)));
		SPI_finish();
		PG_RETURN_BOOL(changed);
	}
}

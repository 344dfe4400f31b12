/*-------------------------------------------------------------------------
 *
 * src/catalog.c
 *		The one door to the extension's own tables (tenant_registry,
 *		tenant_migration_scripts, tenant_migrations, tenant_migration_log)
 *		and to the system catalogs read with SQL.
 *
 * Security rule, checked here and only here
 * -----------------------------------------
 * Every internal query goes through tm_catalog_exec(), which runs it
 *	- with search_path = pg_catalog, pg_temp, set at a new GUC nesting level
 *	  and put back afterwards, so no operator, function, type or table that
 *	  a user put in public or in any schema of the caller's search_path can
 *	  be picked up by a query of ours (CVE-2018-1058); the query texts also
 *	  qualify what they use;
 *	- as the owner of the extension's tables, inside a security-restricted
 *	  operation (as core runs index expressions and REFRESH MATERIALIZED
 *	  VIEW): callers need EXECUTE on the extension's functions, never a
 *	  write privilege on its tables, so the history, the recorded rollback
 *	  SQL and the audit log can be changed only through those functions.
 * Who did something (registered_by, applied_by, performed_by) is therefore
 * never CURRENT_USER inside a query: it is read before the switch
 * (tm_catalog_invoker) and passed as a parameter.
 *
 * Migration scripts themselves never run here: runner.c runs them as the
 * role that registered them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "jit/jit.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

static void tm_note_extension_version(void);

/* The path every internal query runs with: nothing a user can create in */
#define TM_CATALOG_SEARCH_PATH	"pg_catalog, pg_temp"

/*
 * The role that owns the extension's tables: whoever created the
 * extension (a superuser).  Looked up by the registry table, which only
 * that role (or a superuser) can drop or replace.
 */
Oid
tm_catalog_owner(void)
{
	Oid			relid = get_relname_relid("tenant_migration_scripts", PG_PUBLIC_NAMESPACE);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tenant_migrate\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION tenant_migrate as a superuser.")));
	tm_note_extension_version();
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*---- The installed SQL version ----*/

/*
 * A library update (a new package, make install) reaches every new backend
 * at once, while the SQL objects stay as they were until someone runs
 * ALTER EXTENSION tenant_migrate UPDATE.  In between, every function of
 * the older version keeps working as long as the older tables have what
 * it needs: an internal query that refers to a table, column or function
 * the older version does not have fails with "extension must be updated"
 * instead of "relation does not exist" (tm_catalog_exec), before anything
 * is written, since such queries fail in parse analysis.  So tenant_set(),
 * which applications call on every request, keeps working through a
 * package update.  Entry points whose declaration changed, or that must
 * not start a run they cannot finish, call tm_check_extension_version()
 * first.
 *
 * A library older than the installed SQL objects is refused outright.
 * Extension scripts (CREATE EXTENSION, ALTER EXTENSION UPDATE) never run
 * an internal query; while one runs, nothing is checked.
 */

/* The transaction in which the version was last read, and what it was */
static LocalTransactionId tm_version_lxid = InvalidLocalTransactionId;
static bool tm_version_outdated = false;
static char tm_version_installed[NAMEDATALEN];

/* pg_extension.extversion of tenant_migrate, or NULL if not installed */
static char *
installed_version(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *result = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("tenant_migrate"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			result = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/* Versions are "major.minor": compare them as numbers */
static int
version_cmp(const char *a, const char *b)
{
	int			amaj = 0,
				amin = 0,
				bmaj = 0,
				bmin = 0;

	(void) sscanf(a, "%d.%d", &amaj, &amin);
	(void) sscanf(b, "%d.%d", &bmaj, &bmin);
	if (amaj != bmaj)
		return amaj < bmaj ? -1 : 1;
	if (amin != bmin)
		return amin < bmin ? -1 : 1;
	return 0;
}

/*
 * Reads the installed version once per transaction into
 * tm_version_outdated; ERROR if it is newer than this library.
 */
static void
tm_note_extension_version(void)
{
	char	   *version;

	if (creating_extension)
	{
		tm_version_outdated = false;
		return;
	}
	if (tm_version_lxid == MyProc->lxid && tm_version_lxid != InvalidLocalTransactionId)
		return;

	version = installed_version();
	if (version == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tenant_migrate\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION tenant_migrate as a superuser.")));
	if (version_cmp(version, TM_EXTENSION_VERSION) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"tenant_migrate\" version %s does not match its library",
						version),
				 errdetail("The installed library is version %s, older than the database's SQL objects.",
						   TM_EXTENSION_VERSION),
				 errhint("Install the tenant_migrate release of version %s on this server.",
						 version)));
	tm_version_outdated = strcmp(version, TM_EXTENSION_VERSION) != 0;
	strlcpy(tm_version_installed, version, sizeof(tm_version_installed));
	tm_version_lxid = MyProc->lxid;
}

/* The error itself: detail says which versions, and why if known */
static void
tm_version_error(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("extension \"tenant_migrate\" must be updated"),
			 why ? errdetail("The database has version %s of the extension's SQL objects, the installed library is version %s, and this function needs what the update adds (%s).",
							 tm_version_installed, TM_EXTENSION_VERSION, why)
			 : errdetail("The database has version %s of the extension's SQL objects; the installed library is version %s.",
						 tm_version_installed, TM_EXTENSION_VERSION),
			 errhint("Run ALTER EXTENSION tenant_migrate UPDATE.")));
}

void
tm_check_extension_version(void)
{
	tm_note_extension_version();
	if (tm_version_outdated)
		tm_version_error(NULL);
}

/* The role on whose behalf the extension acts now, by name */
char *
tm_catalog_invoker(void)
{
	return GetUserNameFromId(GetUserId(), false);
}

/*
 * Saved plans of tm_catalog_exec_cached(), keyed by the address of the
 * query text (a string constant); the text is kept to check the key.
 */
typedef struct TmCachedPlan
{
	const char *sql;			/* hash key */
	char	   *text;
	int			nargs;
	SPIPlanPtr	plan;
} TmCachedPlan;

static HTAB *plan_cache = NULL;

/* The saved plan of sql, prepared (as the owner, path pinned) if need be */
static SPIPlanPtr
cached_plan(const char *sql, int nargs, Oid *argtypes)
{
	TmCachedPlan *entry;
	bool		found;
	SPIPlanPtr	plan;

	if (plan_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(const char *);
		ctl.entrysize = sizeof(TmCachedPlan);
		plan_cache = hash_create("tenant_migrate saved plans", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS);
	}
	entry = (TmCachedPlan *) hash_search(plan_cache, &sql, HASH_ENTER, &found);
	if (found && entry->plan != NULL && entry->nargs == nargs &&
		strcmp(entry->text, sql) == 0)
		return entry->plan;
	if (found && entry->plan != NULL)
	{
		SPI_freeplan(entry->plan);
		pfree(entry->text);
	}
	entry->plan = NULL;
	entry->text = NULL;
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed (%s) for query: %s",
			 SPI_result_code_string(SPI_result), sql);
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	entry->text = MemoryContextStrdup(TopMemoryContext, sql);
	entry->nargs = nargs;
	entry->plan = plan;
	return plan;
}

static void catalog_exec(const char *sql, int nargs, Oid *argtypes,
						 Datum *values, const char *nulls, int expect_rc,
						 bool cache);

void
tm_catalog_exec(const char *sql, int nargs, Oid *argtypes, Datum *values,
				const char *nulls, int expect_rc)
{
	catalog_exec(sql, nargs, argtypes, values, nulls, expect_rc, false);
}

void
tm_catalog_exec_cached(const char *sql, int nargs, Oid *argtypes, Datum *values,
					   const char *nulls, int expect_rc)
{
	catalog_exec(sql, nargs, argtypes, values, nulls, expect_rc, true);
}

static void
catalog_exec(const char *sql, int nargs, Oid *argtypes, Datum *values,
			 const char *nulls, int expect_rc, bool cache)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;
	int			rc;

	/*
	 * Results are read right after each query; freeing the previous one here
	 * keeps a long non-atomic run (commits never call SPI_finish) flat.
	 */
	if (SPI_tuptable != NULL)
	{
		SPI_freetuptable(SPI_tuptable);
		SPI_tuptable = NULL;
	}

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	nestlevel = NewGUCNestLevel();
	SetUserIdAndSecContext(tm_catalog_owner(),
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	(void) set_config_option("search_path", TM_CATALOG_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/*
	 * Catalog queries are estimated high but run briefly: compiling them
	 * (tenant_verify's fingerprint query, 50 schemas at a time) took longer
	 * than running them.
	 */
	if (jit_enabled)
		(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		if (cache)
			rc = SPI_execute_plan(cached_plan(sql, nargs, argtypes), values,
								  nulls, false, 0);
		else
			rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	}
	PG_CATCH();
	{
		/* the (sub)transaction abort puts the settings back */
		SetUserIdAndSecContext(save_userid, save_sec_context);

		/*
		 * On an older SQL version, a query of ours that names something
		 * missing needs what the update adds: say so.
		 */
		if (tm_version_outdated)
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcxt);
			edata = CopyErrorData();
			if (edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE ||
				edata->sqlerrcode == ERRCODE_UNDEFINED_COLUMN ||
				edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION ||
				edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
			{
				FlushErrorState();
				tm_version_error(edata->message);
			}
			FreeErrorData(edata);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	/*
	 * SPI returns in its procedure context; go back to the caller's, so that
	 * what is read from the result lands where the caller means it to (a
	 * per-tenant context that is reset, a cache that outlives a commit).
	 */
	MemoryContextSwitchTo(oldcxt);
	if (rc != expect_rc)
		elog(ERROR, "SPI_execute_with_args failed (%s) for query: %s",
			 SPI_result_code_string(rc), sql);
}

void
tm_exec_as_caller(const char *sql)
{
	int			nestlevel = NewGUCNestLevel();
	int			rc;

	(void) set_config_option("search_path", TM_CATALOG_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	rc = SPI_execute(sql, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute failed (%s): %s", SPI_result_code_string(rc), sql);
	AtEOXact_GUC(true, nestlevel);
}

char *
tm_spi_getstr(uint64 row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/*---- The audit log: the statements that write it ----*/

/* The fleet run whose work this process does now (0: none), see fleet.c */
int64		tm_current_run_id = 0;

/* The step of a non-transactional script a log row is about, see nontx.c */
const char *tm_current_step = NULL;

void
tm_log_attempt(const char *schema, const char *version, const char *action,
			   const char *status, const char *error, TimestampTz started_at,
			   double duration_ms, const char *performed_by)
{
	Oid			argtypes[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TIMESTAMPTZOID, FLOAT8OID, TEXTOID, INT8OID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(schema);
	values[1] = version ? CStringGetTextDatum(version) : (Datum) 0;
	nulls[1] = version ? ' ' : 'n';
	values[2] = CStringGetTextDatum(action);
	values[3] = CStringGetTextDatum(status);
	values[4] = error ? CStringGetTextDatum(error) : (Datum) 0;
	nulls[4] = error ? ' ' : 'n';
	values[5] = TimestampTzGetDatum(started_at);
	nulls[5] = started_at ? ' ' : 'n';
	values[6] = Float8GetDatum(duration_ms);
	values[7] = CStringGetTextDatum(performed_by ? performed_by : tm_catalog_invoker());
	values[8] = Int64GetDatum(tm_current_run_id);
	/* a step of a non-transactional script (nontx.c): 1.1 only */
	if (tm_current_step != NULL)
	{
		Oid			types[10];
		Datum		vals[10];
		char		nls[10];

		memcpy(types, argtypes, sizeof(argtypes));
		memcpy(vals, values, sizeof(values));
		memcpy(nls, nulls, sizeof(nulls));
		types[9] = TEXTOID;
		vals[9] = CStringGetTextDatum(tm_current_step);
		nls[9] = ' ';
		tm_catalog_exec_cached("INSERT INTO public.tenant_migration_log"
						" (tenant_schema, version, action, status, error, started_at, duration_ms, performed_by, run_id, step)"
						" VALUES ($1::pg_catalog.name, $2, $3, $4, $5,"
						"         COALESCE($6, pg_catalog.clock_timestamp()), $7, $8::pg_catalog.name,"
						"         NULLIF($9, 0), $10)",
						10, types, vals, nls, SPI_OK_INSERT);
	}
	/* without a run, no run_id column: 1.0 (update pending) has none */
	else if (tm_current_run_id > 0)
		tm_catalog_exec_cached("INSERT INTO public.tenant_migration_log"
						" (tenant_schema, version, action, status, error, started_at, duration_ms, performed_by, run_id)"
						" VALUES ($1::pg_catalog.name, $2, $3, $4, $5,"
						"         COALESCE($6, pg_catalog.clock_timestamp()), $7, $8::pg_catalog.name, $9)",
						9, argtypes, values, nulls, SPI_OK_INSERT);
	else
		tm_catalog_exec_cached("INSERT INTO public.tenant_migration_log"
						" (tenant_schema, version, action, status, error, started_at, duration_ms, performed_by)"
						" VALUES ($1::pg_catalog.name, $2, $3, $4, $5,"
						"         COALESCE($6, pg_catalog.clock_timestamp()), $7, $8::pg_catalog.name)",
						8, argtypes, values, nulls, SPI_OK_INSERT);
}

void
tm_log_applied(const char *schema, int n, Datum *versions, Datum *started,
			   Datum *duration_ms, const char *performed_by)
{
	Oid			argtypes[6] = {TEXTOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID,
	FLOAT8ARRAYOID, TEXTOID, INT8OID};
	Datum		values[6];

	Assert(tm_current_step == NULL);
	values[0] = CStringGetTextDatum(schema);
	values[1] = PointerGetDatum(construct_array(versions, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(started, n, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = PointerGetDatum(construct_array(duration_ms, n, FLOAT8OID, sizeof(float8),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = CStringGetTextDatum(performed_by ? performed_by : tm_catalog_invoker());
	values[5] = Int64GetDatum(tm_current_run_id);
	/* without a run, no run_id column: 1.0 (update pending) has none */
	if (tm_current_run_id > 0)
		tm_catalog_exec_cached("INSERT INTO public.tenant_migration_log"
							   " (tenant_schema, version, action, status, started_at, duration_ms, performed_by, run_id)"
							   " SELECT $1::pg_catalog.name, u.v, 'up', 'ok', u.s, u.d, $5::pg_catalog.name, $6"
							   "   FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
							   "        WITH ORDINALITY AS u(v, s, d, i)"
							   "  ORDER BY u.i",
							   6, argtypes, values, NULL, SPI_OK_INSERT);
	else
		tm_catalog_exec_cached("INSERT INTO public.tenant_migration_log"
							   " (tenant_schema, version, action, status, started_at, duration_ms, performed_by)"
							   " SELECT $1::pg_catalog.name, u.v, 'up', 'ok', u.s, u.d, $5::pg_catalog.name"
							   "   FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4))"
							   "        WITH ORDINALITY AS u(v, s, d, i)"
							   "  ORDER BY u.i",
							   5, argtypes, values, NULL, SPI_OK_INSERT);
}

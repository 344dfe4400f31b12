/*-------------------------------------------------------------------------
 *
 * src/tenant_migrate.c
 *		Module initialization, settings, and the small SPI and background
 *		worker helpers the other files share.
 *
 * Design in one paragraph: migration scripts are stored in
 * public.tenant_migration_scripts.  To apply them to a tenant, each script
 * is parsed with the server's own parser (to split it into statements and
 * refuse what cannot run in a migration) and lexed with the server's own
 * lexer (to find the "public" qualifiers to replace by the tenant schema),
 * see rewrite.c.  runner.c then runs the statements with SPI under the
 * tenant's advisory lock, with search_path and lock_timeout set at a new
 * GUC nesting level, and records the result in public.tenant_migrations and
 * public.tenant_migration_log.  Everything one call does happens in the
 * caller's transaction, so an error leaves the tenant exactly as before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/postmaster.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/resowner.h"
#include "utils/varlena.h"
#include "catalog/pg_type_d.h"

PG_MODULE_MAGIC;

/*---- Settings ----*/

char	   *tm_schema_prefix = NULL;
char	   *tm_shared_objects = NULL;
int			tm_lock_timeout = 5000;
int			tm_lock_retries = 3;
int			tm_progress_interval = 10;
int			tm_max_workers = 2;
bool		tm_out_of_order = false;
bool		tm_recheck_function_bodies = false;

void		_PG_init(void);

/*---- Local functions ----*/

static bool check_schema_prefix(char **newval, void **extra, GucSource source);
static bool check_shared_objects(char **newval, void **extra, GucSource source);

void
_PG_init(void)
{
	DefineCustomStringVariable("tenant_migrate.schema_prefix",
							   gettext_noop("Prefix of tenant schema names: the schema of tenant key k is prefix || k."),
							   gettext_noop("May contain only letters, digits and underscores."),
							   &tm_schema_prefix,
							   "tenant_",
							   PGC_SUSET,
							   0,
							   check_schema_prefix,
							   NULL,
							   NULL);

	/*
	 * Superuser only: every name listed here is one more object in public
	 * that any tenant script may change, so it is not for each session (or
	 * ALTER ROLE ... SET of an ordinary role) to widen.
	 */
	DefineCustomStringVariable("tenant_migrate.shared_objects",
							   gettext_noop("Comma-separated names of objects in public that tenant migrations keep referring to as public."),
							   gettext_noop("public.name qualifiers for these names are not rewritten to the tenant schema."),
							   &tm_shared_objects,
							   "",
							   PGC_SUSET,
							   GUC_LIST_INPUT,
							   check_shared_objects,
							   NULL,
							   NULL);

	DefineCustomIntVariable("tenant_migrate.lock_timeout",
							gettext_noop("lock_timeout applied to each migration, so one that waits on a busy table fails fast."),
							gettext_noop("0 turns it off."),
							&tm_lock_timeout,
							5000,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("tenant_migrate.lock_retries",
							gettext_noop("How many times a fleet run retries a tenant whose migration hit the lock timeout."),
							NULL,
							&tm_lock_retries,
							3,
							0,
							100,
							PGC_USERSET,
							0,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("tenant_migrate.progress_interval",
							gettext_noop("Seconds between progress notices of a fleet run."),
							gettext_noop("0 turns progress notices off."),
							&tm_progress_interval,
							10,
							0,
							86400,
							PGC_USERSET,
							GUC_UNIT_S,
							NULL,
							NULL,
							NULL);

	DefineCustomIntVariable("tenant_migrate.max_workers",
							gettext_noop("Most fleet-run background workers running at once in the server."),
							gettext_noop("Keeps max_worker_processes slots free for parallel query, replication and others."),
							&tm_max_workers,
							2,
							1,
							MAX_BACKENDS,
							PGC_SIGHUP,
							0,
							NULL,
							NULL,
							NULL);

	tm_rls_init();
	tm_roles_init();
	DefineCustomBoolVariable("tenant_migrate.out_of_order",
							 gettext_noop("Whether a pending migration older than a schema's newest applied one may be applied."),
							 gettext_noop("Off: such a migration is refused for that schema with an error."),
							 &tm_out_of_order,
							 false,
							 PGC_USERSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	DefineCustomBoolVariable("tenant_migrate.recheck_function_bodies",
							 gettext_noop("Whether the bodies of functions a tenant script creates are validated for every tenant."),
							 gettext_noop("Off: a process validates them (check_function_bodies) the first time it applies a script, "
										  "and skips the check for the next tenants it applies the same text to, as pg_dump's restores do."),
							 &tm_recheck_function_bodies,
							 false,
							 PGC_USERSET,
							 0,
							 NULL,
							 NULL,
							 NULL);

	MarkGUCPrefixReserved("tenant_migrate");

	tm_guard_init();
}

/*
 * The prefix ends up inside identifiers and, via regclass literals, inside
 * string literals; letters, digits and underscores need no escaping in
 * either, so that is all we allow.
 */
static bool
check_schema_prefix(char **newval, void **extra, GucSource source)
{
	const char *p;

	for (p = *newval; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
		{
			GUC_check_errdetail("The schema prefix may contain only letters, digits and underscores.");
			return false;
		}
	}
	if (strlen(*newval) >= NAMEDATALEN - 1)
	{
		GUC_check_errdetail("The schema prefix must leave room for a tenant key in %d bytes.",
							NAMEDATALEN - 1);
		return false;
	}
	return true;
}

static bool
check_shared_objects(char **newval, void **extra, GucSource source)
{
	char	   *raw = pstrdup(*newval);
	List	   *names;
	bool		ok = SplitIdentifierString(raw, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(raw);
	return ok;
}

/*---- SPI helpers ----*/

char *
tm_schema_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_schema must not be null"),
				 errhint("Pass a tenant schema such as \"%sacme\".", tm_schema_prefix)));
	return text_to_cstring(PG_GETARG_TEXT_PP(0));
}

/*---- Background workers ----*/

bool
tm_launch_worker(const char *function, const char *type, const char *name,
				 dsm_segment *seg, BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "tenant_migrate", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_type, type, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

dsm_segment *
tm_worker_attach(Datum arg)
{
	dsm_segment *seg;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map the request of a tenant_migrate background worker")));
	return seg;
}

List *
tm_text_array_to_list(ArrayType *arr, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	List	   *result = NIL;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what),
				 errhint("Pass a list such as '{0001,0002}'.")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain null elements", what),
					 errhint("Remove the NULL from the list.")));
		result = lappend(result, TextDatumGetCString(elems[i]));
	}
	return result;
}

/*---- Internal subtransactions ----*/

void
tm_subxact_release(MemoryContext cxt, ResourceOwner owner)
{
	ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
}

ErrorData *
tm_subxact_abort(MemoryContext cxt, ResourceOwner owner)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return edata;
}

/*-------------------------------------------------------------------------
 *
 * src/fleet.c
 *		Fleet runs: PROCEDURE tenant_migrate_all() and
 *		PROCEDURE tenant_rollback_all(), one commit per tenant.
 *
 * Transactions, locks and memory
 * ------------------------------
 * The procedures connect to SPI non-atomically and commit (SPI_commit)
 * after every tenant, so a run over 10,000 tenants holds the locks of one
 * tenant at a time and a failure undoes only that tenant.  Called inside an
 * explicit transaction block (CallContext.atomic) they refuse at once.
 *
 * For each tenant:
 *	1. An internal subtransaction isolates the tenant's work, the way a
 *	   PL/pgSQL EXCEPTION block does.
 *	2. The tenant's advisory lock is tried without waiting: a tenant another
 *	   session is migrating is skipped (logged as "skipped", counted), never
 *	   waited on and never migrated twice.
 *	3. The runner (runner.c) applies or reverts, with lock_timeout set to
 *	   tenant_migrate.lock_timeout for each script.
 *	4. On error the subtransaction is rolled back -- the tenant is exactly as
 *	   before -- and a "failed" row goes to tenant_migration_log in the
 *	   tenant's own transaction, committed right after, so it is durable.
 *	   A lock timeout is retried up to tenant_migrate.lock_retries times
 *	   with exponential backoff.  A query cancel is not a tenant failure: it
 *	   stops the run (what was committed stays committed).
 *	5. SPI_commit().
 *
 * Which tenants have work is read once, set-based, at the start; the
 * runner re-reads each tenant's history under its lock, so a stale list
 * can cost a wasted lock, never a double apply.  Each script is compiled
 * once per run (TmScriptCache).  Per-tenant allocations go to a memory
 * context reset for every tenant, SPI results are freed as the next query
 * runs, and the relation and catalog caches -- which otherwise keep an
 * entry for every tenant table the run has touched -- are flushed every
 * FLEET_CACHE_FLUSH tenants, so memory stays flat however many tenants
 * there are.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(tenant_migrate_all);
PG_FUNCTION_INFO_V1(tenant_rollback_all);

/* Flush relation and catalog caches after this many tenants */
#define FLEET_CACHE_FLUSH	200

/* First lock-timeout retry waits this long; each next one twice as long */
#define FLEET_BACKOFF_MS	100
#define FLEET_BACKOFF_MAX_MS	10000

typedef enum FleetOp
{
	FLEET_MIGRATE,
	FLEET_ROLLBACK
} FleetOp;

typedef enum FleetOutcome
{
	OUTCOME_DONE,				/* migrated or rolled back */
	OUTCOME_NOTHING,			/* nothing to do after all */
	OUTCOME_BUSY,				/* locked by another session */
	OUTCOME_FAILED
} FleetOutcome;

/* One tenant of the run, as read at the start */
typedef struct FleetTenant
{
	char	   *schema;
	Oid			nspoid;			/* InvalidOid: schema missing */
	bool		active;
	bool		has_work;
} FleetTenant;

/* Everything one run carries from tenant to tenant */
typedef struct FleetRun
{
	FleetOp		op;
	const char *procname;
	const char *target;
	TmKeepSet  *keep;
	TmScriptCache cache;
	MemoryContext tenant_cxt;
	TimestampTz started;
	TimestampTz last_progress;
	int			total;			/* active tenants considered */
	int			done;			/* of those, dealt with so far */
	int			changed;
	int			nothing;
	int			failed;
	int			busy;
	int			inactive;
} FleetRun;

/*---- Local functions ----*/

static void fleet_run(FunctionCallInfo fcinfo, FleetOp op,
					  const char *target, ArrayType *tenants,
					  int max_failures);
static void fleet_run_guts(FunctionCallInfo fcinfo, FleetOp op,
						   const char *target, ArrayType *tenants,
						   int max_failures);
static FleetTenant *fleet_tenants(FleetRun *run, ArrayType *tenants, int *ntenants);
static FleetOutcome fleet_one(FleetRun *run, FleetTenant *t);
static void fleet_log(const char *schema, const char *version, const char *action,
					  const char *status, const char *error);
static void fleet_progress(FleetRun *run, bool final);
static void fleet_backoff(int attempt);

/*---- SQL-callable ----*/

/*
 * PROCEDURE tenant_migrate_all(target_version text DEFAULT NULL,
 *		tenants text[] DEFAULT NULL, max_failures integer DEFAULT NULL)
 */
Datum
tenant_migrate_all(PG_FUNCTION_ARGS)
{
	fleet_run(fcinfo, FLEET_MIGRATE,
			  PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
			  PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
			  PG_ARGISNULL(2) ? -1 : PG_GETARG_INT32(2));
	PG_RETURN_VOID();
}

/*
 * PROCEDURE tenant_rollback_all(target_version text,
 *		tenants text[] DEFAULT NULL)
 */
Datum
tenant_rollback_all(PG_FUNCTION_ARGS)
{
	fleet_run(fcinfo, FLEET_ROLLBACK,
			  PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
			  PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
			  -1);
	PG_RETURN_VOID();
}

/*---- The run ----*/

/*
 * The run itself; pg_stat_activity shows the tenant being migrated while
 * it goes, and the CALL's own text again afterwards, also after an error.
 */
static void
fleet_run(FunctionCallInfo fcinfo, FleetOp op, const char *target,
		  ArrayType *tenants, int max_failures)
{
	PG_TRY();
	{
		fleet_run_guts(fcinfo, op, target, tenants, max_failures);
	}
	PG_CATCH();
	{
		pgstat_report_activity(STATE_RUNNING, debug_query_string);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_RUNNING, debug_query_string);
}

static void
fleet_run_guts(FunctionCallInfo fcinfo, FleetOp op, const char *target,
			   ArrayType *tenants, int max_failures)
{
	FleetRun	run;
	FleetTenant *list;
	int			ntenants;
	int			i;
	int			since_flush = 0;
	const char *procname = (op == FLEET_MIGRATE) ? "tenant_migrate_all" : "tenant_rollback_all";

	if (fcinfo->context == NULL || !IsA(fcinfo->context, CallContext) ||
		castNode(CallContext, fcinfo->context)->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("%s cannot run inside a transaction block", procname),
				 errdetail("It commits after each tenant, so that one tenant's failure undoes nothing elsewhere and a long run never holds every tenant's locks."),
				 errhint("Run CALL %s() on its own, outside BEGIN ... COMMIT and not from a function.", procname)));
	if (max_failures < -1 || max_failures == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_failures must be a positive number or NULL"),
				 errhint("Pass NULL to let the run go on whatever fails.")));
	if (target != NULL)
		tm_version_check(target, "target version");

	memset(&run, 0, sizeof(run));
	run.op = op;
	run.procname = procname;
	run.target = target;

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");

	/* The SPI procedure context survives the commits; the run lives there */
	run.cache.cxt = AllocSetContextCreate(CurrentMemoryContext,
										  "tenant_migrate script cache",
										  ALLOCSET_DEFAULT_SIZES);
	run.tenant_cxt = AllocSetContextCreate(CurrentMemoryContext,
										   "tenant_migrate per-tenant",
										   ALLOCSET_DEFAULT_SIZES);
	run.started = run.last_progress = GetCurrentTimestamp();

	if (op == FLEET_MIGRATE)
	{
		List	   *shared;

		/*
		 * Shared scripts first, in a transaction of their own.  Tenant
		 * scripts may depend on them, so a failure here stops the run
		 * before any tenant is touched; a concurrent run applying them is
		 * waited for, then finds nothing left to do.
		 */
		tm_check_target(target, NULL);
		pgstat_report_activity(STATE_RUNNING, psprintf("%s: shared migrations", procname));
		shared = tm_apply_pending(TM_SHARED_SCHEMA, tm_public_namespace(), true,
								  target, NULL, NULL, true);
		if (shared != NIL)
			ereport(NOTICE,
					(errmsg("%s: applied %d shared migration(s) to public",
							procname, list_length(shared))));
		SPI_commit();
	}

	run.keep = tm_keepset_build();
	list = fleet_tenants(&run, tenants, &ntenants);

	for (i = 0; i < ntenants; i++)
	{
		FleetTenant *t = &list[i];
		FleetOutcome outcome;

		CHECK_FOR_INTERRUPTS();
		if (!t->active)
			continue;
		if (!t->has_work)
		{
			run.nothing++;
			run.done++;
			continue;
		}

		MemoryContextReset(run.tenant_cxt);
		MemoryContextSwitchTo(run.tenant_cxt);
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("%s: tenant \"%s\" (%d of %d)",
										procname, t->schema, run.done + 1, run.total));

		outcome = fleet_one(&run, t);
		SPI_commit();

		run.done++;
		switch (outcome)
		{
			case OUTCOME_DONE:
				run.changed++;
				break;
			case OUTCOME_NOTHING:
				run.nothing++;
				break;
			case OUTCOME_BUSY:
				run.busy++;
				break;
			case OUTCOME_FAILED:
				run.failed++;
				break;
		}

		if (++since_flush >= FLEET_CACHE_FLUSH)
		{
			InvalidateSystemCaches();
			since_flush = 0;
		}
		fleet_progress(&run, false);

		if (max_failures > 0 && run.failed >= max_failures)
		{
			ereport(WARNING,
					(errmsg("%s: stopping after %d failed tenant(s)", procname, run.failed),
					 errdetail("%d of %d tenants were not attempted.", run.total - run.done, run.total),
					 errhint("Fix the failing migrations (see tenant_migration_status()), then run it again.")));
			break;
		}
	}

	MemoryContextReset(run.tenant_cxt);
	fleet_progress(&run, true);
	SPI_finish();
}

/*
 * The tenants of the run, in schema order, with whether each has work
 * (scripts pending up to target, or applied scripts above it for a
 * rollback): one set-based query, so a run where every tenant is up to
 * date costs one query, not one per tenant.
 */
static FleetTenant *
fleet_tenants(FleetRun *run, ArrayType *tenants, int *ntenants)
{
	Oid			argtypes[2] = {TEXTARRAYOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {tenants ? ' ' : 'n', run->target ? ' ' : 'n'};
	const char *sql;
	FleetTenant *list;
	uint64		i;

	if (run->op == FLEET_MIGRATE)
		sql = "WITH wanted AS ("
			"  SELECT s.version FROM public.tenant_migration_scripts s"
			"   WHERE s.scope = 'tenant'"
			"     AND ($2::text IS NULL OR public.tenant_version_key(s.version) <= public.tenant_version_key($2))),"
			" have AS ("
			"  SELECT m.tenant_schema, pg_catalog.count(*) AS n"
			"    FROM public.tenant_migrations m JOIN wanted w ON w.version = m.version"
			"   GROUP BY m.tenant_schema)"
			" SELECT r.schema_name::text, n.oid, r.status = 'active',"
			"        (SELECT pg_catalog.count(*) FROM wanted) > COALESCE(h.n, 0)"
			"   FROM public.tenant_registry r"
			"   LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema_name"
			"   LEFT JOIN have h ON h.tenant_schema = r.schema_name"
			"  WHERE $1::text[] IS NULL OR r.schema_name = ANY ($1::name[])"
			"  ORDER BY r.schema_name";
	else
		sql = "SELECT r.schema_name::text, n.oid, r.status = 'active',"
			"        EXISTS (SELECT 1 FROM public.tenant_migrations m"
			"                 WHERE m.tenant_schema = r.schema_name"
			"                   AND ($2::text IS NULL OR"
			"                        public.tenant_version_key(m.version) > public.tenant_version_key($2)))"
			"   FROM public.tenant_registry r"
			"   LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema_name"
			"  WHERE $1::text[] IS NULL OR r.schema_name = ANY ($1::name[])"
			"  ORDER BY r.schema_name";

	values[0] = tenants ? PointerGetDatum(tenants) : (Datum) 0;
	values[1] = run->target ? CStringGetTextDatum(run->target) : (Datum) 0;
	tm_spi_exec(sql, 2, argtypes, values, nulls, SPI_OK_SELECT);

	/* Listed names that are not tenants: refuse before doing anything */
	if (tenants != NULL)
	{
		List	   *wanted = tm_text_array_to_list(tenants, "tenants");
		ListCell   *lc;

		foreach(lc, wanted)
		{
			char	   *name = (char *) lfirst(lc);
			bool		found = false;

			for (i = 0; i < SPI_processed && !found; i++)
				found = (strcmp(tm_spi_getstr(i, 1), name) == 0);
			if (!found)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_SCHEMA),
						 errmsg("tenant \"%s\" does not exist", name),
						 errdetail("Nothing was done."),
						 errhint("List tenant schemas as they appear in tenant_registry.")));
		}
	}

	*ntenants = (int) SPI_processed;
	list = palloc0(sizeof(FleetTenant) * (SPI_processed + 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		list[i].schema = SPI_getvalue(tup, desc, 1);
		d = SPI_getbinval(tup, desc, 2, &isnull);
		list[i].nspoid = isnull ? InvalidOid : DatumGetObjectId(d);
		list[i].active = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		list[i].has_work = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		if (list[i].active)
			run->total++;
		else
			run->inactive++;
	}
	if (run->inactive > 0 && tenants != NULL)
		ereport(NOTICE,
				(errmsg("%s: skipping %d listed tenant(s) that are not active",
						run->procname, run->inactive)));
	return list;
}

/*
 * One tenant in a subtransaction (see the header comment); returns what
 * happened.  Never leaves PG_TRY/PG_CATCH with a jump: retries loop
 * outside them.
 */
static FleetOutcome
fleet_one(FleetRun *run, FleetTenant *t)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	const char *action = (run->op == FLEET_MIGRATE) ? "up" : "down";
	int			attempt;

	if (!OidIsValid(t->nspoid))
	{
		char	   *msg = psprintf("schema of tenant \"%s\" is missing", t->schema);

		fleet_log(t->schema, NULL, action, "failed", msg);
		ereport(WARNING, (errmsg("%s: %s", run->procname, msg)));
		return OUTCOME_FAILED;
	}

	for (attempt = 0;; attempt++)
	{
		volatile FleetOutcome outcome = OUTCOME_FAILED;
		ErrorData  *volatile edata = NULL;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			if (!tm_lock_schema(t->nspoid, true))
				outcome = OUTCOME_BUSY;
			else
			{
				List	   *steps;

				if (run->op == FLEET_MIGRATE)
					steps = tm_apply_pending(t->schema, t->nspoid, false,
											 run->target, run->keep, &run->cache, false);
				else
					steps = tm_revert(t->schema, t->nspoid, false,
									  run->target, run->keep, false);
				outcome = (steps != NIL) ? OUTCOME_DONE : OUTCOME_NOTHING;
			}
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(cxt);
			CurrentResourceOwner = owner;
		}
		PG_END_TRY();

		if (edata == NULL)
		{
			if (outcome == OUTCOME_BUSY)
				fleet_log(t->schema, NULL, action, "skipped",
						  "locked by another session migrating this tenant");
			return outcome;
		}

		/* A cancel or statement_timeout stops the whole run */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);

		{
			bool		retry = (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
								 attempt < tm_lock_retries);
			char	   *error = edata->detail ?
				psprintf("%s\n%s", edata->message, edata->detail) : pstrdup(edata->message);

			if (retry)
				error = psprintf("%s\n(attempt %d of %d; retrying)", error,
								 attempt + 1, tm_lock_retries + 1);
			fleet_log(t->schema, tm_current_version[0] ? tm_current_version : NULL,
					  action, "failed", error);
			tm_current_version[0] = '\0';
			ereport(WARNING,
					(errmsg("%s: tenant \"%s\" %s: %s", run->procname, t->schema,
							retry ? "hit the lock timeout, retrying" : "failed",
							edata->message)));
			if (!retry)
				return OUTCOME_FAILED;
		}

		/*
		 * Commit the failure row now so it is durable even if the retry
		 * is cancelled, then wait before trying again.
		 */
		SPI_commit();
		fleet_backoff(attempt);
	}
}

/* Appends an audit row in the current transaction */
static void
fleet_log(const char *schema, const char *version, const char *action,
		  const char *status, const char *error)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', version ? ' ' : 'n', ' ', ' ', error ? ' ' : 'n'};

	values[0] = CStringGetTextDatum(schema);
	values[1] = version ? CStringGetTextDatum(version) : (Datum) 0;
	values[2] = CStringGetTextDatum(action);
	values[3] = CStringGetTextDatum(status);
	values[4] = error ? CStringGetTextDatum(error) : (Datum) 0;
	tm_spi_exec("INSERT INTO public.tenant_migration_log"
				" (tenant_schema, version, action, status, error, duration_ms)"
				" VALUES ($1::name, $2, $3, $4, $5, 0)",
				5, argtypes, values, nulls, SPI_OK_INSERT);
}

/* Waits FLEET_BACKOFF_MS * 2^attempt (capped), interruptibly */
static void
fleet_backoff(int attempt)
{
	long		ms = FLEET_BACKOFF_MS;

	while (attempt-- > 0 && ms < FLEET_BACKOFF_MAX_MS)
		ms *= 2;
	ms = Min(ms, FLEET_BACKOFF_MAX_MS);
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Progress NOTICE every tenant_migrate.progress_interval seconds, and the
 * closing summary.
 */
static void
fleet_progress(FleetRun *run, bool final)
{
	TimestampTz now = GetCurrentTimestamp();
	double		secs = (double) (now - run->started) / 1000000.0;
	double		rate = secs > 0 ? run->done / secs : 0;

	if (final)
	{
		ereport(NOTICE,
				(errmsg("%s finished in %.1f s: %d tenant(s), %d %s, %d already %s, %d failed, %d skipped (busy)",
						run->procname, secs, run->total, run->changed,
						run->op == FLEET_MIGRATE ? "migrated" : "rolled back",
						run->nothing,
						run->op == FLEET_MIGRATE ? "up to date" : "at target",
						run->failed, run->busy)));
		if (run->failed > 0)
			ereport(WARNING,
					(errmsg("%s: %d tenant(s) failed", run->procname, run->failed),
					 errhint("See last_error in tenant_migration_status(); the next run retries them.")));
		return;
	}

	if (tm_progress_interval <= 0 ||
		!TimestampDifferenceExceeds(run->last_progress, now, tm_progress_interval * 1000))
		return;
	run->last_progress = now;
	{
		int			left = run->total - run->done;
		double		eta = rate > 0 ? left / rate : 0;

		ereport(NOTICE,
				(errmsg("%s: %d/%d tenants (%d%%), %d failed, %d skipped, %.1f tenants/s, ETA %dm%02ds",
						run->procname, run->done, run->total,
						run->total > 0 ? (int) (100.0 * run->done / run->total) : 100,
						run->failed, run->busy, rate,
						(int) eta / 60, (int) eta % 60)));
	}
}

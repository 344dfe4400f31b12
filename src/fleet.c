/*-------------------------------------------------------------------------
 *
 * src/fleet.c
 *		Fleet runs: PROCEDURE tenant_migrate_all() and
 *		PROCEDURE tenant_rollback_all(), one commit per tenant.
 *
 * Processes, transactions and locks
 * ---------------------------------
 * The CALL's own backend (the leader) refuses inside a transaction block
 * (CallContext.atomic), applies pending shared scripts in a transaction of
 * its own, then reads, set-based, which tenants have work.  It hands those
 * tenants, FLEET_BATCH at a time, to a dynamic background worker that
 * connects as the caller with the caller's settings (GUC state and roles
 * are copied the way parallel query copies them) and works through its
 * batch; the leader waits, relays progress NOTICEs and failure WARNINGs,
 * and starts the next worker.  Why workers: every tenant has its own
 * functions, and each one a migration calls (a trigger firing during a
 * data migration) stays compiled in PL/pgSQL's cache for the life of the
 * backend -- some 80 kB apiece, with no way to evict it.  A worker exits
 * after its batch, so memory stays bounded however many tenants there
 * are.  If no worker can be started (no free max_worker_processes slot),
 * the leader runs the batch itself.
 *
 * For each tenant, in the worker (or the leader):
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
 *	5. SPI_commit() (non-atomic SPI).
 *
 * A cancel of the CALL terminates the worker and waits for it, so when the
 * CALL returns, the tenant in progress is rolled back; a terminated leader
 * terminates its worker on exit.  The runner re-reads each tenant's
 * history under its lock, so the list read at the start can be stale at
 * no cost but a wasted lock.  Each script is compiled once per process
 * (TmScriptCache), per-tenant allocations go to a memory context reset for
 * every tenant, SPI results are freed as the next query runs, and the
 * relation and catalog caches are flushed every FLEET_CACHE_FLUSH tenants.
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
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(tenant_migrate_all);
PG_FUNCTION_INFO_V1(tenant_rollback_all);

PGDLLEXPORT void tm_fleet_worker_main(Datum arg);

/*
 * From libpq/libpq.h, which cannot be included without the GSSAPI headers
 * that the server was built with.
 */
extern bool pq_check_connection(void);

/* Tenants one worker takes before it exits and frees what it cached */
#define FLEET_BATCH			100

/* Flush relation and catalog caches after this many tenants */
#define FLEET_CACHE_FLUSH	50

/* bgw_type of fleet workers (pg_stat_activity.backend_type) */
#define FLEET_WORKER_TYPE	"tenant_migrate fleet worker"

/* How often the leader looks at its worker, in milliseconds */
#define FLEET_POLL_MS		100

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

/* What happened so far: the whole run (leader) or one batch (worker) */
typedef struct FleetCounts
{
	int			done;			/* active tenants dealt with */
	int			changed;
	int			nothing;
	int			failed;
	int			busy;
} FleetCounts;

/* Everything a run carries from tenant to tenant, in either process */
typedef struct FleetRun
{
	FleetOp		op;
	const char *procname;
	const char *target;
	int			max_failures;	/* -1: no limit */
	int			failed_before;	/* failures of earlier batches */
	TmKeepSet  *keep;
	TmScriptCache cache;
	MemoryContext tenant_cxt;
	TimestampTz started;
	TimestampTz last_progress;
	int			total;			/* active tenants considered */
	int			inactive;
	int			since_flush;
	bool		in_worker;		/* transactions by hand, not SPI_commit */
	FleetCounts counts;
} FleetRun;

/* A tenant as handed to a worker */
typedef struct FleetSharedTenant
{
	NameData	schema;
	Oid			nspoid;
} FleetSharedTenant;

/*
 * The dynamic shared memory a worker gets: its orders, then the tenants,
 * then the leader's serialized GUC state.  The worker writes current,
 * counts and finished; the leader only reads them.
 */
typedef struct FleetShared
{
	Oid			dboid;
	Oid			auth_user;
	Oid			outer_user;
	Oid			current_user;
	int			sec_context;
	bool		is_superuser;
	FleetOp		op;
	bool		has_target;
	NameData	target;
	int			max_failures;
	int			failed_before;
	int			ntenants;
	Size		guc_offset;
	volatile int current;		/* index of the tenant in progress, or -1 */
	volatile FleetCounts counts;
	volatile bool finished;		/* the worker got through its batch */
	FleetSharedTenant tenants[FLEXIBLE_ARRAY_MEMBER];
} FleetShared;

/* The worker a leader waits for, so that exiting can terminate it */
static BackgroundWorkerHandle *active_worker = NULL;
static bool exit_callback_registered = false;

/*---- Local functions ----*/

static void fleet_run(FunctionCallInfo fcinfo, FleetOp op,
					  const char *target, ArrayType *tenants,
					  int max_failures);
static void fleet_run_guts(FunctionCallInfo fcinfo, FleetOp op,
						   const char *target, ArrayType *tenants,
						   int max_failures);
static void fleet_init_run(FleetRun *run, FleetOp op, const char *target,
						   int max_failures);
static FleetTenant *fleet_tenants(FleetRun *run, ArrayType *tenants, int *ntenants);
static void fleet_do_tenant(FleetRun *run, FleetTenant *t);
static void fleet_commit(FleetRun *run);
static void fleet_worker_begin_xact(void);
static void fleet_worker_end_xact(void);
static bool fleet_batch_in_worker(FleetRun *run, FleetTenant **batch, int n,
								  char *gucstate, Size gucsize);
static void fleet_relay_failures(FleetRun *run, int64 after_id);
static void fleet_leader_exit(int code, Datum arg);
static FleetOutcome fleet_one(FleetRun *run, FleetTenant *t);
static void fleet_progress(FleetRun *run, const FleetCounts *extra,
						   const char *current, bool final);
static void fleet_backoff(int attempt);

/*---- Helpers of the leader ----*/

/*
 * A run whose client has gone stops: a NOTICE would notice it, but with
 * progress_interval = 0 nothing is sent for the whole run.  pg_cron and
 * other callers without a client are not affected.
 */
static void
fleet_check_client(void)
{
	if (whereToSendOutput == DestRemote && !pq_check_connection())
		ereport(FATAL,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("connection to client lost during a fleet run"),
				 errdetail("Every tenant finished so far stays committed; the one in progress is rolled back.")));
}

/*
 * Takes one of the tenant_migrate.max_workers worker slots of the server
 * and returns its number, waiting while all are taken, so that concurrent
 * fleet runs leave max_worker_processes slots to parallel query, logical
 * replication and the audit writer.  A slot is a session-level lock in the
 * extension's lock space, so it is free again when its holder exits, even
 * after a crash of the leader's backend.  (Not inlined: its loop must not
 * become part of the caller's PG_TRY frame.)
 */
pg_noinline static int
fleet_take_worker_slot(FleetRun *run)
{
	bool		said = false;

	for (;;)
	{
		int			i;

		for (i = 0; i < tm_max_workers; i++)
		{
			LOCKTAG		tag;

			SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TM_WORKER_SLOT_KEY1,
								 (uint32) i, TM_LOCK_SPACE);
			if (LockAcquire(&tag, ExclusiveLock, true, true) != LOCKACQUIRE_NOT_AVAIL)
				return i;
		}
		if (!said)
			ereport(NOTICE,
					(errmsg("%s: waiting for one of the %d fleet worker(s) allowed by tenant_migrate.max_workers",
							run->procname, tm_max_workers)));
		said = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 FLEET_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		fleet_check_client();
	}
}

static void
fleet_release_worker_slot(int slot)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TM_WORKER_SLOT_KEY1,
						 (uint32) slot, TM_LOCK_SPACE);
	(void) LockRelease(&tag, ExclusiveLock, true);
}

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

/*---- The leader ----*/

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
	FleetTenant **batch;
	int			ntenants;
	int			i;
	char	   *gucstate;
	Size		gucsize;
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

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	fleet_init_run(&run, op, target, max_failures);

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
		shared = tm_run_audited(TM_SHARED_SCHEMA, tm_public_namespace(), true,
								false, target, NULL);
		if (shared != NIL)
			ereport(NOTICE,
					(errmsg("%s: applied %d shared migration(s) to public",
							procname, list_length(shared))));
		SPI_commit();
	}

	list = fleet_tenants(&run, tenants, &ntenants);

	/* Workers start with the caller's settings, as parallel workers do */
	gucsize = EstimateGUCStateSpace();
	gucstate = palloc(gucsize);
	SerializeGUCState(gucsize, gucstate);

	batch = palloc(sizeof(FleetTenant *) * FLEET_BATCH);
	i = 0;
	while (i < ntenants)
	{
		int			n = 0;

		/* Up to FLEET_BATCH tenants with work; the others are up to date */
		for (; i < ntenants && n < FLEET_BATCH; i++)
		{
			if (!list[i].active)
				continue;
			if (list[i].has_work)
				batch[n++] = &list[i];
			else
			{
				run.counts.nothing++;
				run.counts.done++;
			}
		}
		if (n == 0)
			break;

		run.failed_before = run.counts.failed;
		if (!fleet_batch_in_worker(&run, batch, n, gucstate, gucsize))
		{
			int			k;

			if (run.keep == NULL)
				run.keep = tm_keepset_build();
			for (k = 0; k < n; k++)
			{
				CHECK_FOR_INTERRUPTS();
				fleet_check_client();
				fleet_do_tenant(&run, batch[k]);
				fleet_progress(&run, NULL, NULL, false);
				if (run.max_failures > 0 && run.counts.failed >= run.max_failures)
					break;
			}
		}

		if (run.max_failures > 0 && run.counts.failed >= run.max_failures)
		{
			ereport(WARNING,
					(errmsg("%s: stopping after %d failed tenant(s)", procname, run.counts.failed),
					 errdetail("%d of %d tenants were not attempted.",
							   run.total - run.counts.done, run.total),
					 errhint("Fix the failing migrations (see tenant_migration_status()), then run it again.")));
			break;
		}
	}

	fleet_progress(&run, NULL, NULL, true);
	SPI_finish();
}

/* The parts of a run both the leader and a worker need */
static void
fleet_init_run(FleetRun *run, FleetOp op, const char *target, int max_failures)
{
	memset(run, 0, sizeof(FleetRun));
	run->op = op;
	run->procname = (op == FLEET_MIGRATE) ? "tenant_migrate_all" : "tenant_rollback_all";
	run->target = target;
	run->max_failures = max_failures;

	/* The SPI procedure context survives the commits; the run lives there */
	run->cache.cxt = AllocSetContextCreate(CurrentMemoryContext,
										   "tenant_migrate script cache",
										   ALLOCSET_DEFAULT_SIZES);
	run->tenant_cxt = AllocSetContextCreate(CurrentMemoryContext,
											"tenant_migrate per-tenant",
											ALLOCSET_DEFAULT_SIZES);
	run->started = run->last_progress = GetCurrentTimestamp();
}

/* One tenant, in its own transaction, with the counts kept */
static void
fleet_do_tenant(FleetRun *run, FleetTenant *t)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(run->tenant_cxt);
	FleetOutcome outcome;

	MemoryContextReset(run->tenant_cxt);
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("%s: tenant \"%s\"", run->procname, t->schema));

	outcome = fleet_one(run, t);
	fleet_commit(run);

	run->counts.done++;
	switch (outcome)
	{
		case OUTCOME_DONE:
			run->counts.changed++;
			break;
		case OUTCOME_NOTHING:
			run->counts.nothing++;
			break;
		case OUTCOME_BUSY:
			run->counts.busy++;
			break;
		case OUTCOME_FAILED:
			run->counts.failed++;
			break;
	}
	if (++run->since_flush >= FLEET_CACHE_FLUSH)
	{
		InvalidateSystemCaches();
		run->since_flush = 0;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(run->tenant_cxt);
}

/*
 * Ends the tenant's transaction and starts the next one.  The CALL has a
 * portal and non-atomic SPI for that; a worker has neither, so it runs
 * each transaction by hand with an atomic SPI connection inside and an
 * outer snapshot (every query still takes a fresh one, at READ COMMITTED).
 */
static void
fleet_commit(FleetRun *run)
{
	if (!run->in_worker)
	{
		SPI_commit();
		return;
	}
	fleet_worker_end_xact();
	fleet_worker_begin_xact();
}

static void
fleet_worker_begin_xact(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
fleet_worker_end_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Runs a batch in a background worker and waits for it; false if no
 * worker could be started (the caller then runs the batch itself).
 */
static bool
fleet_batch_in_worker(FleetRun *run, FleetTenant **batch, int n,
					  char *gucstate, Size gucsize)
{
	Size		offset = offsetof(FleetShared, tenants) + sizeof(FleetSharedTenant) * n;
	dsm_segment *seg;
	FleetShared *sh;
	BackgroundWorkerHandle *handle;
	char		name[BGW_MAXLEN];
	FleetCounts counts;
	bool		finished;
	int64		last_log_id;
	int			k;
	int			slot;

	seg = dsm_create(offset + gucsize, 0);
	sh = (FleetShared *) dsm_segment_address(seg);
	sh->dboid = MyDatabaseId;
	sh->auth_user = GetAuthenticatedUserId();
	sh->outer_user = GetOuterUserId();
	GetUserIdAndSecContext(&sh->current_user, &sh->sec_context);
	sh->is_superuser = superuser_arg(sh->outer_user);
	sh->op = run->op;
	sh->has_target = (run->target != NULL);
	namestrcpy(&sh->target, run->target ? run->target : "");
	sh->max_failures = run->max_failures;
	sh->failed_before = run->failed_before;
	sh->ntenants = n;
	sh->guc_offset = offset;
	sh->current = -1;
	memset((void *) &sh->counts, 0, sizeof(FleetCounts));
	sh->finished = false;
	for (k = 0; k < n; k++)
	{
		namestrcpy(&sh->tenants[k].schema, batch[k]->schema);
		sh->tenants[k].nspoid = batch[k]->nspoid;
	}
	memcpy((char *) sh + offset, gucstate, gucsize);

	snprintf(name, sizeof(name), "%s worker for PID %d", run->procname, MyProcPid);

	/* failures are relayed from the log: remember where it stands */
	tm_catalog_exec("SELECT COALESCE(max(id), 0) FROM public.tenant_migration_log",
				0, NULL, NULL, NULL, SPI_OK_SELECT);
	last_log_id = atoll(tm_spi_getstr(0, 1));

	slot = fleet_take_worker_slot(run);
	if (!tm_launch_worker("tm_fleet_worker_main", FLEET_WORKER_TYPE,
						  name, seg, &handle))
	{
		fleet_release_worker_slot(slot);
		dsm_detach(seg);
		return false;
	}
	if (!exit_callback_registered)
	{
		before_shmem_exit(fleet_leader_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	active_worker = handle;

	PG_TRY();
	{
		for (;;)
		{
			pid_t		pid;
			BgwHandleStatus status;
			int			cur;

			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 FLEET_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			fleet_check_client();

			status = GetBackgroundWorkerPid(handle, &pid);
			counts = sh->counts;
			cur = sh->current;
			fleet_progress(run, &counts,
						   (cur >= 0 && cur < n) ? batch[cur]->schema : NULL, false);
			if (status == BGWH_STOPPED)
				break;
		}
	}
	PG_CATCH();
	{
		/* a cancel: stop the worker, and let its tenant roll back first */
		HOLD_INTERRUPTS();
		TerminateBackgroundWorker(handle);
		(void) WaitForBackgroundWorkerShutdown(handle);
		active_worker = NULL;
		fleet_release_worker_slot(slot);
		RESUME_INTERRUPTS();
		PG_RE_THROW();
	}
	PG_END_TRY();
	active_worker = NULL;
	fleet_release_worker_slot(slot);

	counts = sh->counts;
	finished = sh->finished;
	dsm_detach(seg);

	run->counts.done += counts.done;
	run->counts.changed += counts.changed;
	run->counts.nothing += counts.nothing;
	run->counts.failed += counts.failed;
	run->counts.busy += counts.busy;
	fleet_relay_failures(run, last_log_id);

	if (!finished)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("%s: its background worker stopped before the end of its tenants", run->procname),
				 errdetail("Every tenant it finished stays committed; the one in progress was rolled back."),
				 errhint("See the server log for the worker's error, then run it again.")));
	return true;
}

/* The WARNINGs a worker's failures would have printed, for the client */
static void
fleet_relay_failures(FleetRun *run, int64 after_id)
{
	Datum		arg = Int64GetDatum(after_id);
	Oid			argtype = INT8OID;
	uint64		i;

	tm_catalog_exec("SELECT tenant_schema::pg_catalog.text, pg_catalog.split_part(error, E'\\n', 1),"
				"       error LIKE '%; retrying)'"
				"  FROM public.tenant_migration_log"
				" WHERE id > $1 AND status = 'failed' ORDER BY id",
				1, &argtype, &arg, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		ereport(WARNING,
				(errmsg("%s: tenant \"%s\" %s: %s", run->procname, tm_spi_getstr(i, 1),
						strcmp(tm_spi_getstr(i, 3), "t") == 0 ?
						"hit the lock timeout, retrying" : "failed",
						tm_spi_getstr(i, 2))));
}

/* A leader that exits (pg_terminate_backend) takes its worker along */
static void
fleet_leader_exit(int code, Datum arg)
{
	if (active_worker != NULL)
		TerminateBackgroundWorker(active_worker);
	active_worker = NULL;
}

/*---- The worker ----*/

void
tm_fleet_worker_main(Datum arg)
{
	dsm_segment *seg;
	FleetShared *sh;
	FleetRun	run;
	FleetTenant *list;
	int			k;

	seg = tm_worker_attach(arg);
	sh = (FleetShared *) dsm_segment_address(seg);

	/* Become the caller: same role, same settings */
	BackgroundWorkerInitializeConnectionByOid(sh->dboid, sh->auth_user, 0);
	/* pinned until the caller's own settings are restored below */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	StartTransactionCommand();
	RestoreGUCState((char *) sh + sh->guc_offset);
	CommitTransactionCommand();
	SetCurrentRoleId(sh->outer_user, sh->is_superuser);
	SetUserIdAndSecContext(sh->current_user, sh->sec_context);

	/* What lives across the tenants' transactions lives in TopMemoryContext */
	MemoryContextSwitchTo(TopMemoryContext);
	fleet_init_run(&run, sh->op, sh->has_target ? pstrdup(NameStr(sh->target)) : NULL,
				   sh->max_failures);
	run.failed_before = sh->failed_before;
	run.in_worker = true;

	fleet_worker_begin_xact();
	MemoryContextSwitchTo(run.cache.cxt);
	run.keep = tm_keepset_build();
	MemoryContextSwitchTo(TopMemoryContext);

	list = MemoryContextAllocZero(TopMemoryContext, sizeof(FleetTenant) * sh->ntenants);
	for (k = 0; k < sh->ntenants; k++)
	{
		list[k].schema = MemoryContextStrdup(TopMemoryContext, NameStr(sh->tenants[k].schema));
		list[k].nspoid = sh->tenants[k].nspoid;
		list[k].active = true;
		list[k].has_work = true;
	}

	for (k = 0; k < sh->ntenants; k++)
	{
		CHECK_FOR_INTERRUPTS();
		sh->current = k;
		fleet_do_tenant(&run, &list[k]);
		sh->counts = run.counts;
		if (run.max_failures > 0 &&
			run.failed_before + run.counts.failed >= run.max_failures)
			break;
	}

	fleet_worker_end_xact();
	sh->current = -1;
	sh->finished = true;
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
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
			"     AND ($2::pg_catalog.text IS NULL OR public.tenant_version_key(s.version) OPERATOR(pg_catalog.<=) public.tenant_version_key($2))),"
			" have AS ("
			"  SELECT m.tenant_schema, pg_catalog.count(*) AS n"
			"    FROM public.tenant_migrations m JOIN wanted w ON w.version = m.version"
			"   GROUP BY m.tenant_schema)"
			" SELECT r.schema_name::pg_catalog.text, n.oid, r.status = 'active',"
			"        (SELECT pg_catalog.count(*) FROM wanted) > COALESCE(h.n, 0)"
			"   FROM public.tenant_registry r"
			"   LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema_name"
			"   LEFT JOIN have h ON h.tenant_schema = r.schema_name"
			"  WHERE $1::pg_catalog.text[] IS NULL"
			"     OR r.schema_name IN (SELECT pg_catalog.unnest($1::pg_catalog.name[]))"
			"  ORDER BY r.schema_name";
	else
		sql = "SELECT r.schema_name::pg_catalog.text, n.oid, r.status = 'active',"
			"        EXISTS (SELECT 1 FROM public.tenant_migrations m"
			"                 WHERE m.tenant_schema = r.schema_name"
			"                   AND ($2::pg_catalog.text IS NULL OR"
			"                        public.tenant_version_key(m.version) OPERATOR(pg_catalog.>) public.tenant_version_key($2)))"
			"   FROM public.tenant_registry r"
			"   LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = r.schema_name"
			"  WHERE $1::pg_catalog.text[] IS NULL"
			"     OR r.schema_name IN (SELECT pg_catalog.unnest($1::pg_catalog.name[]))"
			"  ORDER BY r.schema_name";

	values[0] = tenants ? PointerGetDatum(tenants) : (Datum) 0;
	values[1] = run->target ? CStringGetTextDatum(run->target) : (Datum) 0;

	/*
	 * Listed names that are not tenants: refuse before doing anything.  One
	 * anti-join, so a list of tens of thousands of names costs one hash, not
	 * a scan of the registry per name.
	 */
	if (tenants != NULL)
	{
		(void) tm_text_array_to_list(tenants, "tenants");	/* no NULLs */
		tm_catalog_exec("SELECT w.n FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS w(n, i)"
						" WHERE NOT EXISTS (SELECT 1 FROM public.tenant_registry r"
						"                    WHERE r.schema_name OPERATOR(pg_catalog.=) w.n::pg_catalog.name)"
						" ORDER BY w.i LIMIT 1",
						1, argtypes, values, nulls, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_SCHEMA),
					 errmsg("tenant \"%s\" does not exist", tm_spi_getstr(0, 1)),
					 errdetail("Nothing was done."),
					 errhint("List tenant schemas as they appear in tenant_registry.")));
	}
	tm_catalog_exec(sql, 2, argtypes, values, nulls, SPI_OK_SELECT);

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
	if (run->inactive > 0)
		ereport(NOTICE,
				(errmsg("%s: skipping %d %stenant(s) that are suspended or archived",
						run->procname, run->inactive, tenants != NULL ? "listed " : ""),
				 errhint("tenant_set_status(tenant_schema, 'active') makes a tenant active again.")));
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

	if (!tm_schema_name_is_valid(t->schema))
	{
		char	   *msg = psprintf("tenant schema name \"%s\" is invalid; it is not migrated", t->schema);

		tm_log_attempt(t->schema, NULL, action, "failed", msg, 0, 0, NULL);
		ereport(WARNING, (errmsg("%s: %s", run->procname, msg)));
		return OUTCOME_FAILED;
	}
	if (!OidIsValid(t->nspoid))
	{
		char	   *msg = psprintf("schema of tenant \"%s\" is missing", t->schema);

		tm_log_attempt(t->schema, NULL, action, "failed", msg, 0, 0, NULL);
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
			if (!tm_lock_schema(t->schema, t->nspoid, true))
				outcome = OUTCOME_BUSY;
			else
			{
				List	   *steps;

				if (run->op == FLEET_MIGRATE)
					steps = tm_apply_pending(t->schema, t->nspoid, false,
											 run->target, run->keep, &run->cache);
				else
					steps = tm_revert(t->schema, t->nspoid, false,
									  run->target, run->keep);
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
				tm_log_attempt(t->schema, NULL, action, "skipped",
							   "locked by another session migrating this tenant",
							   0, 0, NULL);
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
			tm_log_attempt(t->schema, tm_current_version[0] ? tm_current_version : NULL,
						   action, "failed", error, 0, 0, NULL);
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
		fleet_commit(run);
		fleet_backoff(attempt);
	}
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
 * closing summary.  extra: a running worker's counts not yet in run.
 */
static void
fleet_progress(FleetRun *run, const FleetCounts *extra, const char *current,
			   bool final)
{
	TimestampTz now = GetCurrentTimestamp();
	double		secs = (double) (now - run->started) / 1000000.0;
	FleetCounts c = run->counts;
	double		rate;

	if (extra != NULL)
	{
		c.done += extra->done;
		c.changed += extra->changed;
		c.nothing += extra->nothing;
		c.failed += extra->failed;
		c.busy += extra->busy;
	}
	rate = secs > 0 ? c.done / secs : 0;

	if (final)
	{
		ereport(NOTICE,
				(errmsg("%s finished in %.1f s: %d tenant(s), %d %s, %d already %s, %d failed, %d skipped (busy)",
						run->procname, secs, run->total, c.changed,
						run->op == FLEET_MIGRATE ? "migrated" : "rolled back",
						c.nothing,
						run->op == FLEET_MIGRATE ? "up to date" : "at target",
						c.failed, c.busy)));
		if (c.failed > 0)
			ereport(WARNING,
					(errmsg("%s: %d tenant(s) failed", run->procname, c.failed),
					 errhint("See last_error in tenant_migration_status(); the next run retries them.")));
		return;
	}

	if (current != NULL)
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("%s: tenant \"%s\" (%d of %d)",
										run->procname, current, c.done + 1, run->total));

	if (tm_progress_interval <= 0 ||
		!TimestampDifferenceExceeds(run->last_progress, now, tm_progress_interval * 1000))
		return;
	run->last_progress = now;
	{
		int			left = run->total - c.done;
		double		eta = rate > 0 ? left / rate : 0;

		ereport(NOTICE,
				(errmsg("%s: %d/%d tenants (%d%%), %d failed, %d skipped, %.1f tenants/s, ETA %dm%02ds",
						run->procname, c.done, run->total,
						run->total > 0 ? (int) (100.0 * c.done / run->total) : 100,
						c.failed, c.busy, rate,
						(int) eta / 60, (int) eta % 60)));
	}
}

/*-------------------------------------------------------------------------
 *
 * src/fleet.c
 *		Fleet runs: PROCEDURE tenant_migrate_all() and
 *		PROCEDURE tenant_rollback_all(), one commit per tenant, with
 *		background workers taking tenants from one shared queue.
 *
 * Processes, transactions and locks
 * ---------------------------------
 * The CALL's own backend (the leader) refuses inside a transaction block
 * (CallContext.atomic), records the run in tenant_migration_runs, applies
 * pending shared scripts in a transaction of its own, then reads,
 * set-based, which tenants have work.  Those tenants go into a queue in a
 * dynamic shared memory segment; `workers` dynamic background workers
 * (default and server-wide cap: tenant_migrate.max_workers) each take the
 * next tenant with an atomic increment, so one slow tenant holds back
 * nobody.  Each worker connects as the caller with the caller's settings
 * (GUC state and roles are copied the way parallel query copies them) and
 * exits after FLEET_BATCH tenants; the leader starts another one in its
 * place while tenants remain.  Why workers that exit: every tenant has its
 * own functions, and each one a migration calls (a trigger firing during a
 * data migration) stays compiled in PL/pgSQL's cache for the life of the
 * backend -- some 80 kB apiece, with no way to evict it -- so memory stays
 * flat however many tenants there are.
 *
 * Worker slots: a run takes, without waiting, as many of the server's
 * tenant_migrate.max_workers slots (session-level locks in the
 * extension's lock space, free again when their holder exits) as it asks
 * for and gets; fewer than asked is said in a NOTICE.  With none (all
 * slots taken by other runs, no free max_worker_processes slot, or
 * workers => 0), the leader runs the tenants itself, from the same queue.
 *
 * Messages
 * --------
 * Each worker has a shm_mq to the leader, and its error reporting is
 * redirected there (pq_redirect_to_shm_mq, as parallel workers do): its
 * NOTICEs and WARNINGs -- a tenant's failure is a WARNING carrying the
 * tenant error's SQLSTATE -- and its own ERROR or FATAL arrive in protocol
 * format, and the leader re-raises them to its client (ThrowErrorData).
 * Besides those, a worker sends 'R' (a tenant's outcome: queue index and
 * FleetOutcome) after each tenant's commit and 'X' when it exits on
 * purpose.  The leader counts only these messages of its own workers.  A
 * worker that detaches without 'X' died: the run stops with an error.
 *
 * For each tenant, in a worker (or the leader):
 *	1. An internal subtransaction isolates the tenant's work, the way a
 *	   PL/pgSQL EXCEPTION block does.
 *	2. The tenant's advisory lock is tried without waiting: a tenant another
 *	   session is migrating is skipped (logged as "skipped", counted), never
 *	   waited on and never migrated twice.
 *	3. The runner (runner.c) applies or reverts, with lock_timeout set to
 *	   tenant_migrate.lock_timeout for each script.  A migration goes by
 *	   transaction segments (nontx.c): after an enum-adding script, and
 *	   around a non-transactional script, the tenant's transaction commits
 *	   (its lock kept at session level) and the next segment starts in a
 *	   new subtransaction; a non-transactional script runs outside SPI and
 *	   any transaction (fleet_nontx), after which the leader connects SPI
 *	   again.  The leader's run lives in a context of the CALL's portal for
 *	   that reason, and it holds no catalog snapshot while it waits for its
 *	   workers (a worker's CREATE INDEX CONCURRENTLY waits for old
 *	   snapshots).
 *	4. On error the subtransaction is rolled back -- the tenant is exactly as
 *	   before -- and a "failed" row goes to tenant_migration_log in the
 *	   tenant's own transaction, committed right after, so it is durable.
 *	   A lock timeout is retried up to tenant_migrate.lock_retries times
 *	   with exponential backoff.  A query cancel is not a tenant failure: it
 *	   stops the run (what was committed stays committed).
 *	5. The run's row in tenant_migration_runs is counted up, then the
 *	   tenant's transaction commits: the row shows exactly what is
 *	   committed, also after a crash.
 * max_failures: every process adds its failures to a shared counter and
 * takes no further tenant once it is reached (tenants already under way
 * finish, so with n workers up to n - 1 more may fail).
 *
 * Run records
 * -----------
 * The leader holds a session-level lock (TM_RUN_KEY1, run id) from before
 * its run row is visible until the run ends.  A row still 'running' whose
 * lock nobody holds belongs to a leader that is gone (crash, kill -9,
 * pg_terminate_backend, lost client): the next run, or a
 * tenant_migration_status() call, marks it 'interrupted'
 * (tm_runs_mark_interrupted), as pg_cron marks its interrupted jobs.  A
 * cancel, or an error, marks the run 'cancelled' or 'failed' on the way
 * out.
 *
 * A cancel of the CALL terminates the workers and waits for them, so when
 * the CALL returns, the tenants in progress are rolled back; a terminated
 * leader terminates its workers on exit.  The runner re-reads each
 * tenant's history under its lock, so the list read at the start can be
 * stale at no cost but a wasted lock.  Each script is compiled once per
 * process (TmScriptCache), per-tenant allocations go to a memory context
 * reset for every tenant, SPI results are freed as the next query runs,
 * and the leader, when it runs tenants itself, flushes the relation and
 * catalog caches every FLEET_CACHE_FLUSH tenants (a worker does not need
 * to: it exits after FLEET_BATCH).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "libpq/pqmq.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
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

/* The leader, running tenants itself, flushes its caches this often */
#define FLEET_CACHE_FLUSH	50

/* bgw_type of fleet workers (pg_stat_activity.backend_type) */
#define FLEET_WORKER_TYPE	"tenant_migrate fleet worker"

/* How often the leader looks at its workers when no message comes */
#define FLEET_POLL_MS		100

/* Size of each worker's message queue to the leader */
#define FLEET_MQ_SIZE		65536

/* First lock-timeout retry waits this long; each next one twice as long */
#define FLEET_BACKOFF_MS	100
#define FLEET_BACKOFF_MAX_MS	10000

/* Message types a worker sends besides 'E' and 'N' (see the header) */
#define FLEET_MSG_RESULT	'R'
#define FLEET_MSG_EXIT		'X'

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

/* What happened so far in the run (leader) */
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
	TmKeepSet  *keep;
	TmScriptCache cache;
	MemoryContext tenant_cxt;
	TimestampTz started;
	TimestampTz last_progress;
	int			total;			/* active tenants considered */
	int			inactive;
	int			since_flush;
	int			nworkers;		/* workers running now (leader) */
	bool		in_worker;		/* transactions by hand, not SPI_commit */
	bool		nested_call;	/* leader: CALLed from a procedure or DO */
	MemoryContext entry_cxt;	/* leader: the CALL's, where SPI returns */
	FleetCounts counts;
} FleetRun;

/* A tenant in the queue */
typedef struct FleetSharedTenant
{
	NameData	schema;
	Oid			nspoid;
} FleetSharedTenant;

/*
 * The dynamic shared memory of a run: the orders, the queue of tenants,
 * the leader's serialized GUC state, then one message queue per worker
 * slot.  Workers take tenants by incrementing next and count failures in
 * failed; everything else is written by the leader before any worker
 * starts.
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
	int64		run_id;
	int			ntenants;
	int			nslots;
	Size		guc_offset;
	Size		mq_offset;
	pg_atomic_uint32 next;		/* queue index of the next tenant to take */
	pg_atomic_uint32 failed;	/* tenants failed so far, all processes */
	FleetSharedTenant tenants[FLEXIBLE_ARRAY_MEMBER];
} FleetShared;

/* The leader's view of one worker slot */
typedef struct FleetWorker
{
	int			slot;			/* tenant_migrate.max_workers slot held, -1: none */
	BackgroundWorkerHandle *handle; /* NULL: no worker running */
	shm_mq_handle *mqh;
	bool		exited;			/* sent FLEET_MSG_EXIT */
	bool		detached;		/* its queue is detached: it is gone */
	int			started;		/* workers started in this slot */
} FleetWorker;

/* The leader's workers, so that exiting can terminate them */
static FleetWorker *leader_workers = NULL;
static int	leader_nworkers = 0;
static dsm_segment *leader_seg = NULL;
static bool exit_callback_registered = false;

/*
 * True while the leader is at a point where an error leaves its own
 * transaction usable (no query of its own under way): on the way out it
 * may then record the run as cancelled or failed and commit that.
 */
static bool leader_clean = false;

/*---- Local functions ----*/

static void fleet_run(FunctionCallInfo fcinfo, FleetOp op,
					  const char *target, ArrayType *tenants,
					  int max_failures, int workers);
static void fleet_run_guts(FunctionCallInfo fcinfo, FleetOp op,
						   const char *target, ArrayType *tenants,
						   int max_failures, int workers);
static void fleet_init_run(FleetRun *run, FleetOp op, const char *target,
						   int max_failures);
static void fleet_run_body(FleetRun *run, ArrayType *tenants, int workers,
						   int64 run_id);
static void fleet_run_tracked(FleetRun *run, ArrayType *tenants, int nworkers,
							  int64 run_id, MemoryContext cxt);
static void fleet_check_listed(ArrayType *tenants);
static FleetTenant *fleet_tenants(FleetRun *run, ArrayType *tenants, int *ntenants);
static FleetOutcome fleet_do_tenant(FleetRun *run, FleetTenant *t);
static void fleet_count(FleetRun *run, FleetOutcome outcome);
static void fleet_commit(FleetRun *run);
static void fleet_worker_begin_xact(void);
static void fleet_worker_end_xact(void);
static void fleet_execute(FleetRun *run, FleetTenant **queue, int n,
						  int workers, int64 run_id, int *got);
static void fleet_stop_workers(void);
static void fleet_leader_exit(int code, Datum arg);
static FleetOutcome fleet_one(FleetRun *run, FleetTenant *t);
static ErrorData *fleet_nontx(FleetRun *run, FleetTenant *t, TmPending *p,
							  MemoryContext cxt);
static void fleet_progress(FleetRun *run, bool final);
static void fleet_backoff(int attempt);
static int64 fleet_run_begin(FleetRun *run, ArrayType *tenants, int workers);
static void fleet_run_update(int64 run_id, const char *sql, int nargs,
							 Oid *argtypes, Datum *values);
static void fleet_run_lock(int64 run_id, bool release);

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
 * Takes a free one of the tenant_migrate.max_workers worker slots of the
 * server without waiting and returns its number, -1 if all are taken.
 * Concurrent fleet runs therefore leave max_worker_processes slots to
 * parallel query, logical replication and the audit writer.  A slot is a
 * session-level lock in the extension's lock space, so it is free again
 * when its holder exits, even after a crash of the leader's backend.
 */
static int
fleet_take_worker_slot(void)
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
	return -1;
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

/* The workers argument: -1 for NULL (tenant_migrate.max_workers) */
static int
fleet_workers_arg(FunctionCallInfo fcinfo, int argno)
{
	int			workers;

	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return -1;
	workers = PG_GETARG_INT32(argno);
	if (workers < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("workers must be zero or a positive number, or NULL"),
				 errhint("Pass NULL for tenant_migrate.max_workers (%d), 0 to run every tenant in this session.",
						 tm_max_workers)));
	return workers;
}

/*
 * PROCEDURE tenant_migrate_all(target_version text DEFAULT NULL,
 *		tenants text[] DEFAULT NULL, max_failures integer DEFAULT NULL,
 *		workers integer DEFAULT NULL)
 *
 * Also called with the three arguments of 1.0 while ALTER EXTENSION
 * UPDATE is pending.
 */
Datum
tenant_migrate_all(PG_FUNCTION_ARGS)
{
	fleet_run(fcinfo, FLEET_MIGRATE,
			  PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
			  PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
			  PG_ARGISNULL(2) ? -1 : PG_GETARG_INT32(2),
			  fleet_workers_arg(fcinfo, 3));
	PG_RETURN_VOID();
}

/*
 * PROCEDURE tenant_rollback_all(target_version text,
 *		tenants text[] DEFAULT NULL, workers integer DEFAULT NULL)
 *
 * 1.0 has no workers argument.
 */
Datum
tenant_rollback_all(PG_FUNCTION_ARGS)
{
	fleet_run(fcinfo, FLEET_ROLLBACK,
			  PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0)),
			  PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
			  -1,
			  fleet_workers_arg(fcinfo, 2));
	PG_RETURN_VOID();
}

/*---- Run records ----*/

/* true if this database has the run records of 1.1 */
static bool
fleet_runs_table_exists(void)
{
	return OidIsValid(get_relname_relid("tenant_migration_runs", PG_PUBLIC_NAMESPACE));
}

/* Takes (or releases) the session-level lock that says a run is alive */
static void
fleet_run_lock(int64 run_id, bool release)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TM_RUN_KEY1,
						 (uint32) run_id, TM_LOCK_SPACE);
	if (release)
		(void) LockRelease(&tag, ExclusiveLock, true);
	else if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		elog(ERROR, "lock of fleet run %lld is held by another session",
			 (long long) run_id);
}

void
tm_runs_mark_interrupted(void)
{
	Oid			argtypes[3] = {OIDOID, OIDOID, INT2OID};
	Datum		values[3];

	if (XactReadOnly || RecoveryInProgress() || !fleet_runs_table_exists())
		return;
	values[0] = ObjectIdGetDatum(MyDatabaseId);
	values[1] = ObjectIdGetDatum((Oid) TM_RUN_KEY1);
	values[2] = Int16GetDatum(TM_LOCK_SPACE);
	tm_catalog_exec("UPDATE public.tenant_migration_runs r"
					"   SET status = 'interrupted', finished_at = pg_catalog.clock_timestamp()"
					" WHERE r.status = 'running'"
					"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l"
					"                    WHERE l.locktype = 'advisory' AND l.granted"
					"                      AND l.database OPERATOR(pg_catalog.=) $1"
					"                      AND l.classid OPERATOR(pg_catalog.=) $2"
					"                      AND l.objid OPERATOR(pg_catalog.=)"
					"                          (r.id OPERATOR(pg_catalog.%) 4294967296)::pg_catalog.oid"
					"                      AND l.objsubid OPERATOR(pg_catalog.=) $3)",
					3, argtypes, values, NULL, SPI_OK_UPDATE);
}

/*
 * Records a new run (status running) and takes its lock before the row
 * can be seen; returns its id, 0 if this database is still at 1.0.  The
 * row becomes visible with the leader's next commit.
 */
static int64
fleet_run_begin(FleetRun *run, ArrayType *tenants, int workers)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, TEXTOID};
	Datum		values[5];
	char		nulls[5] = {' ', run->target ? ' ' : 'n', tenants ? ' ' : 'n', ' ', ' '};
	int64		run_id;

	if (!fleet_runs_table_exists())
		return 0;
	tm_runs_mark_interrupted();
	values[0] = CStringGetTextDatum(run->op == FLEET_MIGRATE ? "migrate" : "rollback");
	values[1] = run->target ? CStringGetTextDatum(run->target) : (Datum) 0;
	values[2] = tenants ? PointerGetDatum(tenants) : (Datum) 0;
	values[3] = Int32GetDatum(workers);
	values[4] = CStringGetTextDatum(tm_catalog_invoker());
	tm_catalog_exec("INSERT INTO public.tenant_migration_runs"
					" (action, target_version, tenants, workers, started_by)"
					" VALUES ($1, $2, $3, $4, $5::pg_catalog.name) RETURNING id",
					5, argtypes, values, nulls, SPI_OK_INSERT_RETURNING);
	run_id = atoll(tm_spi_getstr(0, 1));
	fleet_run_lock(run_id, false);
	return run_id;
}

/* An UPDATE of the run's row; $1 is the run id */
static void
fleet_run_update(int64 run_id, const char *sql, int nargs, Oid *argtypes,
				 Datum *values)
{
	Oid			types[4] = {INT8OID};
	Datum		vals[4] = {Int64GetDatum(run_id)};
	int			i;

	if (run_id <= 0)
		return;
	Assert(nargs <= 3);
	for (i = 0; i < nargs; i++)
	{
		types[i + 1] = argtypes[i];
		vals[i + 1] = values[i];
	}
	tm_catalog_exec_cached(sql, nargs + 1, types, vals, NULL, SPI_OK_UPDATE);
}

/* The run's end: status and finish time */
static void
fleet_run_end(int64 run_id, const char *status)
{
	Oid			argtype = TEXTOID;
	Datum		value = CStringGetTextDatum(status);

	fleet_run_update(run_id,
					 "UPDATE public.tenant_migration_runs"
					 "   SET status = $2, finished_at = pg_catalog.clock_timestamp()"
					 " WHERE id = $1",
					 1, &argtype, &value);
}

/*---- The leader ----*/

/*
 * The run itself; pg_stat_activity shows the run's progress while it
 * goes, and the CALL's own text again afterwards, also after an error.
 */
static void
fleet_run(FunctionCallInfo fcinfo, FleetOp op, const char *target,
		  ArrayType *tenants, int max_failures, int workers)
{
	PG_TRY();
	{
		fleet_run_guts(fcinfo, op, target, tenants, max_failures, workers);
	}
	PG_CATCH();
	{
		tm_current_run_id = 0;
		pgstat_report_activity(STATE_RUNNING, debug_query_string);
		PG_RE_THROW();
	}
	PG_END_TRY();
	tm_current_run_id = 0;
	pgstat_report_activity(STATE_RUNNING, debug_query_string);
}

/*
 * The run after its record exists: shared scripts, the list of tenants,
 * the tenants themselves, the closing summary and record.
 */
static void
fleet_run_body(FleetRun *run, ArrayType *tenants, int workers, int64 run_id)
{
	FleetTenant *list;
	FleetTenant **queue;
	int			ntenants;
	int			nqueue = 0;
	int			i;
	int			got = 0;
	const char *procname = run->procname;
	const char *target = run->target;

	if (run->op == FLEET_MIGRATE)
	{
		List	   *shared;

		/*
		 * Shared scripts first, in a transaction of their own.  Tenant
		 * scripts may depend on them, so a failure here stops the run
		 * before any tenant is touched; a concurrent run applying them
		 * is waited for, then finds nothing left to do.  Its errors come
		 * after its own subtransaction is rolled back.
		 */
		pgstat_report_activity(STATE_RUNNING, psprintf("%s: shared migrations", procname));
		tm_refuse_non_transactional(tm_pending_scripts(TM_SHARED_SCHEMA, true, target, NULL, NULL),
									TM_SHARED_SCHEMA, TM_SHARED_NONTX_HINT);
		shared = tm_run_audited(TM_SHARED_SCHEMA, tm_public_namespace(), true,
								false, target, NULL);
		if (shared != NIL)
			ereport(NOTICE,
					(errmsg("%s: applied %d shared migration(s) to public",
							procname, list_length(shared))));
	}
	SPI_commit();

	leader_clean = false;
	list = fleet_tenants(run, tenants, &ntenants);

	/* The queue: tenants with work; the others are up to date */
	queue = palloc(sizeof(FleetTenant *) * (ntenants + 1));
	for (i = 0; i < ntenants; i++)
	{
		if (!list[i].active)
			continue;
		if (list[i].has_work)
			queue[nqueue++] = &list[i];
		else
		{
			run->counts.nothing++;
			run->counts.done++;
		}
	}
	{
		Oid			argtypes[2] = {INT4OID, INT4OID};
		Datum		values[2] = {Int32GetDatum(run->total), Int32GetDatum(run->counts.done)};

		fleet_run_update(run_id,
						 "UPDATE public.tenant_migration_runs SET total = $2, done = $3 WHERE id = $1",
						 2, argtypes, values);
	}
	SPI_commit();
	leader_clean = true;

	if (nqueue > 0)
		fleet_execute(run, queue, nqueue, workers, run_id, &got);

	fleet_progress(run, true);
	if (run->max_failures > 0 && run->counts.failed >= run->max_failures)
		ereport(WARNING,
				(errmsg("%s: stopping after %d failed tenant(s)", procname, run->counts.failed),
				 errdetail("%d of %d tenants were not attempted.",
						   run->total - run->counts.done, run->total),
				 errhint("Fix the failing migrations (see tenant_migration_status()), then run it again.")));

	leader_clean = false;
	{
		Oid			argtype = INT4OID;
		Datum		value = Int32GetDatum(got);

		fleet_run_update(run_id,
						 "UPDATE public.tenant_migration_runs SET workers = $2 WHERE id = $1",
						 1, &argtype, &value);
	}
	fleet_run_end(run_id,
				  (run->max_failures > 0 && run->counts.failed >= run->max_failures) ?
				  "failed" : "finished");
	SPI_commit();
	leader_clean = true;
}

/*
 * fleet_run_body() with the run's record kept: on error or cancel the
 * workers are stopped and the run is marked cancelled or failed (when the
 * leader's transaction allows it), and the run's lock is released.
 */
static void
fleet_run_tracked(FleetRun *run, ArrayType *tenants, int nworkers,
				  int64 run_id, MemoryContext cxt)
{
	PG_TRY();
	{
		fleet_run_body(run, tenants, nworkers, run_id);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();

		/* a cancel: stop the workers, and let their tenants roll back first */
		fleet_stop_workers();
		tm_unlock_schema_session();

		/*
		 * Say how the run ended, if the leader's own transaction is still
		 * usable; otherwise the next look finds it interrupted.
		 */
		if (run_id > 0 && leader_clean)
		{
			PG_TRY();
			{
				fleet_run_end(run_id, edata->sqlerrcode == ERRCODE_QUERY_CANCELED ?
							  "cancelled" : "failed");
				SPI_commit();
			}
			PG_CATCH();
			{
				FlushErrorState();
			}
			PG_END_TRY();
		}
		if (run_id > 0)
			fleet_run_lock(run_id, true);
		leader_clean = false;
		ReThrowError(edata);
	}
	PG_END_TRY();

	if (run_id > 0)
		fleet_run_lock(run_id, true);
	leader_clean = false;
}

static void
fleet_run_guts(FunctionCallInfo fcinfo, FleetOp op, const char *target,
			   ArrayType *tenants, int max_failures, int workers)
{
	FleetRun	run;
	int			nworkers;
	int64		run_id;
	MemoryContext cxt;
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
	nworkers = (workers == -1) ? tm_max_workers : workers;
	if (target != NULL)
		tm_version_check(target, "target version");

	{
		/* a CALL from a procedure or DO block: SPI of the caller below */
		bool		nested = SPI_inside_nonatomic_context();
		MemoryContext entry_cxt = CurrentMemoryContext;

		if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect_ext failed");

		/*
		 * The run lives in a context of the CALL's portal, not in SPI's
		 * procedure context: a non-transactional script makes the leader
		 * leave SPI for a while (fleet_nontx).
		 */
		MemoryContextSwitchTo(AllocSetContextCreate(PortalContext,
													"tenant_migrate fleet run",
													ALLOCSET_DEFAULT_SIZES));
		fleet_init_run(&run, op, target, max_failures);
		run.nested_call = nested;
		run.entry_cxt = entry_cxt;
	}
	cxt = CurrentMemoryContext;

	/* Refusals first: a run that cannot start leaves no record */
	if (op == FLEET_MIGRATE)
		tm_check_target(target, NULL);
	fleet_check_listed(tenants);

	run_id = fleet_run_begin(&run, tenants, nworkers);
	tm_current_run_id = run_id;
	leader_clean = true;

	fleet_run_tracked(&run, tenants, nworkers, run_id, cxt);
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

/*
 * One tenant, in its own transaction: the outcome is counted in the run's
 * row in the same transaction, then committed.
 */
static FleetOutcome
fleet_do_tenant(FleetRun *run, FleetTenant *t)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(run->tenant_cxt);
	FleetOutcome outcome;

	MemoryContextReset(run->tenant_cxt);
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("%s: tenant \"%s\"", run->procname, t->schema));

	outcome = fleet_one(run, t);
	tm_unlock_schema_session();
	if (tm_current_run_id > 0)
	{
		Oid			argtypes[3] = {INT4OID, INT4OID, TEXTOID};
		Datum		values[3];

		values[0] = Int32GetDatum(outcome == OUTCOME_FAILED ? 1 : 0);
		values[1] = Int32GetDatum(outcome == OUTCOME_BUSY ? 1 : 0);
		values[2] = CStringGetTextDatum(t->schema);
		fleet_run_update(tm_current_run_id,
						 "UPDATE public.tenant_migration_runs"
						 "   SET done = done OPERATOR(pg_catalog.+) 1,"
						 "       failed = failed OPERATOR(pg_catalog.+) $2,"
						 "       skipped = skipped OPERATOR(pg_catalog.+) $3,"
						 "       current_tenant = $4::pg_catalog.name"
						 " WHERE id = $1",
						 3, argtypes, values);
	}
	fleet_commit(run);

	/* (a worker's caches go with it after FLEET_BATCH tenants) */
	if (!run->in_worker && ++run->since_flush >= FLEET_CACHE_FLUSH)
	{
		InvalidateSystemCaches();
		run->since_flush = 0;
	}
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(run->tenant_cxt);
	return outcome;
}

/* Counts a tenant's outcome in the leader */
static void
fleet_count(FleetRun *run, FleetOutcome outcome)
{
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

/*---- The leader and its workers ----*/

/* Starts a worker in slot i of the segment; false if none could start */
static bool
fleet_start_worker(FleetRun *run, dsm_segment *seg, FleetWorker *w, int i)
{
	FleetShared *sh = (FleetShared *) dsm_segment_address(seg);
	shm_mq	   *mq = (shm_mq *) ((char *) sh + sh->mq_offset + (Size) i * FLEET_MQ_SIZE);
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "tenant_migrate", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "tm_fleet_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_type, FLEET_WORKER_TYPE, BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s worker %d for PID %d",
			 run->procname, i + 1, MyProcPid);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	memcpy(worker.bgw_extra, &i, sizeof(int));
	worker.bgw_notify_pid = MyProcPid;

	/* a fresh queue: the previous worker of the slot has detached */
	mq = shm_mq_create(mq, FLEET_MQ_SIZE);
	shm_mq_set_receiver(mq, MyProc);
	if (!RegisterDynamicBackgroundWorker(&worker, &w->handle))
	{
		w->handle = NULL;
		return false;
	}
	w->mqh = shm_mq_attach(mq, seg, w->handle);
	w->exited = false;
	w->detached = false;
	w->started++;
	return true;
}

/*
 * A message from a worker: a tenant's outcome, its exit, or a notice,
 * warning or error of its own, relayed to the client as if raised here.
 */
static void
fleet_handle_message(FleetRun *run, FleetWorker *w, char *data, Size nbytes)
{
	StringInfoData msg;
	char		type;

	if (nbytes < 1)
		elog(ERROR, "empty message from a fleet worker");
	type = data[0];
	initStringInfo(&msg);
	appendBinaryStringInfo(&msg, data + 1, nbytes - 1);

	switch (type)
	{
		case FLEET_MSG_RESULT:
			{
				int			outcome;

				(void) pq_getmsgint(&msg, 4);	/* queue index */
				outcome = pq_getmsgint(&msg, 4);

				pq_getmsgend(&msg);
				fleet_count(run, (FleetOutcome) outcome);
				break;
			}
		case FLEET_MSG_EXIT:
			w->exited = true;
			break;
		case 'E':
		case 'N':
			{
				ErrorData	edata;
				MemoryContext oldcxt = MemoryContextSwitchTo(run->tenant_cxt);

				/* what it parses is gone with the next message */
				MemoryContextReset(run->tenant_cxt);
				pq_parse_errornotice(&msg, &edata);
				/* a worker's FATAL ends the run here, not the session */
				edata.elevel = Min(edata.elevel, ERROR);
				if (edata.elevel >= ERROR)
					edata.context = edata.context ?
						psprintf("%s\n%s", edata.context, "tenant_migrate fleet worker") :
						pstrdup("tenant_migrate fleet worker");
				ThrowErrorData(&edata);
				MemoryContextSwitchTo(oldcxt);
				break;
			}
		default:
			elog(ERROR, "unknown message type %d from a fleet worker", (int) type);
	}
	pfree(msg.data);
}

/*
 * Runs the queue: with up to `workers` background workers, or in this
 * session if it gets none.  *got: the workers it started with.
 */
static void
fleet_execute(FleetRun *run, FleetTenant **queue, int n, int workers,
			  int64 run_id, int *got)
{
	Size		gucsize = EstimateGUCStateSpace();
	Size		guc_offset;
	Size		mq_offset;
	int			nslots = Min(workers, tm_max_workers);
	dsm_segment *seg;
	FleetShared *sh;
	FleetWorker *ws;
	int			k;
	int			active = 0;

	nslots = Max(nslots, 0);
	guc_offset = MAXALIGN(offsetof(FleetShared, tenants) + sizeof(FleetSharedTenant) * n);
	mq_offset = MAXALIGN(guc_offset + gucsize);
	seg = dsm_create(mq_offset + (Size) nslots * FLEET_MQ_SIZE, 0);
	/* the leader commits between the tenants it runs itself */
	dsm_pin_mapping(seg);
	leader_seg = seg;
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
	sh->run_id = run_id;
	sh->ntenants = n;
	sh->nslots = nslots;
	sh->guc_offset = guc_offset;
	sh->mq_offset = mq_offset;
	pg_atomic_init_u32(&sh->next, 0);
	pg_atomic_init_u32(&sh->failed, 0);
	for (k = 0; k < n; k++)
	{
		namestrcpy(&sh->tenants[k].schema, queue[k]->schema);
		sh->tenants[k].nspoid = queue[k]->nspoid;
	}
	/* Workers start with the caller's settings, as parallel workers do */
	SerializeGUCState(gucsize, (char *) sh + guc_offset);

	if (!exit_callback_registered)
	{
		before_shmem_exit(fleet_leader_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	ws = MemoryContextAllocZero(TopMemoryContext, sizeof(FleetWorker) * Max(nslots, 1));
	leader_workers = ws;
	leader_nworkers = nslots;
	for (k = 0; k < nslots; k++)
		ws[k].slot = -1;

	/* As many slots as are free, without waiting for more */
	for (k = 0; k < nslots && k < n; k++)
	{
		ws[k].slot = fleet_take_worker_slot();
		if (ws[k].slot < 0)
			break;
		if (!fleet_start_worker(run, seg, &ws[k], k))
		{
			fleet_release_worker_slot(ws[k].slot);
			ws[k].slot = -1;
			break;
		}
		active++;
	}
	*got = active;
	run->nworkers = active;
	if (active == 0 && workers > 0)
		ereport(NOTICE,
				(errmsg("%s: no background worker is free, running every tenant in this session",
						run->procname),
				 errdetail("tenant_migrate.max_workers is %d; other fleet runs or max_worker_processes hold the rest.",
						   tm_max_workers)));
	else if (active < Min(workers, n))
		ereport(NOTICE,
				(errmsg("%s: running with %d of the %d worker(s) asked for",
						run->procname, active, workers),
				 errdetail("tenant_migrate.max_workers is %d; other fleet runs or max_worker_processes hold the rest.",
						   tm_max_workers)));

	while (active > 0)
	{
		bool		any = false;

		for (k = 0; k < nslots; k++)
		{
			FleetWorker *w = &ws[k];

			while (w->handle != NULL && !w->detached)
			{
				Size		nbytes;
				void	   *data;
				shm_mq_result res = shm_mq_receive(w->mqh, &nbytes, &data, true);

				if (res == SHM_MQ_WOULD_BLOCK)
					break;
				any = true;
				if (res == SHM_MQ_DETACHED)
				{
					w->detached = true;
					break;
				}
				fleet_handle_message(run, w, data, nbytes);
			}
			if (w->handle == NULL || !w->detached)
				continue;

			/* the worker is gone: was it done, or did it die? */
			(void) WaitForBackgroundWorkerShutdown(w->handle);
			pfree(w->handle);
			w->handle = NULL;
			shm_mq_detach(w->mqh);
			w->mqh = NULL;
			if (!w->exited)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("%s: a background worker stopped before the end of its tenants", run->procname),
						 errdetail("Every tenant finished stays committed; the ones in progress were rolled back."),
						 errhint("See the server log for the worker's error, then run it again.")));

			/* a replacement while tenants remain */
			if (pg_atomic_read_u32(&sh->next) < (uint32) n &&
				!(run->max_failures > 0 &&
				  pg_atomic_read_u32(&sh->failed) >= (uint32) run->max_failures) &&
				fleet_start_worker(run, seg, w, k))
				continue;
			fleet_release_worker_slot(w->slot);
			w->slot = -1;
			active--;
		}
		run->nworkers = active;

		/*
		 * Hold no snapshot while waiting: a worker's CREATE INDEX
		 * CONCURRENTLY waits for every older snapshot to go.
		 */
		InvalidateCatalogSnapshot();
		CHECK_FOR_INTERRUPTS();
		fleet_check_client();
		fleet_progress(run, false);
		if (!any && active > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 FLEET_POLL_MS, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}

	/*
	 * No worker (none free, or none could be replaced): the rest in this
	 * session, from the same queue.
	 */
	if (run->keep == NULL && pg_atomic_read_u32(&sh->next) < (uint32) n)
	{
		leader_clean = false;
		run->keep = tm_keepset_build();
		leader_clean = true;
	}
	for (;;)
	{
		uint32		idx;
		FleetOutcome outcome;

		CHECK_FOR_INTERRUPTS();
		fleet_check_client();
		if (run->max_failures > 0 &&
			pg_atomic_read_u32(&sh->failed) >= (uint32) run->max_failures)
			break;
		idx = pg_atomic_fetch_add_u32(&sh->next, 1);
		if (idx >= (uint32) n)
			break;
		leader_clean = false;
		outcome = fleet_do_tenant(run, queue[idx]);
		leader_clean = true;
		if (outcome == OUTCOME_FAILED)
			pg_atomic_fetch_add_u32(&sh->failed, 1);
		fleet_count(run, outcome);
		fleet_progress(run, false);
	}

	leader_workers = NULL;
	leader_nworkers = 0;
	pfree(ws);
	leader_seg = NULL;
	dsm_detach(seg);
}

/*
 * On error or cancel: terminate every worker and wait for it, so that
 * its tenant in progress is rolled back when the CALL returns.
 */
static void
fleet_stop_workers(void)
{
	int			k;

	HOLD_INTERRUPTS();
	for (k = 0; k < leader_nworkers; k++)
	{
		FleetWorker *w = &leader_workers[k];

		/* a worker never blocks on a full queue nobody reads any more */
		if (w->mqh != NULL)
			shm_mq_detach(w->mqh);
		w->mqh = NULL;
		if (w->handle != NULL)
			TerminateBackgroundWorker(w->handle);
	}
	for (k = 0; k < leader_nworkers; k++)
	{
		FleetWorker *w = &leader_workers[k];

		if (w->handle != NULL)
			(void) WaitForBackgroundWorkerShutdown(w->handle);
		w->handle = NULL;
		if (w->slot >= 0)
			fleet_release_worker_slot(w->slot);
		w->slot = -1;
	}
	if (leader_workers != NULL)
		pfree(leader_workers);
	leader_workers = NULL;
	leader_nworkers = 0;
	if (leader_seg != NULL)
		dsm_detach(leader_seg);
	leader_seg = NULL;
	RESUME_INTERRUPTS();
}

/* A leader that exits (pg_terminate_backend) takes its workers along */
static void
fleet_leader_exit(int code, Datum arg)
{
	int			k;

	if (leader_workers == NULL)
		return;
	for (k = 0; k < leader_nworkers; k++)
		if (leader_workers[k].handle != NULL)
			TerminateBackgroundWorker(leader_workers[k].handle);
	leader_workers = NULL;
	leader_nworkers = 0;
}

/*---- The worker ----*/

/* Sends a message of our own to the leader; false if it is gone */
static bool
fleet_send(shm_mq_handle *mqh, char type, int index, int outcome)
{
	StringInfoData buf;
	shm_mq_result res;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, type);
	pq_sendint32(&buf, index);
	pq_sendint32(&buf, outcome);
	res = shm_mq_send(mqh, buf.len, buf.data, false, true);
	pfree(buf.data);
	return res == SHM_MQ_SUCCESS;
}

void
tm_fleet_worker_main(Datum arg)
{
	dsm_segment *seg;
	FleetShared *sh;
	FleetRun	run;
	FleetTenant tenant;
	shm_mq	   *mq;
	shm_mq_handle *mqh;
	int			slot;
	int			k;

	seg = tm_worker_attach(arg);
	sh = (FleetShared *) dsm_segment_address(seg);
	memcpy(&slot, MyBgworkerEntry->bgw_extra, sizeof(int));
	if (slot < 0 || slot >= sh->nslots)
		elog(ERROR, "fleet worker slot %d out of range", slot);

	/* From here on, every message and error goes to the leader */
	mq = (shm_mq *) ((char *) sh + sh->mq_offset + (Size) slot * FLEET_MQ_SIZE);
	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);
	pq_redirect_to_shm_mq(seg, mqh);

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
	run.in_worker = true;
	tm_current_run_id = sh->run_id;

	fleet_worker_begin_xact();
	MemoryContextSwitchTo(run.cache.cxt);
	run.keep = tm_keepset_build();
	MemoryContextSwitchTo(TopMemoryContext);

	for (k = 0; k < FLEET_BATCH; k++)
	{
		uint32		idx;
		FleetOutcome outcome;

		CHECK_FOR_INTERRUPTS();
		if (run.max_failures > 0 &&
			pg_atomic_read_u32(&sh->failed) >= (uint32) run.max_failures)
			break;
		idx = pg_atomic_fetch_add_u32(&sh->next, 1);
		if (idx >= (uint32) sh->ntenants)
			break;
		tenant.schema = pstrdup(NameStr(sh->tenants[idx].schema));
		tenant.nspoid = sh->tenants[idx].nspoid;
		tenant.active = true;
		tenant.has_work = true;
		outcome = fleet_do_tenant(&run, &tenant);
		pfree(tenant.schema);
		if (outcome == OUTCOME_FAILED)
			pg_atomic_fetch_add_u32(&sh->failed, 1);
		if (!fleet_send(mqh, FLEET_MSG_RESULT, (int) idx, (int) outcome))
			break;				/* the leader is gone */
	}

	fleet_worker_end_xact();
	(void) fleet_send(mqh, FLEET_MSG_EXIT, 0, 0);
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}

/* Listed names that are not tenants: refuse before doing anything */
static void
fleet_check_listed(ArrayType *tenants)
{
	Oid			argtype = TEXTARRAYOID;
	Datum		value = PointerGetDatum(tenants);

	if (tenants == NULL)
		return;

	/*
	 * One anti-join, so a list of tens of thousands of names costs one
	 * hash, not a scan of the registry per name.
	 */
	(void) tm_text_array_to_list(tenants, "tenants");	/* no NULLs */
	tm_catalog_exec("SELECT w.n FROM pg_catalog.unnest($1::pg_catalog.text[]) WITH ORDINALITY AS w(n, i)"
					" WHERE NOT EXISTS (SELECT 1 FROM public.tenant_registry r"
					"                    WHERE r.schema_name OPERATOR(pg_catalog.=) w.n::pg_catalog.name)"
					" ORDER BY w.i LIMIT 1",
					1, &argtype, &value, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("tenant \"%s\" does not exist", tm_spi_getstr(0, 1)),
				 errdetail("Nothing was done."),
				 errhint("List tenant schemas as they appear in tenant_registry.")));
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
 * A non-transactional script of tenant t (nontx.c): out of SPI and out of
 * any transaction, the statements in transactions of their own, then back
 * to a transaction of the run's.  Returns the error of the failed step
 * (already logged), or NULL.
 */
static ErrorData *
fleet_nontx(FleetRun *run, FleetTenant *t, TmPending *p, MemoryContext cxt)
{
	ErrorData  *edata;

	if (run->nested_call)
	{
		/* our commits would end the transactions of the caller's SPI too */
		ErrorData  *volatile err = NULL;

		PG_TRY();
		{
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("migration %s (%s) cannot run its CONCURRENTLY step here", p->version, p->name),
					 errdetail("%s was called from a procedure or DO block and runs this tenant in its own session, which cannot leave the caller's transaction.",
							   run->procname),
					 errhint("Run CALL %s() as a statement of its own, or let it use background workers.",
							 run->procname)));
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			err = CopyErrorData();
			FlushErrorState();
		}
		PG_END_TRY();
		tm_log_attempt(t->schema, p->version, "up", "failed", err->message, 0, 0, NULL);
		return err;
	}

	if (run->in_worker)
		fleet_worker_end_xact();
	else
	{
		/* fleet_commit() just committed; leave SPI and its transaction */
		SPI_finish();
		CommitTransactionCommand();
	}

	edata = tm_run_nontx_script(t->schema, t->nspoid, p, cxt);

	if (run->in_worker)
		fleet_worker_begin_xact();
	else
	{
		StartTransactionCommand();
		MemoryContextSwitchTo(run->entry_cxt);
		if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect_ext failed");
	}
	MemoryContextSwitchTo(cxt);
	return edata;
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
	volatile bool applied = false;	/* segments committed already */

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
		TmPending  *volatile stopped = NULL;
		bool		logged = false;

		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(cxt);
		PG_TRY();
		{
			if (!tm_lock_schema(t->schema, t->nspoid, true))
				outcome = OUTCOME_BUSY;
			else
			{
				List	   *steps;
				TmPending  *stop = NULL;

				if (run->op == FLEET_MIGRATE)
					steps = tm_apply_segment(t->schema, t->nspoid, run->target,
											 run->keep, &run->cache,
											 TM_APPLY_SEGMENT, &stop);
				else
					steps = tm_revert(t->schema, t->nspoid, false,
									  run->target, run->keep);
				stopped = stop;
				outcome = (steps != NIL || applied) ? OUTCOME_DONE : OUTCOME_NOTHING;
			}
			tm_subxact_release(cxt, owner);
		}
		PG_CATCH();
		{
			edata = tm_subxact_abort(cxt, owner);
		}
		PG_END_TRY();

		/*
		 * The end of a transaction segment (nontx.c): commit what is
		 * applied, keeping the tenant locked at session level, then run a
		 * non-transactional script outside a transaction block, and go on
		 * with the next segment.
		 */
		if (edata == NULL && stopped != NULL)
		{
			(void) tm_lock_schema_session(t->nspoid, false);
			fleet_commit(run);
			applied = true;
			if (stopped->up->non_transactional)
			{
				edata = fleet_nontx(run, t, stopped, cxt);
				logged = true;	/* the failed step is logged */
			}
			if (edata == NULL)
			{
				attempt = -1;
				continue;
			}
		}

		if (edata == NULL)
		{
			if (outcome == OUTCOME_BUSY)
				tm_log_attempt(t->schema, NULL, action, "skipped",
							   "locked by another session migrating this tenant",
							   0, 0, NULL);
			return outcome;
		}

		/*
		 * A cancel or statement_timeout stops the whole run; the leader's
		 * transaction is usable again (the subtransaction is gone).
		 */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		{
			if (!run->in_worker)
				leader_clean = true;
			ReThrowError(edata);
		}

		{
			bool		retry = (edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
								 attempt < tm_lock_retries);
			char	   *error = tm_error_text(edata);

			if (retry)
				error = psprintf("%s\n(attempt %d of %d; retrying)", error,
								 attempt + 1, tm_lock_retries + 1);
			if (!logged)
				tm_log_attempt(t->schema, tm_current_version[0] ? tm_current_version : NULL,
							   action, "failed", error, 0, 0, NULL);
			tm_current_version[0] = '\0';
			/* with the tenant error's SQLSTATE, detail and context */
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("%s: tenant \"%s\" %s: %s", run->procname, t->schema,
							retry ? "hit the lock timeout, retrying" : "failed",
							edata->message),
					 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
					 edata->context ? errcontext_msg("%s", edata->context) : 0));
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
 * closing summary.
 */
static void
fleet_progress(FleetRun *run, bool final)
{
	TimestampTz now = GetCurrentTimestamp();
	double		secs = (double) (now - run->started) / 1000000.0;
	FleetCounts c = run->counts;
	double		rate;

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

	{
		char		activity[128];

		snprintf(activity, sizeof(activity), "%s: %d of %d tenants done, %d worker(s)",
				 run->procname, c.done, run->total, run->nworkers);
		pgstat_report_activity(STATE_RUNNING, activity);
	}

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

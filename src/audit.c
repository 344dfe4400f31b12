/*-------------------------------------------------------------------------
 *
 * src/audit.c
 *		Durable audit rows for failed one-schema calls.
 *
 * tenant_migrate(), tenant_migrate_shared() and tenant_rollback() run in the
 * caller's transaction.  When a migration fails, that transaction is about
 * to abort and would take any tenant_migration_log row written in it along,
 * yet the log is the audit of every attempt and tenant_migration_status()
 * reads last_error from it.  So the failed attempt is written by a
 * short-lived background worker, in a transaction of its own, which the
 * failing backend waits for before it re-throws the error.  The request
 * travels in a dynamic shared memory segment.
 *
 * The worker connects as the owner of the extension's tables (the only
 * role that may write the log), pins its search_path to pg_catalog, pg_temp
 * right after connecting -- before anything a database or role setting
 * could have influenced runs -- and runs one fixed, fully qualified INSERT
 * (catalog.c) of the row it was handed; performed_by is the role that made
 * the call, read by the caller after its work was rolled back.  If no
 * worker slot is free (max_worker_processes), the caller waits for one:
 * the row is never dropped for want of a slot.  Only a terminate request
 * (or the worker failing) ends the wait without the row, with a WARNING;
 * the error itself always reaches the caller.  Fleet runs do not need
 * this: they roll a failed tenant back to a subtransaction and log in their
 * own transaction.
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
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

/* The worker gives up rather than wait on a lock for longer than this */
#define AUDIT_LOCK_TIMEOUT_MS	"2000"

/* How often a caller waiting for a free worker slot tries again */
#define AUDIT_SLOT_POLL_MS		100

/* What the failing backend hands to the worker */
typedef struct TmAuditRequest
{
	Oid			dboid;
	Oid			owner;			/* of the extension's tables: the worker's role */
	NameData	schema;
	NameData	version;		/* empty: none */
	NameData	performed_by;
	char		action[16];
	TimestampTz started_at;
	double		duration_ms;
	int64		run_id;			/* the fleet run, 0: none */
	bool		done;			/* set by the worker once the row is committed */
	char		error[FLEXIBLE_ARRAY_MEMBER];
} TmAuditRequest;

PGDLLEXPORT void tm_audit_worker_main(Datum arg);

void
tm_audit_failure(const char *schema, const char *version, const char *action,
				 const char *error, TimestampTz started_at, double duration_ms,
				 const char *performed_by)
{
	Size		errlen = strlen(error);
	dsm_segment *seg;
	TmAuditRequest *req;
	BackgroundWorkerHandle *handle;

	seg = dsm_create(offsetof(TmAuditRequest, error) + errlen + 1, 0);
	req = (TmAuditRequest *) dsm_segment_address(seg);
	req->dboid = MyDatabaseId;
	namestrcpy(&req->schema, schema);
	namestrcpy(&req->version, version ? version : "");
	namestrcpy(&req->performed_by, performed_by);
	req->owner = tm_catalog_owner();
	strlcpy(req->action, action, sizeof(req->action));
	req->started_at = started_at;
	req->duration_ms = duration_ms;
	req->run_id = tm_current_run_id;
	req->done = false;
	memcpy(req->error, error, errlen + 1);

	/*
	 * Wait for a slot rather than lose the row.  Interrupts are held so that
	 * a cancel cannot replace the error being reported; a terminate request
	 * still ends the wait.
	 */
	HOLD_INTERRUPTS();
	while (!tm_launch_worker("tm_audit_worker_main", "tenant_migrate audit writer",
							 "tenant_migrate audit writer", seg, &handle))
	{
		if (ProcDiePending)
		{
			RESUME_INTERRUPTS();
			ereport(WARNING,
					(errmsg("could not record the failed attempt in tenant_migration_log"),
					 errdetail("The session was terminated while waiting for a free background worker slot.")));
			dsm_detach(seg);
			return;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 AUDIT_SLOT_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	(void) WaitForBackgroundWorkerShutdown(handle);
	RESUME_INTERRUPTS();
	if (!req->done)
		ereport(WARNING,
				(errmsg("could not record the failed attempt in tenant_migration_log"),
				 errdetail("The background worker writing it failed."),
				 errhint("See the server log for its error.")));
	dsm_detach(seg);
}

/* Background worker entry point: insert the one row, commit, exit */
void
tm_audit_worker_main(Datum arg)
{
	dsm_segment *seg;
	TmAuditRequest *req;

	seg = tm_worker_attach(arg);
	req = (TmAuditRequest *) dsm_segment_address(seg);

	BackgroundWorkerInitializeConnectionByOid(req->dboid, req->owner, 0);
	/* nothing a database or role setting says may shape what runs here */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", AUDIT_LOCK_TIMEOUT_MS, PGC_SUSET, PGC_S_OVERRIDE);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "tenant_migrate: recording a failed attempt");
	tm_current_run_id = req->run_id;

	tm_log_attempt(NameStr(req->schema),
				   NameStr(req->version)[0] ? NameStr(req->version) : NULL,
				   req->action, "failed", req->error, req->started_at,
				   req->duration_ms, NameStr(req->performed_by));

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	req->done = true;
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}

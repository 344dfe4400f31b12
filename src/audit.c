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
 * The worker connects as the bootstrap superuser (the caller's role may be
 * NOLOGIN) and records the caller's role in performed_by; it only ever
 * inserts the one row it was handed, then sets done in the request.  If no
 * worker slot is free (max_worker_processes) or the worker could not write
 * the row, the caller gets a WARNING; the error itself still reaches it.  Fleet runs do not need this: they roll
 * a failed tenant back to a subtransaction and log in their own transaction.
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
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

/* The worker gives up rather than wait on a lock for longer than this */
#define AUDIT_LOCK_TIMEOUT_MS	"2000"

/* What the failing backend hands to the worker */
typedef struct TmAuditRequest
{
	Oid			dboid;
	NameData	schema;
	NameData	version;		/* empty: none */
	NameData	performed_by;
	char		action[16];
	TimestampTz started_at;
	double		duration_ms;
	bool		done;			/* set by the worker once the row is committed */
	char		error[FLEXIBLE_ARRAY_MEMBER];
} TmAuditRequest;

PGDLLEXPORT void tm_audit_worker_main(Datum arg);

void
tm_audit_failure(const char *schema, const char *version, const char *action,
				 const char *error, TimestampTz started_at, double duration_ms)
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
	namestrcpy(&req->performed_by, GetUserNameFromId(GetUserId(), false));
	strlcpy(req->action, action, sizeof(req->action));
	req->started_at = started_at;
	req->duration_ms = duration_ms;
	req->done = false;
	memcpy(req->error, error, errlen + 1);

	if (!tm_launch_worker("tm_audit_worker_main", "tenant_migrate audit writer",
						  "tenant_migrate audit writer", seg, &handle))
	{
		ereport(WARNING,
				(errmsg("could not record the failed attempt in tenant_migration_log"),
				 errdetail("No background worker slot is free."),
				 errhint("Raise max_worker_processes.")));
		dsm_detach(seg);
		return;
	}
	(void) WaitForBackgroundWorkerShutdown(handle);
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

	BackgroundWorkerInitializeConnectionByOid(req->dboid, InvalidOid, 0);
	SetConfigOption("lock_timeout", AUDIT_LOCK_TIMEOUT_MS, PGC_SUSET, PGC_S_OVERRIDE);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "tenant_migrate: recording a failed attempt");

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

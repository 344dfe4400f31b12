/*-------------------------------------------------------------------------
 *
 * src/tenant_migrate.h
 *		Declarations shared by the tenant_migrate source files.
 *
 * Every function here that touches the extension's tables expects the
 * caller to be connected to SPI already (SPI_connect); none of them
 * connects or finishes on its own, so a SQL-callable entry point owns the
 * one SPI connection of its call.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TENANT_MIGRATE_H
#define TENANT_MIGRATE_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "utils/array.h"
#include "utils/timestamp.h"

/*
 * First key of every advisory lock the extension takes; the second key is
 * the OID of the schema being migrated (2200 for shared scripts in public).
 * pg_locks shows them as advisory locks with classid = this value.
 */
#define TM_LOCK_KEY1		0x544D0001	/* "TM" + 1 */

/*
 * The lock's fourth field.  pg_advisory_lock() and friends always use 1
 * (one int8 key) or 2 (two int4 keys), so no SQL call can take or hold a
 * lock with this value: no role can block a tenant's migrations with an
 * advisory lock of its own.  pg_locks shows it as objsubid.
 */
#define TM_LOCK_SPACE		0x544D	/* "TM" */

/*
 * First key of the locks that count fleet workers: a leader holds (KEY, i)
 * for i < tenant_migrate.max_workers while its worker runs.
 */
#define TM_WORKER_SLOT_KEY1	0x544D0002	/* "TM" + 2 */

/*
 * First key of the session-level lock a fleet run's leader holds while it
 * runs; the second key is the run's id (low 32 bits).  A run recorded as
 * running whose lock nobody holds was cut short (fleet.c).
 */
#define TM_RUN_KEY1			0x544D0003	/* "TM" + 3 */

#define TM_SCOPE_TENANT		"tenant"
#define TM_SCOPE_SHARED		"shared"
#define TM_SHARED_SCHEMA	"public"

/*---- Settings (tenant_migrate.c) ----*/
extern char *tm_schema_prefix;
extern char *tm_shared_objects;
extern int	tm_lock_timeout;	/* milliseconds, 0 = off */
extern int	tm_lock_retries;
extern int	tm_progress_interval;	/* seconds */
extern int	tm_max_workers;		/* fleet workers at once, server-wide */

/*---- The extension's tables and internal queries (catalog.c) ----*/

/*
 * Runs an internal, parameterized query with search_path pinned to
 * pg_catalog, pg_temp and as the owner of the extension's tables (see
 * catalog.c); elog(ERROR) unless SPI returns expect_rc.  The previous
 * query's SPI_tuptable is freed first: read a result before running the
 * next query.  Returns in the caller's memory context.
 */
extern void tm_catalog_exec(const char *sql, int nargs, Oid *argtypes,
							Datum *values, const char *nulls, int expect_rc);

/*
 * The same for a query run once per tenant: its plan is prepared once per
 * process and kept.  sql must be a string constant (the plan is found by
 * its address); its parameters' types must not change.
 */
extern void tm_catalog_exec_cached(const char *sql, int nargs, Oid *argtypes,
								   Datum *values, const char *nulls,
								   int expect_rc);

/* Column col (1-based) of row of SPI_tuptable as a palloc'd C string, NULL if null. */
extern char *tm_spi_getstr(uint64 row, int col);

/* Owner of the extension's tables; the role internal queries run as */
extern Oid	tm_catalog_owner(void);

/* Name of the role the extension acts for now (read before any switch) */
extern char *tm_catalog_invoker(void);

/*
 * The fleet run (tenant_migration_runs.id) this process works for, 0 for
 * none: tm_log_attempt() writes it into every log row as run_id.
 */
extern int64 tm_current_run_id;

/*
 * Appends a row to tenant_migration_log in the current transaction;
 * version and error may be NULL, performed_by NULL means the invoker,
 * started_at 0 means now.
 */
extern void tm_log_attempt(const char *schema, const char *version,
						   const char *action, const char *status,
						   const char *error, TimestampTz started_at,
						   double duration_ms, const char *performed_by);

/*---- Small helpers (tenant_migrate.c) ----*/

/* The first argument, tenant_schema, as a C string; ERROR if NULL */
extern char *tm_schema_arg(FunctionCallInfo fcinfo);

/*
 * A dynamic background worker of this library running function, with the
 * segment's handle as its argument and this backend notified of its
 * start and stop; false if no worker slot is free.
 */
extern bool tm_launch_worker(const char *function, const char *type,
							 const char *name, dsm_segment *seg,
							 BackgroundWorkerHandle **handle);

/* In such a worker: the usual SIGTERM handling, and its segment mapped */
extern dsm_segment *tm_worker_attach(Datum arg);

/* A text[] Datum as a List of C strings (NULL elements are refused). */
extern List *tm_text_array_to_list(ArrayType *arr, const char *what);

/*---- Versions and checksums (scripts.c) ----*/

/*
 * Longest version, in bytes.  Fleet runs hand the target version to their
 * background workers in a NameData, so a longer one would be truncated
 * there (and 00...02 cut to 00...0 means "roll everything back").
 */
#define TM_VERSION_MAXLEN	(NAMEDATALEN - 1)

/*
 * true if v is digits with optional single '.' or '_' separators, and at
 * most TM_VERSION_MAXLEN bytes
 */
extern bool tm_version_is_valid(const char *v);

/* ereport(ERROR) unless v is a valid version; what names the argument */
extern void tm_version_check(const char *v, const char *what);

/* Part-wise numeric comparison: "1.9" < "1.10", "001" == "1" */
extern int	tm_version_cmp(const char *a, const char *b);

/* qsort comparator for an array of char * versions */
extern int	tm_version_qsort_cmp(const void *a, const void *b);

/* Hex SHA-256 of data (OpenSSL), palloc'd */
extern char *tm_checksum(const char *data, size_t len);

typedef enum TmRegisterResult
{
	TM_SCRIPT_UNCHANGED,
	TM_SCRIPT_NEW,
	TM_SCRIPT_CHANGED
} TmRegisterResult;

/*
 * Registers (or re-registers) one script, the work behind
 * tenant_migration_add().  down_sql may be NULL; depends_on is a List of
 * version strings.  Validates everything (version, scope, SQL that the
 * runner would refuse) before writing.  *checksum_out gets the checksum.
 */
extern TmRegisterResult tm_script_register(const char *version,
										   const char *name,
										   const char *up_sql,
										   const char *down_sql,
										   const char *scope,
										   List *depends_on,
										   char **checksum_out);

/*---- Rewriting public for a tenant (rewrite.c) ----*/

/* Names kept as public.<name>: extension members in public, shared_objects */
typedef struct TmKeepSet
{
	int			nnames;
	char	  **names;			/* sorted, for bsearch */
} TmKeepSet;

extern TmKeepSet *tm_keepset_build(void);

/*
 * A script split into top-level statements, with the byte ranges of every
 * "public" qualifier the rewriter will replace.  Compiling is done once per
 * script; rendering it for a tenant only splices the quoted schema name in.
 */
typedef struct TmScript
{
	const char *sql;			/* the original text */
	const char *what;			/* names it in errors */
	int			nstmts;
	int		   *stmt_start;		/* byte offsets into sql, [start, end) */
	int		   *stmt_end;
	bool	   *creates_extension;	/* per statement: CREATE EXTENSION */
	int			nspans;
	int		   *span_start;		/* sorted, non-overlapping */
	int		   *span_end;
	uint32	   *span_flags;		/* per span: how to splice it (rewrite.c) */
} TmScript;

/*
 * Parses sql with the server's parser and lexer, refuses statements that
 * cannot run inside a migration, and finds the spans to rewrite (none if
 * keep is NULL, as for shared scripts).  what ("migration 003 up script")
 * is shown in the context of any error.
 */
extern TmScript *tm_script_compile(const char *sql, const TmKeepSet *keep,
								   const char *what);

/* Text of statement stmt (or the whole script, stmt = -1) for schema */
extern char *tm_script_render(const TmScript *script, int stmt,
							  const char *schema);

/* A statement's text for error messages: no leading comments, cut short */
extern char *tm_statement_snippet(const char *text, int start, int end);

/*---- Tenants (registry.c) ----*/

typedef struct TmTenant
{
	char	   *schema;			/* schema name, unquoted */
	char	   *key;
	char	   *status;
	Oid			nspoid;			/* InvalidOid if the schema is missing */
} TmTenant;

/* Looks a registered tenant up; ERROR (with hint) if there is none */
extern void tm_tenant_lookup(const char *schema, TmTenant *tenant);

/*
 * ERROR unless schema is non-empty and fits in a name; strict: also a
 * valid tenant schema name (tm_schema_name_is_valid)
 */
extern void tm_check_schema_name(const char *schema, bool strict);

/* Letters, digits, underscores; not pg_*, not information_schema */
extern bool tm_schema_name_is_valid(const char *schema);

/*---- Applying and rolling back (runner.c) ----*/

/* One applied or reverted migration, as the SRFs return it */
typedef struct TmStep
{
	char	   *version;
	char	   *name;
	double		duration_ms;
} TmStep;

/*
 * Transaction-level lock on a schema.  dontwait: false at once if busy;
 * otherwise waits at most tenant_migrate.lock_timeout times
 * (1 + lock_retries) (for ever if lock_timeout is 0), then ERROR.
 */
extern bool tm_lock_schema(const char *schema, Oid nspoid, bool dontwait);

/* true if the current user has the privileges of role rolename */
extern bool tm_may_act_as(const char *rolename);

/*
 * Scripts compiled once per call and reused for every schema it touches,
 * keyed by version, checksum and down script; lives in cxt.
 */
typedef struct TmScriptCache
{
	MemoryContext cxt;
	List	   *entries;		/* of TmPending */
} TmScriptCache;

/* ERROR unless target is a registered version (of scope, if not NULL) */
extern void tm_check_target(const char *target, const char *scope);

/*
 * Applies pending migrations of one scope to schema (a tenant, or public
 * for shared scripts) up to target (NULL: all).  Returns a List of TmStep.
 * Runs in the caller's transaction; takes the schema's advisory lock.
 * cache may be NULL.  Scripts run as the role that registered them.
 */
extern List *tm_apply_pending(const char *schema, Oid nspoid, bool shared,
							  const char *target, const TmKeepSet *keep,
							  TmScriptCache *cache);

/* Reverts applied migrations newer than target (NULL: the newest one). */
extern List *tm_revert(const char *schema, Oid nspoid, bool shared,
					   const char *target, const TmKeepSet *keep);

/*
 * tm_apply_pending() or (revert) tm_revert() in an internal subtransaction,
 * for calls whose transaction an error will abort: a failure is rolled
 * back, written durably to the log (audit.c), and thrown again unchanged.
 */
extern List *tm_run_audited(const char *schema, Oid nspoid, bool shared,
							bool revert, const char *target,
							const TmKeepSet *keep);

/*
 * An error as a log row's error text: message, then detail and CONTEXT
 * lines if any (runner.c).
 */
extern char *tm_error_text(const ErrorData *edata);

/*---- Durable failure rows (audit.c) ----*/

/*
 * Writes a 'failed' log row in a transaction of its own, waiting for a
 * free worker slot if need be; performed_by: the role that made the call.
 */
extern void tm_audit_failure(const char *schema, const char *version,
							 const char *action, const char *error,
							 TimestampTz started_at, double duration_ms,
							 const char *performed_by);

/* Version of the script running now ("" between scripts), for fleet logs */
extern char tm_current_version[NAMEDATALEN];

/*
 * Pending scripts for schema, in apply order, as a List of TmPending,
 * each compiled and their dependencies checked; the plan and the runner
 * share it, so the plan shows exactly what would run (or fails the same).
 */
typedef struct TmPending
{
	char	   *version;
	char	   *name;
	char	   *checksum;
	char	   *up_sql;
	char	   *down_sql;		/* may be NULL */
	List	   *depends_on;
	char	   *author;			/* registered_by: the role it runs as */
	TmScript   *up;
	TmScript   *down;			/* NULL if no down script */
} TmPending;

extern List *tm_pending_scripts(const char *schema, bool shared,
								const char *target, const TmKeepSet *keep,
								TmScriptCache *cache);

/* OID of public, where shared scripts run; ERROR if it was dropped */
extern Oid	tm_public_namespace(void);

/* search_path for running a migration in schema: tenant, then public */
extern char *tm_search_path_for(const char *schema, bool shared);

/*---- Fleet runs (fleet.c) ----*/

/*
 * Marks runs recorded as running whose leader is gone as interrupted
 * (cheap when none is running); does nothing in a read-only transaction.
 */
extern void tm_runs_mark_interrupted(void);

/*---- Containment of tenant scripts (guard.c) ----*/

/* Installs the object access and utility hooks and the abort callbacks (_PG_init) */
extern void tm_guard_init(void);

/*
 * While a guard is active, creating, altering or dropping anything in
 * public or in another registered tenant's schema fails (see guard.c for
 * the exceptions).  Guards nest; tm_guard_end() ends the innermost one and
 * does nothing if none is active.  An abort ends the guards begun in the
 * aborted (sub)transaction.
 */
extern void tm_guard_begin(Oid tenant_nspoid, const char *tenant_schema);
extern void tm_guard_end(void);

#endif							/* TENANT_MIGRATE_H */

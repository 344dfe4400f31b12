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

#define TM_SCOPE_TENANT		"tenant"
#define TM_SCOPE_SHARED		"shared"
#define TM_SHARED_SCHEMA	"public"

/*---- Settings (tenant_migrate.c) ----*/
extern char *tm_schema_prefix;
extern char *tm_shared_objects;
extern int	tm_lock_timeout;	/* milliseconds, 0 = off */
extern int	tm_lock_retries;
extern int	tm_progress_interval;	/* seconds */

/*---- SPI helpers (tenant_migrate.c) ----*/

/*
 * Runs a parameterized query; elog(ERROR) unless SPI returns expect_rc.
 * The previous query's SPI_tuptable is freed first: read a result before
 * running the next query.  Returns in the caller's memory context.
 */
extern void tm_spi_exec(const char *sql, int nargs, Oid *argtypes,
						Datum *values, const char *nulls, int expect_rc);

/* Column col (1-based) of row of SPI_tuptable as a palloc'd C string, NULL if null. */
extern char *tm_spi_getstr(uint64 row, int col);

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

/* true if v is digits with optional single '.' or '_' separators */
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

/* ERROR unless schema is a syntactically usable tenant schema name */
extern void tm_check_schema_name(const char *schema);

/*---- Applying and rolling back (runner.c) ----*/

/* One applied or reverted migration, as the SRFs return it */
typedef struct TmStep
{
	char	   *version;
	char	   *name;
	double		duration_ms;
} TmStep;

/* Transaction-level advisory lock on a schema; dontwait: false if busy */
extern bool tm_lock_schema(Oid nspoid, bool dontwait);

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
 * cache may be NULL.  audit: a failure is logged durably (audit.c) before
 * the error goes on, for calls whose transaction the error will abort.
 */
extern List *tm_apply_pending(const char *schema, Oid nspoid, bool shared,
							  const char *target, const TmKeepSet *keep,
							  TmScriptCache *cache, bool audit);

/* Reverts applied migrations newer than target (NULL: the newest one). */
extern List *tm_revert(const char *schema, Oid nspoid, bool shared,
					   const char *target, const TmKeepSet *keep, bool audit);

/*
 * Appends a row to tenant_migration_log in the current transaction;
 * version, error and performed_by may be NULL (performed_by: the current
 * user), started_at 0 (now).
 */
extern void tm_log_attempt(const char *schema, const char *version,
						   const char *action, const char *status,
						   const char *error, TimestampTz started_at,
						   double duration_ms, const char *performed_by);

/*---- Durable failure rows (audit.c) ----*/

/* Writes a 'failed' log row in a transaction of its own */
extern void tm_audit_failure(const char *schema, const char *version,
							 const char *action, const char *error,
							 TimestampTz started_at, double duration_ms);

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

#endif							/* TENANT_MIGRATE_H */

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
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/resowner.h"
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

/*
 * First key of the transaction-level lock tenant_verify tries before it
 * keeps a reference; the second key is a hash of its versions (verify.c).
 */
#define TM_VERIFY_REF_KEY1	0x544D0004	/* "TM" + 4 */

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
extern bool tm_out_of_order;	/* apply versions below the newest applied */
extern bool tm_recheck_function_bodies; /* validate bodies for every tenant */

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
 * Runs one statement of the extension's own making (DDL built with
 * quote_identifier) as the caller, with search_path pinned to pg_catalog,
 * pg_temp: for what the caller must own or be allowed to do itself.
 */
extern void tm_exec_as_caller(const char *sql);

/*
 * As tm_catalog_exec(), for a query run once per tenant: its plan is prepared once per
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

/*
 * The SQL version (pg_extension.extversion) this library is built for.
 * While an older one is installed (the library was updated, ALTER
 * EXTENSION tenant_migrate UPDATE not run yet), a function keeps working
 * as long as the older SQL objects have what it needs; an internal query
 * that needs a table, column or function the older version lacks fails
 * with "extension must be updated" (catalog.c).
 */
#define TM_EXTENSION_VERSION	"1.1"

/*
 * ERROR "extension must be updated" unless the installed SQL version is
 * TM_EXTENSION_VERSION (read once per transaction).  An entry point whose
 * SQL declaration changed since an older version calls it first, before
 * reading arguments the older declaration does not pass, as does one
 * that must not start work it cannot finish on an older version.
 */
extern void tm_check_extension_version(void);

/* Name of the role the extension acts for now (read before any switch) */
extern char *tm_catalog_invoker(void);

/*
 * The fleet run (tenant_migration_runs.id) this process works for, 0 for
 * none: tm_log_attempt() writes it into every log row as run_id.
 */
extern int64 tm_current_run_id;

/*
 * The step of a non-transactional script the log rows written now are
 * about (tenant_migration_log.step), NULL for none (nontx.c sets it).
 */
extern const char *tm_current_step;

/*
 * Appends a row to tenant_migration_log in the current transaction;
 * version and error may be NULL, performed_by NULL means the invoker,
 * started_at 0 means now.
 */
extern void tm_log_attempt(const char *schema, const char *version,
						   const char *action, const char *status,
						   const char *error, TimestampTz started_at,
						   double duration_ms, const char *performed_by);

/*
 * Appends one "up ok" row to tenant_migration_log per applied script, in
 * one statement: versions[i] started at started[i] and took duration_ms[i].
 */
extern void tm_log_applied(const char *schema, int n, Datum *versions,
						   Datum *started, Datum *duration_ms,
						   const char *performed_by);

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

/*
 * Ending an internal subtransaction begun (BeginInternalSubTransaction)
 * from memory context cxt and resource owner owner, as PL/pgSQL's
 * exception blocks do: _release after the work succeeded; _abort in the
 * PG_CATCH, which returns the error (copied into cxt) with the
 * subtransaction rolled back.
 */
extern void tm_subxact_release(MemoryContext cxt, ResourceOwner owner);
extern ErrorData *tm_subxact_abort(MemoryContext cxt, ResourceOwner owner);

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

/* Raw parse trees of a script that compiles (rows of COPY set aside) */
extern List *tm_script_raw_statements(const char *sql);

/*---- Names extensions will create (extnames.c) ----*/

/* keep plus what the not yet installed extensions raw creates will add */
extern TmKeepSet *tm_keepset_with_created_extensions(const TmKeepSet *keep,
													 List *raw);

/* keep plus the same for CREATE EXTENSION in registered tenant scripts */
extern TmKeepSet *tm_keepset_add_registered_extensions(TmKeepSet *keep);

/*
 * A script split into top-level statements, with the byte ranges of every
 * "public" qualifier the rewriter will replace.  Compiling is done once per
 * script; rendering it for a tenant only splices the quoted schema name in.
 */
/* What the runner does with a statement (TmScript.stmt_action) */
#define TM_STMT_RUN			0	/* SPI_execute the rendered text */
#define TM_STMT_SKIP		1	/* neutralised tool boilerplate: nothing */
#define TM_STMT_COPY_IN		2	/* COPY ... FROM STDIN, rows in copy_start/end */
#define TM_STMT_EXTENSION	3	/* CREATE EXTENSION without SCHEMA: run with
								 * search_path = public */
#define TM_STMT_CONCURRENTLY 4	/* CREATE/DROP INDEX or REINDEX CONCURRENTLY:
								 * outside a transaction block (nontx.c), or
								 * without CONCURRENTLY for a new tenant */

typedef struct TmScript
{
	const char *sql;			/* the original text */
	const char *what;			/* names it in errors */
	int			nstmts;
	int		   *stmt_start;		/* byte offsets into sql, [start, end) */
	int		   *stmt_end;
	bool	   *creates_extension;	/* per statement: CREATE EXTENSION */
	uint8	   *stmt_action;	/* per statement: TM_STMT_* */
	int		   *copy_start;		/* per TM_STMT_COPY_IN statement: its rows */
	int		   *copy_end;		/* in sql, [start, end), without the \. line */
	char	  **stmt_note;		/* per statement: why it may fail for a later
								 * tenant (it changes another schema), or NULL */
	char	  **stmt_other_schema;	/* per statement: that schema, or NULL */
	int			nspans;
	int		   *span_start;		/* sorted, non-overlapping */
	int		   *span_end;
	uint32	   *span_flags;		/* per span: how to splice it (rewrite.c) */
	int			nelided;		/* ranges the whole text shows as comments: */
	int		   *elided_start;	/* neutralised statements, psql meta-commands; */
	int		   *elided_end;		/* sorted, never overlapping a span */
	char	   *neutralised;	/* lines of what was skipped, or NULL */
	List	   *warnings;		/* char *: statements that change a schema
								 * other than public (tenant scripts only) */
	bool		adds_enum_values;	/* ALTER TYPE ... ADD VALUE: a later script
									 * may use the value only after a commit */
	bool		non_transactional;	/* CREATE/DROP INDEX CONCURRENTLY, REINDEX
									 * CONCURRENTLY: cannot run in a
									 * transaction block */
	char	   *non_transactional_stmt; /* the first such statement, with its
										 * line, for errors */
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

/* NOTICE listing the statements compile neutralised (nothing if none) */
extern void tm_script_notice_neutralised(const TmScript *script);

/* WARNING per statement that changes a schema other than public */
extern void tm_script_warn_other_schemas(const TmScript *script);

/*
 * ERROR if a pending script (List of TmPending) cannot run inside a
 * transaction block; hint names what to run instead (runner.c)
 */
extern void tm_refuse_non_transactional(List *pending, const char *schema,
										const char *hint);

/* Shared scripts are applied in one transaction: CONCURRENTLY is refused */
#define TM_SHARED_NONTX_HINT "Shared scripts are applied to public in one transaction; run a CONCURRENTLY statement on public outside tenant_migrate, or register the shared script without CONCURRENTLY."


/* Runs COPY ... FROM STDIN (stmt_sql) with rows from data (copyin.c) */
extern uint64 tm_copy_from_text(const char *stmt_sql, const char *data, int len);

/*
 * Runs statement i of a compiled script, rendered as sql, as its
 * stmt_action says, for tenant_schema (NULL: a shared script); returns the
 * SPI result code (copyin.c)
 */
extern int	tm_execute_statement(const TmScript *script, int i,
								 const char *sql, const char *tenant_schema);

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

/*
 * Checks tenant_key (NULL: refused), creates the schema as the caller and
 * registers it: create_tenant_schema() and create_tenant(); returns the
 * schema name, *nspoid its OID.  display_name may be NULL.
 */
extern char *tm_tenant_create(const char *key, text *display_name, Oid *nspoid);

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

struct TmPending;

/*
 * Where tm_apply_segment() stops (see README, "Transactions"):
 *	TM_APPLY_ALL: never (tm_apply_pending());
 *	TM_APPLY_SEGMENT: after a script that adds enum values when more are
 *		pending, and before a non-transactional script (an existing
 *		tenant: nontx.c runs it outside a transaction block);
 *	TM_APPLY_NEW_TENANT: after a script that adds enum values; CONCURRENTLY
 *		steps run as the plain statement (the tenant's tables are new).
 */
typedef enum TmApplyMode
{
	TM_APPLY_ALL,
	TM_APPLY_SEGMENT,
	TM_APPLY_NEW_TENANT
} TmApplyMode;

/*
 * tm_apply_pending() for a tenant up to the end of the transaction
 * segment (mode); *stopped: the script it stopped before (a
 * non-transactional one) or after (one adding enum values), NULL if it
 * applied everything pending.
 */
extern List *tm_apply_segment(const char *schema, Oid nspoid,
							  const char *target, const TmKeepSet *keep,
							  TmScriptCache *cache, TmApplyMode mode,
							  struct TmPending **stopped);

/* The history and log rows of an applied up script (tm_apply_pending) */
extern void tm_record_applied(const char *schema, const struct TmPending *p,
							  bool shared, double duration_ms,
							  TimestampTz started, const char *invoker);

/*
 * Runs statement stmt of p's up script for a tenant as tm_apply_pending()
 * runs a script (as its author, guard, tenant context), a CONCURRENTLY
 * step at top level (it commits on its way); returns milliseconds.
 */
extern double tm_run_step(const struct TmPending *p, const char *schema,
						  Oid nspoid, int stmt, const char *tenant_key);

/* The tenant key of a registered schema ("" if none) */
extern char *tm_tenant_key(const char *schema);

/*
 * Session-level variant of tm_lock_schema() (same lock), held across the
 * transactions of one tenant's scripts; one at a time, released by
 * tm_unlock_schema_session() (a no-op when none is held).
 */
extern bool tm_lock_schema_session(Oid nspoid, bool dontwait);
extern void tm_unlock_schema_session(void);

/*---- Scripts outside a transaction block, create_tenant (nontx.c) ----*/

/* sql (one CONCURRENTLY statement) without CONCURRENTLY, lexer-based */
extern char *tm_strip_concurrently(const char *sql);

/*
 * Runs one utility statement at top level (ProcessUtility), as psql
 * would, outside a transaction block; SPI must not be connected.
 */
extern void tm_execute_toplevel(const char *sql);

/*
 * Runs non-transactional script p for a tenant statement by statement,
 * each in a transaction of its own.  Called and returns outside any
 * transaction; cxt is where it allocates.  NULL on success (recorded and
 * logged), else the error (the failed step logged, nothing recorded).
 */
extern ErrorData *tm_run_nontx_script(const char *schema, Oid nspoid,
									  struct TmPending *p, MemoryContext cxt);

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
 * Runs a compiled tenant script in schema exactly as tm_apply_pending()
 * runs an up script (rewritten for schema, as its author, under the
 * containment guard), without recording anything; tenant_verify()
 * replays histories into a scratch schema with it.
 */
extern double tm_run_tenant_script(const TmScript *script, const char *schema,
								   Oid nspoid, const char *version,
								   const char *name, const char *author);

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

/*
 * The script statement tm_execute_statement() runs as SPI's one-shot plan
 * (copyin.c).  tm_oneshot_utility(), called by the ProcessUtility hook:
 * true if this call is that statement's own (its tree may then be changed
 * and needs no protecting copy), after marking a new empty table's
 * foreign keys as needing no check; the mark is spent by the first call.
 * tm_oneshot_end() clears it (on error and abort).
 */
extern bool tm_oneshot_utility(Node *parsetree, const char *queryString,
							   ProcessUtilityContext context);
extern void tm_oneshot_end(void);

/*---- Row level security (rls.c) ----*/

/* tenant_migrate.tenant_setting: the setting that holds the tenant key */
extern char *tm_tenant_setting;

/* Defines tenant_migrate.tenant_setting and tenant_migrate.current_tenant (_PG_init) */
extern void tm_rls_init(void);

/*
 * Sets the tenant context for one script at the current GUC nesting level:
 * the setting named by tenant_migrate.tenant_setting to key and
 * tenant_migrate.current_tenant to schema (NULL: empty, no tenant).  The
 * caller's AtEOXact_GUC of that level, or an abort, puts both back.
 */
extern void tm_rls_set_context(const char *schema, const char *key,
							   GucContext context);

/*---- Tenant roles (roles.c) ----*/

extern bool tm_create_tenant_roles;	/* tenant_migrate.create_tenant_roles */

/* Defines tenant_migrate.create_tenant_roles and tenant_role_group (_PG_init) */
extern void tm_roles_init(void);

/*
 * Name of the tenant role of schema: schema || '_role', or, when that
 * would pass 63 bytes, the first 49 bytes of schema, '_', 8 hex digits of
 * the SHA-256 of schema, then '_role'.
 */
extern char *tm_tenant_role_name(const char *schema);

/*
 * Creates (or completes) the tenant role of a registered tenant's schema
 * as the caller, see create_tenant_role(); returns its name.  SPI must be
 * connected.
 */
extern char *tm_create_tenant_role(const char *schema, Oid nspoid);

/*
 * Drops the tenant role of schema, as the caller (who needs CREATEROLE).
 * For drop_tenant_schema(): call it in the same transaction, before or
 * after DROP SCHEMA.  If the schema still exists, first revokes what the
 * role was granted there (privileges on the schema, its tables and
 * sequences, and default privileges in it); a dropped schema took those
 * with it.  Refuses (ERROR) a role of that name that is not this
 * database's tenant role of schema (see roles.c); missing_ok: no role is
 * not an error.  The role must have no other privileges or objects left
 * (DROP ROLE's own error lists them).  SPI must be connected.
 */
extern void tm_drop_tenant_role(const char *schema, bool missing_ok);

/*---- Verifying and adopting (verify.c) ----*/

/*
 * WARNING if a newly registered version of scope is lower than a version
 * already applied somewhere (tenant_migration_add()).
 */
extern void tm_warn_out_of_order(const char *version, const char *scope);

#endif							/* TENANT_MIGRATE_H */

/*-------------------------------------------------------------------------
 *
 * src/nontx.c
 *		Histories that need commits between their scripts:
 *		PROCEDURE create_tenant(), and the scripts fleet runs execute
 *		outside a transaction block (CREATE/DROP INDEX CONCURRENTLY,
 *		REINDEX CONCURRENTLY).
 *
 * Transaction segments
 * --------------------
 * Fleet runs and create_tenant apply a tenant's pending scripts in
 * segments (tm_apply_segment): a segment ends after a script that adds
 * enum values (ALTER TYPE ... ADD VALUE) when more scripts are pending,
 * so that a later script may use the new value, and, for an existing
 * tenant, before a script with a CONCURRENTLY step.  Each segment runs in
 * a subtransaction of the tenant's transaction, which commits after it;
 * a failure rolls back the segment it happened in (its scripts, none
 * recorded), earlier segments stay applied and recorded.  The tenant's
 * migration lock is taken at session level before the first commit and
 * held until the tenant is done (tm_lock_schema_session), so nobody else
 * migrates it between the segments.
 *
 * A script with a CONCURRENTLY step, for an existing tenant, runs
 * statement by statement, each in a transaction of its own, as psql
 * would run the file (tm_run_nontx_script): the CONCURRENTLY statement at
 * top level (ProcessUtility, PROCESS_UTILITY_TOPLEVEL; it commits on its
 * way, as CREATE INDEX CONCURRENTLY does), the others through SPI.  Each
 * runs as the script's author, under the containment guard, with the
 * tenant context and settings (run_script in runner.c, one statement).
 * Settings last until the statement's first commit: PostgreSQL builds a
 * concurrent index by OID after that, in the session's own settings.
 * Each step writes a log row (tenant_migration_log.step names it); the
 * history row is written, with the script's own log row, only after the
 * last step succeeded.  Before a CREATE INDEX CONCURRENTLY step, an
 * index of the name it creates, in the tenant schema, with indisvalid =
 * false -- what a failed or interrupted earlier attempt leaves -- is
 * dropped (DROP INDEX CONCURRENTLY, as the author, a step of its own).
 *
 * For a new tenant (create_tenant) the tables are new and empty: a
 * CONCURRENTLY step runs as the plain statement inside its segment's
 * transaction, CONCURRENTLY taken out with the lexer
 * (tm_strip_concurrently).  tenant_verify's replay does the same.
 *
 * Who commits: a fleet worker starts and commits its transactions by
 * hand; the leader (the CALL's own backend) commits through non-atomic
 * SPI between segments, and for a CONCURRENTLY script leaves SPI and its
 * transaction altogether (fleet.c) so that this file can commit by hand
 * as a worker does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "tenant_migrate.h"

#include "access/xact.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "parser/gram.h"
#include "tcop/dest.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(create_tenant);

/*---- Statements ----*/

/*
 * sql without the CONCURRENTLY of CREATE INDEX, DROP INDEX or REINDEX:
 * the keyword at parenthesis depth 0, or REINDEX's option
 * (CONCURRENTLY [value]) turned into (CONCURRENTLY false).  Found with the
 * server's lexer, so comments, literals and quoted names are never
 * touched.
 */
char *
tm_strip_concurrently(const char *sql)
{
	core_yyscan_t scanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			depth = 0;
	int			prev = 0;
	int			cut_start = -1;
	int			cut_end = -1;
	bool		option = false;
	StringInfoData buf;

	scanner = scanner_init(sql, &yyextra, &ScanKeywords, ScanKeywordTokens);
	for (;;)
	{
		int			tok = core_yylex(&yylval, &yylloc, scanner);

		if (tok == 0)
			break;
		if (cut_start >= 0 && option && cut_end < 0)
		{
			/* the option's end: its value, if any, goes with it */
			if (tok == ',' || tok == ')')
			{
				cut_end = yylloc;
				break;
			}
			prev = tok;
			continue;
		}
		if (tok == '(')
			depth++;
		else if (tok == ')')
			depth--;
		else if (tok == CONCURRENTLY && depth == 0)
		{
			cut_start = yylloc;
			cut_end = yylloc + (int) strlen("concurrently");
			break;
		}
		else if (tok == CONCURRENTLY && depth == 1 && (prev == '(' || prev == ','))
		{
			cut_start = yylloc;
			option = true;
		}
		prev = tok;
	}
	scanner_finish(scanner);
	if (cut_start < 0 || cut_end < 0)
		return pstrdup(sql);

	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, sql, cut_start);
	if (option)
		appendStringInfoString(&buf, "CONCURRENTLY false ");
	appendStringInfoString(&buf, sql + cut_end);
	return buf.data;
}

void
tm_execute_toplevel(const char *sql)
{
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	RawStmt    *rs;
	PlannedStmt *pstmt;
	QueryCompletion qc;

	if (list_length(raw) != 1)
		elog(ERROR, "a step must be exactly one statement");
	rs = linitial_node(RawStmt, raw);
	pstmt = makeNode(PlannedStmt);
	pstmt->commandType = CMD_UTILITY;
	pstmt->canSetTag = true;
	pstmt->utilityStmt = rs->stmt;
	pstmt->stmt_location = rs->stmt_location;
	pstmt->stmt_len = rs->stmt_len;
	InitializeQueryCompletion(&qc);
	ProcessUtility(pstmt, sql, false, PROCESS_UTILITY_TOPLEVEL, NULL, NULL,
				   None_Receiver, &qc);
}

/*---- Transactions by hand ----*/

static void
xact_begin(MemoryContext cxt)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	MemoryContextSwitchTo(cxt);
}

static void
xact_end(MemoryContext cxt)
{
	SPI_finish();
	if (ActiveSnapshotSet())
		PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
}

/* A log row in a transaction of its own, about step (NULL: the script) */
static void
log_row(MemoryContext cxt, const char *schema, const char *version,
		const char *status, const char *error, const char *step,
		TimestampTz started, double ms, const char *invoker, bool has_step)
{
	xact_begin(cxt);
	tm_current_step = has_step ? step : NULL;
	PG_TRY();
	{
		tm_log_attempt(schema, version, "up", status,
					   (error == NULL && step != NULL && !has_step) ? step : error,
					   started, ms, invoker);
	}
	PG_FINALLY();
	{
		tm_current_step = NULL;
	}
	PG_END_TRY();
	xact_end(cxt);
}

/* How a step is named in the log: statement n of m, line, text */
static char *
step_name(const TmScript *script, int i)
{
	int			line = 1;
	const char *p;
	const char *s = script->sql + script->stmt_start[i];
	char	   *snip = tm_statement_snippet(script->sql, script->stmt_start[i],
											script->stmt_end[i]);

	/* the line of the first token, not of a comment before it */
	while (*s && (isspace((unsigned char) *s) || (s[0] == '-' && s[1] == '-')))
	{
		if (s[0] == '-')
			while (*s && *s != '\n')
				s++;
		else
			s++;
	}
	for (p = script->sql; p < s; p++)
		if (*p == '\n')
			line++;
	return psprintf("statement %d of %d, line %d: %s", i + 1, script->nstmts,
					line, snip);
}

/*
 * Before a CREATE INDEX CONCURRENTLY step: the index of that name that an
 * earlier attempt left INVALID in the tenant schema is dropped, as the
 * script's author, with DROP INDEX CONCURRENTLY.  Returns the step name of
 * the drop, or NULL if there was nothing to drop.  Outside a transaction
 * on entry and on return.
 */
static char *
drop_invalid_leftover(const char *schema, Oid nspoid, const TmPending *p,
					  int stmt, MemoryContext cxt)
{
	char	   *sql = tm_script_render(p->up, stmt, schema);
	List	   *raw = raw_parser(sql, RAW_PARSE_DEFAULT);
	IndexStmt  *is;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	bool		found;
	char	   *drop;
	Oid			role;
	Oid			save_userid;
	int			save_sec_context;

	if (list_length(raw) != 1 || !IsA(linitial_node(RawStmt, raw)->stmt, IndexStmt))
		return NULL;
	is = (IndexStmt *) linitial_node(RawStmt, raw)->stmt;
	if (is->idxname == NULL)
		return NULL;			/* a name PostgreSQL picks: see README */

	xact_begin(cxt);
	values[0] = ObjectIdGetDatum(nspoid);
	values[1] = CStringGetTextDatum(is->idxname);
	tm_catalog_exec("SELECT 1 FROM pg_catalog.pg_class c"
					"  JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) c.oid"
					" WHERE c.relnamespace OPERATOR(pg_catalog.=) $1"
					"   AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name"
					"   AND NOT i.indisvalid",
					2, argtypes, values, NULL, SPI_OK_SELECT);
	found = (SPI_processed > 0);
	/* the drop must be the transaction's first action: no SPI, no writes */
	SPI_finish();
	MemoryContextSwitchTo(cxt);
	if (!found)
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		return NULL;
	}

	drop = psprintf("DROP INDEX CONCURRENTLY IF EXISTS %s.%s",
					quote_identifier(schema), quote_identifier(is->idxname));
	role = get_role_oid(p->author, false);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		tm_execute_toplevel(drop);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	if (ActiveSnapshotSet())
		PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return psprintf("before statement %d: dropped index %s.%s, left INVALID by an earlier attempt",
					stmt + 1, quote_identifier(schema), quote_identifier(is->idxname));
}

ErrorData *
tm_run_nontx_script(const char *schema, Oid nspoid, TmPending *p,
					MemoryContext cxt)
{
	const TmScript *script = p->up;
	TimestampTz started = GetCurrentTimestamp();
	double		total = 0;
	char	   *key;
	char	   *invoker;
	bool		has_step;
	Oid			save_userid;
	int			save_sec_context;
	int			i;

	MemoryContextSwitchTo(cxt);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	xact_begin(cxt);
	key = tm_tenant_key(schema);
	invoker = tm_catalog_invoker();
	/* the log's step column came with 1.1 (update pending: in the text) */
	has_step = OidIsValid(get_relname_relid("tenant_migration_log", PG_PUBLIC_NAMESPACE)) &&
		get_attnum(get_relname_relid("tenant_migration_log", PG_PUBLIC_NAMESPACE), "step") != InvalidAttrNumber;
	xact_end(cxt);

	for (i = 0; i < script->nstmts; i++)
	{
		char	   *step;
		volatile TimestampTz stmt_started;
		volatile double ms = 0;
		ErrorData  *volatile edata = NULL;

		if (script->stmt_action[i] == TM_STMT_SKIP)
			continue;
		step = step_name(script, i);
		stmt_started = GetCurrentTimestamp();
		strlcpy(tm_current_version, p->version, sizeof(tm_current_version));
		PG_TRY();
		{
			if (script->stmt_action[i] == TM_STMT_CONCURRENTLY)
			{
				char	   *dropped = drop_invalid_leftover(schema, nspoid, p, i, cxt);

				if (dropped != NULL)
					log_row(cxt, schema, p->version, "ok", NULL, dropped,
							stmt_started, 0, invoker, has_step);
				stmt_started = GetCurrentTimestamp();
				SetCurrentStatementStartTimestamp();
				StartTransactionCommand();
				MemoryContextSwitchTo(cxt);
				PushActiveSnapshot(GetTransactionSnapshot());
				ms = tm_run_step(p, schema, nspoid, i, key);
				MemoryContextSwitchTo(cxt);
				if (ActiveSnapshotSet())
					PopActiveSnapshot();
				CommitTransactionCommand();
				MemoryContextSwitchTo(cxt);
			}
			else
			{
				xact_begin(cxt);
				ms = tm_run_step(p, schema, nspoid, i, key);
				xact_end(cxt);
			}
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			AbortCurrentTransaction();
			MemoryContextSwitchTo(cxt);
			/* an abort puts back the user its transaction started with */
			SetUserIdAndSecContext(save_userid, save_sec_context);
		}
		PG_END_TRY();
		tm_current_version[0] = '\0';

		if (edata != NULL)
		{
			/* a cancel is not a failed step: the caller stops */
			if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
				log_row(cxt, schema, p->version, "failed", tm_error_text(edata),
						step, stmt_started,
						(double) (GetCurrentTimestamp() - stmt_started) / 1000.0,
						invoker, has_step);
			return edata;
		}
		total += ms;
		log_row(cxt, schema, p->version, "ok", NULL, step, stmt_started, ms,
				invoker, has_step);
	}

	/* every step succeeded: the history row, and the script's log row */
	xact_begin(cxt);
	tm_record_applied(schema, p, false, total, started, invoker);
	xact_end(cxt);
	return NULL;
}

/*---- create_tenant ----*/

/*
 * PROCEDURE create_tenant(tenant_key text, display_name text DEFAULT NULL)
 *
 * Creates and registers the schema (and the tenant role when
 * tenant_migrate.create_tenant_roles is on) and commits; then applies the
 * tenant's migrations segment by segment (TM_APPLY_NEW_TENANT), committing
 * after each.  A failure rolls back its segment, is logged and committed,
 * and is raised again: the tenant stays, with what succeeded applied.
 */
Datum
create_tenant(PG_FUNCTION_ARGS)
{
	char	   *key = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	text	   *display_name = PG_ARGISNULL(1) ? NULL : PG_GETARG_TEXT_PP(1);
	char	   *schema;
	Oid			nspoid;
	MemoryContext cxt;
	TmKeepSet  *keep;
	TmScriptCache cache;
	char	   *invoker;

	if (fcinfo->context == NULL || !IsA(fcinfo->context, CallContext) ||
		castNode(CallContext, fcinfo->context)->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("create_tenant cannot run inside a transaction block"),
				 errdetail("It commits after creating the tenant and between migration scripts that need a commit, such as one adding an enum value that a later one uses."),
				 errhint("Run CALL create_tenant(...) on its own, outside BEGIN ... COMMIT and not from a function, or use create_tenant_schema() for a history that needs no commit.")));

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	/* the SPI procedure context survives the commits */
	cxt = CurrentMemoryContext;
	invoker = tm_catalog_invoker();

	schema = tm_tenant_create(key, display_name, &nspoid);
	/* nobody migrates it from its first commit until we are done */
	(void) tm_lock_schema_session(nspoid, false);
	PG_TRY();
	{
		TmPending  *stopped;

		if (tm_create_tenant_roles)
			(void) tm_create_tenant_role(schema, nspoid);
		SPI_commit();
		MemoryContextSwitchTo(cxt);

		keep = tm_keepset_build();
		cache.cxt = cxt;
		cache.entries = NIL;
		do
		{
			ResourceOwner owner = CurrentResourceOwner;
			ErrorData  *volatile edata = NULL;

			stopped = NULL;
			BeginInternalSubTransaction(NULL);
			MemoryContextSwitchTo(cxt);
			PG_TRY();
			{
				(void) tm_apply_segment(schema, nspoid, NULL, keep, &cache,
										TM_APPLY_NEW_TENANT, &stopped);
				tm_subxact_release(cxt, owner);
			}
			PG_CATCH();
			{
				edata = tm_subxact_abort(cxt, owner);
			}
			PG_END_TRY();

			if (edata != NULL)
			{
				/* the failure, durably, like a fleet run's failed tenant */
				if (tm_current_version[0] != '\0' &&
					edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
				{
					tm_log_attempt(schema, tm_current_version, "up", "failed",
								   tm_error_text(edata), 0, 0, invoker);
					SPI_commit();
					MemoryContextSwitchTo(cxt);
				}
				tm_current_version[0] = '\0';
				ReThrowError(edata);
			}
			SPI_commit();
			MemoryContextSwitchTo(cxt);
		} while (stopped != NULL);
	}
	PG_FINALLY();
	{
		tm_unlock_schema_session();
	}
	PG_END_TRY();

	SPI_finish();
	PG_RETURN_VOID();
}

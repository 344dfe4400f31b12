/*-------------------------------------------------------------------------
 *
 * src/copyin.c
 *		Executing one statement of a compiled script for the runner, and
 *		COPY ... FROM STDIN in a migration script, with its rows taken from
 *		the script itself (pg_dump's data sections, seed data).
 *
 * A script runs on the server, where there is no client to send the rows:
 * the statement runs as the server's COPY with a data source callback that
 * reads the rows following it in the script, up to the line "\." (the
 * rewriter finds them, rewrite.c).  The statement was rendered for the
 * tenant like any other, and runs inside run_script() as the script's
 * author, so the same privilege checks as DoCopy() apply: INSERT on the
 * columns, no row level security (as COPY FROM refuses it), no read-only
 * transaction.  The rows are in the server's encoding (they came in as
 * text), so any ENCODING option is replaced by it.
 *
 * A foreign key added by ALTER TABLE to a table the same transaction
 * created, and that has no rows, is created valid without the check query
 * (skip_empty_fk_validation), as CREATE TABLE creates its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/sysattr.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/copy.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "storage/bufmgr.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

/* The rows being fed: the callback has no argument of its own */
static const char *copy_data = NULL;
static int	copy_len = 0;
static int	copy_pos = 0;

static int
copy_read_cb(void *outbuf, int minread, int maxread)
{
	int			n = Min(maxread, copy_len - copy_pos);

	CHECK_FOR_INTERRUPTS();
	if (n <= 0)
		return 0;
	memcpy(outbuf, copy_data + copy_pos, n);
	copy_pos += n;
	return n;
}

uint64
tm_copy_from_text(const char *stmt_sql, const char *data, int len)
{
	List	   *raw = raw_parser(stmt_sql, RAW_PARSE_DEFAULT);
	CopyStmt   *stmt;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	RangeTblEntry *rte;
	Relation	rel;
	Node	   *whereClause = NULL;
	List	   *attnums;
	List	   *options = NIL;
	ListCell   *lc;
	CopyFromState cstate;
	uint64		processed;
	const char *save_data = copy_data;
	int			save_len = copy_len;
	int			save_pos = copy_pos;

	if (list_length(raw) != 1 ||
		!IsA(linitial_node(RawStmt, raw)->stmt, CopyStmt))
		elog(ERROR, "not a COPY statement");
	stmt = (CopyStmt *) linitial_node(RawStmt, raw)->stmt;
	if (!stmt->is_from || stmt->filename != NULL || stmt->is_program ||
		stmt->relation == NULL)
		elog(ERROR, "not a COPY FROM STDIN statement");

	/* see what earlier statements of the script did */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());

	pstate = make_parsestate(NULL);
	pstate->p_sourcetext = stmt_sql;

	/* as DoCopy() does for COPY FROM */
	rel = table_openrv(stmt->relation, RowExclusiveLock);
	nsitem = addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock,
										   NULL, false, false);
	rte = nsitem->p_rte;
	rte->requiredPerms = ACL_INSERT;
	if (stmt->whereClause)
	{
		addNSItemToQuery(pstate, nsitem, false, true, true);
		whereClause = transformExpr(pstate, stmt->whereClause, EXPR_KIND_COPY_WHERE);
		whereClause = coerce_to_boolean(pstate, whereClause, "WHERE");
		assign_expr_collations(pstate, whereClause);
		whereClause = eval_const_expressions(NULL, whereClause);
		whereClause = (Node *) canonicalize_qual((Expr *) whereClause, false);
		whereClause = (Node *) make_ands_implicit((Expr *) whereClause);
	}
	attnums = CopyGetAttnums(RelationGetDescr(rel), rel, stmt->attlist);
	foreach(lc, attnums)
		rte->insertedCols = bms_add_member(rte->insertedCols,
										   lfirst_int(lc) - FirstLowInvalidHeapAttributeNumber);
	ExecCheckRTPerms(pstate->p_rtable, true);
	if (check_enable_rls(rte->relid, InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("COPY FROM not supported with row-level security"),
				 errhint("Use INSERT statements instead.")));
	if (XactReadOnly && !rel->rd_islocaltemp)
		PreventCommandIfReadOnly("COPY FROM");

	foreach(lc, stmt->options)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, "encoding") != 0)
			options = lappend(options, d);
	}
	options = lappend(options,
					  makeDefElem("encoding",
								  (Node *) makeString(pstrdup(GetDatabaseEncodingName())), -1));

	copy_data = data;
	copy_len = len;
	copy_pos = 0;
	PG_TRY();
	{
		cstate = BeginCopyFrom(pstate, rel, whereClause, NULL, false,
							   copy_read_cb, stmt->attlist, options);
		processed = CopyFrom(cstate);
		EndCopyFrom(cstate);
	}
	PG_FINALLY();
	{
		copy_data = save_data;
		copy_len = save_len;
		copy_pos = save_pos;
	}
	PG_END_TRY();

	table_close(rel, NoLock);
	free_parsestate(pstate);
	PopActiveSnapshot();
	CommandCounterIncrement();
	return processed;
}

/* The text of the script statement SPI is about to run (tm_oneshot_utility) */
static const char *oneshot_sql = NULL;

static void skip_empty_fk_validation(Node *parsetree);

/*
 * Whether this ProcessUtility call is the one-shot plan of the script
 * statement tm_execute_statement() handed to SPI_execute().  Such a plan is
 * run once and freed, so its tree needs no protecting copy (SPI asks for
 * one, readOnlyTree, to spare cached plans; 2% of a fleet run's
 * instructions), and may be changed.  Only the first call after the mark
 * can be the statement itself, and only if SPI passed its text on
 * unchanged (a one-shot plan's query string is the caller's): anything
 * run from inside it (a function's cached plans) is left as it is.
 */
bool
tm_oneshot_utility(Node *parsetree, const char *queryString,
				   ProcessUtilityContext context)
{
	bool		mine = (oneshot_sql != NULL && queryString == oneshot_sql &&
						context == PROCESS_UTILITY_QUERY);

	oneshot_sql = NULL;
	if (mine)
		skip_empty_fk_validation(parsetree);
	return mine;
}

void
tm_oneshot_end(void)
{
	oneshot_sql = NULL;
}

/* SPI_execute() of a script statement, marked for tm_oneshot_utility() */
static int
execute_oneshot(const char *sql)
{
	int			rc;

	oneshot_sql = sql;
	rc = SPI_execute(sql, false, 0);
	oneshot_sql = NULL;
	return rc;
}

/*
 * ALTER TABLE ... ADD FOREIGN KEY on a plain table that this transaction
 * created and that has no rows has nothing to validate: its keys are
 * marked as CREATE TABLE marks its own (skip_validation; still created
 * valid), which spares the query that checks every existing row and is
 * planned anew for every key.  pg_dump, Rails and Prisma add every foreign
 * key this way right after creating the table, so a new tenant (and every
 * tenant of a fleet run adding tables) pays that query dozens of times.
 * A table with any page (rows, or rows deleted since), a table from an
 * earlier transaction, a partitioned table or one with children is left
 * alone.  parsetree must be a tree the caller may change.
 */
static void
skip_empty_fk_validation(Node *parsetree)
{
	AlterTableStmt *stmt;
	List	   *fks = NIL;
	ListCell   *lc;
	Oid			relid;
	Relation	rel;
	bool		empty;

	if (!IsA(parsetree, AlterTableStmt))
		return;
	stmt = (AlterTableStmt *) parsetree;
	if (stmt->objtype != OBJECT_TABLE)
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);
		Constraint *con = (Constraint *) cmd->def;

		if (cmd->subtype == AT_AddConstraint && con != NULL &&
			IsA(con, Constraint) && con->contype == CONSTR_FOREIGN &&
			!con->skip_validation)
			fks = lappend(fks, con);
	}
	if (fks == NIL)
		return;

	/* the table was created in this transaction: this session locks it */
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	rel = RelationIdGetRelation(relid);
	if (rel == NULL)
		return;
	empty = (rel->rd_createSubid != InvalidSubTransactionId &&
			 rel->rd_rel->relkind == RELKIND_RELATION &&
			 !rel->rd_rel->relhassubclass &&
			 RelationGetNumberOfBlocks(rel) == 0);
	RelationClose(rel);
	if (!empty)
		return;

	foreach(lc, fks)
		((Constraint *) lfirst(lc))->skip_validation = true;
	list_free(fks);
}

/* Error context: why a statement may fail for a later tenant */
static void
note_context(void *arg)
{
	errcontext("%s", (const char *) arg);
}

/*
 * Runs statement i of script, rendered as sql, through SPI, or COPY FROM
 * STDIN with its rows; returns the SPI result code.  tenant: a tenant
 * script, where a CREATE EXTENSION without SCHEMA runs with search_path =
 * public, so that the extension lands in public (or the schema its control
 * file names) for every tenant instead of in the first tenant's schema.
 */
int
tm_execute_statement(const TmScript *script, int i, const char *sql,
					 const char *tenant_schema)
{
	ErrorContextCallback notecb;
	int			rc;
	bool		tenant = (tenant_schema != NULL);

	/*
	 * A recorded rollback names its own tenant's schema: that one is not
	 * "another schema"
	 */
	bool		note = tenant && script->stmt_note[i] != NULL &&
		strcmp(script->stmt_other_schema[i], tenant_schema) != 0;

	if (note)
	{
		notecb.callback = note_context;
		notecb.arg = script->stmt_note[i];
		notecb.previous = error_context_stack;
		error_context_stack = &notecb;
	}

	if (script->stmt_action[i] == TM_STMT_COPY_IN)
	{
		(void) tm_copy_from_text(sql, script->sql + script->copy_start[i],
								 script->copy_end[i] - script->copy_start[i]);
		rc = SPI_OK_UTILITY;
	}
	else if (tenant && script->stmt_action[i] == TM_STMT_EXTENSION)
	{
		int			nestlevel = NewGUCNestLevel();

		(void) set_config_option("search_path", TM_SHARED_SCHEMA,
								 superuser() ? PGC_SUSET : PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		rc = execute_oneshot(sql);
		AtEOXact_GUC(true, nestlevel);
	}
	else
		rc = execute_oneshot(sql);

	if (note)
		error_context_stack = notecb.previous;
	return rc;
}

/*-------------------------------------------------------------------------
 *
 * src/rewrite.c
 *		Rewriting "public" to a tenant schema with the server's own lexer,
 *		and refusing statements that cannot run inside a migration.
 *
 * A script is compiled once: raw_parser() splits it into top-level
 * statements (and rejects malformed SQL before anything runs), a look at
 * each parse tree refuses transaction control, search_path and role
 * changes and statements that cannot run in a transaction block, and
 * core_yylex() finds the byte ranges of every "public" that names the
 * schema.  Rendering the script for a tenant then only splices the quoted
 * schema name into those ranges, so a fleet run lexes each script once, not
 * once per tenant.
 *
 * What is rewritten (see DESIGN.md, "Rewriting public for a tenant"):
 *	- public / PUBLIC / "public" followed by "." (a qualifier);
 *	- public after SCHEMA (ON SCHEMA public, IN SCHEMA public, SET SCHEMA ...);
 *	- regclass-style literals: 'public.t'::regclass and friends, and the
 *	  first argument of nextval(), setval(), to_regclass() ...;
 *	- public in a function's own SET search_path clause;
 *	- by the same rules, bodies of CREATE FUNCTION/PROCEDURE (SQL and
 *	  PL/pgSQL) and DO blocks, dollar-quoted or not.
 * What is kept: public.<name> where <name> belongs to an extension (the
 * extension's own tables included) or is listed in
 * tenant_migrate.shared_objects; anything in CREATE/ALTER/DROP EXTENSION;
 * PUBLIC the role; "Public"; ordinary literals and comments.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "parser/scanner.h"
#include "parser/gram.h"
#include "parser/scansup.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"

PG_FUNCTION_INFO_V1(tenant_migration_rewrite);

/* How deep function bodies inside function bodies are followed */
#define MAX_BODY_DEPTH	8

/* Longest statement excerpt shown in an error */
#define SNIPPET_LEN		200

/* One token of the text being scanned */
typedef struct LexToken
{
	int			tok;			/* token code from gram.h, or a single char */
	int			start;			/* byte range in the scanned text */
	int			end;
	const char *str;			/* identifier/literal value, keyword text */
	bool		is_kw;			/* str is a keyword's canonical spelling */
} LexToken;

/* Where a text being scanned is going to run */
typedef enum ScanMode
{
	SCAN_TOP,					/* a top-level script: runs now */
	SCAN_DO_BODY,				/* a DO block: runs now, inside the migration */
	SCAN_FUNC_BODY				/* a function body: runs later, when called */
} ScanMode;

/* The kind of statement a token belongs to */
typedef enum StmtKind
{
	STMT_PLAIN,
	STMT_FUNCTION,				/* CREATE [OR REPLACE] FUNCTION/PROCEDURE, ALTER
								 * FUNCTION/PROCEDURE/ROUTINE */
	STMT_EXTENSION,				/* CREATE/ALTER/DROP EXTENSION */
	STMT_DO,
	STMT_IMPORT					/* IMPORT FOREIGN SCHEMA remote ... INTO local */
} StmtKind;

/* Growing list of [start, end) pairs */
typedef struct SpanList
{
	int			n;
	int			cap;
	int		   *start;
	int		   *end;
} SpanList;

/* State passed down while scanning a text and the bodies inside it */
typedef struct ScanCtx
{
	const TmKeepSet *keep;
	const char *what;			/* for error messages */
} ScanCtx;

/* Error context while compiling: names the script, places syntax errors */
typedef struct CompileErrCtx
{
	const char *sql;
	const char *what;
} CompileErrCtx;

/*---- Local functions ----*/

static void compile_error_callback(void *arg);
static void check_statement(Node *stmt, const char *sql, int start, int end);
static void scan_text(const char *text, ScanCtx *ctx, ScanMode mode,
					  int depth, SpanList *spans);
static void scan_statement(const char *text, LexToken *toks, int a, int b,
						   ScanCtx *ctx, ScanMode mode, int depth,
						   SpanList *spans);
static void scan_body(const char *text, const LexToken *t, ScanCtx *ctx,
					  ScanMode mode, int depth, SpanList *spans);
static int *map_quoted_literal(const char *text, const LexToken *t,
							   const char *value, int vlen);
static void add_literal_span(const char *text, const LexToken *t,
							 const TmKeepSet *keep, bool whole_value,
							 SpanList *spans);
static void span_add(SpanList *spans, int start, int end);
static int	span_cmp(const void *a, const void *b);
static bool keep_contains(const TmKeepSet *keep, const char *name);
static char *snippet(const char *text, int start, int end);
static void refuse_statement(int sqlstate, const char *msg, const char *hint,
							 const char *text, int start, int end);

/* Token helpers */
static inline bool
tok_is_kw(const LexToken *t, const char *kw)
{
	return t->is_kw && strcmp(t->str, kw) == 0;
}

static inline bool
tok_is_ident(const LexToken *t, const char *name)
{
	return t->tok == IDENT && strcmp(t->str, name) == 0;
}

static inline bool
tok_is_public(const LexToken *t)
{
	return tok_is_ident(t, "public");
}

/*---- Keep set ----*/

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Names in public that tenant migrations keep referring to as public:
 * members of any extension (our own tables among them) and the names in
 * tenant_migrate.shared_objects.  Built once per call, not per statement.
 */
TmKeepSet *
tm_keepset_build(void)
{
	TmKeepSet  *keep = palloc0(sizeof(TmKeepSet));
	List	   *extra = NIL;
	char	   *raw;
	ListCell   *lc;
	uint64		i;
	int			n = 0;

	tm_catalog_exec("WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public'),"
				" ext AS (SELECT classid, objid FROM pg_catalog.pg_depend"
				"         WHERE deptype = 'e'"
				"           AND refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass)"
				" SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c JOIN ns ON c.relnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ext.objid = c.oid"
				" UNION SELECT p.proname::pg_catalog.text FROM pg_catalog.pg_proc p JOIN ns ON p.pronamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND ext.objid = p.oid"
				" UNION SELECT t.typname::pg_catalog.text FROM pg_catalog.pg_type t JOIN ns ON t.typnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND ext.objid = t.oid"
				" UNION SELECT o.oprname::pg_catalog.text FROM pg_catalog.pg_operator o JOIN ns ON o.oprnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND ext.objid = o.oid"
				" UNION SELECT c.opcname::pg_catalog.text FROM pg_catalog.pg_opclass c JOIN ns ON c.opcnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_opclass'::pg_catalog.regclass AND ext.objid = c.oid"
				" UNION SELECT f.opfname::pg_catalog.text FROM pg_catalog.pg_opfamily f JOIN ns ON f.opfnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_opfamily'::pg_catalog.regclass AND ext.objid = f.oid"
				" UNION SELECT l.collname::pg_catalog.text FROM pg_catalog.pg_collation l JOIN ns ON l.collnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_collation'::pg_catalog.regclass AND ext.objid = l.oid"
				" UNION SELECT g.cfgname::pg_catalog.text FROM pg_catalog.pg_ts_config g JOIN ns ON g.cfgnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_ts_config'::pg_catalog.regclass AND ext.objid = g.oid"
				" UNION SELECT d.dictname::pg_catalog.text FROM pg_catalog.pg_ts_dict d JOIN ns ON d.dictnamespace = ns.oid"
				"   JOIN ext ON ext.classid = 'pg_catalog.pg_ts_dict'::pg_catalog.regclass AND ext.objid = d.oid",
				0, NULL, NULL, NULL, SPI_OK_SELECT);

	/* shared_objects: "name" or "public.name"; names in other schemas never match */
	raw = pstrdup(tm_shared_objects ? tm_shared_objects : "");
	if (!SplitIdentifierString(raw, ',', &extra))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in tenant_migrate.shared_objects")));

	keep->names = palloc(sizeof(char *) * (SPI_processed + list_length(extra) + 1));
	for (i = 0; i < SPI_processed; i++)
		keep->names[n++] = tm_spi_getstr(i, 1);
	foreach(lc, extra)
	{
		char	   *name = (char *) lfirst(lc);
		char	   *dot = strchr(name, '.');

		if (dot == NULL)
			keep->names[n++] = pstrdup(name);
		else if (dot - name == 6 && strncmp(name, "public", 6) == 0)
			keep->names[n++] = pstrdup(dot + 1);
	}
	keep->nnames = n;
	qsort(keep->names, n, sizeof(char *), name_cmp);
	return keep;
}

static bool
keep_contains(const TmKeepSet *keep, const char *name)
{
	if (keep == NULL || keep->nnames == 0 || name == NULL)
		return false;
	return bsearch(&name, keep->names, keep->nnames, sizeof(char *),
				   name_cmp) != NULL;
}

/*---- Compiling a script ----*/

TmScript *
tm_script_compile(const char *sql, const TmKeepSet *keep, const char *what)
{
	TmScript   *script = palloc0(sizeof(TmScript));
	ErrorContextCallback errcb;
	CompileErrCtx errctx;
	List	   *raw;
	ListCell   *lc;
	int			len = strlen(sql);
	int			i = 0;

	script->sql = sql;

	errctx.sql = sql;
	errctx.what = what;
	errcb.callback = compile_error_callback;
	errcb.arg = &errctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	raw = raw_parser(sql, RAW_PARSE_DEFAULT);

	script->what = what;
	script->nstmts = list_length(raw);
	script->stmt_start = palloc(sizeof(int) * (script->nstmts + 1));
	script->stmt_end = palloc(sizeof(int) * (script->nstmts + 1));
	script->creates_extension = palloc0(sizeof(bool) * (script->nstmts + 1));
	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);
		int			start = rs->stmt_location;
		int			end = rs->stmt_len > 0 ? start + rs->stmt_len : len;

		check_statement(rs->stmt, sql, start, end);
		script->creates_extension[i] = IsA(rs->stmt, CreateExtensionStmt);
		script->stmt_start[i] = start;
		script->stmt_end[i] = end;
		i++;
	}

	/* The lexer pass also refuses set_config('search_path', ...) and friends */
	{
		SpanList	spans = {0};
		ScanCtx		ctx;

		ctx.keep = keep;
		ctx.what = what;
		scan_text(sql, &ctx, SCAN_TOP, 0, &spans);
		if (keep != NULL && spans.n > 0)
		{
			int		   *pairs = palloc(sizeof(int) * 2 * spans.n);
			int			k,
						m = 0;

			for (k = 0; k < spans.n; k++)
			{
				pairs[2 * k] = spans.start[k];
				pairs[2 * k + 1] = spans.end[k];
			}
			qsort(pairs, spans.n, sizeof(int) * 2, span_cmp);
			script->span_start = palloc(sizeof(int) * spans.n);
			script->span_end = palloc(sizeof(int) * spans.n);
			for (k = 0; k < spans.n; k++)
			{
				/* a span is never found twice, but never splice one twice */
				if (m > 0 && pairs[2 * k] < script->span_end[m - 1])
					continue;
				script->span_start[m] = pairs[2 * k];
				script->span_end[m] = pairs[2 * k + 1];
				m++;
			}
			script->nspans = m;
		}
	}

	error_context_stack = errcb.previous;
	return script;
}

/*
 * Like SPI's own callback: a syntax error position refers to the script,
 * not to the query the client sent, so report it as an internal query.
 */
static void
compile_error_callback(void *arg)
{
	CompileErrCtx *ctx = (CompileErrCtx *) arg;
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery(ctx->sql);
	}
	if (geterrcode() == ERRCODE_SYNTAX_ERROR)
		errhint("Fix the script's SQL; QUERY shows the script and where the parser stopped.");
	errcontext("%s", ctx->what);
}

char *
tm_script_render(const TmScript *script, int stmt, const char *schema)
{
	StringInfoData buf;
	const char *quoted = schema ? quote_identifier(schema) : NULL;
	int			start,
				end,
				pos,
				k;

	if (stmt < 0)
	{
		start = 0;
		end = strlen(script->sql);
	}
	else
	{
		start = script->stmt_start[stmt];
		end = script->stmt_end[stmt];
	}

	initStringInfo(&buf);
	pos = start;
	for (k = 0; quoted != NULL && k < script->nspans; k++)
	{
		if (script->span_start[k] < start)
			continue;
		if (script->span_end[k] > end)
			break;
		appendBinaryStringInfo(&buf, script->sql + pos, script->span_start[k] - pos);
		appendStringInfoString(&buf, quoted);
		pos = script->span_end[k];
	}
	appendBinaryStringInfo(&buf, script->sql + pos, end - pos);
	return buf.data;
}

/*---- Refusing statements ----*/

static void
refuse_statement(int sqlstate, const char *msg, const char *hint,
				 const char *text, int start, int end)
{
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s", msg),
			 errdetail("The statement is: %s", snippet(text, start, end)),
			 errhint("%s", hint)));
}

/* Parse-tree checks; a statement that passes here can run under SPI */
static void
check_statement(Node *stmt, const char *sql, int start, int end)
{
	const char *notx_hint = "A migration runs inside a transaction; run this statement outside tenant_migrate, or use its transactional form.";
	char		msg[256];

	switch (nodeTag(stmt))
	{
		case T_TransactionStmt:
			snprintf(msg, sizeof(msg), "%s is not allowed in a migration",
					 CreateCommandName(stmt));
			refuse_statement(ERRCODE_INVALID_TRANSACTION_TERMINATION, msg,
							 "Each migration already runs in a transaction of its own; remove BEGIN, COMMIT, ROLLBACK and SAVEPOINT statements.",
							 sql, start, end);
			break;
		case T_VariableSetStmt:
			{
				VariableSetStmt *v = (VariableSetStmt *) stmt;

				if (v->kind == VAR_RESET_ALL ||
					(v->name != NULL &&
					 (strcmp(v->name, "search_path") == 0 ||
					  strcmp(v->name, "role") == 0 ||
					  strcmp(v->name, "session_authorization") == 0)))
				{
					snprintf(msg, sizeof(msg), "a migration must not change %s",
							 v->kind == VAR_RESET_ALL ? "all settings" :
							 strcmp(v->name, "search_path") == 0 ? "search_path" : "the current role");
					refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED, msg,
									 "tenant_migrate sets search_path to the tenant schema and public for each migration and runs it as the calling role; remove the statement.",
									 sql, start, end);
				}
				break;
			}
		case T_IndexStmt:
			if (((IndexStmt *) stmt)->concurrent)
				refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
								 "CREATE INDEX CONCURRENTLY cannot run inside a migration",
								 notx_hint, sql, start, end);
			break;
		case T_DropStmt:
			if (((DropStmt *) stmt)->concurrent)
				refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
								 "DROP INDEX CONCURRENTLY cannot run inside a migration",
								 notx_hint, sql, start, end);
			break;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;
				ListCell   *lc;
				bool		concurrently = false;

				foreach(lc, r->params)
				{
					DefElem    *opt = (DefElem *) lfirst(lc);

					if (strcmp(opt->defname, "concurrently") == 0)
						concurrently = true;
				}
				if (concurrently || r->kind == REINDEX_OBJECT_DATABASE ||
					r->kind == REINDEX_OBJECT_SYSTEM)
					refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
									 "this REINDEX cannot run inside a migration",
									 notx_hint, sql, start, end);
				break;
			}
		case T_VacuumStmt:
			if (((VacuumStmt *) stmt)->is_vacuumcmd)
				refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
								 "VACUUM cannot run inside a migration",
								 notx_hint, sql, start, end);
			break;
		case T_ClusterStmt:
			if (((ClusterStmt *) stmt)->relation == NULL)
				refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
								 "CLUSTER without a table cannot run inside a migration",
								 notx_hint, sql, start, end);
			break;
		case T_AlterTableStmt:
			{
				ListCell   *lc;

				foreach(lc, ((AlterTableStmt *) stmt)->cmds)
				{
					AlterTableCmd *cmd = (AlterTableCmd *) lfirst(lc);

					if ((cmd->subtype == AT_DetachPartition &&
						 ((PartitionCmd *) cmd->def)->concurrent) ||
						cmd->subtype == AT_DetachPartitionFinalize)
						refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
										 "DETACH PARTITION CONCURRENTLY cannot run inside a migration",
										 notx_hint, sql, start, end);
				}
				break;
			}
		case T_CreatedbStmt:
		case T_DropdbStmt:
		case T_CreateTableSpaceStmt:
		case T_DropTableSpaceStmt:
		case T_AlterSystemStmt:
			snprintf(msg, sizeof(msg), "%s cannot run inside a migration",
					 CreateCommandName(stmt));
			refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION, msg, notx_hint,
							 sql, start, end);
			break;
		case T_DiscardStmt:
			if (((DiscardStmt *) stmt)->target == DISCARD_ALL)
				refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
								 "DISCARD ALL cannot run inside a migration",
								 notx_hint, sql, start, end);
			break;
		case T_CopyStmt:
			{
				CopyStmt   *c = (CopyStmt *) stmt;

				if (c->filename == NULL && !c->is_program)
					refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
									 "COPY to or from the client cannot run inside a migration",
									 "Load data with INSERT statements instead.",
									 sql, start, end);
				break;
			}
		default:
			break;
	}
}

/*---- Scanning with the server's lexer ----*/

/*
 * Lexes text and appends to spans the byte ranges (relative to text) of
 * every "public" to rewrite.  Tokens are collected first so that the rules
 * can look both ways; statements are cut at ";".
 */
static void
scan_text(const char *text, ScanCtx *ctx, ScanMode mode, int depth,
		  SpanList *spans)
{
	core_yyscan_t scanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	LexToken   *toks;
	int			ntoks = 0;
	int			cap = 64;
	int			a;
	int			i;
	int			atomic_depth = 0;

	toks = palloc(sizeof(LexToken) * cap);
	scanner = scanner_init(text, &yyextra, &ScanKeywords, ScanKeywordTokens);
	for (;;)
	{
		int			tok = core_yylex(&yylval, &yylloc, scanner);
		LexToken   *t;

		if (tok == 0)
			break;
		if (ntoks == cap)
		{
			cap *= 2;
			toks = repalloc(toks, sizeof(LexToken) * cap);
		}
		t = &toks[ntoks++];
		t->tok = tok;
		t->start = yylloc;
		/* flex leaves a NUL after the current token in scanbuf */
		t->end = yylloc + strlen(yyextra.scanbuf + yylloc);
		t->is_kw = false;
		switch (tok)
		{
			case IDENT:
			case UIDENT:
			case FCONST:
			case SCONST:
			case USCONST:
			case BCONST:
			case XCONST:
			case Op:
				t->str = yylval.str;
				break;
			default:
				/* gram.h lists every keyword after the special tokens */
				t->is_kw = (tok >= ABORT_P);
				t->str = t->is_kw ? yylval.keyword : NULL;
				break;
		}
	}
	scanner_finish(scanner);

	/*
	 * Cut at ";" -- except inside a BEGIN ATOMIC ... END function body, which
	 * belongs to its CREATE FUNCTION (CASE ... END nests inside it).
	 */
	a = 0;
	for (i = 0; i <= ntoks; i++)
	{
		if (i < ntoks && tok_is_kw(&toks[i], "atomic") && i > 0 &&
			tok_is_kw(&toks[i - 1], "begin"))
			atomic_depth = 1;
		else if (i < ntoks && atomic_depth > 0 && tok_is_kw(&toks[i], "case"))
			atomic_depth++;
		else if (i < ntoks && atomic_depth > 0 && tok_is_kw(&toks[i], "end"))
			atomic_depth--;
		if (i == ntoks || (toks[i].tok == ';' && atomic_depth == 0))
		{
			if (i > a)
				scan_statement(text, toks, a, i, ctx, mode, depth, spans);
			a = i + 1;
		}
	}
	pfree(toks);
}

/* Name of the object after "public .", or NULL */
static const char *
object_name(const char *text, const LexToken *t)
{
	if (t->tok == IDENT || t->is_kw)
		return t->str;
	/* an operator: OPERATOR(public.<->) */
	if (t->tok == Op || (t->tok < 256 && strchr("+-/<>=~!@#%^&|`?", t->tok)))
		return pnstrdup(text + t->start, t->end - t->start);
	return NULL;
}

/* Is toks[i] preceded by SCHEMA, or SCHEMA IF [NOT] EXISTS? */
static bool
after_schema_keyword(const LexToken *toks, int a, int i)
{
	int			j = i - 1;

	/* ON SCHEMA a, b, public: walk back over the list */
	while (j - 1 >= a && toks[j].tok == ',' &&
		   (toks[j - 1].tok == IDENT || toks[j - 1].is_kw))
		j -= 2;
	if (j >= a && tok_is_kw(&toks[j], "exists"))
	{
		j--;
		if (j >= a && tok_is_kw(&toks[j], "not"))
			j--;
		if (j < a || !tok_is_kw(&toks[j], "if"))
			return false;
		j--;
	}
	return j >= a && tok_is_kw(&toks[j], "schema");
}

static bool
is_reg_type(const char *name)
{
	static const char *const regtypes[] = {
		"regclass", "regproc", "regprocedure", "regtype", "regoper",
		"regoperator", "regconfig", "regdictionary", "regcollation", NULL
	};
	int			k;

	for (k = 0; regtypes[k]; k++)
		if (strcmp(name, regtypes[k]) == 0)
			return true;
	return false;
}

static bool
is_regclass_function(const char *name)
{
	static const char *const funcs[] = {
		"nextval", "currval", "setval", "pg_get_serial_sequence",
		"to_regclass", "to_regtype", "to_regproc", "to_regprocedure",
		"pg_relation_size", "pg_total_relation_size", "pg_table_size",
		"pg_indexes_size", NULL
	};
	int			k;

	for (k = 0; funcs[k]; k++)
		if (strcmp(name, funcs[k]) == 0)
			return true;
	return false;
}

static void
scan_statement(const char *text, LexToken *toks, int a, int b,
			   ScanCtx *ctx, ScanMode mode, int depth, SpanList *spans)
{
	StmtKind	kind = STMT_PLAIN;
	const char *language = NULL;
	bool		rewrite_bodies;
	int			i;

	/*
	 * What kind of statement is this?  Inside a PL/pgSQL body a statement
	 * may follow BEGIN, THEN, ELSE or LOOP rather than ";".
	 */
	while (a + 1 < b && (tok_is_kw(&toks[a], "begin") || tok_is_kw(&toks[a], "then") ||
						 tok_is_kw(&toks[a], "else") || tok_is_kw(&toks[a], "loop")) &&
		   !tok_is_kw(&toks[a + 1], "atomic"))
		a++;
	if (tok_is_kw(&toks[a], "create"))
	{
		int			j = a + 1;

		if (j + 1 < b && tok_is_kw(&toks[j], "or") && tok_is_kw(&toks[j + 1], "replace"))
			j += 2;
		if (j < b && (tok_is_kw(&toks[j], "function") || tok_is_kw(&toks[j], "procedure")))
			kind = STMT_FUNCTION;
		else if (j < b && tok_is_kw(&toks[j], "extension"))
			kind = STMT_EXTENSION;
	}
	else if (a + 1 < b && tok_is_kw(&toks[a], "alter") &&
			 (tok_is_kw(&toks[a + 1], "function") ||
			  tok_is_kw(&toks[a + 1], "procedure") ||
			  tok_is_kw(&toks[a + 1], "routine")))
		kind = STMT_FUNCTION;
	else if (a + 1 < b && (tok_is_kw(&toks[a], "alter") || tok_is_kw(&toks[a], "drop")) &&
			 tok_is_kw(&toks[a + 1], "extension"))
		kind = STMT_EXTENSION;
	else if (tok_is_kw(&toks[a], "do"))
		kind = STMT_DO;
	else if (a + 1 < b && tok_is_kw(&toks[a], "import") && tok_is_kw(&toks[a + 1], "foreign"))
		kind = STMT_IMPORT;

	/* Only bodies the core lexer can read are rewritten */
	for (i = a; i + 1 < b; i++)
	{
		if (tok_is_kw(&toks[i], "language") &&
			(toks[i + 1].tok == IDENT || toks[i + 1].tok == SCONST))
			language = toks[i + 1].str;
	}
	rewrite_bodies = (language == NULL ||
					  pg_strcasecmp(language, "sql") == 0 ||
					  pg_strcasecmp(language, "plpgsql") == 0);

	/*
	 * Code that runs now (a DO block) must not change search_path or the
	 * role behind the runner's back, nor end the transaction.  Top-level
	 * statements were checked on their parse trees already.
	 */
	if (mode == SCAN_DO_BODY)
	{
		for (i = a; i < b; i++)
		{
			const LexToken *t = &toks[i];
			bool		at_start = (i == a ||
									tok_is_kw(&toks[i - 1], "begin") ||
									tok_is_kw(&toks[i - 1], "then") ||
									tok_is_kw(&toks[i - 1], "else") ||
									tok_is_kw(&toks[i - 1], "loop"));
			int			j = i + 1;

			if (!at_start)
				continue;
			if (tok_is_kw(t, "commit") || tok_is_kw(t, "rollback"))
				refuse_statement(ERRCODE_INVALID_TRANSACTION_TERMINATION,
								 "transaction control is not allowed in a migration",
								 "Each migration already runs in a transaction of its own; remove COMMIT and ROLLBACK from the DO block.",
								 text, toks[a].start, toks[b - 1].end);
			if (!tok_is_kw(t, "set") && !tok_is_kw(t, "reset"))
				continue;
			if (j < b && (tok_is_kw(&toks[j], "local") || tok_is_kw(&toks[j], "session")) &&
				j + 1 < b && !tok_is_kw(&toks[j + 1], "authorization"))
				j++;
			if (j < b && (tok_is_ident(&toks[j], "search_path") ||
						  tok_is_kw(&toks[j], "role") ||
						  tok_is_kw(&toks[j], "session") ||
						  tok_is_kw(&toks[j], "all")))
				refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
								 "a migration must not change search_path or the current role",
								 "tenant_migrate sets search_path to the tenant schema and public for each migration and runs it as the calling role; remove the statement.",
								 text, toks[a].start, toks[b - 1].end);
		}
	}

	for (i = a; i < b; i++)
	{
		const LexToken *t = &toks[i];

		if (tok_is_public(t))
		{
			if (kind == STMT_EXTENSION)
				continue;		/* extensions live in public for everyone */
			if (i + 1 < b && toks[i + 1].tok == '.')
			{
				if (i + 2 < b &&
					keep_contains(ctx->keep, object_name(text, &toks[i + 2])))
					continue;
				span_add(spans, t->start, t->end);
			}
			else if (kind == STMT_IMPORT)
			{
				/* the remote schema keeps its name; INTO names ours */
				if (i > a && tok_is_kw(&toks[i - 1], "into"))
					span_add(spans, t->start, t->end);
			}
			else if (after_schema_keyword(toks, a, i))
				span_add(spans, t->start, t->end);
			continue;
		}

		/* A function's own SET search_path = public, ... clause */
		if (kind == STMT_FUNCTION && tok_is_kw(t, "set") && i + 2 < b &&
			tok_is_ident(&toks[i + 1], "search_path") &&
			(toks[i + 2].tok == '=' || tok_is_kw(&toks[i + 2], "to")))
		{
			int			j;

			for (j = i + 3; j < b; j += 2)
			{
				const LexToken *e = &toks[j];

				if (tok_is_public(e))
					span_add(spans, e->start, e->end);
				else if (e->tok == SCONST && strcmp(e->str, "public") == 0)
					add_literal_span(text, e, NULL, true, spans);
				else if (e->tok != IDENT && e->tok != SCONST)
					break;
				if (j + 1 >= b || toks[j + 1].tok != ',')
					break;
			}
			continue;
		}

		if (t->tok != SCONST)
			continue;

		/* Function and DO bodies */
		if (kind == STMT_FUNCTION && i > a && tok_is_kw(&toks[i - 1], "as"))
		{
			if (rewrite_bodies && depth < MAX_BODY_DEPTH)
				scan_body(text, t, ctx, SCAN_FUNC_BODY, depth, spans);
			continue;
		}
		if (kind == STMT_DO && i > a && !tok_is_kw(&toks[i - 1], "language"))
		{
			if (rewrite_bodies && depth < MAX_BODY_DEPTH)
				scan_body(text, t, ctx, SCAN_DO_BODY, depth, spans);
			continue;
		}

		/* 'public.t'::regclass, ::pg_catalog.regclass */
		if (i + 2 < b && toks[i + 1].tok == TYPECAST)
		{
			int			j = i + 2;

			if (j + 2 < b && tok_is_ident(&toks[j], "pg_catalog") && toks[j + 1].tok == '.')
				j += 2;
			if (toks[j].tok == IDENT && is_reg_type(toks[j].str))
				add_literal_span(text, t, ctx->keep, false, spans);
			else if (toks[j].tok == IDENT && strcmp(toks[j].str, "regnamespace") == 0)
				add_literal_span(text, t, NULL, true, spans);
			continue;
		}

		/* CAST('public.t' AS regclass) */
		if (i >= a + 2 && toks[i - 1].tok == '(' && tok_is_kw(&toks[i - 2], "cast") &&
			i + 2 < b && tok_is_kw(&toks[i + 1], "as"))
		{
			int			j = i + 2;

			if (j + 2 < b && tok_is_ident(&toks[j], "pg_catalog") && toks[j + 1].tok == '.')
				j += 2;
			if (toks[j].tok == IDENT && is_reg_type(toks[j].str))
				add_literal_span(text, t, ctx->keep, false, spans);
			else if (tok_is_ident(&toks[j], "regnamespace"))
				add_literal_span(text, t, NULL, true, spans);
			continue;
		}

		/* regclass 'public.t' */
		if (i > a && toks[i - 1].tok == IDENT && is_reg_type(toks[i - 1].str))
		{
			add_literal_span(text, t, ctx->keep, false, spans);
			continue;
		}

		/* nextval('public.t_id_seq'), pg_catalog.setval('public.t_id_seq', 1) */
		if (i >= a + 2 && toks[i - 1].tok == '(' && toks[i - 2].tok == IDENT)
		{
			const char *fn = toks[i - 2].str;

			if (is_regclass_function(fn))
				add_literal_span(text, t, ctx->keep, false, spans);
			else if (strcmp(fn, "to_regnamespace") == 0)
				add_literal_span(text, t, NULL, true, spans);
			else if (mode != SCAN_FUNC_BODY && kind != STMT_FUNCTION &&
					 (strcmp(fn, "set_config") == 0) &&
					 (pg_strcasecmp(t->str, "search_path") == 0 ||
					  pg_strcasecmp(t->str, "role") == 0 ||
					  pg_strcasecmp(t->str, "session_authorization") == 0))
				refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
								 "a migration must not change search_path or the current role",
								 "tenant_migrate sets search_path to the tenant schema and public for each migration and runs it as the calling role; remove the set_config() call.",
								 text, toks[a].start, toks[b - 1].end);
		}
	}
}

/*
 * For a quoted literal ('...' or E'...'), the byte in the source text where
 * each byte of its value comes from, or -1 where an escape sequence made it.
 * Spans are only ever spliced where value and source bytes match verbatim.
 */
static int *
map_quoted_literal(const char *text, const LexToken *t, const char *value, int vlen)
{
	const char *raw = text + t->start;
	bool		escapes = (raw[0] != '\'') ||
		!standard_conforming_strings;
	int		   *map = palloc(sizeof(int) * (vlen + 1));
	int			r = t->start + (raw[0] == '\'' ? 1 : 2);
	int			k = 0;

	while (k < vlen)
	{
		int			n = 1;		/* value bytes this source sequence makes */
		int			len = 1;	/* its length in the source */

		if (text[r] == '\'' && text[r + 1] == '\'')
			len = 2;
		else if (text[r] == '\\' && escapes)
		{
			char		c = text[r + 1];

			len = 2;
			if (c == 'x')
				while (len < 4 && isxdigit((unsigned char) text[r + len]))
					len++;
			else if (c >= '0' && c <= '7')
				while (len < 4 && text[r + len] >= '0' && text[r + len] <= '7')
					len++;
			else if (c == 'u' || c == 'U')
			{
				int			digits = (c == 'u') ? 4 : 8;
				unsigned int cp = 0;

				for (; len < 2 + digits && isxdigit((unsigned char) text[r + len]); len++)
					cp = cp * 16 + (isdigit((unsigned char) text[r + len]) ?
									text[r + len] - '0' :
									(tolower((unsigned char) text[r + len]) - 'a' + 10));
				n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
			}
		}
		if (len == 1 && n == 1)
			map[k++] = r;
		else
			while (n-- > 0 && k < vlen)
				map[k++] = -1;
		r += len;
	}
	map[vlen] = r;
	return map;
}

/*
 * A function or DO body: scan its value with the same rules and map the
 * spans found back into the enclosing text.  Dollar quotes hold the value
 * verbatim; in a quoted literal ('...', E'...') map_quoted_literal() undoes
 * doubled quotes and escapes.
 */
static void
scan_body(const char *text, const LexToken *t, ScanCtx *ctx, ScanMode mode,
		  int depth, SpanList *spans)
{
	const char *raw = text + t->start;
	const char *value = t->str;
	int			vlen = strlen(value);
	SpanList	inner = {0};
	int		   *map;
	int			k;

	if (raw[0] == '$')
	{
		const char *tagend = strchr(raw + 1, '$');
		int			off = t->start + (tagend - raw) + 1;

		map = palloc(sizeof(int) * (vlen + 1));
		for (k = 0; k <= vlen; k++)
			map[k] = off + k;
	}
	else if (raw[0] == '\'' || ((raw[0] == 'E' || raw[0] == 'e') && raw[1] == '\''))
		map = map_quoted_literal(text, t, value, vlen);
	else
		return;

	scan_text(value, ctx, mode, depth + 1, &inner);
	for (k = 0; k < inner.n; k++)
	{
		int			s = map[inner.start[k]];
		int			e = map[inner.end[k] - 1] + 1;

		/* never splice where the mapping did not land on the same bytes */
		if (s >= 0 && e > 0 && e - s == inner.end[k] - inner.start[k] &&
			memcmp(text + s, value + inner.start[k], e - s) == 0)
			span_add(spans, s, e);
	}
	pfree(map);
}

/*
 * A regclass-style literal 'public.name...' (or, with whole_value, a
 * literal that is just 'public'): add the span of "public" inside it, as
 * long as the literal's text holds those bytes verbatim.
 */
static void
add_literal_span(const char *text, const LexToken *t, const TmKeepSet *keep,
				 bool whole_value, SpanList *spans)
{
	const char *val = t->str;
	const char *raw = text + t->start;
	int			plen;
	int			q;

	if (pg_strncasecmp(val, "public", 6) == 0 && (whole_value ? val[6] == '\0' : val[6] == '.'))
		plen = 6;
	else if (strncmp(val, "\"public\"", 8) == 0 && (whole_value ? val[8] == '\0' : val[8] == '.'))
		plen = 8;
	else
		return;

	if (!whole_value && keep != NULL)
	{
		const char *obj = val + plen + 1;
		char	   *name;

		if (*obj == '"')
		{
			const char *close = strchr(obj + 1, '"');

			name = close ? pnstrdup(obj + 1, close - obj - 1) : NULL;
		}
		else
		{
			int			n = strcspn(obj, ".(");

			name = downcase_identifier(obj, n, false, false);
		}
		if (keep_contains(keep, name))
			return;
	}

	if (raw[0] == '\'')
		q = 1;
	else if ((raw[0] == 'E' || raw[0] == 'e') && raw[1] == '\'')
		q = 2;
	else if (raw[0] == '$')
		q = (strchr(raw + 1, '$') - raw) + 1;
	else
		return;
	if (strncmp(raw + q, val, plen) != 0)
		return;
	span_add(spans, t->start + q, t->start + q + plen);
}

/*---- Small helpers ----*/

static void
span_add(SpanList *spans, int start, int end)
{
	if (spans->n == spans->cap)
	{
		spans->cap = spans->cap ? spans->cap * 2 : 16;
		if (spans->start == NULL)
		{
			spans->start = palloc(sizeof(int) * spans->cap);
			spans->end = palloc(sizeof(int) * spans->cap);
		}
		else
		{
			spans->start = repalloc(spans->start, sizeof(int) * spans->cap);
			spans->end = repalloc(spans->end, sizeof(int) * spans->cap);
		}
	}
	spans->start[spans->n] = start;
	spans->end[spans->n] = end;
	spans->n++;
}

static int
span_cmp(const void *a, const void *b)
{
	int			sa = ((const int *) a)[0];
	int			sb = ((const int *) b)[0];

	return (sa > sb) - (sa < sb);
}

/*
 * The statement text between start and end without leading blanks and
 * comments, cut to SNIPPET_LEN bytes on a character boundary.
 */
static char *
snippet(const char *text, int start, int end)
{
	const char *p = text + start;
	const char *e = text + end;
	int			len;

	for (;;)
	{
		while (p < e && isspace((unsigned char) *p))
			p++;
		if (p + 1 < e && p[0] == '-' && p[1] == '-')
		{
			while (p < e && *p != '\n')
				p++;
		}
		else if (p + 1 < e && p[0] == '/' && p[1] == '*')
		{
			const char *c = strstr(p + 2, "*/");

			p = (c && c + 2 <= e) ? c + 2 : e;
		}
		else
			break;
	}
	while (e > p && isspace((unsigned char) e[-1]))
		e--;
	len = e - p;
	if (len > SNIPPET_LEN)
	{
		len = pg_mbcliplen(p, len, SNIPPET_LEN);
		return psprintf("%.*s...", len, p);
	}
	return pnstrdup(p, len);
}

char *
tm_statement_snippet(const char *text, int start, int end)
{
	return snippet(text, start, end);
}

/*---- SQL-callable ----*/

/*
 * tenant_migration_rewrite(sql text, tenant_schema text) RETURNS text
 *
 * The script as it would run in tenant_schema; nothing is registered or run.
 */
Datum
tenant_migration_rewrite(PG_FUNCTION_ARGS)
{
	char	   *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *schema = text_to_cstring(PG_GETARG_TEXT_PP(1));
	TmKeepSet  *keep;
	TmScript   *script;
	char	   *result;

	MemoryContext callercxt = CurrentMemoryContext;
	text	   *out;

	tm_check_schema_name(schema);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	keep = tm_keepset_build();
	script = tm_script_compile(sql, keep, "script passed to tenant_migration_rewrite()");
	result = tm_script_render(script, -1, schema);

	/* SPI_finish frees what was allocated while connected */
	MemoryContextSwitchTo(callercxt);
	out = cstring_to_text(result);
	SPI_finish();
	PG_RETURN_TEXT_P(out);
}

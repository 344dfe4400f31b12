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

#include "catalog/namespace.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "nodes/nodeFuncs.h"
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

/*
 * How a span is spliced (TmScript.span_flags).  The low bits say that the
 * byte before or after the span would join the tenant schema name into one
 * token (FROM"public".t -> FROM tenant_x.t), so a blank goes in between.
 * Above SPAN_QUOTE_SHIFT, two bits per string literal the span lies in,
 * innermost first, say how the name is escaped for that literal: a body
 * in '...' inside a DO block in $$...$$ is QUOTE_STANDARD, QUOTE_DOLLAR.
 */
#define SPAN_SPACE_BEFORE	0x1
#define SPAN_SPACE_AFTER	0x2
#define SPAN_QUOTE_SHIFT	2
#define QUOTE_NONE			0	/* no (further) literal */
#define QUOTE_STANDARD		1	/* '...' under standard_conforming_strings */
#define QUOTE_ESCAPE		2	/* E'...', or '...' without them */
#define QUOTE_DOLLAR		3	/* $tag$...$tag$: holds text verbatim */

StaticAssertDecl(SPAN_QUOTE_SHIFT + 2 * (MAX_BODY_DEPTH + 1) <= 32,
				 "span flags hold a literal kind per nesting level");

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

/* Growing list of [start, end) pairs and how to splice each */
typedef struct SpanList
{
	int			n;
	int			cap;
	int		   *start;
	int		   *end;
	uint32	   *flags;
} SpanList;

/* One span while sorting them */
typedef struct SpanSort
{
	int			start;
	int			end;
	uint32		flags;
} SpanSort;

/* State passed down while scanning a text and the bodies inside it */
typedef struct ScanCtx
{
	const TmKeepSet *keep;
	const char *what;			/* for error messages */
	const char *top;			/* the top-level text being scanned */
	int			nnotschema;		/* offsets in top of "public" tokens that */
	int		   *notschema;		/* name a table or alias, not the schema */
} ScanCtx;

/* A statement refused while compiling; all are reported at once */
typedef struct Refusal
{
	int			sqlstate;
	char	   *msg;
	const char *hint;
	int			line;
	int			seq;
	char	   *stmt;
} Refusal;

/*
 * One compile: the script's text, the refusals found so far, and the
 * offset of the top-level statement being scanned (refusals inside a DO
 * body are reported at the line of their statement).  Compiles do not
 * nest; tm_script_compile() sets it and clears it.
 */
typedef struct CompileState
{
	const char *sql;			/* the original text */
	const char *lextext;		/* the copy the parser and lexer read */
	List	   *refusals;
	int			top_offset;
	List	   *neutral;		/* Refusal: line, statement and why (msg) */
} CompileState;

static CompileState *compile_state = NULL;

/* What the first pass found outside SQL: rows of COPY, psql meta-commands */
typedef struct Prescan
{
	char	   *text;			/* sql with those ranges blanked */
	int			ngaps;
	int		   *gap_start;		/* in order; rows of a COPY or a meta-command */
	int		   *gap_end;
	bool	   *gap_is_meta;
	int		   *gap_semi;		/* rows: offset of the COPY's ";" */
	int		   *gap_rows_end;	/* rows: end of the rows, before the \. line */
} Prescan;

/* Error context while compiling: names the script, places syntax errors */
typedef struct CompileErrCtx
{
	const char *sql;
	const char *what;
} CompileErrCtx;

/*---- Local functions ----*/

static void compile_error_callback(void *arg);
static uint8 check_statement(Node *stmt, const char *sql, int start, int end,
							 TmScript *script, int idx, int *open_begin);
static void prescan(const char *sql, Prescan *ps);
static void gap_add(Prescan *ps, int start, int end, bool meta, int semi,
					int rows_end);
static void blank_range(char *text, int start, int end);
static int	line_of(const char *text, int offset);
static int	first_token_offset(const char *text, int start, int end);
static void note_neutral(const char *sql, int start, int end, const char *why);
static void report_refusals(void);
static bool is_search_path_boilerplate(VariableSetStmt *v);
static bool is_set_config_header(Node *stmt);
static const char *changed_schema(Node *stmt);
static void collect_not_schema(Node *stmt, ScanCtx *ctx);
static void append_commented(StringInfo buf, const char *text, int start,
							 int end);
static int	int_cmp(const void *a, const void *b);
static int	refusal_cmp(const ListCell *a, const ListCell *b);
static bool is_not_schema(const ScanCtx *ctx, const char *text, int offset);
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
static void span_add(SpanList *spans, int start, int end, uint32 flags);
static void ident_span_add(const char *text, SpanList *spans, int start,
						   int end);
static int	literal_quote_kind(const char *raw);
static uint32 span_quote_outer(uint32 flags, int kind);
static void append_spliced(StringInfo buf, const char *schema,
						   const char *quoted, uint32 flags);
static int	span_cmp(const void *a, const void *b);
static bool *schema_list_members(const LexToken *toks, int a, int b);
static bool is_guarded_setting(const char *name);
static char *token_value(const LexToken *toks, int i, int b);
static char *decode_unicode_escapes(const char *s, char esc);
static bool keep_contains(const TmKeepSet *keep, const char *name);
static char *snippet(const char *text, int start, int end);
static void mark_non_transactional(TmScript *script, const char *sql, int start, int end);
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

	/* and what extensions that registered scripts create will add */
	return tm_keepset_add_registered_extensions(keep);
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
	CompileState cs;
	Prescan		ps;
	List	   *raw;
	ListCell   *lc;
	int			len = strlen(sql);
	int			i = 0;
	int			g = 0;
	int			open_begin = -1;
	int			nelided = 0;
	ScanCtx		ctx;

	script->sql = sql;
	script->what = what;

	errctx.sql = sql;
	errctx.what = what;
	errcb.callback = compile_error_callback;
	errcb.arg = &errctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	memset(&cs, 0, sizeof(cs));
	cs.sql = sql;
	compile_state = &cs;

	memset(&ctx, 0, sizeof(ctx));
	ctx.keep = keep;
	ctx.what = what;

	/* Rows of COPY ... FROM STDIN and psql meta-commands are not SQL */
	prescan(sql, &ps);
	cs.lextext = ps.text;
	ctx.top = ps.text;

	raw = raw_parser(ps.text, RAW_PARSE_DEFAULT);

	script->nstmts = list_length(raw);
	script->stmt_start = palloc(sizeof(int) * (script->nstmts + 1));
	script->stmt_end = palloc(sizeof(int) * (script->nstmts + 1));
	script->creates_extension = palloc0(sizeof(bool) * (script->nstmts + 1));
	script->stmt_action = palloc0(sizeof(uint8) * (script->nstmts + 1));
	script->copy_start = palloc0(sizeof(int) * (script->nstmts + 1));
	script->copy_end = palloc0(sizeof(int) * (script->nstmts + 1));
	script->stmt_note = palloc0(sizeof(char *) * (script->nstmts + 1));
	script->stmt_other_schema = palloc0(sizeof(char *) * (script->nstmts + 1));
	script->elided_start = palloc(sizeof(int) * (script->nstmts + ps.ngaps + 1));
	script->elided_end = palloc(sizeof(int) * (script->nstmts + ps.ngaps + 1));
	foreach(lc, raw)
	{
		RawStmt    *rs = lfirst_node(RawStmt, lc);
		int			start = rs->stmt_location;
		int			end = rs->stmt_len > 0 ? start + rs->stmt_len : len;
		const char *other;

		CHECK_FOR_INTERRUPTS();

		/*
		 * Rows of a COPY and meta-commands before the statement belong to no
		 * statement; a meta-command is shown as a comment in the whole text.
		 */
		for (; g < ps.ngaps && ps.gap_start[g] < end; g++)
		{
			if (ps.gap_start[g] >= start)
				start = Max(start, ps.gap_end[g]);
			if (ps.gap_is_meta[g])
			{
				script->elided_start[nelided] = ps.gap_start[g];
				script->elided_end[nelided++] = ps.gap_end[g];
			}
		}

		script->stmt_start[i] = start;
		script->stmt_end[i] = end;
		script->creates_extension[i] = IsA(rs->stmt, CreateExtensionStmt);
		script->stmt_action[i] = check_statement(rs->stmt, sql, start, end,
												 script, i, &open_begin);
		if (script->stmt_action[i] == TM_STMT_COPY_IN)
		{
			int			k;

			/* its rows follow its ";" */
			for (k = 0; k < ps.ngaps; k++)
				if (!ps.gap_is_meta[k] && ps.gap_semi[k] == end)
				{
					script->copy_start[i] = ps.gap_start[k];
					script->copy_end[i] = ps.gap_rows_end[k];
					break;
				}
			if (k == ps.ngaps)
				refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
								 "COPY ... FROM STDIN must end with \";\" and be followed by its rows",
								 "Write the rows on the lines after the COPY statement and end them with a line holding only \\., as pg_dump does.",
								 sql, start, end);
		}
		if (script->stmt_action[i] == TM_STMT_SKIP)
		{
			int			first = first_token_offset(sql, start, end);
			int			stop = end;
			int			k = end;

			/* the ";" too, when nothing else follows on its line */
			if (k < len && sql[k] == ';')
			{
				k++;
				while (k < len && (sql[k] == ' ' || sql[k] == '\t' || sql[k] == '\r'))
					k++;
				if (k == len || sql[k] == '\n')
					stop = end + 1;
			}
			script->elided_start[nelided] = first;
			script->elided_end[nelided++] = stop;
			/* the lexer pass finds nothing to rewrite or refuse there */
			blank_range(ps.text, start, end);
		}

		other = changed_schema(rs->stmt);
		if (other != NULL)
		{
			int			line = line_of(sql, first_token_offset(sql, start, end));

			script->stmt_other_schema[i] = pstrdup(other);
			script->stmt_note[i] =
				psprintf("statement %d (line %d) changes schema \"%s\", which is outside the tenant and shared by all tenants",
						 i + 1, line, other);
			script->warnings = lappend(script->warnings,
									   psprintf("line %d changes schema \"%s\": %s",
												line, other, snippet(sql, start, end)));
		}
		if (keep != NULL)
			collect_not_schema(rs->stmt, &ctx);
		i++;
	}
	for (; g < ps.ngaps; g++)
		if (ps.gap_is_meta[g])
		{
			script->elided_start[nelided] = ps.gap_start[g];
			script->elided_end[nelided++] = ps.gap_end[g];
		}
	script->nelided = nelided;

	if (open_begin >= 0)
		refuse_statement(ERRCODE_INVALID_TRANSACTION_TERMINATION,
						 "BEGIN without a matching COMMIT is not allowed in a migration",
						 "A balanced BEGIN; ... COMMIT; pair is accepted (the migration already runs in a transaction); remove the unmatched BEGIN.",
						 sql, script->stmt_start[open_begin], script->stmt_end[open_begin]);

	if (cs.neutral != NIL)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		list_sort(cs.neutral, refusal_cmp);
		foreach(lc, cs.neutral)
		{
			Refusal    *n = (Refusal *) lfirst(lc);

			appendStringInfo(&buf, "%sline %d: %s (%s)", buf.len > 0 ? "\n" : "",
							 n->line, n->stmt, n->msg);
		}
		script->neutralised = buf.data;
	}

	/* Predicted members of extensions the script creates are kept too */
	if (keep != NULL)
		ctx.keep = tm_keepset_with_created_extensions(keep, raw);

	/* The lexer pass also refuses set_config('search_path', ...) and friends */
	{
		SpanList	spans = {0};

		if (ctx.nnotschema > 1)
			qsort(ctx.notschema, ctx.nnotschema, sizeof(int), int_cmp);
		scan_text(ps.text, &ctx, SCAN_TOP, 0, &spans);
		if (keep != NULL && spans.n > 0)
		{
			SpanSort   *sorted = palloc(sizeof(SpanSort) * spans.n);
			int			k,
						m = 0;

			for (k = 0; k < spans.n; k++)
			{
				sorted[k].start = spans.start[k];
				sorted[k].end = spans.end[k];
				sorted[k].flags = spans.flags[k];
			}
			qsort(sorted, spans.n, sizeof(SpanSort), span_cmp);
			script->span_start = palloc(sizeof(int) * spans.n);
			script->span_end = palloc(sizeof(int) * spans.n);
			script->span_flags = palloc(sizeof(uint32) * spans.n);
			for (k = 0; k < spans.n; k++)
			{
				CHECK_FOR_INTERRUPTS();
				/* a span is never found twice, but never splice one twice */
				if (m > 0 && sorted[k].start < script->span_end[m - 1])
					continue;
				script->span_start[m] = sorted[k].start;
				script->span_end[m] = sorted[k].end;
				script->span_flags[m] = sorted[k].flags;
				m++;
			}
			script->nspans = m;
			pfree(sorted);
		}
	}

	/* Elided ranges were found in order, statements first per gap */
	if (script->nelided > 1)
	{
		SpanSort   *sorted = palloc(sizeof(SpanSort) * script->nelided);
		int			k;

		for (k = 0; k < script->nelided; k++)
		{
			sorted[k].start = script->elided_start[k];
			sorted[k].end = script->elided_end[k];
			sorted[k].flags = 0;
		}
		qsort(sorted, script->nelided, sizeof(SpanSort), span_cmp);
		for (k = 0; k < script->nelided; k++)
		{
			script->elided_start[k] = sorted[k].start;
			script->elided_end[k] = sorted[k].end;
		}
	}

	report_refusals();
	compile_state = NULL;
	error_context_stack = errcb.previous;
	return script;
}

/*
 * The raw parse trees of a script that compiles (a registered one): rows
 * of COPY and psql meta-commands set aside as tm_script_compile() does.
 */
List *
tm_script_raw_statements(const char *sql)
{
	Prescan		ps;

	compile_state = NULL;
	prescan(sql, &ps);
	return raw_parser(ps.text, RAW_PARSE_DEFAULT);
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

/*
 * The statement's text with the quoted schema spliced into its spans: a
 * blank where the name would join a neighbouring token, and escaped as a
 * literal where the span lies inside one (see SPAN_* above).
 */
char *
tm_script_render(const TmScript *script, int stmt, const char *schema)
{
	StringInfoData buf;
	const char *quoted = schema ? quote_identifier(schema) : NULL;
	int			start,
				end,
				pos,
				lo,
				hi,
				e,
				ei;

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

	/*
	 * The statement's first span, found by bisection: the runner renders a
	 * script statement by statement, and walking every earlier span each
	 * time would make that quadratic.
	 */
	lo = 0;
	hi = script->nspans;
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (script->span_start[mid] < start)
			lo = mid + 1;
		else
			hi = mid;
	}

	/* The whole text shows skipped statements and meta-commands as comments */
	e = 0;
	if (stmt < 0)
		e = script->nelided;
	initStringInfo(&buf);
	pos = start;
	ei = 0;
	for (;;)
	{
		bool		span_next = (quoted != NULL && lo < script->nspans &&
								 script->span_end[lo] <= end);
		bool		elided_next = (ei < e);

		CHECK_FOR_INTERRUPTS();
		if (elided_next && span_next &&
			script->span_start[lo] < script->elided_start[ei])
			elided_next = false;
		if (elided_next)
		{
			appendBinaryStringInfo(&buf, script->sql + pos, script->elided_start[ei] - pos);
			append_commented(&buf, script->sql, script->elided_start[ei], script->elided_end[ei]);
			pos = script->elided_end[ei];
			ei++;
		}
		else if (span_next)
		{
			appendBinaryStringInfo(&buf, script->sql + pos, script->span_start[lo] - pos);
			append_spliced(&buf, schema, quoted, script->span_flags[lo]);
			pos = script->span_end[lo];
			lo++;
		}
		else
			break;
	}
	appendBinaryStringInfo(&buf, script->sql + pos, end - pos);
	return buf.data;
}

/*
 * text[start, end) as line comments saying it is skipped; a line break
 * after them unless one follows anyway.
 */
static void
append_commented(StringInfo buf, const char *text, int start, int end)
{
	int			k;

	appendStringInfoString(buf, "-- tenant_migrate skipped: ");
	for (k = start; k < end; k++)
	{
		appendStringInfoChar(buf, text[k]);
		if (text[k] == '\n' && k + 1 < end)
			appendStringInfoString(buf, "-- ");
	}
	if (text[end] != '\0' && text[end] != '\n' && text[end - 1] != '\n')
		appendStringInfoChar(buf, '\n');
}

/*
 * NOTICE once per script: which statements compile neutralised, and why
 * nothing is lost.
 */
void
tm_script_notice_neutralised(const TmScript *script)
{
	if (script->neutralised == NULL)
		return;
	ereport(NOTICE,
			(errmsg("skipping tool boilerplate in %s", script->what),
			 errdetail("tenant_migrate sets search_path and settings for each migration itself and runs it in a transaction, so these lines change nothing:\n%s",
					   script->neutralised)));
}

/* WARNING per statement of a tenant script that changes another schema */
void
tm_script_warn_other_schemas(const TmScript *script)
{
	ListCell   *lc;

	foreach(lc, script->warnings)
		ereport(WARNING,
				(errmsg("%s changes a schema other than public", script->what),
				 errdetail("At %s", (char *) lfirst(lc)),
				 errhint("Every tenant runs the script, so the first tenant changes that schema and later ones find it changed (and may fail); move the statement to a shared migration (scope => 'shared'), or name public or no schema.")));
}

/*---- Refusing statements ----*/

/*
 * Notes a refused statement; report_refusals() raises one error for all of
 * them, each with its line, so that a file is fixed in one round.
 */
static void
refuse_statement(int sqlstate, const char *msg, const char *hint,
				 const char *text, int start, int end)
{
	CompileState *cs = compile_state;
	Refusal    *r;

	if (cs == NULL)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("%s", msg),
				 errdetail("The statement is: %s", snippet(text, start, end)),
				 errhint("%s", hint)));

	r = palloc(sizeof(Refusal));
	r->sqlstate = sqlstate;
	r->msg = pstrdup(msg);
	r->hint = hint;
	r->seq = list_length(cs->refusals);
	if (text == cs->lextext || text == cs->sql)
	{
		r->line = line_of(cs->sql, first_token_offset(cs->sql, start, end));
		r->stmt = snippet(cs->sql, start, end);
	}
	else
	{
		/* inside a DO body: the line of its top-level statement */
		r->line = line_of(cs->sql, cs->top_offset);
		r->stmt = snippet(text, start, end);
	}
	cs->refusals = lappend(cs->refusals, r);
}

static int
refusal_cmp(const ListCell *a, const ListCell *b)
{
	const Refusal *ra = (const Refusal *) lfirst(a);
	const Refusal *rb = (const Refusal *) lfirst(b);

	if (ra->line != rb->line)
		return ra->line - rb->line;
	return ra->seq - rb->seq;
}

static void
report_refusals(void)
{
	CompileState *cs = compile_state;
	StringInfoData detail;
	StringInfoData hints;
	ListCell   *lc;
	Refusal    *first;
	int			n;

	if (cs == NULL || cs->refusals == NIL)
		return;
	list_sort(cs->refusals, refusal_cmp);
	first = (Refusal *) linitial(cs->refusals);
	n = list_length(cs->refusals);
	if (n == 1)
		ereport(ERROR,
				(errcode(first->sqlstate),
				 errmsg("%s", first->msg),
				 errdetail("The statement at line %d is: %s", first->line, first->stmt),
				 errhint("%s", first->hint)));

	initStringInfo(&detail);
	initStringInfo(&hints);
	foreach(lc, cs->refusals)
	{
		Refusal    *r = (Refusal *) lfirst(lc);
		ListCell   *prev;
		bool		seen = false;

		appendStringInfo(&detail, "%sLine %d: %s: %s",
						 detail.len > 0 ? "\n" : "", r->line, r->msg, r->stmt);
		foreach(prev, cs->refusals)
		{
			if (prev == lc)
				break;
			if (strcmp(((Refusal *) lfirst(prev))->hint, r->hint) == 0)
				seen = true;
		}
		if (!seen)
			appendStringInfo(&hints, "%s%s", hints.len > 0 ? "\n" : "", r->hint);
	}
	ereport(ERROR,
			(errcode(first->sqlstate),
			 errmsg("%d statements cannot run in a migration", n),
			 errdetail("%s", detail.data),
			 errhint("%s", hints.data)));
}

/* 1-based line of text[offset] */
static int
line_of(const char *text, int offset)
{
	int			line = 1;
	int			k;

	for (k = 0; k < offset && text[k] != '\0'; k++)
		if (text[k] == '\n')
			line++;
	return line;
}

/* Offset of the first token in text[start, end): blanks and comments skipped */
static int
first_token_offset(const char *text, int start, int end)
{
	const char *p = text + start;
	const char *e = text + end;

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
	return p - text;
}

/* Blanks text[start, end), line breaks kept so that lines still count */
static void
blank_range(char *text, int start, int end)
{
	int			k;

	for (k = start; k < end; k++)
		if (text[k] != '\n')
			text[k] = ' ';
}

/* Records a neutralised statement for the NOTICE */
static void
note_neutral(const char *sql, int start, int end, const char *why)
{
	CompileState *cs = compile_state;
	Refusal    *n;

	if (cs == NULL)
		return;
	n = palloc0(sizeof(Refusal));
	n->line = line_of(sql, first_token_offset(sql, start, end));
	n->seq = list_length(cs->neutral);
	n->stmt = snippet(sql, start, end);
	n->msg = pstrdup(why);
	cs->neutral = lappend(cs->neutral, n);
}

/*---- The first pass: what is not SQL ----*/

static void
gap_add(Prescan *ps, int start, int end, bool meta, int semi, int rows_end)
{
	if (ps->ngaps % 16 == 0)
	{
		int			cap = ps->ngaps + 16;

		if (ps->ngaps == 0)
		{
			ps->gap_start = palloc(sizeof(int) * cap);
			ps->gap_end = palloc(sizeof(int) * cap);
			ps->gap_is_meta = palloc(sizeof(bool) * cap);
			ps->gap_semi = palloc(sizeof(int) * cap);
			ps->gap_rows_end = palloc(sizeof(int) * cap);
		}
		else
		{
			ps->gap_start = repalloc(ps->gap_start, sizeof(int) * cap);
			ps->gap_end = repalloc(ps->gap_end, sizeof(int) * cap);
			ps->gap_is_meta = repalloc(ps->gap_is_meta, sizeof(bool) * cap);
			ps->gap_semi = repalloc(ps->gap_semi, sizeof(int) * cap);
			ps->gap_rows_end = repalloc(ps->gap_rows_end, sizeof(int) * cap);
		}
	}
	ps->gap_start[ps->ngaps] = start;
	ps->gap_end[ps->ngaps] = end;
	ps->gap_is_meta[ps->ngaps] = meta;
	ps->gap_semi[ps->ngaps] = semi;
	ps->gap_rows_end[ps->ngaps] = rows_end;
	ps->ngaps++;
}

/* Only blanks between the start of its line and text[offset]? */
static bool
at_line_start(const char *text, int offset)
{
	while (offset > 0 && (text[offset - 1] == ' ' || text[offset - 1] == '\t'))
		offset--;
	return offset == 0 || text[offset - 1] == '\n';
}

/*
 * Lexes the script once to find what the server's parser cannot read: the
 * rows after COPY ... FROM STDIN (up to a line "\."), and psql
 * meta-commands on lines of their own (pg_dump's \restrict and \unrestrict,
 * neutralised; any other is refused).  Both are blanked in ps->text, which
 * the parser and the rewriting pass read instead of sql; offsets stay the
 * same.  The lexer scans a copy of the text in place, so blanking its copy
 * ahead of the current token keeps it from lexing the rows at all (they
 * may hold quotes or numbers that are no SQL tokens).
 */
static void
prescan(const char *sql, Prescan *ps)
{
	core_yyscan_t scanner;
	core_yy_extra_type yyextra;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			len = strlen(sql);
	int			stmt_first = -1;
	bool		is_copy = false;
	bool		prev_from = false;
	bool		from_stdin = false;
	int			skip_until = -1;

	memset(ps, 0, sizeof(Prescan));
	ps->text = pstrdup(sql);
	scanner = scanner_init(sql, &yyextra, &ScanKeywords, ScanKeywordTokens);
	for (;;)
	{
		int			tok;

		CHECK_FOR_INTERRUPTS();
		tok = core_yylex(&yylval, &yylloc, scanner);
		if (tok == 0)
			break;
		if (yylloc < skip_until)
			continue;

		if (tok == '\\' && at_line_start(sql, yylloc) &&
			isalpha((unsigned char) sql[yylloc + 1]))
		{
			int			eol = yylloc;
			int			w = yylloc + 1;
			char	   *cmd;

			while (eol < len && sql[eol] != '\n')
				eol++;
			while (w < eol && isalpha((unsigned char) sql[w]))
				w++;
			cmd = pnstrdup(sql + yylloc + 1, w - yylloc - 1);
			if (stmt_first >= 0)
				refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
								 psprintf("psql meta-command \\%s inside a statement", cmd),
								 "End the statement with \";\" before the meta-command, or remove the meta-command.",
								 sql, yylloc, eol);
			else if (strcmp(cmd, "restrict") == 0 || strcmp(cmd, "unrestrict") == 0)
				note_neutral(sql, yylloc, eol, "psql meta-command of pg_dump");
			else
				refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
								 psprintf("psql meta-command \\%s cannot run in a migration", cmd),
								 "A migration runs SQL statements on the server, not in psql; remove the meta-command.",
								 sql, yylloc, eol);
			/* yylloc + 1 is where the lexer holds its next byte */
			blank_range(yyextra.scanbuf, yylloc + 2, eol);
			blank_range(ps->text, yylloc, eol);
			gap_add(ps, yylloc, eol, true, -1, -1);
			skip_until = eol;
			continue;
		}

		if (stmt_first < 0)
		{
			stmt_first = yylloc;
			is_copy = (tok == COPY);
			prev_from = false;
			from_stdin = false;
		}
		else if (is_copy)
		{
			if (tok == STDIN && prev_from)
				from_stdin = true;
			prev_from = (tok == FROM);
		}
		if (tok != ';')
			continue;

		if (is_copy && from_stdin)
		{
			int			p = yylloc + 1;
			int			rows;
			int			rows_end = -1;
			int			block_end = len;

			while (p < len && sql[p] != '\n')
				p++;
			rows = Min(p + 1, len);
			p = rows;
			while (p < len)
			{
				int			le = p;
				int			ce;

				while (le < len && sql[le] != '\n')
					le++;
				ce = le;
				if (ce > p && sql[ce - 1] == '\r')
					ce--;
				if (ce - p == 2 && sql[p] == '\\' && sql[p + 1] == '.')
				{
					rows_end = p;
					block_end = le;
					break;
				}
				p = le + 1;
			}
			if (rows_end < 0)
			{
				refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
								 "the rows of COPY ... FROM STDIN do not end with a line \\.",
								 "End the rows with a line holding only \\., as pg_dump does.",
								 sql, stmt_first, yylloc);
				rows_end = len;
			}
			if (rows < block_end)
			{
				blank_range(yyextra.scanbuf, rows, block_end);
				blank_range(ps->text, rows, block_end);
			}
			gap_add(ps, rows, block_end, false, yylloc, rows_end);
			skip_until = block_end;
		}
		stmt_first = -1;
		is_copy = false;
	}
	scanner_finish(scanner);
}

/*---- Parse-tree checks ----*/

/* Is this a plain string constant equal to val? */
static bool
const_is_string(Node *n, const char *val)
{
	return n != NULL && IsA(n, A_Const) && !((A_Const *) n)->isnull &&
		IsA(&((A_Const *) n)->val, String) &&
		strcmp(strVal(&((A_Const *) n)->val), val) == 0;
}

/*
 * pg_dump's header line SELECT pg_catalog.set_config('search_path', '',
 * false): exactly that, nothing else in the statement.
 */
static bool
is_set_config_header(Node *stmt)
{
	SelectStmt *sel;
	ResTarget  *rt;
	FuncCall   *fc;
	Node	   *last;

	if (!IsA(stmt, SelectStmt))
		return false;
	sel = (SelectStmt *) stmt;
	if (sel->op != SETOP_NONE || sel->fromClause != NIL || sel->whereClause ||
		sel->withClause || sel->valuesLists != NIL || sel->intoClause ||
		sel->groupClause != NIL || sel->havingClause || sel->sortClause != NIL ||
		sel->limitCount || sel->lockingClause != NIL ||
		list_length(sel->targetList) != 1)
		return false;
	rt = (ResTarget *) linitial(sel->targetList);
	if (rt->name != NULL || rt->val == NULL || !IsA(rt->val, FuncCall))
		return false;
	fc = (FuncCall *) rt->val;
	if (list_length(fc->funcname) > 2 ||
		strcmp(strVal(llast(fc->funcname)), "set_config") != 0 ||
		(list_length(fc->funcname) == 2 &&
		 strcmp(strVal(linitial(fc->funcname)), "pg_catalog") != 0) ||
		list_length(fc->args) != 3 || fc->agg_order != NIL || fc->agg_filter ||
		fc->over || fc->agg_star || fc->agg_distinct || fc->func_variadic)
		return false;
	last = (Node *) lthird(fc->args);
	return const_is_string(linitial(fc->args), "search_path") &&
		const_is_string(lsecond(fc->args), "") &&
		IsA(last, A_Const) && !((A_Const *) last)->isnull &&
		IsA(&((A_Const *) last)->val, Boolean) &&
		!boolVal(&((A_Const *) last)->val);
}

/*
 * SET search_path = public, pg_catalog (pg_dump before 10) and SET
 * search_path TO "$user", public (the last line of Rails' structure.sql).
 */
static bool
is_search_path_boilerplate(VariableSetStmt *v)
{
	if (v->kind != VAR_SET_VALUE || v->is_local || v->name == NULL ||
		pg_strcasecmp(v->name, "search_path") != 0 || list_length(v->args) != 2)
		return false;
	return (const_is_string(linitial(v->args), "public") &&
			const_is_string(lsecond(v->args), "pg_catalog")) ||
		(const_is_string(linitial(v->args), "$user") &&
		 const_is_string(lsecond(v->args), "public"));
}

/*
 * Parse-tree checks.  Returns what the runner does with the statement
 * (TM_STMT_*); refusals are noted (refuse_statement), neutralised
 * statements too (note_neutral), and the script's flags are set.
 * *open_begin is the index of a BEGIN waiting for its COMMIT, or -1.
 */
static uint8
check_statement(Node *stmt, const char *sql, int start, int end,
				TmScript *script, int idx, int *open_begin)
{
	const char *notx_hint = "A migration runs inside a transaction; run this statement outside tenant_migrate, or use its transactional form.";
	char		msg[256];

	switch (nodeTag(stmt))
	{
		case T_TransactionStmt:
			{
				TransactionStmt *t = (TransactionStmt *) stmt;

				if ((t->kind == TRANS_STMT_BEGIN || t->kind == TRANS_STMT_START) &&
					t->options == NIL)
				{
					if (*open_begin >= 0)
					{
						refuse_statement(ERRCODE_INVALID_TRANSACTION_TERMINATION,
										 "nested BEGIN is not allowed in a migration",
										 "A balanced BEGIN; ... COMMIT; pair is accepted (the migration already runs in a transaction); remove the inner BEGIN.",
										 sql, start, end);
						return TM_STMT_RUN;
					}
					*open_begin = idx;
					return TM_STMT_SKIP;
				}
				if (t->kind == TRANS_STMT_COMMIT && !t->chain)
				{
					if (*open_begin < 0)
					{
						refuse_statement(ERRCODE_INVALID_TRANSACTION_TERMINATION,
										 "COMMIT without a matching BEGIN is not allowed in a migration",
										 "A balanced BEGIN; ... COMMIT; pair is accepted (the migration already runs in a transaction); remove the unmatched COMMIT.",
										 sql, start, end);
						return TM_STMT_RUN;
					}
					note_neutral(sql, script->stmt_start[*open_begin],
								 script->stmt_end[*open_begin],
								 "the migration already runs in a transaction");
					note_neutral(sql, start, end, "the migration commits when it is done");
					*open_begin = -1;
					return TM_STMT_SKIP;
				}
				snprintf(msg, sizeof(msg), "%s is not allowed in a migration",
						 CreateCommandName(stmt));
				refuse_statement(ERRCODE_INVALID_TRANSACTION_TERMINATION, msg,
								 "Each migration already runs in a transaction of its own; a balanced BEGIN; ... COMMIT; pair is accepted, remove ROLLBACK, SAVEPOINT and transaction modes.",
								 sql, start, end);
				break;
			}
		case T_VariableSetStmt:
			{
				VariableSetStmt *v = (VariableSetStmt *) stmt;

				if (v->kind == VAR_RESET_ALL)
				{
					note_neutral(sql, start, end, "settings are restored after each migration");
					return TM_STMT_SKIP;
				}
				if (is_search_path_boilerplate(v))
				{
					note_neutral(sql, start, end, "search_path is set by tenant_migrate");
					return TM_STMT_SKIP;
				}
				/* pg_dump 17's header; PostgreSQL 15 does not know it */
				if (v->kind == VAR_SET_VALUE && !v->is_local && v->name != NULL &&
					pg_strcasecmp(v->name, "transaction_timeout") == 0 &&
					list_length(v->args) == 1 && IsA(linitial(v->args), A_Const) &&
					((IsA(&((A_Const *) linitial(v->args))->val, Integer) &&
					  intVal(&((A_Const *) linitial(v->args))->val) == 0) ||
					 const_is_string(linitial(v->args), "0")))
				{
					note_neutral(sql, start, end, "pg_dump 17 header; no timeout is the default");
					return TM_STMT_SKIP;
				}
				/* setting names are case-insensitive: SET "Search_Path" too */
				if (is_guarded_setting(v->name))
				{
					snprintf(msg, sizeof(msg), "a migration must not change %s",
							 pg_strcasecmp(v->name, "search_path") == 0 ? "search_path" : "the current role");
					refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED, msg,
									 "tenant_migrate sets search_path to the tenant schema and public for each migration and runs it as the calling role; remove the statement.",
									 sql, start, end);
				}
				break;
			}
		case T_SelectStmt:
			if (is_set_config_header(stmt))
			{
				note_neutral(sql, start, end, "search_path is set by tenant_migrate");
				return TM_STMT_SKIP;
			}
			break;
		case T_AlterRoleSetStmt:
		case T_AlterDatabaseSetStmt:
			/* stored settings outlive the migration and reach every tenant */
			refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
							 "a migration must not change role or database settings",
							 "Settings stored with ALTER ROLE or ALTER DATABASE outlive the migration and apply to every session; change them once, outside tenant_migrate.",
							 sql, start, end);
			break;
		case T_AlterEnumStmt:
			if (((AlterEnumStmt *) stmt)->oldVal == NULL)
				script->adds_enum_values = true;
			break;
		case T_CreateExtensionStmt:
			{
				ListCell   *lc;

				foreach(lc, ((CreateExtensionStmt *) stmt)->options)
					if (strcmp(((DefElem *) lfirst(lc))->defname, "schema") == 0)
						return TM_STMT_RUN;
				return TM_STMT_EXTENSION;
			}
		case T_IndexStmt:
			if (!((IndexStmt *) stmt)->concurrent)
				break;
			mark_non_transactional(script, sql, start, end);
			return TM_STMT_CONCURRENTLY;
		case T_DropStmt:
			if (!((DropStmt *) stmt)->concurrent)
				break;
			mark_non_transactional(script, sql, start, end);
			return TM_STMT_CONCURRENTLY;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;
				ListCell   *lc;
				bool		concurrently = false;

				foreach(lc, r->params)
				{
					DefElem    *opt = (DefElem *) lfirst(lc);

					if (strcmp(opt->defname, "concurrently") == 0)
						concurrently = defGetBoolean(opt);
				}
				if (r->kind == REINDEX_OBJECT_DATABASE ||
					r->kind == REINDEX_OBJECT_SYSTEM)
					refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
									 "this REINDEX cannot run inside a migration",
									 notx_hint, sql, start, end);
				else if (concurrently)
				{
					mark_non_transactional(script, sql, start, end);
					return TM_STMT_CONCURRENTLY;
				}
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
					{
						refuse_statement(ERRCODE_ACTIVE_SQL_TRANSACTION,
										 "DETACH PARTITION CONCURRENTLY cannot run inside a migration",
										 notx_hint, sql, start, end);
						break;
					}
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

				if (c->is_from && c->filename == NULL && !c->is_program &&
					c->relation != NULL)
					return TM_STMT_COPY_IN;
				if (c->filename == NULL && !c->is_program)
					refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
									 "COPY to the client cannot run inside a migration",
									 "A migration has no client to send rows to; remove the statement.",
									 sql, start, end);
				break;
			}
		default:
			break;
	}
	return TM_STMT_RUN;
}

/*---- Schemas a statement changes ----*/

/* The schema of a qualified name list (schema.name, db.schema.name), or NULL */
static const char *
list_schema(List *names)
{
	if (list_length(names) == 2 && IsA(linitial(names), String))
		return strVal(linitial(names));
	if (list_length(names) == 3 && IsA(lsecond(names), String))
		return strVal(lsecond(names));
	return NULL;
}

/* NULL unless schema names a schema other than public (and pg_temp) */
static const char *
other_schema(const char *schema)
{
	if (schema == NULL || strcmp(schema, "public") == 0 ||
		strcmp(schema, "pg_temp") == 0)
		return NULL;
	return schema;
}

/*
 * The schema other than public that a DDL statement creates, alters or
 * drops something in (the relation a trigger or policy is put on counts),
 * or NULL.  Read from the parse tree, so only what the text names: a DO
 * block or a function called can change anything.
 */
static const char *
changed_schema(Node *stmt)
{
	const char *s = NULL;
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_CreateSchemaStmt:
			{
				CreateSchemaStmt *c = (CreateSchemaStmt *) stmt;

				if (c->schemaname == NULL)
					return (c->authrole && c->authrole->rolename) ?
						c->authrole->rolename : "named after the role";
				return other_schema(c->schemaname);
			}
		case T_CreateStmt:
			return other_schema(((CreateStmt *) stmt)->relation->schemaname);
		case T_AlterTableStmt:
			return other_schema(((AlterTableStmt *) stmt)->relation->schemaname);
		case T_CreateTrigStmt:
			return other_schema(((CreateTrigStmt *) stmt)->relation->schemaname);
		case T_IndexStmt:
			return other_schema(((IndexStmt *) stmt)->relation->schemaname);
		case T_RuleStmt:
			return other_schema(((RuleStmt *) stmt)->relation->schemaname);
		case T_CreatePolicyStmt:
			return other_schema(((CreatePolicyStmt *) stmt)->table->schemaname);
		case T_AlterPolicyStmt:
			return other_schema(((AlterPolicyStmt *) stmt)->table->schemaname);
		case T_ViewStmt:
			return other_schema(((ViewStmt *) stmt)->view->schemaname);
		case T_CreateSeqStmt:
			return other_schema(((CreateSeqStmt *) stmt)->sequence->schemaname);
		case T_AlterSeqStmt:
			return other_schema(((AlterSeqStmt *) stmt)->sequence->schemaname);
		case T_CreateTableAsStmt:
			return other_schema(((CreateTableAsStmt *) stmt)->into->rel->schemaname);
		case T_CompositeTypeStmt:
			return other_schema(((CompositeTypeStmt *) stmt)->typevar->schemaname);
		case T_CreateFunctionStmt:
			return other_schema(list_schema(((CreateFunctionStmt *) stmt)->funcname));
		case T_DefineStmt:
			return other_schema(list_schema(((DefineStmt *) stmt)->defnames));
		case T_CreateEnumStmt:
			return other_schema(list_schema(((CreateEnumStmt *) stmt)->typeName));
		case T_AlterEnumStmt:
			return other_schema(list_schema(((AlterEnumStmt *) stmt)->typeName));
		case T_CreateRangeStmt:
			return other_schema(list_schema(((CreateRangeStmt *) stmt)->typeName));
		case T_CreateDomainStmt:
			return other_schema(list_schema(((CreateDomainStmt *) stmt)->domainname));
		case T_RenameStmt:
			{
				RenameStmt *r = (RenameStmt *) stmt;

				if (r->relation)
					return other_schema(r->relation->schemaname);
				if (r->object && IsA(r->object, List))
					return other_schema(list_schema((List *) r->object));
				return NULL;
			}
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *a = (AlterObjectSchemaStmt *) stmt;

				if (a->relation && (s = other_schema(a->relation->schemaname)) != NULL)
					return s;
				if (a->object && IsA(a->object, List) &&
					(s = other_schema(list_schema((List *) a->object))) != NULL)
					return s;
				return other_schema(a->newschema);
			}
		case T_DropStmt:
			{
				DropStmt   *d = (DropStmt *) stmt;

				if (d->removeType == OBJECT_SCHEMA)
				{
					foreach(lc, d->objects)
						if (IsA(lfirst(lc), String) &&
							(s = other_schema(strVal(lfirst(lc)))) != NULL)
							return s;
					return NULL;
				}
				foreach(lc, d->objects)
				{
					Node	   *o = (Node *) lfirst(lc);

					/* a trigger, policy or rule: [schema.]table.name */
					if (IsA(o, List) && (d->removeType == OBJECT_TRIGGER ||
										 d->removeType == OBJECT_POLICY ||
										 d->removeType == OBJECT_RULE))
						s = list_length((List *) o) >= 3 ?
							other_schema(strVal(linitial((List *) o))) : NULL;
					else if (IsA(o, List))
						s = other_schema(list_schema((List *) o));
					else if (IsA(o, TypeName))
						s = other_schema(list_schema(((TypeName *) o)->names));
					else if (IsA(o, ObjectWithArgs))
						s = other_schema(list_schema(((ObjectWithArgs *) o)->objname));
					if (s != NULL)
						return s;
				}
				return NULL;
			}
		default:
			return NULL;
	}
}

/*---- "public" that is not the schema ----*/

static bool
not_schema_walker(Node *node, void *context)
{
	ScanCtx    *ctx = (ScanCtx *) context;

	if (node == NULL)
		return false;
	if (IsA(node, ColumnRef))
	{
		ColumnRef  *c = (ColumnRef *) node;

		/*
		 * public.x in an expression is a column x of a table or alias named
		 * public (FROM public.t AS public), never schema public: a column
		 * of a schema-qualified table takes three names.
		 */
		if (list_length(c->fields) == 2 && IsA(linitial(c->fields), String) &&
			strcmp(strVal(linitial(c->fields)), "public") == 0 && c->location >= 0)
		{
			if (ctx->nnotschema % 16 == 0)
				ctx->notschema = ctx->notschema == NULL ?
					palloc(sizeof(int) * 16) :
					repalloc(ctx->notschema, sizeof(int) * (ctx->nnotschema + 16));
			ctx->notschema[ctx->nnotschema++] = c->location;
		}
		return false;
	}
	return raw_expression_tree_walker(node, not_schema_walker, context);
}

/* Offsets of "public" that is not the schema in a top-level statement */
static void
collect_not_schema(Node *stmt, ScanCtx *ctx)
{
	switch (nodeTag(stmt))
	{
		case T_SelectStmt:
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
			(void) not_schema_walker(stmt, ctx);
			break;
		case T_ViewStmt:
			(void) not_schema_walker(((ViewStmt *) stmt)->query, ctx);
			break;
		case T_CreateTableAsStmt:
			(void) not_schema_walker(((CreateTableAsStmt *) stmt)->query, ctx);
			break;
		case T_CreatePolicyStmt:
			(void) not_schema_walker(((CreatePolicyStmt *) stmt)->qual, ctx);
			(void) not_schema_walker(((CreatePolicyStmt *) stmt)->with_check, ctx);
			break;
		default:
			break;
	}
}

static int
int_cmp(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

static bool
is_not_schema(const ScanCtx *ctx, const char *text, int offset)
{
	if (text != ctx->top || ctx->nnotschema == 0)
		return false;
	return bsearch(&offset, ctx->notschema, ctx->nnotschema, sizeof(int),
				   int_cmp) != NULL;
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
		int			tok;
		LexToken   *t;

		CHECK_FOR_INTERRUPTS();
		tok = core_yylex(&yylval, &yylloc, scanner);
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
		CHECK_FOR_INTERRUPTS();
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
	/* an operator: OPERATOR(public.<->); the lexer has tokens of its own for some */
	if (t->tok == NOT_EQUALS)
		return "<>";
	if (t->tok == LESS_EQUALS)
		return "<=";
	if (t->tok == GREATER_EQUALS)
		return ">=";
	if (t->tok == Op || (t->tok < 256 && t->tok > 0 && strchr("+-*/<>=~!@#%^&|`?", t->tok)))
		return pnstrdup(text + t->start, t->end - t->start);
	return NULL;
}

/*
 * Which of toks[a..b) name a schema in a list after SCHEMA, or SCHEMA IF
 * [NOT] EXISTS (ON SCHEMA a, b, public); indexed from a.  One pass, each
 * token marked once: walking back over the list from every name made
 * GRANT ... ON SCHEMA public, public, ... quadratic.
 */
static bool *
schema_list_members(const LexToken *toks, int a, int b)
{
	bool	   *member = palloc0(sizeof(bool) * (b - a + 1));
	int			i;

	for (i = a; i < b; i++)
	{
		int			j;

		CHECK_FOR_INTERRUPTS();
		if (!tok_is_kw(&toks[i], "schema"))
			continue;
		j = i + 1;
		if (j < b && tok_is_kw(&toks[j], "if"))
		{
			int			k = j + 1;

			if (k < b && tok_is_kw(&toks[k], "not"))
				k++;
			if (k < b && tok_is_kw(&toks[k], "exists"))
				j = k + 1;
		}
		/* a member seen before continues a list already walked */
		while (j < b && (toks[j].tok == IDENT || toks[j].is_kw) && !member[j - a])
		{
			member[j - a] = true;
			if (j + 1 >= b || toks[j + 1].tok != ',')
				break;
			j += 2;
		}
	}
	return member;
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
	bool	   *schema_member;
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
		CHECK_FOR_INTERRUPTS();
		if (tok_is_kw(&toks[i], "language") &&
			(toks[i + 1].tok == IDENT || toks[i + 1].tok == SCONST))
			language = toks[i + 1].str;
	}
	rewrite_bodies = (language == NULL ||
					  pg_strcasecmp(language, "sql") == 0 ||
					  pg_strcasecmp(language, "plpgsql") == 0);

	/* refusals in the bodies inside are reported at this statement's line */
	if (compile_state != NULL && text == ctx->top)
		compile_state->top_offset = toks[a].start;

	/*
	 * Code that runs now (a DO block) must not change search_path or the
	 * role behind the runner's back, nor end the transaction.  Top-level
	 * statements were checked on their parse trees already.  Setting names
	 * are compared as the server does, case-insensitively and with U&""
	 * escapes decoded.  These are early, friendly errors for what the text
	 * shows; EXECUTE of a computed string gets past them.
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

			CHECK_FOR_INTERRUPTS();
			if (!at_start)
				continue;
			if (tok_is_kw(t, "commit") || tok_is_kw(t, "rollback"))
				refuse_statement(ERRCODE_INVALID_TRANSACTION_TERMINATION,
								 "transaction control is not allowed in a migration",
								 "Each migration already runs in a transaction of its own; remove COMMIT and ROLLBACK from the DO block.",
								 text, toks[a].start, toks[b - 1].end);

			/* ALTER ROLE/USER/DATABASE ... SET or RESET: stored settings */
			if (tok_is_kw(t, "alter") && j + 1 < b &&
				(tok_is_kw(&toks[j], "role") || tok_is_kw(&toks[j], "database") ||
				 (tok_is_kw(&toks[j], "user") && !tok_is_kw(&toks[j + 1], "mapping"))))
			{
				int			k;

				for (k = j + 1; k < b; k++)
				{
					if (tok_is_kw(&toks[k], "set") || tok_is_kw(&toks[k], "reset"))
						refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
										 "a migration must not change role or database settings",
										 "Settings stored with ALTER ROLE or ALTER DATABASE outlive the migration and apply to every session; change them once, outside tenant_migrate.",
										 text, toks[a].start, toks[b - 1].end);
				}
				continue;
			}

			if (!tok_is_kw(t, "set") && !tok_is_kw(t, "reset"))
				continue;
			if (j < b && (tok_is_kw(&toks[j], "local") || tok_is_kw(&toks[j], "session")) &&
				j + 1 < b && !tok_is_kw(&toks[j + 1], "authorization"))
				j++;
			/* SET SCHEMA 'x' is SET search_path; SET SESSION AUTHORIZATION */
			if (j < b && (is_guarded_setting(token_value(toks, j, b)) ||
						  tok_is_kw(&toks[j], "schema") ||
						  tok_is_kw(&toks[j], "session") ||
						  tok_is_kw(&toks[j], "all")))
				refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
								 "a migration must not change search_path or the current role",
								 "tenant_migrate sets search_path to the tenant schema and public for each migration and runs it as the calling role; remove the statement.",
								 text, toks[a].start, toks[b - 1].end);
		}
	}

	schema_member = schema_list_members(toks, a, b);
	for (i = a; i < b; i++)
	{
		const LexToken *t = &toks[i];

		CHECK_FOR_INTERRUPTS();

		/* U&"public".t, also with a UESCAPE clause */
		if (t->tok == UIDENT && kind != STMT_EXTENSION)
		{
			char	   *v = token_value(toks, i, b);
			int			j = i + 1;

			if (j + 1 < b && tok_is_kw(&toks[j], "uescape"))
				j += 2;
			if (v != NULL && strcmp(v, "public") == 0 && j + 1 < b &&
				toks[j].tok == '.' &&
				!keep_contains(ctx->keep, object_name(text, &toks[j + 1])))
				ident_span_add(text, spans, t->start, toks[j - 1].end);
			continue;
		}

		if (tok_is_public(t))
		{
			if (kind == STMT_EXTENSION)
				continue;		/* extensions live in public for everyone */
			if (is_not_schema(ctx, text, t->start))
				continue;		/* FROM public.t AS public: the alias */
			if (i + 1 < b && toks[i + 1].tok == '.')
			{
				if (i + 2 < b &&
					keep_contains(ctx->keep, object_name(text, &toks[i + 2])))
					continue;
				ident_span_add(text, spans, t->start, t->end);
			}
			else if (kind == STMT_IMPORT)
			{
				/* the remote schema keeps its name; INTO names ours */
				if (i > a && tok_is_kw(&toks[i - 1], "into"))
					ident_span_add(text, spans, t->start, t->end);
			}
			else if (schema_member[i - a])
				ident_span_add(text, spans, t->start, t->end);
			continue;
		}

		/* A function's own SET search_path = public, ... clause */
		if (kind == STMT_FUNCTION && tok_is_kw(t, "set") && i + 2 < b &&
			toks[i + 1].tok == IDENT &&
			pg_strcasecmp(toks[i + 1].str, "search_path") == 0 &&
			(toks[i + 2].tok == '=' || tok_is_kw(&toks[i + 2], "to")))
		{
			int			j;

			for (j = i + 3; j < b; j += 2)
			{
				const LexToken *e = &toks[j];

				CHECK_FOR_INTERRUPTS();
				if (tok_is_public(e))
					ident_span_add(text, spans, e->start, e->end);
				else if (e->tok == SCONST && strcmp(e->str, "public") == 0)
					add_literal_span(text, e, NULL, true, spans);
				else if (e->tok != IDENT && e->tok != SCONST)
					break;
				if (j + 1 >= b || toks[j + 1].tok != ',')
					break;
			}
			continue;
		}

		/*
		 * set_config('search_path', ...), also spelled 'Search_Path',
		 * U&'search\005fpath' or setting_name => ..., in code that runs now
		 */
		if ((t->tok == SCONST || t->tok == USCONST) &&
			mode != SCAN_FUNC_BODY && kind != STMT_FUNCTION &&
			((i >= a + 2 && toks[i - 1].tok == '(' &&
			  tok_is_ident(&toks[i - 2], "set_config")) ||
			 (i >= a + 2 && (toks[i - 1].tok == EQUALS_GREATER ||
							 toks[i - 1].tok == COLON_EQUALS) &&
			  tok_is_ident(&toks[i - 2], "setting_name"))) &&
			is_guarded_setting(token_value(toks, i, b)))
			refuse_statement(ERRCODE_FEATURE_NOT_SUPPORTED,
							 "a migration must not change search_path or the current role",
							 "tenant_migrate sets search_path to the tenant schema and public for each migration and runs it as the calling role; remove the set_config() call.",
							 text, toks[a].start, toks[b - 1].end);

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

		/* 'public.t'::regclass, ::pg_catalog.regclass, 'public.t'::text::regclass */
		if (i + 2 < b && toks[i + 1].tok == TYPECAST)
		{
			int			j = i + 2;

			for (;;)
			{
				int			k = j;

				if (k + 2 < b && tok_is_ident(&toks[k], "pg_catalog") && toks[k + 1].tok == '.')
					k += 2;
				if (k + 2 < b && toks[k + 1].tok == TYPECAST &&
					(tok_is_kw(&toks[k], "text") || tok_is_ident(&toks[k], "text") ||
					 tok_is_kw(&toks[k], "varchar") || tok_is_kw(&toks[k], "name")))
				{
					j = k + 2;
					continue;
				}
				break;
			}
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
		}
	}
	pfree(schema_member);
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

		CHECK_FOR_INTERRUPTS();
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
				/* a UTF-16 surrogate pair makes one 4-byte character */
				if (cp >= 0xD800 && cp <= 0xDBFF)
					n = 0;
				else if (cp >= 0xDC00 && cp <= 0xDFFF)
					n = 4;
				else
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
	int			kind = literal_quote_kind(raw);
	int			k;

	if (raw[0] == '$')
	{
		const char *tagend = strchr(raw + 1, '$');
		int			off = t->start + (tagend - raw) + 1;

		map = palloc(sizeof(int) * (vlen + 1));
		for (k = 0; k <= vlen; k++)
		{
			if ((k & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
			map[k] = off + k;
		}
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

		CHECK_FOR_INTERRUPTS();
		/* never splice where the mapping did not land on the same bytes */
		if (s >= 0 && e > 0 && e - s == inner.end[k] - inner.start[k] &&
			memcmp(text + s, value + inner.start[k], e - s) == 0)
			span_add(spans, s, e, span_quote_outer(inner.flags[k], kind));
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
	int			vlen = strlen(val);
	int		   *map = NULL;
	int			q;
	int			pos = 0;

	if (raw[0] == '\'')
		q = 1;
	else if ((raw[0] == 'E' || raw[0] == 'e') && raw[1] == '\'')
		q = 2;
	else if (raw[0] == '$')
		q = (strchr(raw + 1, '$') - raw) + 1;
	else
		return;

	/*
	 * The name at the start, and in 'f(public.mood, int)'::regprocedure or
	 * '<>(public.citext, public.citext)'::regoperator each argument type.
	 */
	while (pos < vlen)
	{
		int			plen = 0;
		int			src;

		CHECK_FOR_INTERRUPTS();
		if (pg_strncasecmp(val + pos, "public", 6) == 0 &&
			(whole_value ? val[pos + 6] == '\0' : val[pos + 6] == '.'))
			plen = 6;
		else if (strncmp(val + pos, "\"public\"", 8) == 0 &&
				 (whole_value ? val[pos + 8] == '\0' : val[pos + 8] == '.'))
			plen = 8;

		if (plen > 0 && !whole_value && keep != NULL)
		{
			const char *obj = val + pos + plen + 1;
			char	   *name;

			if (*obj == '"')
			{
				const char *close = strchr(obj + 1, '"');

				name = close ? pnstrdup(obj + 1, close - obj - 1) : NULL;
			}
			else
			{
				int			n = strcspn(obj, ".(), ");

				name = downcase_identifier(obj, n, false, false);
			}
			if (keep_contains(keep, name))
				plen = 0;
		}

		if (plen > 0)
		{
			/* only where the literal's text holds those bytes verbatim */
			if (raw[0] == '$')
				src = t->start + q + pos;
			else
			{
				int			k;

				if (map == NULL)
					map = map_quoted_literal(text, t, val, vlen);
				src = map[pos];
				for (k = 0; k < plen; k++)
					if (map[pos + k] < 0 || map[pos + k] != src + k)
						src = -1;
			}
			if (src >= 0 && strncmp(text + src, val + pos, plen) == 0)
				span_add(spans, src, src + plen,
						 span_quote_outer(0, literal_quote_kind(raw)));
		}

		if (whole_value)
			break;
		/* the next argument: after "(" or "," and blanks */
		pos += strcspn(val + pos, "(,\"");
		while (pos < vlen && val[pos] == '"')
		{
			const char *close = strchr(val + pos + 1, '"');

			pos = close ? close - val + 1 : vlen;
			pos += strcspn(val + pos, "(,\"");
		}
		if (pos >= vlen)
			break;
		pos++;
		while (pos < vlen && val[pos] == ' ')
			pos++;
	}
	if (map != NULL)
		pfree(map);
}

/*---- Small helpers ----*/

static void
span_add(SpanList *spans, int start, int end, uint32 flags)
{
	if (spans->n == spans->cap)
	{
		spans->cap = spans->cap ? spans->cap * 2 : 16;
		if (spans->start == NULL)
		{
			spans->start = palloc(sizeof(int) * spans->cap);
			spans->end = palloc(sizeof(int) * spans->cap);
			spans->flags = palloc(sizeof(uint32) * spans->cap);
		}
		else
		{
			spans->start = repalloc(spans->start, sizeof(int) * spans->cap);
			spans->end = repalloc(spans->end, sizeof(int) * spans->cap);
			spans->flags = repalloc(spans->flags, sizeof(uint32) * spans->cap);
		}
	}
	spans->start[spans->n] = start;
	spans->end[spans->n] = end;
	spans->flags[spans->n] = flags;
	spans->n++;
}

/* Would byte c continue an unquoted identifier (scan.l's ident_cont)? */
static inline bool
joins_identifier(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '$' || c >= 0x80;
}

/*
 * A span in identifier position in text.  The tenant name spliced there
 * must stay one token of its own: a letter, digit, _, $ or multibyte
 * character next to it would join it to a neighbour ("public"CASCADE ->
 * tenant_acascade), a '"' would make "" of its quotes, and U& before it
 * would make U&"tenant_AbC" a Unicode identifier.  Such spans get a blank.
 */
static void
ident_span_add(const char *text, SpanList *spans, int start, int end)
{
	uint32		flags = 0;

	if (start > 0 &&
		(joins_identifier(text[start - 1]) || text[start - 1] == '"' ||
		 (text[start - 1] == '&' && start > 1 &&
		  (text[start - 2] == 'u' || text[start - 2] == 'U'))))
		flags |= SPAN_SPACE_BEFORE;
	if (joins_identifier(text[end]) || text[end] == '"')
		flags |= SPAN_SPACE_AFTER;
	span_add(spans, start, end, flags);
}

/* The QUOTE_* kind of the string literal whose source starts at raw */
static int
literal_quote_kind(const char *raw)
{
	if (raw[0] == '$')
		return QUOTE_DOLLAR;
	if (raw[0] == 'E' || raw[0] == 'e' || !standard_conforming_strings)
		return QUOTE_ESCAPE;
	return QUOTE_STANDARD;
}

/* flags, with a literal of this kind around everything it lies in so far */
static uint32
span_quote_outer(uint32 flags, int kind)
{
	int			shift = SPAN_QUOTE_SHIFT;

	while (((flags >> shift) & 3) != QUOTE_NONE)
		shift += 2;
	/* MAX_BODY_DEPTH keeps this within 32 bits (see the StaticAssertDecl) */
	Assert(shift + 2 <= 32);
	return flags | ((uint32) kind << shift);
}

/*
 * Appends the quoted schema name for a span: with blanks where flags ask
 * for them, escaped for each literal the span lies in, innermost first.
 * Tenant names are letters, digits and underscores today, so the escaping
 * only shows with other names (tenant_migration_rewrite() accepts any).
 */
static void
append_spliced(StringInfo buf, const char *schema, const char *quoted,
			   uint32 flags)
{
	const char *s = quoted;
	int			shift;

	for (shift = SPAN_QUOTE_SHIFT; shift + 2 <= 32; shift += 2)
	{
		int			kind = (flags >> shift) & 3;
		StringInfoData esc;
		const char *p;

		if (kind == QUOTE_NONE)
			break;
		if (kind == QUOTE_DOLLAR)
		{
			/* nothing can be escaped in a dollar quote, and $ may end it */
			if (strchr(s, '$') != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_SCHEMA_NAME),
						 errmsg("schema name \"%s\" cannot be spliced into a dollar-quoted string", schema),
						 errdetail("The name contains \"$\", which could end the dollar quote around it."),
						 errhint("Use a tenant schema name made of letters, digits and underscores.")));
			continue;
		}
		if (strchr(s, '\'') == NULL &&
			(kind == QUOTE_STANDARD || strchr(s, '\\') == NULL))
			continue;
		initStringInfo(&esc);
		for (p = s; *p; p++)
		{
			if (*p == '\'' || (*p == '\\' && kind == QUOTE_ESCAPE))
				appendStringInfoChar(&esc, *p);
			appendStringInfoChar(&esc, *p);
		}
		s = esc.data;
	}

	if (flags & SPAN_SPACE_BEFORE)
		appendStringInfoChar(buf, ' ');
	appendStringInfoString(buf, s);
	if (flags & SPAN_SPACE_AFTER)
		appendStringInfoChar(buf, ' ');
}

static int
span_cmp(const void *a, const void *b)
{
	int			sa = ((const SpanSort *) a)->start;
	int			sb = ((const SpanSort *) b)->start;

	return (sa > sb) - (sa < sb);
}

/* Settings a migration must leave alone; names compare case-insensitively */
static bool
is_guarded_setting(const char *name)
{
	return name != NULL &&
		(pg_strcasecmp(name, "search_path") == 0 ||
		 pg_strcasecmp(name, "role") == 0 ||
		 pg_strcasecmp(name, "session_authorization") == 0);
}

/*
 * The value of the name or string token toks[i], as the server would see
 * it: U&'...' and U&"..." decoded (with a UESCAPE clause after them); NULL
 * if it is neither, or its escapes are malformed.
 */
static char *
token_value(const LexToken *toks, int i, int b)
{
	const LexToken *t = &toks[i];

	if (t->tok == UIDENT || t->tok == USCONST)
	{
		char		esc = '\\';

		if (i + 2 < b && tok_is_kw(&toks[i + 1], "uescape"))
		{
			if (toks[i + 2].tok != SCONST || strlen(toks[i + 2].str) != 1)
				return NULL;
			esc = toks[i + 2].str[0];
		}
		return decode_unicode_escapes(t->str, esc);
	}
	if (t->tok == IDENT || t->tok == SCONST || t->is_kw)
		return (char *) t->str;
	return NULL;
}

/*
 * Decodes the Unicode escapes (\XXXX, \+XXXXXX, \\) of a U& token's raw
 * value.  Only ASCII matters to the callers, which compare the result with
 * setting names: other characters become DEL.  NULL if malformed.
 */
static char *
decode_unicode_escapes(const char *s, char esc)
{
	StringInfoData buf;

	initStringInfo(&buf);
	while (*s)
	{
		int			ndigits;
		unsigned int cp = 0;
		int			k;

		if (*s != esc)
		{
			appendStringInfoChar(&buf, *s++);
			continue;
		}
		if (s[1] == esc)
		{
			appendStringInfoChar(&buf, esc);
			s += 2;
			continue;
		}
		if (s[1] == '+')
		{
			ndigits = 6;
			s += 2;
		}
		else
		{
			ndigits = 4;
			s += 1;
		}
		for (k = 0; k < ndigits; k++)
		{
			unsigned char c = (unsigned char) s[k];

			if (!isxdigit(c))
				return NULL;
			cp = cp * 16 + (isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
		}
		s += ndigits;
		appendStringInfoChar(&buf, (cp > 0 && cp < 0x80) ? (char) cp : '\x7f');
	}
	return buf.data;
}

/* Notes the script's first statement that cannot run in a transaction */
static void
mark_non_transactional(TmScript *script, const char *sql, int start, int end)
{
	if (script->non_transactional)
		return;
	script->non_transactional = true;
	script->non_transactional_stmt =
		psprintf("line %d: %s", line_of(sql, first_token_offset(sql, start, end)),
				 snippet(sql, start, end));
}

/*
 * The statement text between start and end without leading blanks and
 * comments, cut to SNIPPET_LEN bytes on a character boundary.
 */
static char *
snippet(const char *text, int start, int end)
{
	const char *p = text + first_token_offset(text, start, end);
	const char *e = text + end;
	int			len;

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

	/*
	 * A preview runs nothing: any schema name that fits is accepted, which
	 * also shows how the renderer escapes names inside literals.
	 */
	tm_check_schema_name(schema, false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	keep = tm_keepset_build();
	script = tm_script_compile(sql, keep, "script passed to tenant_migration_rewrite()");
	tm_script_notice_neutralised(script);
	result = tm_script_render(script, -1, schema);

	/* SPI_finish frees what was allocated while connected */
	MemoryContextSwitchTo(callercxt);
	out = cstring_to_text(result);
	SPI_finish();
	PG_RETURN_TEXT_P(out);
}

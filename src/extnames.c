/*-------------------------------------------------------------------------
 *
 * src/extnames.c
 *		Predicting the names an extension will put in public, so that a
 *		script creating an extension is rewritten, previewed and run the
 *		same way before the extension exists as after.
 *
 * The keep set (rewrite.c) keeps public.<name> for members of extensions
 * in public.  An extension a script creates is not installed when the
 * script is compiled, so its members are not in the catalogs yet: a plan
 * would show tenant_x.citext where the run, which recompiles after the
 * CREATE EXTENSION, uses public.citext.  So the names its install and
 * update scripts (SHAREDIR/extension/NAME--*.sql) create are read with the
 * server's parser and kept as well.  Every version's scripts are read, so
 * the set may hold a name the installed version no longer has; like the
 * keep set itself it goes by name only.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include <dirent.h>
#include <sys/stat.h>

#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* Larger extension scripts are not read (PostGIS's are below this) */
#define EXT_MAX_SCRIPT_SIZE	(32 * 1024 * 1024)

static char *read_script(const char *path);
static void add_created_names(const char *sql, List **names);
static void add_name(List **names, List *qualified);
static int	name_cmp(const void *a, const void *b);

/* The last name of a qualified name, if it is unqualified or in public */
static void
add_name(List **names, List *qualified)
{
	const char *schema = NULL;

	if (qualified == NIL || !IsA(llast(qualified), String))
		return;
	if (list_length(qualified) >= 2 && IsA(list_nth(qualified, list_length(qualified) - 2), String))
		schema = strVal(list_nth(qualified, list_length(qualified) - 2));
	if (schema != NULL && strcmp(schema, "public") != 0)
		return;
	*names = lappend(*names, pstrdup(strVal(llast(qualified))));
}

static void
add_relname(List **names, RangeVar *rv)
{
	if (rv != NULL && (rv->schemaname == NULL || strcmp(rv->schemaname, "public") == 0))
		*names = lappend(*names, pstrdup(rv->relname));
}

/*
 * Names an extension script creates.  @extschema@ is read as public and
 * psql's \echo lines are dropped, as CREATE EXTENSION does; a script the
 * parser cannot read (a newer server's syntax) adds nothing.
 */
static void
add_created_names(const char *sql, List **names)
{
	StringInfoData buf;
	const char *p = sql;
	MemoryContext cxt = CurrentMemoryContext;
	List	   *raw = NIL;
	ListCell   *lc;

	initStringInfo(&buf);
	while (*p)
	{
		const char *eol = strchr(p, '\n');
		int			n = eol ? eol - p + 1 : strlen(p);

		if (strncmp(p, "\\echo", 5) == 0)
			appendStringInfoChar(&buf, '\n');
		else
		{
			const char *q = p;

			while (q < p + n)
			{
				if (*q == '@' && strncmp(q, "@extschema@", 11) == 0)
				{
					appendStringInfoString(&buf, "public");
					q += 11;
				}
				else if (*q == '@' && strncmp(q, "@extowner@", 10) == 0)
				{
					appendStringInfoString(&buf, "postgres");
					q += 10;
				}
				else
					appendStringInfoChar(&buf, *q++);
			}
		}
		p += n;
	}

	PG_TRY();
	{
		raw = raw_parser(buf.data, RAW_PARSE_DEFAULT);
	}
	PG_CATCH();
	{
		/* a syntax error only: nothing was allocated outside cxt */
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		raw = NIL;
	}
	PG_END_TRY();

	foreach(lc, raw)
	{
		Node	   *stmt = lfirst_node(RawStmt, lc)->stmt;

		CHECK_FOR_INTERRUPTS();
		switch (nodeTag(stmt))
		{
			case T_CreateFunctionStmt:
				add_name(names, ((CreateFunctionStmt *) stmt)->funcname);
				break;
			case T_DefineStmt:
				add_name(names, ((DefineStmt *) stmt)->defnames);
				break;
			case T_CreateEnumStmt:
				add_name(names, ((CreateEnumStmt *) stmt)->typeName);
				break;
			case T_CreateRangeStmt:
				add_name(names, ((CreateRangeStmt *) stmt)->typeName);
				break;
			case T_CreateDomainStmt:
				add_name(names, ((CreateDomainStmt *) stmt)->domainname);
				break;
			case T_CreateOpClassStmt:
				add_name(names, ((CreateOpClassStmt *) stmt)->opclassname);
				break;
			case T_CreateOpFamilyStmt:
				add_name(names, ((CreateOpFamilyStmt *) stmt)->opfamilyname);
				break;
			case T_CompositeTypeStmt:
				add_relname(names, ((CompositeTypeStmt *) stmt)->typevar);
				break;
			case T_CreateStmt:
				add_relname(names, ((CreateStmt *) stmt)->relation);
				break;
			case T_ViewStmt:
				add_relname(names, ((ViewStmt *) stmt)->view);
				break;
			case T_CreateSeqStmt:
				add_relname(names, ((CreateSeqStmt *) stmt)->sequence);
				break;
			case T_CreateTableAsStmt:
				add_relname(names, ((CreateTableAsStmt *) stmt)->into->rel);
				break;
			default:
				break;
		}
	}
}

/* A whole extension script file, or NULL if it cannot be read */
static char *
read_script(const char *path)
{
	struct stat st;
	FILE	   *f;
	char	   *buf;
	size_t		n;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > EXT_MAX_SCRIPT_SIZE)
		return NULL;
	f = AllocateFile(path, PG_BINARY_R);
	if (f == NULL)
		return NULL;
	buf = palloc(st.st_size + 1);
	n = fread(buf, 1, st.st_size, f);
	FreeFile(f);
	buf[n] = '\0';
	if (strlen(buf) != n)
		return NULL;
	return buf;
}

/* Names the scripts of extension extname create (List of char *) */
static List *
extension_names(const char *extname)
{
	char		sharepath[MAXPGPATH];
	char	   *dirpath;
	char	   *prefix = psprintf("%s--", extname);
	DIR		   *dir;
	struct dirent *de;
	List	   *names = NIL;

	get_share_path(my_exec_path, sharepath);
	dirpath = psprintf("%s/extension", sharepath);
	dir = AllocateDir(dirpath);
	if (dir == NULL)
		return NIL;
	while ((de = ReadDir(dir, dirpath)) != NULL)
	{
		size_t		len = strlen(de->d_name);
		char	   *text;

		CHECK_FOR_INTERRUPTS();
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
			len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		text = read_script(psprintf("%s/%s", dirpath, de->d_name));
		if (text != NULL)
			add_created_names(text, &names);
	}
	FreeDir(dir);
	return names;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* keep plus names, sorted and without duplicates, as a new set */
static TmKeepSet *
keepset_plus(const TmKeepSet *keep, List *names)
{
	TmKeepSet  *out = palloc0(sizeof(TmKeepSet));
	ListCell   *lc;
	int			n = 0;
	int			k;
	int			m = 0;

	out->names = palloc(sizeof(char *) * (keep->nnames + list_length(names) + 1));
	for (k = 0; k < keep->nnames; k++)
		out->names[n++] = keep->names[k];
	foreach(lc, names)
		out->names[n++] = (char *) lfirst(lc);
	qsort(out->names, n, sizeof(char *), name_cmp);
	for (k = 0; k < n; k++)
		if (m == 0 || strcmp(out->names[m - 1], out->names[k]) != 0)
			out->names[m++] = out->names[k];
	out->nnames = m;
	return out;
}

/*
 * keep, plus the names of extensions that raw (a raw_parser() list)
 * creates and that are not installed yet; keep itself if there are none.
 */
/*
 * names, plus the member names of every extension that a CREATE EXTENSION
 * among the raw statements creates and that is not installed yet
 */
static List *
created_extension_names(List *names, List *raw)
{
	ListCell   *lc;

	foreach(lc, raw)
	{
		Node	   *stmt = lfirst_node(RawStmt, lc)->stmt;
		CreateExtensionStmt *c;

		CHECK_FOR_INTERRUPTS();
		if (!IsA(stmt, CreateExtensionStmt))
			continue;
		c = (CreateExtensionStmt *) stmt;
		if (OidIsValid(get_extension_oid(c->extname, true)))
			continue;
		names = list_concat(names, extension_names(c->extname));
	}
	return names;
}

TmKeepSet *
tm_keepset_with_created_extensions(const TmKeepSet *keep, List *raw)
{
	List	   *names = created_extension_names(NIL, raw);

	if (names == NIL)
		return (TmKeepSet *) keep;
	return keepset_plus(keep, names);
}

/*
 * keep, plus the names of extensions that a registered tenant script
 * creates and that are not installed yet: an earlier pending script may
 * create the extension a later one uses, and both are compiled before
 * either runs.  The scripts are only looked at where their text mentions
 * CREATE EXTENSION.
 */
TmKeepSet *
tm_keepset_add_registered_extensions(TmKeepSet *keep)
{
	List	   *names = NIL;
	uint64		i;
	uint64		n;
	SPITupleTable *tuptable;

	tm_catalog_exec("SELECT up_sql FROM public.tenant_migration_scripts"
					" WHERE scope = 'tenant'"
					"   AND up_sql OPERATOR(pg_catalog.~*) 'create[[:space:]]+extension'",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		char	   *sql = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 1);

		/* registered scripts parse; rows of COPY and meta-commands aside */
		names = created_extension_names(names, tm_script_raw_statements(sql));
	}
	if (names == NIL)
		return keep;
	return keepset_plus(keep, names);
}

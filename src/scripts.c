/*-------------------------------------------------------------------------
 *
 * src/scripts.c
 *		Migration scripts: versions and their order, checksums, and
 *		registration (tenant_migration_add).
 *
 * A version is digits with optional single "." or "_" separators; versions
 * are ordered part by part numerically, so 1.9 < 1.10 and 001 equals 1 in
 * order (which is why two such spellings may not both be registered).  A
 * version has at most TM_VERSION_MAXLEN (63) bytes, like a name.
 * tenant_version_key() in the install script orders them the same way in
 * SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include <openssl/evp.h>

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(tenant_migration_add);

/*---- Versions ----*/

bool
tm_version_is_valid(const char *v)
{
	const char *p = v;

	if (v == NULL || *v == '\0' || strlen(v) > TM_VERSION_MAXLEN)
		return false;
	for (;;)
	{
		if (!isdigit((unsigned char) *p))
			return false;
		while (isdigit((unsigned char) *p))
			p++;
		if (*p == '\0')
			return true;
		if (*p != '.' && *p != '_')
			return false;
		p++;
	}
}

void
tm_version_check(const char *v, const char *what)
{
	size_t		len = strlen(v);

	/* Checked first, so an absurdly long argument is not echoed back */
	if (len > TM_VERSION_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s is too long", what),
				 errdetail("A version is at most %d bytes; this one has %zu.",
						   TM_VERSION_MAXLEN, len),
				 errhint("Use a shorter version, such as a sequence number or a timestamp like 20231201120000.")));
	if (!tm_version_is_valid(v))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s \"%s\"", what, v),
				 errdetail("A version is digits with optional \".\" or \"_\" separators, such as 001, 2, 1.10 or 20231201120000."),
				 errhint("Name migrations like 0001_create_users.up.sql, or pass such a version.")));
}

/* Next numeric part of *p (leading zeros skipped); advances *p past it */
static void
next_part(const char **p, const char **start, int *len)
{
	while (**p == '0' && isdigit((unsigned char) (*p)[1]))
		(*p)++;
	*start = *p;
	while (isdigit((unsigned char) **p))
		(*p)++;
	*len = *p - *start;
	if (**p == '.' || **p == '_')
		(*p)++;
}

int
tm_version_cmp(const char *a, const char *b)
{
	while (*a != '\0' && *b != '\0')
	{
		const char *sa,
				   *sb;
		int			la,
					lb,
					c;

		next_part(&a, &sa, &la);
		next_part(&b, &sb, &lb);
		/* without leading zeros, a longer number is a larger one */
		if (la != lb)
			return la < lb ? -1 : 1;
		c = memcmp(sa, sb, la);
		if (c != 0)
			return c < 0 ? -1 : 1;
	}
	if (*a == '\0' && *b == '\0')
		return 0;
	return *a == '\0' ? -1 : 1;
}

int
tm_version_qsort_cmp(const void *a, const void *b)
{
	const char *va = *(const char *const *) a;
	const char *vb = *(const char *const *) b;
	int			c = tm_version_cmp(va, vb);

	return c != 0 ? c : strcmp(va, vb);
}

/*---- Checksums ----*/

char *
tm_checksum(const char *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char	   *hex;
	unsigned int i;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		elog(ERROR, "could not compute SHA-256 checksum");
	hex = palloc(mdlen * 2 + 1);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return hex;
}

/*---- Registration ----*/

static bool
str_eq_nullable(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
is_blank(const char *s)
{
	for (; *s; s++)
		if (!isspace((unsigned char) *s))
			return false;
	return true;
}

/* depends_on as a text[] Datum */
static Datum
list_to_text_array(List *l)
{
	Datum	   *elems = palloc(sizeof(Datum) * (list_length(l) + 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, l)
		elems[n++] = CStringGetTextDatum((char *) lfirst(lc));
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

TmRegisterResult
tm_script_register(const char *version, const char *name, const char *up_sql,
				   const char *down_sql, const char *scope, List *depends_on,
				   char **checksum_out)
{
	char	   *checksum;
	ListCell   *lc;
	Oid			texttype = TEXTOID;
	Datum		vkey = CStringGetTextDatum(version);
	Datum		deps;
	bool		exists;
	TmScript   *up;
	TmScript   *down = NULL;

	/* Everything is checked before anything is written */
	tm_version_check(version, "migration version");
	if (is_blank(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration name must not be empty"),
				 errhint("Give the migration a short name such as \"create_users\".")));
	if (strcmp(scope, TM_SCOPE_TENANT) != 0 && strcmp(scope, TM_SCOPE_SHARED) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid migration scope \"%s\"", scope),
				 errdetail("The scope is \"tenant\" (applied to every tenant schema) or \"shared\" (applied once to public)."),
				 errhint("Pass scope => 'tenant' or scope => 'shared'.")));

	foreach(lc, depends_on)
	{
		char	   *dep = (char *) lfirst(lc);
		Datum		dkey = CStringGetTextDatum(dep);

		tm_version_check(dep, "dependency version");
		if (tm_version_cmp(dep, version) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("migration %s cannot depend on itself", version),
					 errhint("Remove %s from depends_on.", dep)));
		tm_catalog_exec("SELECT version FROM public.tenant_migration_scripts"
					" WHERE public.tenant_version_key(version) OPERATOR(pg_catalog.=) public.tenant_version_key($1)",
					1, &texttype, &dkey, NULL, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("migration %s depends on version %s, which is not registered", version, dep),
					 errhint("Register version %s first, or remove it from depends_on.", dep)));
		/* store the registered spelling (5 for 005), which the runner matches */
		lfirst(lc) = tm_spi_getstr(0, 1);
	}

	/*
	 * Malformed SQL and statements the runner would refuse fail here (all
	 * of them at once, rewrite.c); an empty or comment-only script is a
	 * no-op, as generated histories have them.
	 */
	up = tm_script_compile(up_sql, NULL, psprintf("up script of migration %s", version));
	if (down_sql != NULL)
		down = tm_script_compile(down_sql, NULL, psprintf("down script of migration %s", version));

	checksum = tm_checksum(up_sql, strlen(up_sql));
	*checksum_out = checksum;
	deps = list_to_text_array(depends_on);

	tm_catalog_exec("SELECT s.name, s.scope, s.checksum, s.down_sql, s.depends_on::pg_catalog.text,"
				"       (SELECT pg_catalog.count(*) FROM public.tenant_migrations m WHERE m.version = s.version),"
				"       $2::pg_catalog.text, s.registered_by::pg_catalog.text"
				"  FROM public.tenant_migration_scripts s WHERE s.version = $1 FOR UPDATE",
				2, (Oid[]) {TEXTOID, TEXTARRAYOID}, (Datum[]) {vkey, deps}, NULL, SPI_OK_SELECT);
	exists = (SPI_processed > 0);

	if (!exists)
	{
		/* 001 and 1 would be the same place in the order: refuse the second */
		tm_catalog_exec("SELECT version FROM public.tenant_migration_scripts"
					" WHERE public.tenant_version_key(version) OPERATOR(pg_catalog.=) public.tenant_version_key($1)",
					1, &texttype, &vkey, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("migration version %s collides with registered version %s",
							version, tm_spi_getstr(0, 1)),
					 errdetail("Versions are compared part by part as numbers, so both name the same place in the order."),
					 errhint("Use version %s, or pick a version that sorts elsewhere.",
							 tm_spi_getstr(0, 1))));
	}
	else
	{
		char	   *old_name = tm_spi_getstr(0, 1);
		char	   *old_scope = tm_spi_getstr(0, 2);
		char	   *old_checksum = tm_spi_getstr(0, 3);
		char	   *old_down = tm_spi_getstr(0, 4);
		char	   *old_deps = tm_spi_getstr(0, 5);
		long		applied = atol(tm_spi_getstr(0, 6));
		char	   *new_deps = tm_spi_getstr(0, 7);
		char	   *author = tm_spi_getstr(0, 8);

		if (applied > 0 && strcmp(old_checksum, checksum) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("checksum mismatch for migration %s", version),
					 errdetail("Version %s is applied in %ld schema(s) with checksum %s; the new up_sql has checksum %s.",
							   version, applied, old_checksum, checksum),
					 errhint("An applied migration cannot be edited: register the change as a new version.")));
		if (applied > 0 && strcmp(old_scope, scope) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("cannot change the scope of applied migration %s from %s to %s",
							version, old_scope, scope),
					 errhint("Register the change as a new version.")));

		if (strcmp(old_checksum, checksum) == 0 &&
			strcmp(old_name, name) == 0 &&
			strcmp(old_scope, scope) == 0 &&
			str_eq_nullable(old_down, down_sql) &&
			strcmp(old_deps, new_deps) == 0)
			return TM_SCRIPT_UNCHANGED;

		/*
		 * A script runs as the role that first registered it, so only that
		 * role (or a member of it) may change it; the author never changes.
		 */
		if (!tm_may_act_as(author))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to change migration %s", version),
					 errdetail("Migration %s was registered by role \"%s\", and its scripts run as that role.",
							   version, author),
					 errhint("Change it as a member of role \"%s\", or register the change as a new version.",
							 author)));
	}

	/* New, or changed and not applied anywhere (or only its down script changed) */
	{
		Oid			argtypes[8] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID};
		Datum		values[8];
		char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		values[0] = vkey;
		values[1] = CStringGetTextDatum(name);
		values[2] = CStringGetTextDatum(scope);
		values[3] = CStringGetTextDatum(up_sql);
		values[4] = down_sql ? CStringGetTextDatum(down_sql) : (Datum) 0;
		nulls[4] = down_sql ? ' ' : 'n';
		values[5] = CStringGetTextDatum(checksum);
		values[6] = deps;
		/* the scripts will run as this role (runner.c) */
		values[7] = CStringGetTextDatum(tm_catalog_invoker());
		tm_catalog_exec("INSERT INTO public.tenant_migration_scripts AS s"
						" (version, name, scope, up_sql, down_sql, checksum, depends_on, registered_by)"
						" VALUES ($1, $2, $3, $4, $5, $6, $7, $8::pg_catalog.name)"
						" ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, scope = EXCLUDED.scope,"
						"   up_sql = EXCLUDED.up_sql, down_sql = EXCLUDED.down_sql,"
						"   checksum = EXCLUDED.checksum, depends_on = EXCLUDED.depends_on,"
						"   registered_at = pg_catalog.now()",
						8, argtypes, values, nulls, SPI_OK_INSERT);
	}

	/* Said once, when the script is registered or changed */
	if (up->nstmts == 0)
		ereport(NOTICE,
				(errmsg("up script of migration %s has no statements", version),
				 errdetail("It is registered and applied as a no-op.")));
	tm_script_notice_neutralised(up);
	if (down != NULL)
		tm_script_notice_neutralised(down);
	if (strcmp(scope, TM_SCOPE_TENANT) == 0)
	{
		tm_script_warn_other_schemas(up);
		if (down != NULL)
			tm_script_warn_other_schemas(down);
	}
	if (!exists)
		tm_warn_out_of_order(version, scope);
	return exists ? TM_SCRIPT_CHANGED : TM_SCRIPT_NEW;
}

/*
 * tenant_migration_add(version, name, up_sql, down_sql, scope, depends_on)
 *		RETURNS text (the checksum)
 */
Datum
tenant_migration_add(PG_FUNCTION_ARGS)
{
	const char *argnames[] = {"version", "name", "up_sql", NULL, "scope"};
	char	   *version;
	char	   *name;
	char	   *up_sql;
	char	   *down_sql = NULL;
	char	   *scope;
	List	   *deps = NIL;
	char	   *checksum;
	MemoryContext callercxt = CurrentMemoryContext;
	text	   *result;
	int			i;

	for (i = 0; i < 5; i++)
		if (argnames[i] != NULL && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i]),
					 errhint("Only down_sql may be NULL; omit scope and depends_on to use their defaults.")));
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	up_sql = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		down_sql = text_to_cstring(PG_GETARG_TEXT_PP(3));
	scope = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!PG_ARGISNULL(5))
		deps = tm_text_array_to_list(PG_GETARG_ARRAYTYPE_P(5), "depends_on");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	(void) tm_script_register(version, name, up_sql, down_sql, scope, deps, &checksum);
	MemoryContextSwitchTo(callercxt);
	result = cstring_to_text(checksum);
	SPI_finish();
	PG_RETURN_TEXT_P(result);
}

/*-------------------------------------------------------------------------
 *
 * src/runner.c
 *		Applying and reverting migrations for one schema: tenant_migrate(),
 *		tenant_migrate_shared(), tenant_rollback().
 *
 * Transactions and locking protocol
 * ---------------------------------
 * Everything here runs in the caller's transaction; a fleet run gives each
 * tenant a transaction of its own and calls the same functions inside it.
 *
 * 1. Before reading what a schema has applied, take the transaction-level
 *    advisory lock (TM_LOCK_KEY1, schema OID) in the lock space
 *    TM_LOCK_SPACE, which no SQL-level advisory lock function can reach
 *    (pg_locks shows it as an advisory lock with objsubid = TM_LOCK_SPACE).
 *    tenant_migrate and tenant_rollback wait for it, at most
 *    tenant_migrate.lock_timeout times (1 + lock_retries); concurrent
 *    calls on one schema therefore serialize, and the second one reads the
 *    first one's committed history (a new snapshot per query under READ
 *    COMMITTED) and applies nothing twice.  The lock is released when the
 *    transaction ends.  Fleet runs and create_tenant, which commit between
 *    the transaction segments of one tenant (nontx.c), also hold the same
 *    lock at session level (tm_lock_schema_session) until the tenant is
 *    done.
 * 2. Every check (dependencies, down scripts, malformed or refused SQL) is
 *    done for all scripts of the call before the first one runs.
 * 3. Each script runs as the role that registered it (registered_by), with
 *    SECURITY_LOCAL_USERID_CHANGE so that it cannot SET ROLE or SET
 *    SESSION AUTHORIZATION its way out; the caller must have that role's
 *    privileges, and no role with fewer privileges may own, or hold
 *    CREATE on, a schema the script searches (it could plant a function or
 *    operator there for the script to call).  Its checksum is recomputed
 *    before it runs.  Tenant scripts run under the containment guard
 *    (guard.c).  It runs at a new GUC nesting level with search_path set to
 *    the tenant then public (public alone for shared scripts),
 *    lock_timeout set to tenant_migrate.lock_timeout, and the tenant
 *    context (rls.c): the setting named by tenant_migrate.tenant_setting
 *    holds the tenant key and tenant_migrate.current_tenant the schema
 *    (both empty for shared scripts); its statements run
 *    one by one through SPI.  Afterwards every setting changed at that
 *    level -- ours, and any SET the script ran itself, as pg_dump output
 *    does -- is put back as it was (AtEOXact_GUC with isCommit = false);
 *    on error the abort of the (sub)transaction does the same.
 * 4. An error is re-thrown unchanged (message, SQLSTATE, detail); an error
 *    context callback adds, as PL/pgSQL does, a CONTEXT line naming the
 *    script, version, schema and statement (number, line, a short
 *    snippet), and SPI's own "SQL statement" line for that statement is
 *    dropped so that it is not printed twice.  Nothing is caught and
 *    carried on with: the caller's transaction (or the fleet run's
 *    per-tenant subtransaction) is what undoes a failed tenant.  The
 *    one-schema SQL calls run the work in an internal subtransaction: on
 *    error it is rolled back first (locks and the script's role released),
 *    then the failed attempt is written to the log by a background worker
 *    (audit.c), so that it survives the abort of the caller's transaction,
 *    and then the error is thrown again.
 * 5. The history row (public.tenant_migrations) and the audit row
 *    (public.tenant_migration_log) are written right after the script, in
 *    the same transaction as the script itself, through catalog.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type_d.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(tenant_migrate);
PG_FUNCTION_INFO_V1(tenant_migrate_shared);
PG_FUNCTION_INFO_V1(tenant_rollback);

/* An applied migration, as tm_revert() sees it */
typedef struct TmApplied
{
	char	   *version;
	char	   *name;
	char	   *author;			/* registered_by of the script: runs as */
	TmScript   *down;			/* NULL if there is no down script */
	bool		rendered;		/* down is already rewritten for the schema */
} TmApplied;


/*---- Local functions ----*/

static double run_script(const TmScript *script, const char *schema,
						 Oid nspoid, bool rewrite, bool shared,
						 const char *version, const char *name,
						 const char *action, const char *author,
						 const char *tenant_key, int only_stmt,
						 uint32 flags);

/* run_script() flags */
#define RUN_STRIP_CONCURRENTLY	0x01	/* CONCURRENTLY steps as plain ones */
#define RUN_TOPLEVEL			0x02	/* a CONCURRENTLY step at top level */
#define RUN_CHECK_BODIES		0x04	/* always validate function bodies */
static char *tenant_key_of(const char *schema);
static Oid	script_role(const char *author, const char *version);
static void check_schema_trust(Oid nspoid, const char *schema, Oid author,
							   const char *version, bool owner_trusted);
static void check_dependencies(const char *schema, bool shared, List *pending);
static int	pending_cmp(const ListCell *a, const ListCell *b);
static int	applied_cmp_desc(const ListCell *a, const ListCell *b);
static void put_steps(FunctionCallInfo fcinfo, List *steps);
static char *arg_cstring(FunctionCallInfo fcinfo, int argno);

/*---- Locks and settings ----*/

bool
tm_lock_schema(const char *schema, Oid nspoid, bool dontwait)
{
	LOCKTAG		tag;
	int			wait_ms = tm_lock_timeout > 0 ?
		(int) Min((int64) tm_lock_timeout * (tm_lock_retries + 1), INT_MAX) : 0;
	char		buf[32];
	int			nestlevel;
	MemoryContext cxt = CurrentMemoryContext;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TM_LOCK_KEY1,
						 (uint32) nspoid, TM_LOCK_SPACE);
	if (LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL)
		return true;
	if (dontwait)
		return false;

	/*
	 * Wait in the lock manager (so pg_locks and pg_stat_activity show the
	 * wait), bounded by our own setting whatever the session's lock_timeout
	 * says.
	 */
	nestlevel = NewGUCNestLevel();
	snprintf(buf, sizeof(buf), "%d", wait_ms);
	(void) set_config_option("lock_timeout", buf, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		(void) LockAcquire(&tag, ExclusiveLock, false, false);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_LOCK_NOT_AVAILABLE)
			PG_RE_THROW();
		FlushErrorState();
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("tenant \"%s\" is being migrated by another session", schema),
				 errdetail("Waited %d ms (tenant_migrate.lock_timeout times 1 + tenant_migrate.lock_retries) for its migration lock.",
						   wait_ms),
				 errhint("Try again when the other migration of this tenant has finished.")));
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	return true;
}

/*
 * The session-level variant, for a tenant whose scripts span several
 * transactions (nontx.c): the same lock tag, so a concurrent
 * tm_lock_schema() of another session waits for it or skips the tenant,
 * and this session's own transaction-level requests are granted at once.
 * One such lock at a time; tm_unlock_schema_session() releases it (also
 * after an error: an abort does not release a session lock).
 */
static Oid	session_locked_nspoid = InvalidOid;

bool
tm_lock_schema_session(Oid nspoid, bool dontwait)
{
	LOCKTAG		tag;

	if (session_locked_nspoid == nspoid)
		return true;
	tm_unlock_schema_session();
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TM_LOCK_KEY1,
						 (uint32) nspoid, TM_LOCK_SPACE);
	if (LockAcquire(&tag, ExclusiveLock, true, dontwait) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	session_locked_nspoid = nspoid;
	return true;
}

void
tm_unlock_schema_session(void)
{
	LOCKTAG		tag;

	if (!OidIsValid(session_locked_nspoid))
		return;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TM_LOCK_KEY1,
						 (uint32) session_locked_nspoid, TM_LOCK_SPACE);
	(void) LockRelease(&tag, ExclusiveLock, true);
	session_locked_nspoid = InvalidOid;
}

/*---- As whom scripts run ----*/

bool
tm_may_act_as(const char *rolename)
{
	Oid			role = get_role_oid(rolename, true);

	/* a dropped author: only a superuser may still act for it */
	if (!OidIsValid(role))
		return superuser();
	return has_privs_of_role(GetUserId(), role);
}

/*
 * The role a script runs as: the one that registered it.  The caller must
 * have its privileges, so nobody gets a script run with rights they lack,
 * and a script never runs with rights its author lacks.
 */
static Oid
script_role(const char *author, const char *version)
{
	Oid			role = get_role_oid(author, true);

	if (!OidIsValid(role))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role \"%s\", which registered migration %s, does not exist", author, version),
				 errdetail("Scripts run as the role that registered them."),
				 errhint("A superuser can set registered_by of version %s in tenant_migration_scripts to an existing role.",
						 version)));
	if (!has_privs_of_role(GetUserId(), role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run migration %s", version),
				 errdetail("Migration %s was registered by role \"%s\", and scripts run as the role that registered them.",
						   version, author),
				 errhint("Run it as role \"%s\" or as a member of it.", author)));
	return role;
}

/* The database owner stands for pg_database_owner */
static Oid
effective_role(Oid role)
{
	HeapTuple	tup;
	Oid			owner;

	if (role != ROLE_PG_DATABASE_OWNER)
		return role;
	tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for database %u", MyDatabaseId);
	owner = ((Form_pg_database) GETSTRUCT(tup))->datdba;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * A role that can create objects in a schema a script searches can plant a
 * function or operator there that the script then calls with its author's
 * rights (CVE-2018-1058).  So every such role -- the owner (unless
 * owner_trusted: public's owner is the database owner, whom PostgreSQL
 * trusts there) and every grantee of CREATE -- must already have the
 * author's privileges.
 */
static void
check_schema_trust(Oid nspoid, const char *schema, Oid author,
				   const char *version, bool owner_trusted)
{
	HeapTuple	tup;
	Oid			owner;
	Datum		acldatum;
	bool		isnull;
	Oid			untrusted = InvalidOid;
	bool		everyone = false;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nspoid));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"%s\" does not exist", schema)));
	owner = effective_role(((Form_pg_namespace) GETSTRUCT(tup))->nspowner);
	if (!owner_trusted && !has_privs_of_role(owner, author))
		untrusted = owner;

	acldatum = SysCacheGetAttr(NAMESPACEOID, tup, Anum_pg_namespace_nspacl, &isnull);
	if (!isnull && !OidIsValid(untrusted))
	{
		Acl		   *acl = DatumGetAclP(acldatum);
		AclItem    *items = ACL_DAT(acl);
		int			i;

		for (i = 0; i < ACL_NUM(acl); i++)
		{
			Oid			grantee;

			if ((ACLITEM_GET_PRIVS(items[i]) & ACL_CREATE) == 0)
				continue;
			if (items[i].ai_grantee == ACL_ID_PUBLIC)
			{
				everyone = true;
				break;
			}
			grantee = effective_role(items[i].ai_grantee);
			if (grantee == owner && owner_trusted)
				continue;
			if (!has_privs_of_role(grantee, author))
			{
				untrusted = grantee;
				break;
			}
		}
	}
	ReleaseSysCache(tup);

	if (everyone)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot run migration %s: every role may create objects in schema \"%s\"", version, schema),
				 errdetail("A script searches schema \"%s\", and an object planted there would run with the rights of role \"%s\".",
						   schema, GetUserNameFromId(author, false)),
				 errhint("REVOKE CREATE ON SCHEMA %s FROM PUBLIC.", quote_identifier(schema))));
	if (OidIsValid(untrusted))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot run migration %s in schema \"%s\" as role \"%s\"",
						version, schema, GetUserNameFromId(author, false)),
				 errdetail("Role \"%s\" can create objects in schema \"%s\" but lacks the privileges of role \"%s\", which the script runs as; an object it planted there would run with those privileges.",
						   GetUserNameFromId(untrusted, false), schema, GetUserNameFromId(author, false)),
				 untrusted == owner ?
				 errhint("Register the migrations as role \"%s\", which owns the schema, or give the schema to the role that registers them (ALTER SCHEMA ... OWNER TO).",
						 GetUserNameFromId(untrusted, false)) :
				 errhint("Revoke CREATE on schema \"%s\" from role \"%s\".",
						 schema, GetUserNameFromId(untrusted, false))));
}

char *
tm_search_path_for(const char *schema, bool shared)
{
	if (shared)
		return pstrdup(TM_SHARED_SCHEMA);
	return psprintf("%s, %s", quote_identifier(schema), TM_SHARED_SCHEMA);
}

char		tm_current_version[NAMEDATALEN] = "";

/*---- Pending scripts ----*/

/* The compiled scripts of p, from the cache or compiled into it */
static void
compile_pending(TmPending *p, bool shared, const TmKeepSet *keep,
				TmScriptCache *cache)
{
	MemoryContext oldcxt;
	ListCell   *lc;
	TmPending  *c;

	if (cache != NULL)
	{
		foreach(lc, cache->entries)
		{
			c = (TmPending *) lfirst(lc);
			if (strcmp(c->version, p->version) != 0 ||
				strcmp(c->checksum, p->checksum) != 0)
				continue;
			/* the query left out a text compiled and checked here before */
			if (p->up_sql == NULL)
				p->up_sql = c->up_sql;
			if ((c->down_sql == NULL) == (p->down_sql == NULL) &&
				(c->down_sql == NULL || strcmp(c->down_sql, p->down_sql) == 0))
			{
				p->up = c->up;
				p->down = c->down;
				return;
			}
		}
		Assert(p->up_sql != NULL);
		oldcxt = MemoryContextSwitchTo(cache->cxt);
		c = palloc0(sizeof(TmPending));
		c->version = pstrdup(p->version);
		c->checksum = pstrdup(p->checksum);
		c->up_sql = pstrdup(p->up_sql);
		c->down_sql = p->down_sql ? pstrdup(p->down_sql) : NULL;
	}
	else
	{
		oldcxt = CurrentMemoryContext;
		c = p;
	}

	c->up = tm_script_compile(c->up_sql, shared ? NULL : keep,
							  psprintf("up script of migration %s (%s)", p->version, p->name));
	if (c->down_sql != NULL)
		c->down = tm_script_compile(c->down_sql, shared ? NULL : keep,
									psprintf("down script of migration %s (%s)", p->version, p->name));

	if (cache != NULL)
	{
		cache->entries = lappend(cache->entries, c);
		MemoryContextSwitchTo(oldcxt);
		p->up = c->up;
		p->down = c->down;
	}
}

static int
pending_cmp(const ListCell *a, const ListCell *b)
{
	TmPending  *pa = (TmPending *) lfirst(a);
	TmPending  *pb = (TmPending *) lfirst(b);

	return tm_version_qsort_cmp(&pa->version, &pb->version);
}

/*
 * The versions and checksums of the scripts compiled into cache, as two
 * text[] (empty without a cache).
 */
static void
known_scripts(const TmScriptCache *cache, Datum *versions, Datum *checksums)
{
	int			n = (cache != NULL) ? list_length(cache->entries) : 0;
	Datum	   *v = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *c = palloc(sizeof(Datum) * Max(n, 1));
	int			i = 0;
	ListCell   *lc;

	if (cache != NULL)
	{
		foreach(lc, cache->entries)
		{
			TmPending  *e = (TmPending *) lfirst(lc);

			v[i] = CStringGetTextDatum(e->version);
			c[i++] = CStringGetTextDatum(e->checksum);
		}
	}
	*versions = PointerGetDatum(construct_array(v, n, TEXTOID, -1, false, TYPALIGN_INT));
	*checksums = PointerGetDatum(construct_array(c, n, TEXTOID, -1, false, TYPALIGN_INT));
}

List *
tm_pending_scripts(const char *schema, bool shared, const char *target,
				   const TmKeepSet *keep, TmScriptCache *cache)
{
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[4];
	List	   *pending = NIL;
	uint64		i;
	uint64		n;
	SPITupleTable *tuptable;

	values[0] = CStringGetTextDatum(schema);
	values[1] = CStringGetTextDatum(shared ? TM_SCOPE_SHARED : TM_SCOPE_TENANT);
	known_scripts(cache, &values[2], &values[3]);

	/*
	 * The up script's text only where this process has not compiled and
	 * checked it yet: a fleet run would otherwise read, decompress and hash
	 * every script for every tenant.
	 */
	tm_catalog_exec_cached("SELECT s.version, s.name, s.checksum,"
						   "       CASE WHEN (s.version, s.checksum) IN"
						   "                 (SELECT k.v, k.c FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS k(v, c))"
						   "            THEN NULL ELSE s.up_sql END,"
						   "       s.down_sql, s.depends_on, s.registered_by::pg_catalog.text"
						   "  FROM public.tenant_migration_scripts s"
						   " WHERE s.scope = $2"
						   "   AND NOT EXISTS (SELECT 1 FROM public.tenant_migrations m"
						   "                    WHERE m.tenant_schema = $1::pg_catalog.name AND m.version = s.version)",
						   4, argtypes, values, NULL, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	n = SPI_processed;

	for (i = 0; i < n; i++)
	{
		TmPending  *p = palloc0(sizeof(TmPending));
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull;
		Datum		deps;

		p->version = SPI_getvalue(tup, desc, 1);
		if (target != NULL && tm_version_cmp(p->version, target) > 0)
			continue;
		p->name = SPI_getvalue(tup, desc, 2);
		p->checksum = SPI_getvalue(tup, desc, 3);
		p->up_sql = SPI_getvalue(tup, desc, 4);
		p->down_sql = SPI_getvalue(tup, desc, 5);
		deps = SPI_getbinval(tup, desc, 6, &isnull);
		p->depends_on = isnull ? NIL :
			tm_text_array_to_list(DatumGetArrayTypeP(deps), "depends_on");
		p->author = SPI_getvalue(tup, desc, 7);

		/* the text that runs must be the text that was registered */
		if (p->up_sql != NULL &&
			strcmp(tm_checksum(p->up_sql, strlen(p->up_sql)), p->checksum) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("up script of migration %s does not match its checksum", p->version),
					 errdetail("tenant_migration_scripts was changed other than through tenant_migration_add()."),
					 errhint("Register the intended text again with tenant_migration_add() as the role that registered it.")));
		pending = lappend(pending, p);
	}
	list_sort(pending, pending_cmp);

	/*
	 * Out-of-order guard: a version lower than the newest one applied here
	 * (registered late, or its history row lost) is refused unless
	 * tenant_migrate.out_of_order is on.
	 */
	if (pending != NIL && !tm_out_of_order)
	{
		TmPending  *first = (TmPending *) linitial(pending);

		tm_catalog_exec_cached("SELECT m.version FROM public.tenant_migrations m"
							   "  JOIN public.tenant_migration_scripts s ON s.version OPERATOR(pg_catalog.=) m.version"
							   " WHERE m.tenant_schema OPERATOR(pg_catalog.=) $1::pg_catalog.name AND s.scope OPERATOR(pg_catalog.=) $2"
							   " ORDER BY public.tenant_version_key(m.version) DESC LIMIT 1",
							   2, argtypes, values, NULL, SPI_OK_SELECT);
		if (SPI_processed > 0 && tm_version_cmp(first->version, tm_spi_getstr(0, 1)) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration %s is older than migration %s, already applied to \"%s\"",
							first->version, tm_spi_getstr(0, 1), schema),
					 errdetail("Migrations are applied in version order; applying %s now would run it after %s.",
							   first->version, tm_spi_getstr(0, 1)),
					 errhint("Register the script under a version above %s, or SET tenant_migrate.out_of_order = on to apply it anyway.",
							 tm_spi_getstr(0, 1))));
	}

	/* Parse, check and find the spans of every script before any runs */
	{
		ListCell   *lc;

		foreach(lc, pending)
			compile_pending((TmPending *) lfirst(lc), shared, keep, cache);
	}
	check_dependencies(schema, shared, pending);
	return pending;
}

/*
 * Every dependency of a pending script must be applied to this schema, be
 * a shared script applied to public, or come earlier in this batch.
 */
static void
check_dependencies(const char *schema, bool shared, List *pending)
{
	ListCell   *lc;
	List	   *done = NIL;
	bool		any = false;
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(schema);
	uint64		i;

	foreach(lc, pending)
		if (((TmPending *) lfirst(lc))->depends_on != NIL)
			any = true;
	if (!any)
		return;

	tm_catalog_exec_cached("SELECT version FROM public.tenant_migrations"
						   " WHERE tenant_schema = $1::pg_catalog.name OR tenant_schema = 'public'",
						   1, &argtype, &arg, NULL, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		done = lappend(done, tm_spi_getstr(i, 1));

	foreach(lc, pending)
	{
		TmPending  *p = (TmPending *) lfirst(lc);
		ListCell   *dc;

		foreach(dc, p->depends_on)
		{
			char	   *dep = (char *) lfirst(dc);
			ListCell   *x;
			bool		found = false;

			foreach(x, done)
				if (strcmp((char *) lfirst(x), dep) == 0)
					found = true;
			if (found)
				continue;

			arg = CStringGetTextDatum(dep);
			tm_catalog_exec("SELECT scope FROM public.tenant_migration_scripts WHERE version = $1",
						1, &argtype, &arg, NULL, SPI_OK_SELECT);
			if (SPI_processed > 0 && !shared &&
				strcmp(tm_spi_getstr(0, 1), TM_SCOPE_SHARED) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("migration %s depends on shared migration %s, which is not applied",
								p->version, dep),
						 errhint("Apply shared migrations first with tenant_migrate_shared().")));
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration %s depends on migration %s, which is not applied to \"%s\"",
							p->version, dep, schema),
					 SPI_processed == 0 ?
					 errdetail("Version %s is not registered.", dep) :
					 errdetail("Version %s would not be applied before %s in this run.", dep, p->version),
					 errhint("Apply version %s first, or raise target_version so that it is included.", dep)));
		}
		done = lappend(done, p->version);
	}
}

/* target_version must be a registered version (of scope, if given) */
void
tm_check_target(const char *target, const char *scope)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char		nulls[2] = {' ', scope ? ' ' : 'n'};

	if (target == NULL)
		return;
	tm_version_check(target, "target version");
	values[0] = CStringGetTextDatum(target);
	values[1] = scope ? CStringGetTextDatum(scope) : (Datum) 0;
	/* 5 and 005 name the same version */
	tm_catalog_exec("SELECT 1 FROM public.tenant_migration_scripts"
				" WHERE public.tenant_version_key(version) OPERATOR(pg_catalog.=) public.tenant_version_key($1)"
				"   AND ($2::pg_catalog.text IS NULL OR scope = $2)",
				2, argtypes, values, nulls, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 scope ? errmsg("target version %s is not a registered %s migration", target, scope) :
				 errmsg("target version %s is not a registered migration", target),
				 errhint("See the registered versions in tenant_migration_scripts.")));
}

/*---- Running one script ----*/

/* Where a script is, for its error context */
typedef struct ScriptErrorInfo
{
	const TmScript *script;
	int			stmt;			/* 0-based */
	const char *sql;			/* the statement as it runs */
	const char *schema;
	bool		shared;
	const char *version;
	const char *name;
	const char *action;			/* "up" or "down" */
} ScriptErrorInfo;

/* Line (1-based) of the first token of statement stmt of script */
static int
statement_line(const TmScript *script, int stmt)
{
	const char *p = script->sql;
	const char *s = script->sql + script->stmt_start[stmt];
	const char *e = script->sql + script->stmt_end[stmt];
	int			line = 1;

	/* skip what tm_statement_snippet() skips: blanks and comments */
	for (;;)
	{
		while (s < e && isspace((unsigned char) *s))
			s++;
		if (s + 1 < e && s[0] == '-' && s[1] == '-')
		{
			while (s < e && *s != '\n')
				s++;
		}
		else if (s + 1 < e && s[0] == '/' && s[1] == '*')
		{
			const char *c = strstr(s + 2, "*/");

			s = (c && c + 2 <= e) ? c + 2 : e;
		}
		else
			break;
	}
	for (; p < s; p++)
		if (*p == '\n')
			line++;
	return line;
}

/* The context line of info (see script_error_callback) */
static char *
script_context_line(const ScriptErrorInfo *info)
{
	char	   *snip = tm_statement_snippet(info->sql, 0, strlen(info->sql));
	char	   *in;
	char	   *out;

	/* one line: every run of blanks and newlines becomes one space */
	for (in = out = snip; *in; in++)
	{
		if (isspace((unsigned char) *in))
		{
			if (out > snip && out[-1] == ' ')
				continue;
			*out++ = ' ';
		}
		else
			*out++ = *in;
	}
	*out = '\0';
	return psprintf("%s script of migration %s (%s) on %s \"%s\", statement %d of %d, line %d: %s",
					info->action, info->version, info->name,
					info->shared ? "schema" : "tenant", info->schema,
					info->stmt + 1, info->script->nstmts,
					statement_line(info->script, info->stmt), snip);
}

/*
 * CONTEXT line of any error raised while a statement of a script runs:
 *	up script of migration 002 (add email) on tenant "tenant_a",
 *	statement 2 of 3, line 4: ALTER TABLE "tenant_a".users ADD ...
 */
static void
script_error_callback(void *arg)
{
	ScriptErrorInfo *info = (ScriptErrorInfo *) arg;

	if (info->script == NULL)
		return;
	errcontext("%s", script_context_line(info));
}

/*
 * The CONTEXT of the last script error up to its script's own line: the
 * part a log row keeps (the caller's own context lines are not the
 * script's business).  NULL when no script failed.
 */
static char *failed_context = NULL;

/* Forget the last script error's context (a new attempt starts) */
static void
forget_failed_context(void)
{
	if (failed_context != NULL)
		pfree(failed_context);
	failed_context = NULL;
}

/* context without its first line equal to line (NULL stays NULL) */
static char *
drop_context_line(char *context, const char *line)
{
	size_t		len = strlen(line);
	char	   *p = context;

	while (p != NULL && *p)
	{
		if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0'))
		{
			if (p[len] == '\n')
				memmove(p, p + len + 1, strlen(p + len + 1) + 1);
			else if (p > context)
				p[-1] = '\0';
			else
				*p = '\0';
			return *context ? context : NULL;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return context;
}

char *
tm_error_text(const ErrorData *edata)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, edata->message ? edata->message : "");
	if (edata->detail)
		appendStringInfo(&buf, "\n%s", edata->detail);
	if (failed_context != NULL)
		appendStringInfo(&buf, "\nCONTEXT: %s", failed_context);
	forget_failed_context();
	return buf.data;
}

/*
 * The tenant scripts this process has applied with their function bodies
 * validated (check_function_bodies): version and a hash of the text.  The
 * next tenants get the same text with only their schema name spliced in,
 * so, as pg_dump's restores do, they skip the check (and PL/pgSQL's
 * compile, which also fills a cache that lives as long as the process)
 * unless tenant_migrate.recheck_function_bodies is on.
 */
typedef struct ValidatedScript
{
	char		version[NAMEDATALEN];
	uint32		text_hash;
	int			text_len;
} ValidatedScript;

static HTAB *validated_scripts = NULL;

/* Whether (add: records that) this process validated the script */
static bool
script_validated(const TmScript *script, const char *version, bool add)
{
	ValidatedScript key;
	bool		found;

	if (validated_scripts == NULL)
	{
		HASHCTL		ctl;

		if (!add)
			return false;
		ctl.keysize = sizeof(ValidatedScript);
		ctl.entrysize = sizeof(ValidatedScript);
		validated_scripts = hash_create("tenant_migrate validated scripts", 64,
										&ctl, HASH_ELEM | HASH_BLOBS);
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.version, version, sizeof(key.version));
	key.text_len = strlen(script->sql);
	key.text_hash = hash_bytes((const unsigned char *) script->sql, key.text_len);
	(void) hash_search(validated_scripts, &key, add ? HASH_ENTER : HASH_FIND, &found);
	return found;
}

/*
 * Runs a compiled script's statements in schema (see the protocol above)
 * and returns how long it took in milliseconds.  rewrite: splice the
 * tenant schema into the script's spans while rendering.
 */
static double
run_script(const TmScript *orig_script, const char *schema, Oid nspoid,
		   bool rewrite, bool shared, const char *version, const char *name,
		   const char *action, const char *author, const char *tenant_key,
		   int only_stmt, uint32 flags)
{
	/* recompiled after CREATE EXTENSION; volatile across PG_TRY */
	const TmScript *volatile script = orig_script;
	MemoryContext oldcxt = CurrentMemoryContext;
	GucContext	context;
	instr_time	start,
				elapsed;
	int			nestlevel;
	int			i;
	Oid			role = script_role(author, version);
	Oid			save_userid;
	int			save_sec_context;
	ScriptErrorInfo errinfo;
	ErrorContextCallback errcallback;
	LocalTransactionId lxid = MyProc->lxid;
	int			stop = (only_stmt >= 0) ? only_stmt + 1 : orig_script->nstmts;
	bool		bodies_checkable = (rewrite && !shared && version != NULL &&
									!(flags & RUN_CHECK_BODIES) &&
									!tm_recheck_function_bodies);
	bool		bodies_checked = false;

	/* nobody who can plant objects where the script looks has fewer rights */
	check_schema_trust(nspoid, schema, role, version, shared);
	if (!shared)
		check_schema_trust(tm_public_namespace(), TM_SHARED_SCHEMA, role, version, true);

	INSTR_TIME_SET_CURRENT(start);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	context = superuser() ? PGC_SUSET : PGC_USERSET;
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", tm_search_path_for(schema, shared),
							 context, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (tm_lock_timeout > 0)
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "%d", tm_lock_timeout);
		(void) set_config_option("lock_timeout", buf, context, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	/* validated for an earlier tenant: see script_validated() */
	if (bodies_checkable && check_function_bodies)
	{
		if (script_validated(orig_script, version, false))
			(void) set_config_option("check_function_bodies", "off", context,
									 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		else
			bodies_checked = (only_stmt < 0);
	}
	/* the tenant's key and schema for policies, triggers, defaults (rls.c) */
	tm_rls_set_context(shared ? NULL : schema, shared ? NULL : tenant_key, context);

	/* A tenant script changes only its own schema (guard.c) */
	if (!shared)
		tm_guard_begin(nspoid, schema);

	/* Errors say where they happened, in their CONTEXT (as PL/pgSQL does) */
	errinfo.script = NULL;		/* no statement yet */
	errinfo.schema = schema;
	errinfo.shared = shared;
	errinfo.version = version;
	errinfo.name = name;
	errinfo.action = action;
	errcallback.callback = script_error_callback;
	errcallback.arg = &errinfo;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	for (i = (only_stmt >= 0) ? only_stmt : 0; i < stop; i++)
	{
		char	   *sql;
		bool		new_extension = script->creates_extension[i];
		bool		concurrently = (script->stmt_action[i] == TM_STMT_CONCURRENTLY);

		/* neutralised tool boilerplate (rewrite.c) */
		if (script->stmt_action[i] == TM_STMT_SKIP)
			continue;
		/* a new tenant's tables are empty: the plain statement (nontx.c) */
		sql = (concurrently && (flags & RUN_STRIP_CONCURRENTLY)) ?
			tm_strip_concurrently(tm_script_render(script, i, rewrite ? schema : NULL)) :
			tm_script_render(script, i, rewrite ? schema : NULL);
		errinfo.script = script;
		errinfo.stmt = i;
		errinfo.sql = sql;

		PG_TRY();
		{
			if (concurrently && (flags & RUN_TOPLEVEL))
			{
				/* no SPI here: the statement commits on its way */
				tm_execute_toplevel(sql);
				MemoryContextSwitchTo(oldcxt);
			}
			else
			{
				int			rc = tm_execute_statement(script, i, sql, shared ? NULL : schema);

				/* SPI returns in its own context; stay in ours */
				MemoryContextSwitchTo(oldcxt);
				if (rc < 0)
					elog(ERROR, "SPI_execute failed (%s)", SPI_result_code_string(rc));
				SPI_freetuptable(SPI_tuptable);
			}
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			tm_oneshot_end();
			if (!shared)
				tm_guard_end();
			MemoryContextSwitchTo(oldcxt);
			SetUserIdAndSecContext(save_userid, save_sec_context);
			edata = CopyErrorData();
			FlushErrorState();
			/* our context line names the statement: SPI's need not repeat it */
			edata->context = drop_context_line(edata->context,
											   psprintf("SQL statement \"%s\"", sql));
			/* what the log row keeps: the context up to our line */
			forget_failed_context();
			if (edata->context != NULL)
			{
				char	   *line = script_context_line(&errinfo);
				char	   *at = strstr(edata->context, line);

				if (at != NULL)
					failed_context = MemoryContextStrdup(TopMemoryContext,
														 pnstrdup(edata->context,
																  at - edata->context + strlen(line)));
			}
			ReThrowError(edata);
		}
		PG_END_TRY();
		pfree(sql);

		/*
		 * The rest of the script may use what the new extension put in
		 * public (pg_dump output does): find the spans again with it kept.
		 */
		if (new_extension && rewrite && i + 1 < script->nstmts)
			script = tm_script_compile(script->sql, tm_keepset_build(), script->what);
	}
	error_context_stack = errcallback.previous;
	if (bodies_checked)
		(void) script_validated(orig_script, version, true);

	if (!shared)
		tm_guard_end();

	/*
	 * No setting the script changed outlives it.  A CONCURRENTLY step
	 * committed (and so ended that GUC level and the guard) on its way.
	 */
	if (MyProc->lxid == lxid)
		AtEOXact_GUC(false, nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	return INSTR_TIME_GET_MILLISEC(elapsed);
}

/* The tenant key of schema ("" if it has none): the tenant context */
static char *
tenant_key_of(const char *schema)
{
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(schema);
	char	   *key = NULL;

	tm_catalog_exec_cached("SELECT tenant_key FROM public.tenant_registry WHERE schema_name = $1::pg_catalog.name",
						   1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		key = tm_spi_getstr(0, 1);
	return key ? key : pstrdup("");
}

double
tm_run_tenant_script(const TmScript *script, const char *schema, Oid nspoid,
					 const char *version, const char *name, const char *author)
{
	/* a scratch schema has no tenant key: no tenant context */
	return run_script(script, schema, nspoid, true, false, version, name,
					  "up", author, NULL, -1, RUN_STRIP_CONCURRENTLY | RUN_CHECK_BODIES);
}

/*---- Applying ----*/

/*
 * Records the n scripts of ps as applied to schema: their history rows in
 * one statement, their log rows in another (one per script, each with
 * its start and duration).
 */
static void
record_applied(const char *schema, bool shared, int n, TmPending **ps,
			   TimestampTz *started, double *duration_ms, const char *invoker)
{
	Oid			argtypes[7] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	TEXTARRAYOID, FLOAT8ARRAYOID, TEXTOID};
	Datum		values[7];
	Datum	   *versions;
	Datum	   *names;
	Datum	   *checksums;
	Datum	   *rollbacks;
	bool	   *rollback_nulls;
	Datum	   *starts;
	Datum	   *durations;
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	if (n == 0)
		return;
	versions = palloc(sizeof(Datum) * n);
	names = palloc(sizeof(Datum) * n);
	checksums = palloc(sizeof(Datum) * n);
	rollbacks = palloc(sizeof(Datum) * n);
	rollback_nulls = palloc(sizeof(bool) * n);
	starts = palloc(sizeof(Datum) * n);
	durations = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
	{
		versions[i] = CStringGetTextDatum(ps[i]->version);
		names[i] = CStringGetTextDatum(ps[i]->name);
		checksums[i] = CStringGetTextDatum(ps[i]->checksum);
		rollback_nulls[i] = (ps[i]->down == NULL);
		rollbacks[i] = rollback_nulls[i] ? (Datum) 0 :
			CStringGetTextDatum(tm_script_render(ps[i]->down, -1, shared ? NULL : schema));
		starts[i] = TimestampTzGetDatum(started[i]);
		durations[i] = Float8GetDatum(duration_ms[i]);
	}
	values[0] = CStringGetTextDatum(schema);
	values[1] = PointerGetDatum(construct_array(versions, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(checksums, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_md_array(rollbacks, rollback_nulls, 1, dims, lbs,
												   TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(durations, n, FLOAT8OID, sizeof(float8),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[6] = CStringGetTextDatum(invoker);
	tm_catalog_exec_cached("INSERT INTO public.tenant_migrations"
						   " (tenant_schema, version, name, checksum, rollback_sql, duration_ms, applied_by)"
						   " SELECT $1::pg_catalog.name, u.v, u.n, u.c, u.r, u.d, $7::pg_catalog.name"
						   "   FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4),"
						   "                   pg_catalog.unnest($5), pg_catalog.unnest($6)) AS u(v, n, c, r, d)",
						   7, argtypes, values, NULL, SPI_OK_INSERT);
	tm_log_applied(schema, n, versions, starts, durations, invoker);
}

void
tm_record_applied(const char *schema, const TmPending *p, bool shared,
				  double duration_ms, TimestampTz started, const char *invoker)
{
	TmPending  *ps[1] = {(TmPending *) p};

	record_applied(schema, shared, 1, ps, &started, &duration_ms, invoker);
}

/*
 * The work of tm_apply_pending() and tm_apply_segment(): mode says where
 * to stop (see TmApplyMode); *stopped: the non-transactional script it
 * stopped before, or (TM_APPLY_SEGMENT*) the enum-adding script it
 * stopped after when more are pending; NULL when nothing is left.
 */
static List *
apply_pending(const char *schema, Oid nspoid, bool shared,
			  const char *target, const TmKeepSet *keep,
			  TmScriptCache *cache, TmApplyMode mode, TmPending **stopped)
{
	List	   *pending;
	List	   *steps = NIL;
	ListCell   *lc;
	char	   *invoker = tm_catalog_invoker();
	char	   *key = NULL;
	TmPending **done;
	TimestampTz *started;
	double	   *durations;
	int			ndone = 0;

	if (stopped != NULL)
		*stopped = NULL;
	/* an earlier call that failed may have left them set */
	tm_current_version[0] = '\0';
	forget_failed_context();
	(void) tm_lock_schema(schema, nspoid, false);
	pending = tm_pending_scripts(schema, shared, target, keep, cache);
	if (!shared && pending != NIL)
		key = tenant_key_of(schema);

	/* who may run what is checked for every script before any runs */
	foreach(lc, pending)
		(void) script_role(((TmPending *) lfirst(lc))->author,
						   ((TmPending *) lfirst(lc))->version);

	/* recorded together once the loop ends, in the same transaction */
	done = palloc(sizeof(TmPending *) * Max(list_length(pending), 1));
	started = palloc(sizeof(TimestampTz) * Max(list_length(pending), 1));
	durations = palloc(sizeof(double) * Max(list_length(pending), 1));

	foreach(lc, pending)
	{
		TmPending  *p = (TmPending *) lfirst(lc);
		TmStep	   *step;

		/* an existing tenant's CONCURRENTLY step runs outside (nontx.c) */
		if (mode == TM_APPLY_SEGMENT && p->up->non_transactional)
		{
			*stopped = p;
			break;
		}
		step = palloc(sizeof(TmStep));
		started[ndone] = GetCurrentTimestamp();
		step->version = p->version;
		step->name = p->name;
		strlcpy(tm_current_version, p->version, sizeof(tm_current_version));
		step->duration_ms = run_script(p->up, schema, nspoid, !shared, shared,
									   p->version, p->name, "up", p->author, key,
									   -1, mode == TM_APPLY_NEW_TENANT ? RUN_STRIP_CONCURRENTLY : 0);
		tm_current_version[0] = '\0';
		done[ndone] = p;
		durations[ndone++] = step->duration_ms;
		steps = lappend(steps, step);

		/* a later script may use the new enum value only after a commit */
		if (mode != TM_APPLY_ALL && p->up->adds_enum_values &&
			lnext(pending, lc) != NULL)
		{
			*stopped = p;
			break;
		}
	}
	record_applied(schema, shared, ndone, done, started, durations, invoker);
	return steps;
}

List *
tm_apply_pending(const char *schema, Oid nspoid, bool shared,
				 const char *target, const TmKeepSet *keep,
				 TmScriptCache *cache)
{
	return apply_pending(schema, nspoid, shared, target, keep, cache,
						 TM_APPLY_ALL, NULL);
}

List *
tm_apply_segment(const char *schema, Oid nspoid, const char *target,
				 const TmKeepSet *keep, TmScriptCache *cache,
				 TmApplyMode mode, TmPending **stopped)
{
	return apply_pending(schema, nspoid, false, target, keep, cache,
						 mode, stopped);
}

double
tm_run_step(const TmPending *p, const char *schema, Oid nspoid, int stmt,
			const char *tenant_key)
{
	return run_script(p->up, schema, nspoid, true, false, p->version, p->name,
					  "up", p->author, tenant_key, stmt, RUN_TOPLEVEL);
}

char *
tm_tenant_key(const char *schema)
{
	return tenant_key_of(schema);
}

/*---- Reverting ----*/

static int
applied_cmp_desc(const ListCell *a, const ListCell *b)
{
	TmApplied  *pa = (TmApplied *) lfirst(a);
	TmApplied  *pb = (TmApplied *) lfirst(b);

	return -tm_version_qsort_cmp(&pa->version, &pb->version);
}

List *
tm_revert(const char *schema, Oid nspoid, bool shared, const char *target,
		  const TmKeepSet *keep)
{
	char	   *invoker = tm_catalog_invoker();
	Oid			argtypes[2] = {TEXTOID, TEXTARRAYOID};
	Datum		values[2];
	List	   *applied = NIL;
	List	   *revert = NIL;
	List	   *steps = NIL;
	ListCell   *lc;
	uint64		i;
	uint64		n;
	SPITupleTable *tuptable;
	Datum	   *versions;
	int			nversions = 0;
	char	   *key = NULL;

	tm_current_version[0] = '\0';
	forget_failed_context();
	(void) tm_lock_schema(schema, nspoid, false);

	values[0] = CStringGetTextDatum(schema);
	tm_catalog_exec("SELECT m.version, m.name, m.rollback_sql, s.down_sql, s.registered_by::pg_catalog.text"
				"  FROM public.tenant_migrations m"
				"  LEFT JOIN public.tenant_migration_scripts s ON s.version = m.version"
				" WHERE m.tenant_schema = $1::pg_catalog.name",
				1, argtypes, values, NULL, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		TmApplied  *a = palloc0(sizeof(TmApplied));
		char	   *recorded = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 3);
		char	   *down = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 4);

		a->version = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 1);
		a->name = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 2);
		a->author = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 5);
		/*
		 * The down script as rewritten when applied; if none was recorded
		 * but one has been registered since, rewrite that one now.
		 */
		if (recorded != NULL)
		{
			a->down = tm_script_compile(recorded, NULL,
										psprintf("recorded rollback of migration %s (%s)", a->version, a->name));
			a->rendered = true;
		}
		else if (down != NULL)
			a->down = tm_script_compile(down, shared ? NULL : keep,
										psprintf("down script of migration %s (%s)", a->version, a->name));
		applied = lappend(applied, a);
	}
	list_sort(applied, applied_cmp_desc);

	foreach(lc, applied)
	{
		TmApplied  *a = (TmApplied *) lfirst(lc);

		if (target == NULL ? revert != NIL : tm_version_cmp(a->version, target) <= 0)
			break;
		revert = lappend(revert, a);
	}
	if (revert == NIL)
		return NIL;
	if (!shared)
		key = tenant_key_of(schema);

	/* Check everything before running anything */
	versions = palloc(sizeof(Datum) * list_length(revert));
	foreach(lc, revert)
	{
		TmApplied  *a = (TmApplied *) lfirst(lc);

		if (a->down == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("migration %s (%s) of \"%s\" has no down script", a->version, a->name, schema),
					 errdetail("Nothing was rolled back."),
					 errhint("Register a down script for version %s with tenant_migration_add() (same up_sql), then roll back again.",
							 a->version)));
		/* the history's foreign key keeps applied scripts registered */
		if (a->author == NULL)
			elog(ERROR, "migration %s has no registered script", a->version);
		(void) script_role(a->author, a->version);
		versions[nversions++] = CStringGetTextDatum(a->version);
	}
	values[1] = PointerGetDatum(construct_array(versions, nversions, TEXTOID, -1, false, TYPALIGN_INT));
	/*
	 * A tenant's scripts depend on its own or on shared ones: reverting a
	 * tenant's script concerns that tenant only, a shared one every schema.
	 */
	tm_catalog_exec("SELECT m.tenant_schema::pg_catalog.text, m.version, d.dep"
				"  FROM public.tenant_migrations m"
				"  JOIN public.tenant_migration_scripts s ON s.version = m.version"
				"  CROSS JOIN LATERAL pg_catalog.unnest(s.depends_on) AS d(dep)"
				" WHERE d.dep = ANY ($2)"
				"   AND ($3 OR m.tenant_schema = $1::pg_catalog.name)"
				"   AND NOT (m.tenant_schema = $1::pg_catalog.name AND m.version = ANY ($2))"
				" LIMIT 1",
				3, (Oid[]) {TEXTOID, TEXTARRAYOID, BOOLOID},
				(Datum[]) {values[0], values[1], BoolGetDatum(shared)}, NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot roll back migration %s: migration %s of \"%s\" depends on it",
						tm_spi_getstr(0, 3), tm_spi_getstr(0, 2), tm_spi_getstr(0, 1)),
				 errdetail("Nothing was rolled back."),
				 errhint("Roll back migration %s of \"%s\" first.", tm_spi_getstr(0, 2), tm_spi_getstr(0, 1))));

	foreach(lc, revert)
	{
		TmApplied  *a = (TmApplied *) lfirst(lc);
		TmStep	   *step = palloc(sizeof(TmStep));
		TimestampTz started = GetCurrentTimestamp();

		step->version = a->version;
		step->name = a->name;
		strlcpy(tm_current_version, a->version, sizeof(tm_current_version));
		step->duration_ms = run_script(a->down, schema, nspoid, !shared && !a->rendered,
									   shared, a->version, a->name, "down", a->author, key,
									   -1, 0);
		tm_current_version[0] = '\0';

		tm_catalog_exec_cached("DELETE FROM public.tenant_migrations"
						" WHERE tenant_schema = $1::pg_catalog.name AND version = $2",
						2, (Oid[]) {TEXTOID, TEXTOID},
						(Datum[]) {CStringGetTextDatum(schema), CStringGetTextDatum(a->version)},
						NULL, SPI_OK_DELETE);
		tm_log_attempt(schema, a->version, "down", "ok", NULL, started,
					   step->duration_ms, invoker);
		steps = lappend(steps, step);
	}
	return steps;
}

/*---- SQL-callable ----*/

static char *
arg_cstring(FunctionCallInfo fcinfo, int argno)
{
	return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

Oid
tm_public_namespace(void)
{
	Oid			oid = get_namespace_oid(TM_SHARED_SCHEMA, true);

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"public\" does not exist"),
				 errhint("Shared migrations are applied to public; create it first.")));
	return oid;
}

/* The SRFs return (version, name, duration_ms) rows */
static void
put_steps(FunctionCallInfo fcinfo, List *steps)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ListCell   *lc;

	foreach(lc, steps)
	{
		TmStep	   *s = (TmStep *) lfirst(lc);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(s->version);
		values[1] = CStringGetTextDatum(s->name);
		values[2] = Float8GetDatum(s->duration_ms);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * The work of a one-schema call, in an internal subtransaction.  On
 * error: roll it back first (the script's locks, role and settings are
 * released), write the failed attempt durably (audit.c), then throw the
 * error again, unchanged.
 */
List *
tm_run_audited(const char *schema, Oid nspoid, bool shared, bool revert,
			   const char *target, const TmKeepSet *keep)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	TimestampTz started = GetCurrentTimestamp();
	char	   *invoker = tm_catalog_invoker();
	List	   *volatile steps = NIL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		if (revert)
			steps = tm_revert(schema, nspoid, shared, target, keep);
		else
			steps = tm_apply_pending(schema, nspoid, shared, target, keep, NULL);
		tm_subxact_release(cxt, owner);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		char	   *version;

		edata = tm_subxact_abort(cxt, owner);

		/*
		 * A failed script is an attempt to log; a refusal before any script
		 * ran (bad target, missing down script) changed nothing, and a
		 * cancel is not a failed migration.
		 */
		if (tm_current_version[0] != '\0' && edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
		{
			version = pstrdup(tm_current_version);
			tm_current_version[0] = '\0';
			tm_audit_failure(schema, version, revert ? "down" : "up",
							 tm_error_text(edata),
							 started,
							 (double) (GetCurrentTimestamp() - started) / 1000.0,
							 invoker);
		}
		ReThrowError(edata);
	}
	PG_END_TRY();
	return steps;
}

/*
 * A script that cannot run inside a transaction block (CONCURRENTLY) is
 * refused before anything runs by the calls that run in the caller's
 * transaction; hint says what to run instead.
 */
void
tm_refuse_non_transactional(List *pending, const char *schema, const char *hint)
{
	ListCell   *lc;

	foreach(lc, pending)
	{
		TmPending  *p = (TmPending *) lfirst(lc);

		if (p->up != NULL && p->up->non_transactional)
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("migration %s (%s) cannot run inside a transaction block", p->version, p->name),
					 errdetail("Its up script runs a step that PostgreSQL runs only outside a transaction block, at %s. Nothing was applied to \"%s\".",
							   p->up->non_transactional_stmt, schema),
					 errhint("%s", hint)));
	}
}

/*
 * In PG_CATCH: the error again, with hint if it is an enum value used in
 * the transaction that added it (PostgreSQL refuses that until a commit).
 */
static void
rethrow_enum_hint(MemoryContext cxt, const char *hint)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	if (edata->sqlerrcode != ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE)
		PG_RE_THROW();
	FlushErrorState();
	edata->hint = pstrdup(hint);
	ReThrowError(edata);
}

/* tenant_migrate(tenant_schema text, target_version text DEFAULT NULL) */
Datum
tenant_migrate(PG_FUNCTION_ARGS)
{
	char	   *schema = tm_schema_arg(fcinfo);
	char	   *target = arg_cstring(fcinfo, 1);
	TmTenant	tenant;
	TmKeepSet  *keep;
	MemoryContext cxt = CurrentMemoryContext;
	List	   *volatile steps = NIL;

	InitMaterializedSRF(fcinfo, 0);
	if (target != NULL)
		tm_version_check(target, "target version");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	tm_tenant_lookup(schema, &tenant);
	tm_check_target(target, TM_SCOPE_TENANT);
	keep = tm_keepset_build();
	tm_refuse_non_transactional(tm_pending_scripts(tenant.schema, false, target, keep, NULL),
								tenant.schema,
								psprintf("tenant_migrate() runs in the caller's transaction; apply this tenant with CALL tenant_migrate_all(tenants => ARRAY['%s']), which runs such a script statement by statement, or apply the versions before it with tenant_migrate(tenant_schema, target_version).",
										 tenant.schema));
	PG_TRY();
	{
		steps = tm_run_audited(tenant.schema, tenant.nspoid, false, false,
							   target, keep);
	}
	PG_CATCH();
	{
		rethrow_enum_hint(cxt, "A new enum value can be used only after the transaction that added it commits: apply the versions up to the one that adds it with tenant_migrate(tenant_schema, target_version), commit, then apply the rest.");
	}
	PG_END_TRY();
	put_steps(fcinfo, steps);
	SPI_finish();
	return (Datum) 0;
}

/* tenant_migrate_shared(target_version text DEFAULT NULL) */
Datum
tenant_migrate_shared(PG_FUNCTION_ARGS)
{
	char	   *target = arg_cstring(fcinfo, 0);

	InitMaterializedSRF(fcinfo, 0);
	if (target != NULL)
		tm_version_check(target, "target version");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	tm_check_target(target, TM_SCOPE_SHARED);
	tm_refuse_non_transactional(tm_pending_scripts(TM_SHARED_SCHEMA, true, target, NULL, NULL),
								TM_SHARED_SCHEMA,
								TM_SHARED_NONTX_HINT);
	put_steps(fcinfo, tm_run_audited(TM_SHARED_SCHEMA, tm_public_namespace(), true, false,
									 target, NULL));
	SPI_finish();
	return (Datum) 0;
}

/*
 * tenant_rollback(tenant_schema text, target_version text DEFAULT NULL)
 *
 * 'public' as the schema rolls back shared migrations.
 */
Datum
tenant_rollback(PG_FUNCTION_ARGS)
{
	char	   *schema = tm_schema_arg(fcinfo);
	char	   *target = arg_cstring(fcinfo, 1);
	List	   *steps;

	InitMaterializedSRF(fcinfo, 0);
	if (target != NULL)
		tm_version_check(target, "target version");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (strcmp(schema, TM_SHARED_SCHEMA) == 0)
		steps = tm_run_audited(TM_SHARED_SCHEMA, tm_public_namespace(), true, true,
							   target, NULL);
	else
	{
		TmTenant	tenant;

		tm_tenant_lookup(schema, &tenant);
		steps = tm_run_audited(tenant.schema, tenant.nspoid, false, true,
							   target, tm_keepset_build());
	}
	put_steps(fcinfo, steps);
	SPI_finish();
	return (Datum) 0;
}

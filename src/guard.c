/*-------------------------------------------------------------------------
 *
 * src/guard.c
 *		Containment of tenant scripts: while the runner applies a tenant's
 *		script, an object access hook refuses to create, alter or drop
 *		anything in public or in another registered tenant's schema.
 *
 * Why a hook
 * ----------
 * The rewriter and the statement checks read a script's text, and text
 * can hide what runs: an unqualified name falls through search_path to
 * public, and EXECUTE in a DO block or a function, set_config() with a
 * computed name, quoted or Unicode-escaped identifiers, SET ROLE and
 * ALTER ROLE ... SET all build or redirect SQL at run time.  The server
 * calls object_access_hook for every catalog object it creates
 * (OAT_POST_CREATE), alters (OAT_POST_ALTER) or drops
 * (OAT_DROP), however the statement got there, with the object's
 * address; the check below therefore sees the object actually touched,
 * after name resolution.  Nothing is checked unless a guard is active, so
 * ordinary sessions pay one pointer test per catalog change.
 *
 * What is checked
 * ---------------
 * The schema the object lives in: its catalog's namespace column (found
 * with the generic objectaddress.c helpers); for objects attached to a
 * relation (columns, indexes, triggers, policies, rules, defaults) the
 * relation's schema; for a trigger that belongs to a constraint (foreign
 * keys) the constraint's schema, so a tenant table may reference a shared
 * table; for a schema, that schema.  Objects in no schema (roles,
 * databases, extensions themselves, casts...) pass.  A new row is not
 * visible to the syscache when OAT_POST_CREATE fires, so catalog rows are
 * read with SnapshotSelf, as contrib/sepgsql does; an alter is checked
 * both as the row was (catalog snapshot) and as it is now (SnapshotSelf),
 * so moving an object into or out of a protected schema, or renaming one,
 * is refused too.  A relation's row type and its array are left to the
 * relation's own event, so errors name the table.
 *
 * Allowed: the tenant's own schema, temporary schemas, every schema that
 * is neither public nor a registered tenant, anything while an extension
 * is being created or updated (creating_extension), objects that belong
 * to an extension (or are attached to a relation that does), and objects
 * in public whose name -- or, for an attached object, whose relation's
 * name -- is listed in tenant_migrate.shared_objects.  Refused: anything
 * else in public or in another registered tenant's schema, with
 * ERRCODE_INSUFFICIENT_PRIVILEGE and the object named.
 *
 * "Registered tenant" is a row of public.tenant_registry, read with a
 * direct scan of its primary key (no SPI inside the hook) under a
 * snapshot taken when the guard begins: a script that deletes another
 * tenant's registry row cannot then drop its schema.
 *
 * Lifetime: runner.c calls tm_guard_begin() before a tenant script's
 * statements and tm_guard_end() after them or when one fails.  Guards
 * nest (a tenant script that calls the runner again stays bound by its
 * own guard: an object must pass every active guard).  An abort of the
 * (sub)transaction a guard began in clears it, as a safety net.
 *
 * GRANT, REVOKE, COMMENT ON and SECURITY LABEL do not call the hook: a
 * ProcessUtility hook checks their objects before they run (also when
 * they come from EXECUTE, which goes through ProcessUtility too): for
 * GRANT and REVOKE relations, routines, types, domains and schemas; GRANT
 * on other kinds of objects (languages, large objects, foreign servers...)
 * names nothing in a schema.
 *
 * Not covered: DML
 * (INSERT, UPDATE, DELETE, TRUNCATE) on public tables is allowed on
 * purpose, tenant scripts seed shared data; settings (ALTER ROLE/DATABASE
 * ... SET) have no schema -- they only change where later unqualified
 * names resolve, and objects created there are checked.  The sequence of
 * a serial or identity column added to a shared table is checked under
 * its own name, so list it too.  DROP EXTENSION drops extension-owned
 * objects, which are allowed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_default_acl.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_index.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_opfamily.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/varlena.h"

/* One active guard; a tenant script that runs the runner again nests one */
typedef struct GuardLevel
{
	struct GuardLevel *outer;
	Oid			nspoid;			/* the tenant's schema */
	char		schema[NAMEDATALEN];
	Snapshot	snapshot;		/* registry as it was when the guard began */
	SubTransactionId subid;		/* (sub)transaction that began it */
} GuardLevel;

/*
 * An object as the check sees it: where it lives, and the name that
 * tenant_migrate.shared_objects is matched against.
 */
typedef struct GuardObject
{
	bool		found;
	bool		defer;			/* a relation's row type: the relation decides */
	Oid			nspoid;			/* InvalidOid: in no schema, always allowed */
	char	   *nspname;		/* read when needed: guard_nspname() */
	bool		nspname_read;
	Snapshot	snapshot;		/* as seen by this snapshot */
	const char *kind;			/* "table", "trigger"... for messages */
	char	   *name;
	Oid			relid;			/* attached to this relation, or InvalidOid */
	char	   *relname;
	const char *relkind;		/* its kind, for messages */
	char	   *attname;		/* a column's name */
} GuardObject;

/* The verdict on one object */
typedef enum GuardVerdict
{
	GUARD_ALLOWED,
	GUARD_PUBLIC,
	GUARD_OTHER_TENANT
} GuardVerdict;

static GuardLevel *guard_top = NULL;

/*
 * The schemas of relations and constraints seen (with SnapshotSelf, or a
 * new relation's relcache entry) while guards are active: the parents that
 * a table's defaults, columns, triggers and policies are judged by, read
 * once instead of once per child.  An entry goes when its object is
 * altered or dropped (an object changes schema only through an ALTER,
 * which calls the hook for it), and all of them when a subtransaction
 * aborts or the last guard ends.
 */
typedef struct SchemaMemoKey
{
	Oid			classId;
	Oid			objectId;
} SchemaMemoKey;

typedef struct SchemaMemoEntry
{
	SchemaMemoKey key;
	Oid			nspoid;
} SchemaMemoEntry;

static HTAB *schema_memo = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* tenant_migrate.shared_objects parsed, for the value it was parsed from */
static char *shared_cached_value = NULL;
static char *shared_cached_raw = NULL;	/* the names point into it */
static List *shared_cached_names = NIL;

/*---- Local functions ----*/

static void guard_object_access(ObjectAccessType access, Oid classId,
								Oid objectId, int subId, void *arg);
static void guard_process_utility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree,
								  ProcessUtilityContext context,
								  ParamListInfo params,
								  QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);
static void guard_check_grant(GrantStmt *stmt);
static void guard_check_named(const char *verb, ObjectType objtype, Node *object);
static void guard_check(const char *verb, Oid classId, Oid objectId,
						int subId, bool check_old);
static GuardVerdict guard_judge(const GuardLevel *level, GuardObject *obj);
static bool in_own_schema(Oid classId, Oid objectId, int subId,
						  Snapshot snapshot);
static Oid	object_schema(Oid classId, Oid objectId, Snapshot snapshot);
static void schema_memo_forget(Oid classId, Oid objectId);
static void memo_created_relation(Oid relid);
static HTAB *schema_memo_table(void);
static void schema_memo_reset(void);
static void resolve_object(Oid classId, Oid objectId, int subId,
						   Snapshot snapshot, GuardObject *obj);
static void resolve_relation(Oid relid, Snapshot snapshot, GuardObject *obj);
static HeapTuple fetch_row(Oid catalog, Oid index, AttrNumber oidcol,
						   Oid oid, Snapshot snapshot);
static char *namespace_name(Oid nspoid, Snapshot snapshot);
static bool is_registered_tenant(const char *nspname, Snapshot snapshot);
static bool is_shared_object(const char *name);
static const char *relkind_word(char relkind);
static const char *prokind_word(char prokind);
static char *describe_object(Oid classId, Oid objectId, int subId,
							 const GuardObject *obj);
static void guard_pop(void);
static void guard_xact_callback(XactEvent event, void *arg);
static void guard_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

/*---- Exported ----*/

void
tm_guard_init(void)
{
	prev_object_access_hook = object_access_hook;
	object_access_hook = guard_object_access;
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = guard_process_utility;
	RegisterXactCallback(guard_xact_callback, NULL);
	RegisterSubXactCallback(guard_subxact_callback, NULL);
}

void
tm_guard_begin(Oid tenant_nspoid, const char *tenant_schema)
{
	GuardLevel *level = MemoryContextAllocZero(TopMemoryContext,
											   sizeof(GuardLevel));

	level->nspoid = tenant_nspoid;
	strlcpy(level->schema, tenant_schema, NAMEDATALEN);

	/*
	 * The registry as of now, including this transaction's earlier
	 * commands; what the script itself does to it later is not seen.
	 */
	level->snapshot = RegisterSnapshot(GetLatestSnapshot());
	level->subid = GetCurrentSubTransactionId();
	level->outer = guard_top;
	guard_top = level;
}

void
tm_guard_end(void)
{
	if (guard_top == NULL)
		return;
	UnregisterSnapshot(guard_top->snapshot);
	guard_pop();
}

/*---- The hook ----*/

static void
guard_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (guard_top == NULL)
		return;

	switch (access)
	{
		case OAT_POST_CREATE:
			/* heap_create() put a new relation in the relation cache */
			if (classId == RelationRelationId && subId == 0)
				memo_created_relation(objectId);
			guard_check("create", classId, objectId, subId, false);
			break;
		case OAT_POST_ALTER:
			schema_memo_forget(classId, objectId);
			guard_check("alter", classId, objectId, subId, true);
			break;
		case OAT_DROP:
			schema_memo_forget(classId, objectId);
			guard_check("drop", classId, objectId, subId, false);
			break;
		default:
			break;
	}
}

/*
 * GRANT and REVOKE change an object's ACL, COMMENT ON and SECURITY LABEL
 * its description or label, without calling the object access hook, so
 * they are checked here, before they run.
 */
static void
guard_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	/* a script statement's own one-shot tree needs no copy (copyin.c) */
	if (readOnlyTree && tm_oneshot_utility(parsetree, queryString, context))
		readOnlyTree = false;

	if (guard_top != NULL)
	{
		if (IsA(parsetree, GrantStmt))
			guard_check_grant((GrantStmt *) parsetree);
		else if (IsA(parsetree, CommentStmt))
			guard_check_named("comment on", ((CommentStmt *) parsetree)->objtype,
							  ((CommentStmt *) parsetree)->object);
		else if (IsA(parsetree, SecLabelStmt))
			guard_check_named("set a security label on",
							  ((SecLabelStmt *) parsetree)->objtype,
							  ((SecLabelStmt *) parsetree)->object);
	}

	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context,
							params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

/*
 * The object of a COMMENT ON or SECURITY LABEL, found as the command will
 * find it and locked as it will lock it (ShareUpdateExclusiveLock, see
 * CommentObject), so the check and the command see the same object.  A
 * name that does not resolve is left to the command to report.
 */
static void
guard_check_named(const char *verb, ObjectType objtype, Node *object)
{
	ObjectAddress address;
	Relation	rel = NULL;

	address = get_object_address(objtype, object, &rel,
								 ShareUpdateExclusiveLock, true);
	if (rel != NULL)
		table_close(rel, NoLock);
	if (OidIsValid(address.objectId))
		guard_check(verb, address.classId, address.objectId,
					address.objectSubId, false);
}

/*
 * The objects of a GRANT or REVOKE that live in a schema: relations,
 * routines, types and domains, schemas, and ALL ... IN SCHEMA.  Names that
 * do not resolve are left to the statement itself to report.
 */
static void
guard_check_grant(GrantStmt *stmt)
{
	const char *verb = stmt->is_grant ? "grant privileges on" : "revoke privileges on";
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		Node	   *item = (Node *) lfirst(lc);
		Oid			oid;

		if (stmt->targtype == ACL_TARGET_ALL_IN_SCHEMA ||
			stmt->objtype == OBJECT_SCHEMA)
		{
			oid = get_namespace_oid(strVal(item), true);
			if (OidIsValid(oid))
				guard_check(verb, NamespaceRelationId, oid, 0, false);
		}
		else if (stmt->objtype == OBJECT_TABLE ||
				 stmt->objtype == OBJECT_SEQUENCE)
		{
			oid = RangeVarGetRelid((RangeVar *) item, NoLock, true);
			if (OidIsValid(oid))
				guard_check(verb, RelationRelationId, oid, 0, false);
		}
		else if (stmt->objtype == OBJECT_FUNCTION ||
				 stmt->objtype == OBJECT_PROCEDURE ||
				 stmt->objtype == OBJECT_ROUTINE)
		{
			oid = LookupFuncWithArgs(stmt->objtype, (ObjectWithArgs *) item, true);
			if (OidIsValid(oid))
				guard_check(verb, ProcedureRelationId, oid, 0, false);
		}
		else if (stmt->objtype == OBJECT_TYPE ||
				 stmt->objtype == OBJECT_DOMAIN)
		{
			oid = LookupTypeNameOid(NULL, makeTypeNameFromNameList((List *) item),
									true);
			if (OidIsValid(oid))
				guard_check(verb, TypeRelationId, oid, 0, false);
		}
	}
}

/*
 * ERROR unless every active guard allows the object; check_old: judge the
 * row as it was before this command too (an alter may move or rename it).
 */
static void
guard_check(const char *verb, Oid classId, Oid objectId, int subId,
			bool check_old)
{
	GuardObject now;
	GuardObject old;
	GuardLevel *level;

	/* The extension's own script may put its members anywhere */
	if (creating_extension)
		return;

	/* most objects are in the tenant's own schema: one row read says so */
	if (in_own_schema(classId, objectId, subId, SnapshotSelf) &&
		(!check_old || in_own_schema(classId, objectId, subId, NULL)))
		return;

	resolve_object(classId, objectId, subId, SnapshotSelf, &now);
	if (check_old)
		resolve_object(classId, objectId, subId, NULL, &old);
	else
		old.found = false;

	for (level = guard_top; level != NULL; level = level->outer)
	{
		/* the old row first: a rename is reported under the old name */
		GuardVerdict verdict = guard_judge(level, &old);
		GuardObject *bad = &old;

		if (verdict == GUARD_ALLOWED)
		{
			verdict = guard_judge(level, &now);
			bad = &now;
		}
		if (verdict == GUARD_ALLOWED)
			continue;

		/* Extension members stay the extension's business */
		if (OidIsValid(getExtensionOfObject(classId, objectId)))
			return;
		if (OidIsValid(bad->relid) &&
			OidIsValid(getExtensionOfObject(RelationRelationId, bad->relid)))
			return;

		if (verdict == GUARD_PUBLIC)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("tenant script of \"%s\" cannot %s %s",
							level->schema, verb,
							describe_object(classId, objectId, subId, bad)),
					 errdetail("A tenant script may change only its own tenant schema; public is shared by every tenant."),
					 errhint("Qualify the object with public. so it is rewritten to the tenant, or list it in tenant_migrate.shared_objects if every tenant must change it.")));
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("tenant script of \"%s\" cannot %s %s",
						level->schema, verb,
						describe_object(classId, objectId, subId, bad)),
				 errdetail("A tenant script may change only its own tenant schema; \"%s\" belongs to another tenant.",
						   bad->nspname),
				 errhint("Change \"%s\" with a migration applied to that tenant.",
						 bad->nspname)));
	}
}

static GuardVerdict
guard_judge(const GuardLevel *level, GuardObject *obj)
{
	if (!obj->found || obj->defer || !OidIsValid(obj->nspoid) ||
		obj->nspoid == level->nspoid)
		return GUARD_ALLOWED;

	/* the name only now: most objects are in the tenant's own schema */
	if (!obj->nspname_read)
	{
		obj->nspname = namespace_name(obj->nspoid, obj->snapshot);
		obj->nspname_read = true;
	}
	if (obj->nspname == NULL)
		return GUARD_ALLOWED;

	if (strcmp(obj->nspname, TM_SHARED_SCHEMA) == 0)
	{
		if (is_shared_object(OidIsValid(obj->relid) ? obj->relname : obj->name))
			return GUARD_ALLOWED;
		return GUARD_PUBLIC;
	}
	if (isAnyTempNamespace(obj->nspoid))
		return GUARD_ALLOWED;
	if (is_registered_tenant(obj->nspname, level->snapshot))
		return GUARD_OTHER_TENANT;
	return GUARD_ALLOWED;
}

/*---- Where an object lives ----*/

/*
 * true if the object, as seen by snapshot, lives in the schema of every
 * active guard (or in pg_toast, where a table's toast table goes and no
 * tenant can be): the verdict resolve_object() and guard_judge() would
 * reach, found with the fewest rows read.  The schema is derived as
 * resolve_object() derives it; false (the full check decides) for
 * anything else, an object not found included.
 */
static bool
in_own_schema(Oid classId, Oid objectId, int subId, Snapshot snapshot)
{
	Oid			nspoid = InvalidOid;
	Oid			relid = InvalidOid;	/* or judged by this relation */
	HeapTuple	tup;
	GuardLevel *level;

	switch (classId)
	{
		case NamespaceRelationId:
			nspoid = objectId;
			break;
		case RelationRelationId:
		case ConstraintRelationId:
			nspoid = object_schema(classId, objectId, snapshot);
			break;
		case TypeRelationId:
			tup = fetch_row(TypeRelationId, TypeOidIndexId, Anum_pg_type_oid,
							objectId, snapshot);
			if (HeapTupleIsValid(tup))
				nspoid = ((Form_pg_type) GETSTRUCT(tup))->typnamespace;
			break;
		case TriggerRelationId:
			tup = fetch_row(TriggerRelationId, TriggerOidIndexId,
							Anum_pg_trigger_oid, objectId, snapshot);
			if (!HeapTupleIsValid(tup))
				return false;
			/* a foreign key's trigger goes with its constraint */
			if (OidIsValid(((Form_pg_trigger) GETSTRUCT(tup))->tgconstraint))
				return in_own_schema(ConstraintRelationId,
									 ((Form_pg_trigger) GETSTRUCT(tup))->tgconstraint,
									 0, snapshot);
			relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
			break;
		case PolicyRelationId:
			tup = fetch_row(PolicyRelationId, PolicyOidIndexId,
							Anum_pg_policy_oid, objectId, snapshot);
			if (HeapTupleIsValid(tup))
				relid = ((Form_pg_policy) GETSTRUCT(tup))->polrelid;
			break;
		case AttrDefaultRelationId:
			/* created: (relation, column); dropped: the pg_attrdef row */
			if (subId > 0)
				relid = objectId;
			else
			{
				tup = fetch_row(AttrDefaultRelationId, AttrDefaultOidIndexId,
								Anum_pg_attrdef_oid, objectId, snapshot);
				if (HeapTupleIsValid(tup))
					relid = ((Form_pg_attrdef) GETSTRUCT(tup))->adrelid;
			}
			break;
		default:
			return false;
	}

	if (OidIsValid(relid))
		nspoid = object_schema(RelationRelationId, relid, snapshot);
	if (!OidIsValid(nspoid))
		return false;
	for (level = guard_top; level != NULL; level = level->outer)
		if (nspoid != level->nspoid && nspoid != PG_TOAST_NAMESPACE)
			return false;
	return true;
}

/*
 * The schema of a relation or constraint as seen by snapshot (InvalidOid:
 * no such row); with SnapshotSelf, from schema_memo when it has the
 * object.
 */
static Oid
object_schema(Oid classId, Oid objectId, Snapshot snapshot)
{
	SchemaMemoKey key;
	SchemaMemoEntry *entry;
	Oid			nspoid;

	key.classId = classId;
	key.objectId = objectId;
	if (snapshot == SnapshotSelf && schema_memo != NULL)
	{
		entry = hash_search(schema_memo, &key, HASH_FIND, NULL);
		if (entry != NULL)
			return entry->nspoid;
	}

	if (classId == RelationRelationId)
	{
		HeapTuple	tup = fetch_row(RelationRelationId, ClassOidIndexId,
									Anum_pg_class_oid, objectId, snapshot);

		nspoid = HeapTupleIsValid(tup) ?
			((Form_pg_class) GETSTRUCT(tup))->relnamespace : InvalidOid;
	}
	else
	{
		HeapTuple	tup = fetch_row(ConstraintRelationId, ConstraintOidIndexId,
									Anum_pg_constraint_oid, objectId, snapshot);

		nspoid = HeapTupleIsValid(tup) ?
			((Form_pg_constraint) GETSTRUCT(tup))->connamespace : InvalidOid;
	}

	if (snapshot == SnapshotSelf && OidIsValid(nspoid))
	{
		entry = hash_search(schema_memo_table(), &key, HASH_ENTER, NULL);
		entry->nspoid = nspoid;
	}
	return nspoid;
}

/* The memo, made when first needed */
static HTAB *
schema_memo_table(void)
{
	if (schema_memo == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(SchemaMemoKey);
		ctl.entrysize = sizeof(SchemaMemoEntry);
		ctl.hcxt = TopMemoryContext;
		schema_memo = hash_create("tenant_migrate guard schemas", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	return schema_memo;
}

/* Puts a just created relation's schema, from its relcache entry, in the memo */
static void
memo_created_relation(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	SchemaMemoEntry *entry;
	SchemaMemoKey key;

	if (rel == NULL)
		return;					/* the catalog read will tell */
	key.classId = RelationRelationId;
	key.objectId = relid;
	entry = hash_search(schema_memo_table(), &key, HASH_ENTER, NULL);
	entry->nspoid = rel->rd_rel->relnamespace;
	RelationClose(rel);
}

static void
schema_memo_forget(Oid classId, Oid objectId)
{
	SchemaMemoKey key;

	if (schema_memo == NULL)
		return;
	key.classId = classId;
	key.objectId = objectId;
	(void) hash_search(schema_memo, &key, HASH_REMOVE, NULL);
}

static void
schema_memo_reset(void)
{
	if (schema_memo != NULL)
		hash_destroy(schema_memo);
	schema_memo = NULL;
}

/*
 * Fills obj for the object as seen by snapshot (SnapshotSelf: including
 * this command's changes; NULL: the catalog snapshot, i.e. before them).
 */
static void
resolve_object(Oid classId, Oid objectId, int subId, Snapshot snapshot,
			   GuardObject *obj)
{
	HeapTuple	tup;

	memset(obj, 0, sizeof(GuardObject));

	switch (classId)
	{
		case ExtensionRelationId:
			/* an extension is in no schema; its members are checked */
			return;

		case NamespaceRelationId:
			obj->nspname = namespace_name(objectId, snapshot);
			obj->nspname_read = true;
			obj->found = (obj->nspname != NULL);
			obj->nspoid = objectId;
			obj->kind = "schema";
			obj->name = obj->nspname;
			return;

		case RelationRelationId:
			resolve_relation(objectId, snapshot, obj);
			if (!obj->found)
				return;
			if (subId > 0)
			{
				ScanKeyData keys[2];
				Relation	rel = table_open(AttributeRelationId, AccessShareLock);
				SysScanDesc scan;

				ScanKeyInit(&keys[0], Anum_pg_attribute_attrelid,
							BTEqualStrategyNumber, F_OIDEQ,
							ObjectIdGetDatum(objectId));
				ScanKeyInit(&keys[1], Anum_pg_attribute_attnum,
							BTEqualStrategyNumber, F_INT2EQ,
							Int16GetDatum(subId));
				scan = systable_beginscan(rel, AttributeRelidNumIndexId, true,
										  snapshot, 2, keys);
				tup = systable_getnext(scan);
				if (HeapTupleIsValid(tup))
					obj->attname = pstrdup(NameStr(((Form_pg_attribute) GETSTRUCT(tup))->attname));
				systable_endscan(scan);
				table_close(rel, AccessShareLock);

				/* a column is attached to its relation */
				obj->relid = objectId;
				obj->relname = obj->name;
				obj->relkind = obj->kind;
				obj->kind = "column";
			}
			return;

		case TypeRelationId:
			{
				Form_pg_type typ;

				tup = fetch_row(TypeRelationId, TypeOidIndexId,
								Anum_pg_type_oid, objectId, snapshot);
				if (!HeapTupleIsValid(tup))
					return;
				typ = (Form_pg_type) GETSTRUCT(tup);
				obj->found = true;
				obj->kind = "type";
				obj->nspoid = typ->typnamespace;
				obj->snapshot = snapshot;
				obj->name = pstrdup(NameStr(typ->typname));
				if (OidIsValid(typ->typrelid))
					obj->defer = true;
				else if (OidIsValid(typ->typelem))
				{
					/* an array type goes with its element type */
					HeapTuple	elem = fetch_row(TypeRelationId, TypeOidIndexId,
												 Anum_pg_type_oid, typ->typelem,
												 snapshot);

					if (HeapTupleIsValid(elem) &&
						((Form_pg_type) GETSTRUCT(elem))->typarray == objectId)
					{
						if (OidIsValid(((Form_pg_type) GETSTRUCT(elem))->typrelid))
							obj->defer = true;
						obj->name = pstrdup(NameStr(((Form_pg_type) GETSTRUCT(elem))->typname));
					}
				}
				return;
			}

		case ConstraintRelationId:
			{
				Form_pg_constraint con;

				tup = fetch_row(ConstraintRelationId, ConstraintOidIndexId,
								Anum_pg_constraint_oid, objectId, snapshot);
				if (!HeapTupleIsValid(tup))
					return;
				con = (Form_pg_constraint) GETSTRUCT(tup);
				if (OidIsValid(con->conrelid))
				{
					resolve_relation(con->conrelid, snapshot, obj);
					obj->relid = con->conrelid;
					obj->relname = obj->name;
					obj->relkind = obj->kind;
				}
				else if (OidIsValid(con->contypid))
				{
					/* a domain's constraint goes with the domain's name */
					resolve_object(TypeRelationId, con->contypid, 0, snapshot, obj);
					obj->defer = false;
				}
				obj->found = true;
				obj->kind = "constraint";
				obj->nspoid = con->connamespace;
				obj->snapshot = snapshot;
				obj->name = pstrdup(NameStr(con->conname));
				return;
			}

		case TriggerRelationId:
			{
				Form_pg_trigger trg;

				tup = fetch_row(TriggerRelationId, TriggerOidIndexId,
								Anum_pg_trigger_oid, objectId, snapshot);
				if (!HeapTupleIsValid(tup))
					return;
				trg = (Form_pg_trigger) GETSTRUCT(tup);

				/*
				 * A foreign key's triggers on the referenced table belong to
				 * the constraint, which lives with the referencing table.
				 */
				if (OidIsValid(trg->tgconstraint))
				{
					GuardObject con;

					resolve_object(ConstraintRelationId, trg->tgconstraint, 0,
								   snapshot, &con);
					if (con.found)
					{
						*obj = con;
						obj->kind = "trigger";
						obj->name = pstrdup(NameStr(trg->tgname));
						return;
					}
				}
				resolve_relation(trg->tgrelid, snapshot, obj);
				obj->relid = trg->tgrelid;
				obj->relname = obj->name;
				obj->relkind = obj->kind;
				obj->kind = "trigger";
				obj->name = pstrdup(NameStr(trg->tgname));
				return;
			}

		case PolicyRelationId:
			tup = fetch_row(PolicyRelationId, PolicyOidIndexId,
							Anum_pg_policy_oid, objectId, snapshot);
			if (!HeapTupleIsValid(tup))
				return;
			resolve_relation(((Form_pg_policy) GETSTRUCT(tup))->polrelid,
							 snapshot, obj);
			obj->relid = ((Form_pg_policy) GETSTRUCT(tup))->polrelid;
			obj->relname = obj->name;
			obj->relkind = obj->kind;
			obj->kind = "policy";
			obj->name = pstrdup(NameStr(((Form_pg_policy) GETSTRUCT(tup))->polname));
			return;

		case RewriteRelationId:
			tup = fetch_row(RewriteRelationId, RewriteOidIndexId,
							Anum_pg_rewrite_oid, objectId, snapshot);
			if (!HeapTupleIsValid(tup))
				return;
			resolve_relation(((Form_pg_rewrite) GETSTRUCT(tup))->ev_class,
							 snapshot, obj);
			obj->relid = ((Form_pg_rewrite) GETSTRUCT(tup))->ev_class;
			obj->relname = obj->name;
			obj->relkind = obj->kind;
			obj->kind = "rule";
			obj->name = pstrdup(NameStr(((Form_pg_rewrite) GETSTRUCT(tup))->rulename));
			return;

		case AttrDefaultRelationId:
			/* created: (relation, column); dropped: the pg_attrdef row */
			if (subId > 0)
			{
				resolve_object(RelationRelationId, objectId, subId, snapshot, obj);
				obj->kind = "default of column";
				return;
			}
			tup = fetch_row(AttrDefaultRelationId, AttrDefaultOidIndexId,
							Anum_pg_attrdef_oid, objectId, snapshot);
			if (!HeapTupleIsValid(tup))
				return;
			resolve_object(RelationRelationId,
						   ((Form_pg_attrdef) GETSTRUCT(tup))->adrelid,
						   ((Form_pg_attrdef) GETSTRUCT(tup))->adnum,
						   snapshot, obj);
			obj->kind = "default of column";
			return;

		case AccessMethodOperatorRelationId:
		case AccessMethodProcedureRelationId:
			{
				Oid			family;

				if (classId == AccessMethodOperatorRelationId)
				{
					tup = fetch_row(classId, AccessMethodOperatorOidIndexId,
									Anum_pg_amop_oid, objectId, snapshot);
					family = HeapTupleIsValid(tup) ?
						((Form_pg_amop) GETSTRUCT(tup))->amopfamily : InvalidOid;
				}
				else
				{
					tup = fetch_row(classId, AccessMethodProcedureOidIndexId,
									Anum_pg_amproc_oid, objectId, snapshot);
					family = HeapTupleIsValid(tup) ?
						((Form_pg_amproc) GETSTRUCT(tup))->amprocfamily : InvalidOid;
				}
				if (OidIsValid(family))
					resolve_object(OperatorFamilyRelationId, family, 0,
								   snapshot, obj);
				return;
			}

		case DefaultAclRelationId:
			tup = fetch_row(DefaultAclRelationId, DefaultAclOidIndexId,
							Anum_pg_default_acl_oid, objectId, snapshot);
			if (!HeapTupleIsValid(tup))
				return;
			obj->found = true;
			obj->kind = "default privileges in schema";
			obj->nspoid = ((Form_pg_default_acl) GETSTRUCT(tup))->defaclnamespace;
			if (OidIsValid(obj->nspoid))
				obj->snapshot = snapshot;
			return;

		default:
			break;
	}

	/* Any other catalog with a namespace column */
	if (is_objectclass_supported(classId) &&
		get_object_attnum_namespace(classId) != InvalidAttrNumber)
	{
		Relation	rel = table_open(classId, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;
		AttrNumber	nameattr = get_object_attnum_name(classId);

		ScanKeyInit(&key, get_object_attnum_oid(classId),
					BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(objectId));
		scan = systable_beginscan(rel, get_object_oid_index(classId), true,
								  snapshot, 1, &key);
		tup = systable_getnext(scan);
		if (HeapTupleIsValid(tup))
		{
			bool		isnull;
			Datum		d;

			obj->found = true;
			d = heap_getattr(tup, get_object_attnum_namespace(classId),
							 RelationGetDescr(rel), &isnull);
			obj->nspoid = isnull ? InvalidOid : DatumGetObjectId(d);
			if (nameattr != InvalidAttrNumber)
			{
				d = heap_getattr(tup, nameattr, RelationGetDescr(rel), &isnull);
				if (!isnull)
					obj->name = pstrdup(NameStr(*DatumGetName(d)));
			}
			if (classId == ProcedureRelationId)
				obj->kind = prokind_word(((Form_pg_proc) GETSTRUCT(tup))->prokind);
			else
				obj->kind = get_object_class_descr(classId);
		}
		systable_endscan(scan);
		table_close(rel, AccessShareLock);
		if (obj->found && OidIsValid(obj->nspoid))
			obj->snapshot = snapshot;
	}
}

/* A relation's schema, name and kind; an index goes with its table */
static void
resolve_relation(Oid relid, Snapshot snapshot, GuardObject *obj)
{
	HeapTuple	tup;
	Form_pg_class cls;

	tup = fetch_row(RelationRelationId, ClassOidIndexId, Anum_pg_class_oid,
					relid, snapshot);
	if (!HeapTupleIsValid(tup))
		return;
	cls = (Form_pg_class) GETSTRUCT(tup);
	obj->found = true;
	obj->nspoid = cls->relnamespace;
	obj->snapshot = snapshot;
	obj->name = pstrdup(NameStr(cls->relname));
	obj->kind = relkind_word(cls->relkind);

	if (cls->relkind == RELKIND_INDEX || cls->relkind == RELKIND_PARTITIONED_INDEX)
	{
		HeapTuple	idx = fetch_row(IndexRelationId, IndexRelidIndexId,
									Anum_pg_index_indexrelid, relid, snapshot);
		HeapTuple	table;

		if (!HeapTupleIsValid(idx))
			return;
		obj->relid = ((Form_pg_index) GETSTRUCT(idx))->indrelid;
		table = fetch_row(RelationRelationId, ClassOidIndexId,
						  Anum_pg_class_oid, obj->relid, snapshot);
		if (HeapTupleIsValid(table))
		{
			obj->relname = pstrdup(NameStr(((Form_pg_class) GETSTRUCT(table))->relname));
			obj->relkind = relkind_word(((Form_pg_class) GETSTRUCT(table))->relkind);
		}
		else
			obj->relid = InvalidOid;
	}
}

/* A copy of the catalog row with the given OID, NULL if snapshot sees none */
static HeapTuple
fetch_row(Oid catalog, Oid index, AttrNumber oidcol, Oid oid,
		  Snapshot snapshot)
{
	Relation	rel = table_open(catalog, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key, oidcol, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(oid));
	scan = systable_beginscan(rel, index, true, snapshot, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		tup = heap_copytuple(tup);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return tup;
}

/* A schema's name (a schema created by this command too), NULL if none */
static char *
namespace_name(Oid nspoid, Snapshot snapshot)
{
	HeapTuple	tup = fetch_row(NamespaceRelationId, NamespaceOidIndexId,
								Anum_pg_namespace_oid, nspoid, snapshot);

	if (!HeapTupleIsValid(tup))
		return NULL;
	return pstrdup(NameStr(((Form_pg_namespace) GETSTRUCT(tup))->nspname));
}

/*---- Registered tenants and shared objects ----*/

/*
 * true if public.tenant_registry has a row for nspname, as of snapshot.
 * A direct scan of the primary key: the hook runs inside DDL, where SPI
 * is no place to be.  Both OIDs are looked up every time; nothing is
 * cached across commands.
 */
static bool
is_registered_tenant(const char *nspname, Snapshot snapshot)
{
	Oid			public_oid = get_namespace_oid(TM_SHARED_SCHEMA, true);
	Oid			relid;
	Oid			indexid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	NameData	name;
	bool		found;

	if (!OidIsValid(public_oid))
		return false;
	relid = get_relname_relid("tenant_registry", public_oid);
	indexid = get_relname_relid("tenant_registry_pkey", public_oid);
	if (!OidIsValid(relid) || !OidIsValid(indexid))
		return false;

	namestrcpy(&name, nspname);
	rel = table_open(relid, AccessShareLock);
	/* schema_name is the table's first column and the key's only one */
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_NAMEEQ, NameGetDatum(&name));
	scan = systable_beginscan(rel, indexid, true, snapshot, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * true if name is listed in tenant_migrate.shared_objects, as "name" or
 * "public.name" (the rewriter's rule).  The list is parsed again only
 * when the setting's value changes.
 */
static bool
is_shared_object(const char *name)
{
	const char *value = tm_shared_objects ? tm_shared_objects : "";
	ListCell   *lc;

	if (name == NULL)
		return false;
	if (shared_cached_value == NULL || strcmp(shared_cached_value, value) != 0)
	{
		MemoryContext oldcxt;

		if (shared_cached_value != NULL)
		{
			list_free(shared_cached_names);
			pfree(shared_cached_raw);
			pfree(shared_cached_value);
		}
		oldcxt = MemoryContextSwitchTo(TopMemoryContext);
		shared_cached_value = pstrdup(value);
		shared_cached_raw = pstrdup(value);
		shared_cached_names = NIL;
		/* the setting's check hook has accepted the syntax already */
		if (!SplitIdentifierString(shared_cached_raw, ',', &shared_cached_names))
		{
			list_free(shared_cached_names);
			shared_cached_names = NIL;
		}
		MemoryContextSwitchTo(oldcxt);
	}

	foreach(lc, shared_cached_names)
	{
		const char *entry = (const char *) lfirst(lc);
		const char *dot = strchr(entry, '.');

		if (dot == NULL ? strcmp(entry, name) == 0 :
			(dot - entry == 6 && strncmp(entry, TM_SHARED_SCHEMA, 6) == 0 &&
			 strcmp(dot + 1, name) == 0))
			return true;
	}
	return false;
}

/*---- Messages ----*/

static const char *
relkind_word(char relkind)
{
	switch (relkind)
	{
		case RELKIND_RELATION:
			return "table";
		case RELKIND_PARTITIONED_TABLE:
			return "partitioned table";
		case RELKIND_INDEX:
			return "index";
		case RELKIND_PARTITIONED_INDEX:
			return "partitioned index";
		case RELKIND_SEQUENCE:
			return "sequence";
		case RELKIND_TOASTVALUE:
			return "toast table";
		case RELKIND_VIEW:
			return "view";
		case RELKIND_MATVIEW:
			return "materialized view";
		case RELKIND_COMPOSITE_TYPE:
			return "composite type";
		case RELKIND_FOREIGN_TABLE:
			return "foreign table";
	}
	return "relation";
}

static const char *
prokind_word(char prokind)
{
	switch (prokind)
	{
		case PROKIND_AGGREGATE:
			return "aggregate";
		case PROKIND_PROCEDURE:
			return "procedure";
		case PROKIND_WINDOW:
			return "window function";
	}
	return "function";
}

/*
 * "table public.t", "trigger trg on table public.t", "column c of table
 * public.t": always schema-qualified, built from the rows read above, so
 * it works for an object this command created (not yet in the syscache).
 */
static char *
describe_object(Oid classId, Oid objectId, int subId, const GuardObject *obj)
{
	const char *nsp = obj->nspname ? obj->nspname : "?";

	if (!obj->found)
	{
		ObjectAddress addr = {classId, objectId, subId};
		char	   *desc = getObjectDescription(&addr, true);

		return desc ? desc : psprintf("object %u of catalog %u", objectId, classId);
	}
	if (classId == NamespaceRelationId)
		return psprintf("schema %s", quote_identifier(obj->name));
	if (classId == DefaultAclRelationId)
		return psprintf("default privileges in schema %s", quote_identifier(nsp));
	if (obj->attname != NULL)
		return psprintf("%s %s of %s %s", obj->kind, quote_identifier(obj->attname),
						obj->relkind, quote_qualified_identifier(nsp, obj->relname));
	if (OidIsValid(obj->relid) && obj->relname != NULL && classId != RelationRelationId)
		return psprintf("%s %s on %s %s", obj->kind, quote_identifier(obj->name),
						obj->relkind, quote_qualified_identifier(nsp, obj->relname));
	if (OidIsValid(obj->relid) && obj->relname != NULL)
		return psprintf("%s %s on %s %s", obj->kind,
						quote_qualified_identifier(nsp, obj->name),
						obj->relkind, quote_qualified_identifier(nsp, obj->relname));
	return psprintf("%s %s", obj->kind,
					obj->name ? quote_qualified_identifier(nsp, obj->name) : quote_identifier(nsp));
}

/*---- Lifetime ----*/

static void
guard_pop(void)
{
	GuardLevel *level = guard_top;

	guard_top = level->outer;
	pfree(level);
	if (guard_top == NULL)
		schema_memo_reset();
}

/*
 * The runner ends its guard on every path it controls; an abort it did not
 * see (an error outside the statement loop) ends it here.  The snapshot
 * goes with the aborted resource owner.
 */
static void
guard_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			while (guard_top != NULL)
				guard_pop();
			tm_oneshot_end();
			break;
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			while (guard_top != NULL)
				tm_guard_end();
			break;
		default:
			break;
	}
}

static void
guard_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	GuardLevel *level;

	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			/* guards begun in it or in its children; outer ones stay */
			while (guard_top != NULL && guard_top->subid >= mySubid)
				guard_pop();
			/* what it changed is undone: schemas seen in it may be too */
			schema_memo_reset();
			tm_oneshot_end();
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			/* the snapshot moves to the parent's resource owner too */
			for (level = guard_top; level != NULL; level = level->outer)
				if (level->subid == mySubid)
					level->subid = parentSubid;
			break;
		default:
			break;
	}
}

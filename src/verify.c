/*-------------------------------------------------------------------------
 *
 * src/verify.c
 *		Trusting the fleet: tenant_verify() (does every schema hold what its
 *		history says?) and tenant_baseline() (adopt a schema made outside
 *		the extension).
 *
 * What tenant_verify() compares
 * -----------------------------
 * 1. The books, set-based, in one query over the extension's tables and
 *    pg_namespace: recorded against registered checksums, history rows of
 *    versions no longer registered (or of the other scope), versions
 *    below a schema's newest applied one that it never got (history_gap if
 *    they were registered before that newest one was applied, out_of_order
 *    if after: the out-of-order guard refuses those), registry rows whose
 *    schema is gone, schemas with the tenant prefix that are not
 *    registered, history rows of schemas that are not.  The registered
 *    texts are hashed again here (OpenSSL, as at registration), so an
 *    up_sql edited in place is found even if its checksum column was not.
 * 2. The schemas, against a reference.  Tenants are grouped by the set of
 *    tenant versions they have applied.  For each distinct set, once per
 *    call, the scripts are replayed in version order into a scratch schema
 *    (tm_verify_<pid>) exactly as the runner applies them -- rewritten for
 *    that schema, as their author, under the containment guard
 *    (tm_run_tenant_script) -- inside an internal subtransaction that is
 *    then rolled back, so nothing of it stays, committed or not.  Before
 *    the rollback the scratch schema's fingerprint is read, and kept in
 *    public.tenant_verify_reference for later calls with the same
 *    signature, which then replay nothing (see "References kept between
 *    calls" below).
 *    Then every tenant of the set is fingerprinted, FP_BATCH schemas per
 *    catalog query, and compared object by object.
 *
 * The fingerprint
 * ---------------
 * One row per object of the schema, read from pg_catalog (never
 * information_schema, which hides what the caller may not see): kind,
 * name, and a definition from the server's own deparsers
 * (pg_get_indexdef, pg_get_constraintdef, pg_get_triggerdef,
 * pg_get_viewdef, pg_get_functiondef, pg_get_expr, format_type) and the
 * catalog columns they do not show (index validity, trigger enabled
 * state, row level security flags, sequence parameters, enum labels in
 * order, identity and generated columns).  Queries run with search_path =
 * pg_catalog, pg_temp (catalog.c), so every name in the schema is printed
 * qualified; the schema's own name is then replaced by a placeholder
 * (with its quotes, if it has them) wherever it stands as a whole word or
 * starts a longer name ("tenant_acme.orders", "\"tenant_AbC\".t",
 * "tenant_acme_idx"), which
 * makes the scratch schema's rows and a tenant's comparable.  Objects that
 * embed OIDs (internal foreign-key triggers, array and row types, toast
 * tables, identity sequences) and extension members are left out.  Not
 * compared: privileges, owners, comments, collations, operators, text
 * search objects, table data.
 *
 * Locks: none are taken; each query sees committed state (and this
 * transaction's own).  A tenant migrated while the call runs may be
 * reported against the history read at the start: run it again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type_d.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

PG_FUNCTION_INFO_V1(tenant_verify);
PG_FUNCTION_INFO_V1(tenant_baseline);

/* Schemas fingerprinted by one catalog query */
#define FP_BATCH		50

/* Stands for the schema's own name in normalised fingerprints */
#define FP_PLACEHOLDER	'\001'

/* One object of a schema's fingerprint */
typedef struct FpEntry
{
	char	   *key;			/* kind and name, normalised */
	char	   *def;			/* definition, normalised */
} FpEntry;

typedef struct Fingerprint
{
	int			n;
	FpEntry    *entries;		/* sorted by key */
} Fingerprint;

/* A row of tenant_verify()'s result */
typedef struct Problem
{
	char	   *schema;
	char	   *problem;
	char	   *detail;
} Problem;

/* A registered tenant script, as the replay needs it */
typedef struct VerScript
{
	char	   *version;
	char	   *name;
	char	   *author;
	char	   *up_sql;
	char	   *text_checksum;	/* of up_sql as it is now */
	TmScript   *up;				/* compiled on first use */
} VerScript;

/* The books: every check but schema drift, in one query */
static const char *books_query =
"WITH hist AS ("
"  SELECT m.tenant_schema, m.version, m.checksum, m.applied_at"
"    FROM public.tenant_migrations m"
"   WHERE $1::pg_catalog.name IS NULL OR m.tenant_schema OPERATOR(pg_catalog.=) $1::pg_catalog.name),"
" known AS ("
"  SELECT h.*, s.name, s.scope, s.checksum AS registered, s.registered_at,"
"         public.tenant_version_key(h.version) AS k"
"    FROM hist h JOIN public.tenant_migration_scripts s ON s.version OPERATOR(pg_catalog.=) h.version"
"   WHERE (s.scope OPERATOR(pg_catalog.=) 'shared') OPERATOR(pg_catalog.=) (h.tenant_schema OPERATOR(pg_catalog.=) 'public')),"
" top AS ("
"  SELECT DISTINCT ON (k.tenant_schema) k.tenant_schema, k.version, k.k, k.applied_at, k.scope"
"    FROM known k ORDER BY k.tenant_schema, k.k DESC)"
" SELECT k.tenant_schema, 'checksum_drift',"
"        pg_catalog.format('migration %s (%s) was applied with checksum %s, but the registered script now has checksum %s',"
"                          k.version, k.name, k.checksum, k.registered)"
"   FROM known k WHERE k.checksum OPERATOR(pg_catalog.<>) k.registered"
" UNION ALL"
" SELECT k.tenant_schema, 'checksum_drift',"
"        pg_catalog.format('the registered up script of migration %s (%s) no longer matches its checksum %s: tenant_migration_scripts was edited directly',"
"                          k.version, k.name, k.registered)"
"   FROM known k WHERE k.version OPERATOR(pg_catalog.=) ANY ($3::pg_catalog.text[])"
" UNION ALL"
" SELECT h.tenant_schema, 'history_unknown_version',"
"        CASE WHEN s.version IS NULL"
"             THEN pg_catalog.format('migration %s is recorded as applied, but no such version is registered', h.version)"
"             ELSE pg_catalog.format('migration %s is recorded as applied here, but it is a %s script', h.version, s.scope) END"
"   FROM hist h LEFT JOIN public.tenant_migration_scripts s ON s.version OPERATOR(pg_catalog.=) h.version"
"  WHERE s.version IS NULL"
"     OR (s.scope OPERATOR(pg_catalog.=) 'shared') OPERATOR(pg_catalog.<>) (h.tenant_schema OPERATOR(pg_catalog.=) 'public')"
" UNION ALL"
" SELECT t.tenant_schema,"
"        CASE WHEN s.registered_at OPERATOR(pg_catalog.>) t.applied_at THEN 'out_of_order' ELSE 'history_gap' END,"
"        CASE WHEN s.registered_at OPERATOR(pg_catalog.>) t.applied_at"
"             THEN pg_catalog.format('migration %s (%s) was registered after the newer migration %s was applied here, and is not applied',"
"                                    s.version, s.name, t.version)"
"             ELSE pg_catalog.format('migration %s (%s) is not applied, but the newer migration %s is',"
"                                    s.version, s.name, t.version) END"
"   FROM top t JOIN public.tenant_migration_scripts s ON s.scope OPERATOR(pg_catalog.=) t.scope"
"    AND public.tenant_version_key(s.version) OPERATOR(pg_catalog.<) t.k"
"  WHERE NOT EXISTS (SELECT 1 FROM hist h WHERE h.tenant_schema OPERATOR(pg_catalog.=) t.tenant_schema"
"                                            AND h.version OPERATOR(pg_catalog.=) s.version)"
" UNION ALL"
" SELECT h.tenant_schema, 'history_orphan',"
"        pg_catalog.format('%s migration(s) are recorded as applied to schema %s, which is not a registered tenant',"
"                          pg_catalog.count(*), pg_catalog.quote_ident(h.tenant_schema::pg_catalog.text))"
"   FROM hist h"
"  WHERE h.tenant_schema OPERATOR(pg_catalog.<>) 'public'"
"    AND NOT EXISTS (SELECT 1 FROM public.tenant_registry r WHERE r.schema_name OPERATOR(pg_catalog.=) h.tenant_schema)"
"  GROUP BY h.tenant_schema"
" UNION ALL"
" SELECT r.schema_name, 'registry_missing_schema',"
"        pg_catalog.format('tenant %s (key %s, status %s) is registered, but its schema does not exist',"
"                          pg_catalog.quote_ident(r.schema_name::pg_catalog.text), r.tenant_key, r.status)"
"   FROM public.tenant_registry r"
"  WHERE ($1::pg_catalog.name IS NULL OR r.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name)"
"    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) r.schema_name)"
" UNION ALL"
" SELECT n.nspname, 'schema_not_registered',"
"        pg_catalog.format('schema %s exists but is not a registered tenant', pg_catalog.quote_ident(n.nspname::pg_catalog.text))"
"   FROM pg_catalog.pg_namespace n"
"  WHERE CASE WHEN $1::pg_catalog.name IS NULL"
"             THEN $2 OPERATOR(pg_catalog.<>) ''"
"                  AND pg_catalog.left(n.nspname::pg_catalog.text, pg_catalog.length($2)) OPERATOR(pg_catalog.=) $2"
"             ELSE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name END"
"    AND n.nspname OPERATOR(pg_catalog.<>) 'public'"
"    AND NOT EXISTS (SELECT 1 FROM public.tenant_registry r WHERE r.schema_name OPERATOR(pg_catalog.=) n.nspname)";

/*
 * The fingerprint of the schemas in $1, one row per object: schema OID,
 * key (kind and name), definition.  See the header comment.
 */
static const char *fingerprint_query =
/*
 * What lives in the schemas: found through pg_depend's index on the
 * referenced object (every relation, function, type and statistics object
 * records a dependency on its schema), since pg_class, pg_proc and pg_type
 * have no index on the schema alone and a scan of them grows with the whole
 * fleet.  Composite types record it on their pg_type row.  The schema
 * columns are checked again on the rows found.
 */
"WITH owned AS MATERIALIZED ("
"  SELECT d.classid, d.objid"
"    FROM pg_catalog.pg_depend d"
"   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass"
"     AND d.refobjid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
"     AND d.refobjsubid OPERATOR(pg_catalog.=) 0),"
" rels AS MATERIALIZED ("
"  SELECT c.oid, c.relnamespace AS nsp, c.relname, c.relkind"
"    FROM pg_catalog.pg_class c"
"   WHERE c.oid IN (SELECT o.objid FROM owned o"
"                    WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
"                   UNION ALL"
"                   SELECT t.typrelid FROM owned o JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) o.objid"
"                    WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass"
"                      AND t.typtype OPERATOR(pg_catalog.=) 'c')"
"     AND c.relnamespace OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
"     AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')"
"     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
"                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
"                        AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype IN ('e', 'i'))),"
" procs AS ("
"  SELECT p.oid, p.pronamespace AS nsp, p.proname, p.prokind"
"    FROM pg_catalog.pg_proc p"
"   WHERE p.oid IN (SELECT o.objid FROM owned o"
"                    WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass)"
"     AND p.pronamespace OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
"     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
"                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass"
"                        AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')),"
" types AS ("
"  SELECT t.oid, t.typnamespace AS nsp, t.typname, t.typtype, t.typbasetype, t.typtypmod, t.typnotnull, t.typdefault"
"    FROM pg_catalog.pg_type t"
"   WHERE t.oid IN (SELECT o.objid FROM owned o"
"                    WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass)"
"     AND t.typnamespace OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
"     AND t.typtype IN ('e', 'd', 'r')"
"     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d"
"                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass"
"                        AND d.objid OPERATOR(pg_catalog.=) t.oid AND d.deptype OPERATOR(pg_catalog.=) 'e'))"
/* relations */
" SELECT r.nsp,"
"        CASE r.relkind WHEN 'r' THEN 'table ' WHEN 'p' THEN 'table ' WHEN 'v' THEN 'view '"
"             WHEN 'm' THEN 'materialized view ' WHEN 'f' THEN 'foreign table ' WHEN 'S' THEN 'sequence '"
"             ELSE 'type ' END OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.relname::pg_catalog.text),"
"        CASE WHEN r.relkind IN ('v', 'm') THEN pg_catalog.rtrim(pg_catalog.pg_get_viewdef(r.oid), ';')"
"             WHEN r.relkind OPERATOR(pg_catalog.=) 'S' THEN"
"               (SELECT pg_catalog.format('as %s start %s increment %s minvalue %s maxvalue %s cache %s%s',"
"                        pg_catalog.format_type(q.seqtypid, NULL), q.seqstart, q.seqincrement, q.seqmin, q.seqmax,"
"                        q.seqcache, CASE WHEN q.seqcycle THEN ' cycle' ELSE '' END)"
"                  FROM pg_catalog.pg_sequence q WHERE q.seqrelid OPERATOR(pg_catalog.=) r.oid)"
"             WHEN r.relkind OPERATOR(pg_catalog.=) 'c' THEN 'composite type'"
"             ELSE pg_catalog.concat_ws(', ',"
"                    CASE c.relpersistence WHEN 'u' THEN 'unlogged' END,"
"                    (SELECT 'inherits ' OPERATOR(pg_catalog.||) pg_catalog.string_agg(i.inhparent::pg_catalog.regclass::pg_catalog.text, ', ' ORDER BY i.inhseqno)"
"                       FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) r.oid),"
"                    CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, r.oid) END,"
"                    CASE WHEN r.relkind OPERATOR(pg_catalog.=) 'p' THEN 'partition by ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_partkeydef(r.oid) END,"
"                    'row level security ' OPERATOR(pg_catalog.||) CASE WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END"
"                      OPERATOR(pg_catalog.||) CASE WHEN c.relforcerowsecurity THEN ', forced' ELSE '' END,"
"                    'with (' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(c.reloptions, ', ') OPERATOR(pg_catalog.||) ')')"
"        END"
"   FROM rels r JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.oid"
/* columns */
" UNION ALL"
" SELECT r.nsp,"
"        'column ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.relname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'"
"          OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname::pg_catalog.text),"
"        pg_catalog.format_type(a.atttypid, a.atttypmod)"
"          OPERATOR(pg_catalog.||) CASE WHEN a.attcollation OPERATOR(pg_catalog.<>) 0"
"                    AND a.attcollation OPERATOR(pg_catalog.<>) (SELECT t.typcollation FROM pg_catalog.pg_type t WHERE t.oid OPERATOR(pg_catalog.=) a.atttypid)"
"               THEN ' collate ' OPERATOR(pg_catalog.||) (SELECT pg_catalog.quote_ident(o.collname::pg_catalog.text) FROM pg_catalog.pg_collation o WHERE o.oid OPERATOR(pg_catalog.=) a.attcollation)"
"               ELSE '' END"
"          OPERATOR(pg_catalog.||) CASE WHEN a.attnotnull THEN ' not null' ELSE '' END"
"          OPERATOR(pg_catalog.||) CASE WHEN a.attgenerated OPERATOR(pg_catalog.=) 's'"
"               THEN ' generated always as (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) OPERATOR(pg_catalog.||) ') stored'"
"               WHEN ad.adbin IS NOT NULL THEN ' default ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(ad.adbin, ad.adrelid)"
"               ELSE '' END"
"          OPERATOR(pg_catalog.||) CASE a.attidentity WHEN 'a' THEN ' generated always as identity'"
"               WHEN 'd' THEN ' generated by default as identity' ELSE '' END"
"   FROM rels r JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) r.oid"
"   LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid OPERATOR(pg_catalog.=) a.attrelid AND ad.adnum OPERATOR(pg_catalog.=) a.attnum"
"  WHERE r.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped"
/* indexes */
" UNION ALL"
" SELECT r.nsp, 'index ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(ic.relname::pg_catalog.text),"
"        pg_catalog.pg_get_indexdef(x.indexrelid)"
"          OPERATOR(pg_catalog.||) CASE WHEN x.indisvalid THEN '' ELSE ' (invalid)' END"
"   FROM rels r JOIN pg_catalog.pg_index x ON x.indrelid OPERATOR(pg_catalog.=) r.oid"
"   JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) x.indexrelid"
/* constraints of tables and domains */
" UNION ALL"
" SELECT r.nsp,"
"        'constraint ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.relname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'"
"          OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.conname::pg_catalog.text),"
"        pg_catalog.pg_get_constraintdef(k.oid)"
"   FROM rels r JOIN pg_catalog.pg_constraint k ON k.conrelid OPERATOR(pg_catalog.=) r.oid"
" UNION ALL"
" SELECT t.nsp,"
"        'constraint ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(t.typname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'"
"          OPERATOR(pg_catalog.||) pg_catalog.quote_ident(k.conname::pg_catalog.text),"
"        pg_catalog.pg_get_constraintdef(k.oid)"
"   FROM types t JOIN pg_catalog.pg_constraint k ON k.contypid OPERATOR(pg_catalog.=) t.oid"
"  WHERE t.typtype OPERATOR(pg_catalog.=) 'd'"
/*
 * triggers (not the internal ones of foreign keys): pg_get_triggerdef's
 * text, built here but for a WHEN clause or arguments, because its way to
 * print the function's name looks at every function of that name in the
 * database, one per tenant
 */
" UNION ALL"
" SELECT r.nsp,"
"        'trigger ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.relname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'"
"          OPERATOR(pg_catalog.||) pg_catalog.quote_ident(g.tgname::pg_catalog.text),"
"        CASE WHEN g.tgqual IS NOT NULL OR g.tgnargs OPERATOR(pg_catalog.>) 0 THEN pg_catalog.pg_get_triggerdef(g.oid)"
"        ELSE 'CREATE ' OPERATOR(pg_catalog.||) CASE WHEN g.tgconstraint OPERATOR(pg_catalog.<>) 0 THEN 'CONSTRAINT ' ELSE '' END"
"        OPERATOR(pg_catalog.||) 'TRIGGER ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(g.tgname::pg_catalog.text) OPERATOR(pg_catalog.||) ' '"
"        OPERATOR(pg_catalog.||) CASE WHEN g.tgtype OPERATOR(pg_catalog.&) 2::pg_catalog.int2 OPERATOR(pg_catalog.<>) 0 THEN 'BEFORE'"
"        WHEN g.tgtype OPERATOR(pg_catalog.&) 64::pg_catalog.int2 OPERATOR(pg_catalog.<>) 0 THEN 'INSTEAD OF' ELSE 'AFTER' END"
"        OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(ARRAY["
"        CASE WHEN g.tgtype OPERATOR(pg_catalog.&) 4::pg_catalog.int2 OPERATOR(pg_catalog.<>) 0 THEN 'INSERT' END,"
"        CASE WHEN g.tgtype OPERATOR(pg_catalog.&) 8::pg_catalog.int2 OPERATOR(pg_catalog.<>) 0 THEN 'DELETE' END,"
"        CASE WHEN g.tgtype OPERATOR(pg_catalog.&) 16::pg_catalog.int2 OPERATOR(pg_catalog.<>) 0 THEN 'UPDATE' OPERATOR(pg_catalog.||)"
"        COALESCE(' OF ' OPERATOR(pg_catalog.||) (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname::pg_catalog.text), ', ' ORDER BY k.n)"
"        FROM pg_catalog.unnest(g.tgattr::pg_catalog.int2[]) WITH ORDINALITY AS k(attnum, n)"
"        JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) g.tgrelid AND a.attnum OPERATOR(pg_catalog.=) k.attnum), '') END,"
"        CASE WHEN g.tgtype OPERATOR(pg_catalog.&) 32::pg_catalog.int2 OPERATOR(pg_catalog.<>) 0 THEN 'TRUNCATE' END], ' OR ')"
"        OPERATOR(pg_catalog.||) ' ON ' OPERATOR(pg_catalog.||)"
"        (SELECT pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname::pg_catalog.text)"
"        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
"        WHERE c.oid OPERATOR(pg_catalog.=) g.tgrelid) OPERATOR(pg_catalog.||) ' '"
"        OPERATOR(pg_catalog.||) CASE WHEN g.tgconstraint OPERATOR(pg_catalog.<>) 0 THEN"
"        COALESCE((SELECT 'FROM ' OPERATOR(pg_catalog.||) CASE WHEN n.nspname OPERATOR(pg_catalog.=) 'pg_catalog' THEN '' ELSE pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.' END"
"        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname::pg_catalog.text) OPERATOR(pg_catalog.||) ' '"
"        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
"        WHERE c.oid OPERATOR(pg_catalog.=) g.tgconstrrelid), '')"
"        OPERATOR(pg_catalog.||) CASE WHEN g.tgdeferrable THEN '' ELSE 'NOT ' END OPERATOR(pg_catalog.||) 'DEFERRABLE INITIALLY '"
"        OPERATOR(pg_catalog.||) CASE WHEN g.tginitdeferred THEN 'DEFERRED ' ELSE 'IMMEDIATE ' END ELSE '' END"
"        OPERATOR(pg_catalog.||) CASE WHEN g.tgoldtable IS NULL AND g.tgnewtable IS NULL THEN '' ELSE 'REFERENCING '"
"        OPERATOR(pg_catalog.||) COALESCE('OLD TABLE AS ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(g.tgoldtable::pg_catalog.text) OPERATOR(pg_catalog.||) ' ', '')"
"        OPERATOR(pg_catalog.||) COALESCE('NEW TABLE AS ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(g.tgnewtable::pg_catalog.text) OPERATOR(pg_catalog.||) ' ', '') END"
"        OPERATOR(pg_catalog.||) 'FOR EACH ' OPERATOR(pg_catalog.||) CASE WHEN g.tgtype OPERATOR(pg_catalog.&) 1::pg_catalog.int2 OPERATOR(pg_catalog.<>) 0 THEN 'ROW ' ELSE 'STATEMENT ' END"
"        OPERATOR(pg_catalog.||) 'EXECUTE FUNCTION '"
"        OPERATOR(pg_catalog.||) (SELECT CASE WHEN n.nspname OPERATOR(pg_catalog.=) 'pg_catalog' THEN '' ELSE pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.' END"
"        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname::pg_catalog.text)"
"        FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace"
"        WHERE p.oid OPERATOR(pg_catalog.=) g.tgfoid) OPERATOR(pg_catalog.||) '()'"
"        END"
"          OPERATOR(pg_catalog.||) CASE g.tgenabled WHEN 'D' THEN ' (disabled)' WHEN 'R' THEN ' (enabled replica)'"
"                                   WHEN 'A' THEN ' (enabled always)' ELSE '' END"
"   FROM rels r JOIN pg_catalog.pg_trigger g ON g.tgrelid OPERATOR(pg_catalog.=) r.oid"
"  WHERE NOT g.tgisinternal"
/* policies */
" UNION ALL"
" SELECT r.nsp,"
"        'policy ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.relname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'"
"          OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.polname::pg_catalog.text),"
"        'as ' OPERATOR(pg_catalog.||) CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END"
"          OPERATOR(pg_catalog.||) ' for ' OPERATOR(pg_catalog.||) CASE p.polcmd WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert'"
"               WHEN 'w' THEN 'update' WHEN 'd' THEN 'delete' ELSE 'all' END"
"          OPERATOR(pg_catalog.||) ' to ' OPERATOR(pg_catalog.||)"
"             (SELECT pg_catalog.string_agg(CASE WHEN o OPERATOR(pg_catalog.=) 0 THEN 'public'"
"                                           ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o)::pg_catalog.text) END, ', '"
"                                      ORDER BY 1)"
"                FROM pg_catalog.unnest(p.polroles) AS o)"
"          OPERATOR(pg_catalog.||) COALESCE(' using (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polqual, p.polrelid) OPERATOR(pg_catalog.||) ')', '')"
"          OPERATOR(pg_catalog.||) COALESCE(' with check (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) OPERATOR(pg_catalog.||) ')', '')"
"   FROM rels r JOIN pg_catalog.pg_policy p ON p.polrelid OPERATOR(pg_catalog.=) r.oid"
/* rules (not the view's own) */
" UNION ALL"
" SELECT r.nsp,"
"        'rule ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.relname::pg_catalog.text) OPERATOR(pg_catalog.||) '.'"
"          OPERATOR(pg_catalog.||) pg_catalog.quote_ident(w.rulename::pg_catalog.text),"
"        pg_catalog.pg_get_ruledef(w.oid)"
"   FROM rels r JOIN pg_catalog.pg_rewrite w ON w.ev_class OPERATOR(pg_catalog.=) r.oid"
"  WHERE w.rulename OPERATOR(pg_catalog.<>) '_RETURN'"
/* functions, procedures, aggregates */
" UNION ALL"
" SELECT p.nsp,"
"        CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate ' ELSE 'function ' END"
"          OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname::pg_catalog.text)"
"          OPERATOR(pg_catalog.||) '(' OPERATOR(pg_catalog.||) pg_catalog.pg_get_function_identity_arguments(p.oid) OPERATOR(pg_catalog.||) ')',"
"        CASE WHEN p.prokind OPERATOR(pg_catalog.=) 'a' THEN 'aggregate'"
"             ELSE pg_catalog.rtrim(pg_catalog.pg_get_functiondef(p.oid), E'\\n') END"
"   FROM procs p"
/* enums, domains, ranges */
" UNION ALL"
" SELECT t.nsp, 'type ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(t.typname::pg_catalog.text),"
"        CASE t.typtype"
"          WHEN 'e' THEN 'enum (' OPERATOR(pg_catalog.||)"
"             COALESCE((SELECT pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel::pg_catalog.text), ', ' ORDER BY e.enumsortorder)"
"                         FROM pg_catalog.pg_enum e WHERE e.enumtypid OPERATOR(pg_catalog.=) t.oid), '') OPERATOR(pg_catalog.||) ')'"
"          WHEN 'd' THEN 'domain ' OPERATOR(pg_catalog.||) pg_catalog.format_type(t.typbasetype, t.typtypmod)"
"             OPERATOR(pg_catalog.||) CASE WHEN t.typnotnull THEN ' not null' ELSE '' END"
"             OPERATOR(pg_catalog.||) COALESCE(' default ' OPERATOR(pg_catalog.||) t.typdefault, '')"
"          ELSE 'range of ' OPERATOR(pg_catalog.||)"
"             (SELECT pg_catalog.format_type(g.rngsubtype, NULL) FROM pg_catalog.pg_range g WHERE g.rngtypid OPERATOR(pg_catalog.=) t.oid)"
"        END"
"   FROM types t"
/* extended statistics */
" UNION ALL"
" SELECT x.stxnamespace, 'statistics ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(x.stxname::pg_catalog.text),"
"        pg_catalog.pg_get_statisticsobjdef(x.oid)"
"   FROM pg_catalog.pg_statistic_ext x"
"  WHERE x.oid IN (SELECT o.objid FROM owned o"
"                   WHERE o.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass)"
"    AND x.stxnamespace OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])"
" ORDER BY 1";

/*---- Local functions ----*/

static char *fp_normalise(const char *text, const char *schema);
static char *fp_display(const char *text, const char *schema);
static int	fp_entry_cmp(const void *a, const void *b);
static int	problem_cmp(const void *a, const void *b);
static void fingerprint_batch(Oid *nspoids, char **schemas, int n,
							  Fingerprint *out, MemoryContext cxt);
static void compare_fingerprints(const Fingerprint *ref, const Fingerprint *act,
								 const char *schema, List **problems);
static void add_problem(List **problems, const char *schema,
						const char *problem, const char *detail);
static char *tampered_versions(List **scripts_out);
static bool replay_reference(List *versions, List *scripts, Fingerprint *ref,
							 char **error, MemoryContext cxt);
static void check_schemas(const char *only, List *scripts, List **problems);
static char *reference_context(void);
static char *reference_signature(const char *context, List *versions,
								 List *scripts);
static bool reference_load(const char *signature, Fingerprint *ref,
						   MemoryContext cxt);
static void reference_store(const char *signature, const char *versions,
							const Fingerprint *ref);

/*---- Normalising names ----*/

static inline bool
is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '_' || c == '$' || (c & 0x80);
}

/*
 * text with every occurrence of schema that stands as a whole word, or
 * starts a longer name after which an underscore follows, replaced by
 * FP_PLACEHOLDER; a quoted occurrence is replaced with its quotes.  Tenant schema names are letters, digits and
 * underscores, so the quoted form is the bare name between quotes.
 */
static char *
fp_normalise(const char *text, const char *schema)
{
	size_t		len = strlen(schema);
	StringInfoData buf;
	const char *p = text;

	if (text == NULL)
		return NULL;
	initStringInfo(&buf);
	while (*p)
	{
		if (strncmp(p, schema, len) == 0 &&
			(p == text || !is_ident_char(p[-1])) &&
			(p[len] == '\0' || p[len] == '_' || !is_ident_char(p[len])))
		{
			/*
			 * "tenant_AbC" needs quotes where tm_verify_123 does not: the
			 * quoted form stands for the schema as a whole
			 */
			bool		quoted = (p > text && p[-1] == '"' && p[len] == '"');

			if (quoted)
				buf.data[--buf.len] = '\0';
			appendStringInfoChar(&buf, FP_PLACEHOLDER);
			p += len + (quoted ? 1 : 0);
			continue;
		}
		appendStringInfoChar(&buf, *p);
		p++;
	}
	return buf.data;
}

/* A normalised text for people: the placeholder back to schema */
static char *
fp_display(const char *text, const char *schema)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = text; *p; p++)
	{
		if (*p == FP_PLACEHOLDER)
			appendStringInfoString(&buf, schema);
		else
			appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

static int
fp_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const FpEntry *) a)->key, ((const FpEntry *) b)->key);
}

/*---- Fingerprints ----*/

/*
 * Fingerprints of n schemas (out[i] for nspoids[i], named schemas[i]),
 * normalised and sorted, allocated in cxt.
 */
static void
fingerprint_batch(Oid *nspoids, char **schemas, int n, Fingerprint *out,
				  MemoryContext cxt)
{
	Datum	   *elems = palloc(sizeof(Datum) * n);
	Oid			argtype = OIDARRAYOID;
	Datum		arg;
	uint64		i;
	uint64		nrows;
	int			j;
	int		   *counts = palloc0(sizeof(int) * n);
	int		   *slot;
	SPITupleTable *tuptable;

	for (j = 0; j < n; j++)
		elems[j] = ObjectIdGetDatum(nspoids[j]);
	arg = PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	tm_catalog_exec(fingerprint_query, 1, &argtype, &arg, NULL, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	nrows = SPI_processed;

	/* rows come ordered by schema OID; map each to its slot */
	slot = palloc(sizeof(int) * Max(nrows, 1));
	for (i = 0; i < nrows; i++)
	{
		bool		isnull;
		Oid			nsp = DatumGetObjectId(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull));

		slot[i] = -1;
		for (j = (i > 0 && slot[i - 1] >= 0) ? slot[i - 1] : 0; j < n; j++)
			if (nspoids[j] == nsp)
				break;
		if (j == n)
			for (j = 0; j < n; j++)
				if (nspoids[j] == nsp)
					break;
		if (j < n)
		{
			slot[i] = j;
			counts[j]++;
		}
	}
	for (j = 0; j < n; j++)
	{
		out[j].n = 0;
		out[j].entries = MemoryContextAlloc(cxt, sizeof(FpEntry) * Max(counts[j], 1));
	}
	for (i = 0; i < nrows; i++)
	{
		Fingerprint *fp;
		char	   *key;
		char	   *def;
		MemoryContext old;

		if (slot[i] < 0)
			continue;
		fp = &out[slot[i]];
		key = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 2);
		def = SPI_getvalue(tuptable->vals[i], tuptable->tupdesc, 3);
		old = MemoryContextSwitchTo(cxt);
		fp->entries[fp->n].key = fp_normalise(key, schemas[slot[i]]);
		fp->entries[fp->n].def = def ? fp_normalise(def, schemas[slot[i]]) : pstrdup("");
		MemoryContextSwitchTo(old);
		fp->n++;
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	for (j = 0; j < n; j++)
		qsort(out[j].entries, out[j].n, sizeof(FpEntry), fp_entry_cmp);
	SPI_freetuptable(tuptable);
	SPI_tuptable = NULL;
}

static void
add_problem(List **problems, const char *schema, const char *problem,
			const char *detail)
{
	Problem    *p = palloc(sizeof(Problem));

	p->schema = pstrdup(schema);
	p->problem = pstrdup(problem);
	p->detail = pstrdup(detail);
	*problems = lappend(*problems, p);
}

/* One schema_drift row per object that differs, is missing or is extra */
static void
compare_fingerprints(const Fingerprint *ref, const Fingerprint *act,
					 const char *schema, List **problems)
{
	int			i = 0;
	int			j = 0;
	const char *shown = quote_identifier(schema);

	while (i < ref->n || j < act->n)
	{
		int			c;

		if (i >= ref->n)
			c = 1;
		else if (j >= act->n)
			c = -1;
		else
			c = strcmp(ref->entries[i].key, act->entries[j].key);

		if (c < 0)
		{
			add_problem(problems, schema, "schema_drift",
						psprintf("%s is missing; expected: %s",
								 fp_display(ref->entries[i].key, shown),
								 fp_display(ref->entries[i].def, shown)));
			i++;
		}
		else if (c > 0)
		{
			add_problem(problems, schema, "schema_drift",
						psprintf("%s is not made by the applied migrations; actual: %s",
								 fp_display(act->entries[j].key, shown),
								 fp_display(act->entries[j].def, shown)));
			j++;
		}
		else
		{
			if (strcmp(ref->entries[i].def, act->entries[j].def) != 0)
				add_problem(problems, schema, "schema_drift",
							psprintf("%s differs; expected: %s; actual: %s",
									 fp_display(ref->entries[i].key, shown),
									 fp_display(ref->entries[i].def, shown),
									 fp_display(act->entries[j].def, shown)));
			i++;
			j++;
		}
	}
}

/*---- References ----*/

/*
 * Reads the registered tenant scripts into *scripts_out (a List of
 * VerScript) and returns, as a text[] literal, the versions (of any scope)
 * whose up_sql no longer hashes to their recorded checksum.
 */
static char *
tampered_versions(List **scripts_out)
{
	uint64		i;
	uint64		n;
	SPITupleTable *tuptable;
	StringInfoData buf;
	bool		first = true;

	tm_catalog_exec("SELECT s.version, s.name, s.registered_by::pg_catalog.text, s.up_sql, s.checksum, s.scope"
					"  FROM public.tenant_migration_scripts s",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	tuptable = SPI_tuptable;
	n = SPI_processed;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	*scripts_out = NIL;
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		char	   *version = SPI_getvalue(tup, desc, 1);
		char	   *up_sql = SPI_getvalue(tup, desc, 4);
		char	   *checksum = SPI_getvalue(tup, desc, 5);
		char	   *scope = SPI_getvalue(tup, desc, 6);
		char	   *text_checksum = tm_checksum(up_sql, strlen(up_sql));

		if (strcmp(text_checksum, checksum) != 0)
		{
			/* versions are digits, dots and underscores: no quoting needed */
			appendStringInfo(&buf, "%s%s", first ? "" : ",", version);
			first = false;
		}
		if (strcmp(scope, TM_SCOPE_TENANT) == 0)
		{
			VerScript  *s = palloc0(sizeof(VerScript));

			s->version = version;
			s->name = SPI_getvalue(tup, desc, 2);
			s->author = SPI_getvalue(tup, desc, 3);
			s->up_sql = up_sql;
			s->text_checksum = text_checksum;
			*scripts_out = lappend(*scripts_out, s);
		}
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Replays the tenant scripts of versions (in version order, at least one)
 * into a scratch schema inside an internal subtransaction, fingerprints it
 * into *ref (allocated in cxt) and rolls everything back.  false and
 * *error set if a script failed.
 */
static bool
replay_reference(List *versions, List *scripts, Fingerprint *ref,
				 char **error, MemoryContext cxt)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	char	   *scratch = psprintf("tm_verify_%d", MyProcPid);
	volatile bool ok = true;
	TmKeepSet  *keep = tm_keepset_build();

	Assert(versions != NIL);	/* nothing applied: the caller's empty reference */
	ref->n = 0;
	ref->entries = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		Oid			nspoid;
		ListCell   *lc;

		/* as the caller, as create_tenant_schema() creates tenants */
		tm_exec_as_caller(psprintf("CREATE SCHEMA %s", quote_identifier(scratch)));
		MemoryContextSwitchTo(oldcxt);
		nspoid = get_namespace_oid(scratch, false);

		foreach(lc, versions)
		{
			char	   *version = (char *) lfirst(lc);
			VerScript  *s = NULL;
			ListCell   *sc;

			foreach(sc, scripts)
				if (strcmp(((VerScript *) lfirst(sc))->version, version) == 0)
					s = (VerScript *) lfirst(sc);
			if (s == NULL)
				elog(ERROR, "migration %s is not registered", version);
			if (s->up == NULL)
			{
				MemoryContext c = MemoryContextSwitchTo(cxt);

				s->up = tm_script_compile(s->up_sql, keep,
										  psprintf("up script of migration %s (%s)", s->version, s->name));
				MemoryContextSwitchTo(c);
			}
			(void) tm_run_tenant_script(s->up, scratch, nspoid, s->version,
										s->name, s->author);
			CHECK_FOR_INTERRUPTS();
		}
		fingerprint_batch(&nspoid, &scratch, 1, ref, cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
		{
			RollbackAndReleaseCurrentSubTransaction();
			ReThrowError(edata);
		}
		*error = MemoryContextStrdup(cxt, fp_display(fp_normalise(edata->message, scratch), "<scratch>"));
		/* the replay is one transaction: a limit, not a broken history */
		if (edata->sqlerrcode == ERRCODE_UNSAFE_NEW_ENUM_VALUE_USAGE)
			*error = MemoryContextStrdup(cxt, psprintf("%s (the replay runs in one transaction, and an enum value added by one migration and used by a later one needs a commit in between; see README, tenant_verify)",
													   *error));
		ok = false;
	}
	PG_END_TRY();
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcxt);
	CurrentResourceOwner = owner;
	return ok;
}

/* A tenant to fingerprint */
typedef struct VerTenant
{
	char	   *schema;
	Oid			nspoid;
	char	   *versions;		/* comma-separated, in version order */
} VerTenant;

/*
 * schema_drift for every registered tenant whose schema exists (or only),
 * one reference per distinct set of applied tenant versions.
 */
static void
check_schemas(const char *only, List *scripts, List **problems)
{
	Oid			argtype = TEXTOID;
	Datum		arg = only ? CStringGetTextDatum(only) : (Datum) 0;
	char		argnull = only ? ' ' : 'n';
	VerTenant  *tenants;
	int			ntenants;
	int			t;
	MemoryContext refcxt;
	MemoryContext batchcxt;
	Fingerprint ref = {0, NULL};
	char	   *ref_error = NULL;
	char	   *ref_versions = NULL;
	char	   *context = reference_context();

	tm_catalog_exec("SELECT r.schema_name::pg_catalog.text, n.oid,"
					"       COALESCE((SELECT pg_catalog.string_agg(m.version, ','"
					"                        ORDER BY public.tenant_version_key(m.version), m.version)"
					"                   FROM public.tenant_migrations m"
					"                   JOIN public.tenant_migration_scripts s ON s.version OPERATOR(pg_catalog.=) m.version"
					"                  WHERE m.tenant_schema OPERATOR(pg_catalog.=) r.schema_name"
					"                    AND s.scope OPERATOR(pg_catalog.=) 'tenant'), '') AS versions"
					"  FROM public.tenant_registry r"
					"  JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) r.schema_name"
					" WHERE $1::pg_catalog.name IS NULL OR r.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name"
					" ORDER BY 3, 1",
					1, &argtype, &arg, &argnull, SPI_OK_SELECT);
	ntenants = (int) SPI_processed;
	tenants = palloc(sizeof(VerTenant) * Max(ntenants, 1));
	for (t = 0; t < ntenants; t++)
	{
		bool		isnull;

		tenants[t].schema = tm_spi_getstr(t, 1);
		tenants[t].nspoid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[t], SPI_tuptable->tupdesc, 2, &isnull));
		tenants[t].versions = tm_spi_getstr(t, 3);
	}

	refcxt = AllocSetContextCreate(CurrentMemoryContext, "tenant_verify reference",
								   ALLOCSET_DEFAULT_SIZES);
	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "tenant_verify batch",
									 ALLOCSET_DEFAULT_SIZES);

	t = 0;
	while (t < ntenants)
	{
		int			end;
		int			n;
		Oid			nspoids[FP_BATCH];
		char	   *schemas[FP_BATCH];
		Fingerprint *fps;
		int			j;
		MemoryContext old;

		/* a new set of versions: a new reference */
		if (ref_versions == NULL || strcmp(ref_versions, tenants[t].versions) != 0)
		{
			List	   *versions = NIL;
			char	   *copy;
			char	   *tok;
			char	   *save = NULL;

			MemoryContextReset(refcxt);
			ref_error = NULL;
			ref_versions = MemoryContextStrdup(refcxt, tenants[t].versions);
			copy = pstrdup(tenants[t].versions);
			for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
				versions = lappend(versions, tok);
			/* compiled scripts live in refcxt: forget them with it */
			{
				ListCell   *lc;

				foreach(lc, scripts)
					((VerScript *) lfirst(lc))->up = NULL;
			}
			/* kept from an earlier call, or replayed (and kept) */
			if (versions == NIL)
				ref.n = 0;		/* nothing applied: an empty schema */
			else
			{
				char	   *signature = reference_signature(context, versions, scripts);

				if (!reference_load(signature, &ref, refcxt))
				{
					if (replay_reference(versions, scripts, &ref, &ref_error, refcxt))
						reference_store(signature, ref_versions, &ref);
					else
						ref.n = 0;
				}
			}
		}

		/* the next tenants of the same set, at most FP_BATCH */
		for (end = t; end < ntenants && end - t < FP_BATCH &&
			 strcmp(tenants[end].versions, ref_versions) == 0; end++)
			;
		n = end - t;

		if (ref_error != NULL)
		{
			for (j = 0; j < n; j++)
				add_problem(problems, tenants[t + j].schema, "reference_failed",
							psprintf("schema drift not checked: replaying its applied migrations (%s) into a scratch schema failed: %s",
									 ref_versions, ref_error));
			t = end;
			continue;
		}

		MemoryContextReset(batchcxt);
		old = MemoryContextSwitchTo(batchcxt);
		for (j = 0; j < n; j++)
		{
			nspoids[j] = tenants[t + j].nspoid;
			schemas[j] = tenants[t + j].schema;
		}
		fps = palloc(sizeof(Fingerprint) * n);
		fingerprint_batch(nspoids, schemas, n, fps, batchcxt);
		MemoryContextSwitchTo(old);
		for (j = 0; j < n; j++)
			compare_fingerprints(&ref, &fps[j], schemas[j], problems);
		t = end;

		/*
		 * Deparsing a batch fills the catalog and relation caches with
		 * every object of its tenants; flushed per batch, the backend stays
		 * flat however many tenants there are (as fleet runs do).
		 */
		InvalidateSystemCaches();
		CHECK_FOR_INTERRUPTS();
	}
	MemoryContextDelete(batchcxt);
	MemoryContextDelete(refcxt);
}

/*---- References kept between calls ----*/

/*
 * A replay is the costly part of a call (at 10,000 tenants, looking up a
 * trigger's function reads every function of that name, one per tenant),
 * and its result depends only on what goes into the signature: the
 * fingerprint of each set of applied versions is kept in
 * public.tenant_verify_reference, and a call whose signature matches a row
 * compares against it instead of replaying.  What the signature cannot see
 * -- objects changed by hand in public, server settings that change what
 * DDL creates -- is documented; emptying the table forces replays.
 */

/* What every reference of this call depends on, beyond its own scripts */
static char *
reference_context(void)
{
	char	   *context;

	tm_catalog_exec("SELECT pg_catalog.concat_ws(E'\\n',"
					"        pg_catalog.current_setting('server_version_num'),"
					"        pg_catalog.current_setting('tenant_migrate.shared_objects'),"
					"        (SELECT pg_catalog.string_agg(e.extname OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) e.extversion, ','"
					"                                      ORDER BY e.extname)"
					"           FROM pg_catalog.pg_extension e),"
					"        (SELECT pg_catalog.string_agg(m.version OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) m.checksum, ','"
					"                                      ORDER BY m.version)"
					"           FROM public.tenant_migrations m"
					"          WHERE m.tenant_schema OPERATOR(pg_catalog.=) 'public'))",
					0, NULL, NULL, NULL, SPI_OK_SELECT);
	context = tm_spi_getstr(0, 1);
	return psprintf("%s\n%s", context ? context : "",
					tm_checksum(fingerprint_query, strlen(fingerprint_query)));
}

/* The signature of the reference of versions (see above) */
static char *
reference_signature(const char *context, List *versions, List *scripts)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, context);
	foreach(lc, versions)
	{
		ListCell   *sc;

		foreach(sc, scripts)
		{
			VerScript  *s = (VerScript *) lfirst(sc);

			if (strcmp(s->version, (char *) lfirst(lc)) == 0)
				appendStringInfo(&buf, "\n%s %s %s", s->version,
								 s->text_checksum, s->author);
		}
	}
	return tm_checksum(buf.data, buf.len);
}

/* true and *ref filled (in cxt) if a reference with signature is kept */
static bool
reference_load(const char *signature, Fingerprint *ref, MemoryContext cxt)
{
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(signature);
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	int			i;
	MemoryContext old;

	tm_catalog_exec("SELECT entries FROM public.tenant_verify_reference"
					" WHERE signature OPERATOR(pg_catalog.=) $1",
					1, &argtype, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	Assert(!isnull);			/* entries is NOT NULL */
	old = MemoryContextSwitchTo(cxt);
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	ref->n = nelems / 2;
	ref->entries = palloc(sizeof(FpEntry) * Max(ref->n, 1));
	for (i = 0; i < ref->n; i++)
	{
		ref->entries[i].key = TextDatumGetCString(elems[2 * i]);
		ref->entries[i].def = TextDatumGetCString(elems[2 * i + 1]);
	}
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * Keeps a reference, replacing older ones of the same versions.  Not in a
 * read-only transaction (a standby), and not while another transaction
 * stores one for the same versions: that one is taken as a try-lock in the
 * extension's lock space, so nobody waits here.  Not in a REPEATABLE READ
 * or SERIALIZABLE transaction either: its snapshot may not show a
 * reference committed since it began, and the INSERT would then fail the
 * caller's transaction with a serialization error over a cache row.
 */
static void
reference_store(const char *signature, const char *versions,
				const Fingerprint *ref)
{
	LOCKTAG		tag;
	Datum	   *elems;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTARRAYOID};
	Datum		values[3];
	int			i;

	if (XactReadOnly || IsolationUsesXactSnapshot())
		return;
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) TM_VERIFY_REF_KEY1,
						 hash_bytes((const unsigned char *) versions, strlen(versions)),
						 TM_LOCK_SPACE);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return;

	elems = palloc(sizeof(Datum) * Max(2 * ref->n, 1));
	for (i = 0; i < ref->n; i++)
	{
		elems[2 * i] = CStringGetTextDatum(ref->entries[i].key);
		elems[2 * i + 1] = CStringGetTextDatum(ref->entries[i].def);
	}
	values[0] = CStringGetTextDatum(signature);
	values[1] = CStringGetTextDatum(versions);
	values[2] = PointerGetDatum(construct_array(elems, 2 * ref->n, TEXTOID,
												-1, false, TYPALIGN_INT));
	tm_catalog_exec("WITH older AS ("
					"  DELETE FROM public.tenant_verify_reference"
					"   WHERE versions OPERATOR(pg_catalog.=) $2 AND signature OPERATOR(pg_catalog.<>) $1)"
					" INSERT INTO public.tenant_verify_reference (signature, versions, entries)"
					" VALUES ($1, $2, $3) ON CONFLICT (signature) DO NOTHING",
					3, argtypes, values, NULL, SPI_OK_INSERT);
}

static int
problem_cmp(const void *a, const void *b)
{
	const Problem *pa = *(Problem *const *) a;
	const Problem *pb = *(Problem *const *) b;
	int			c;

	if ((c = strcmp(pa->schema, pb->schema)) != 0)
		return c;
	if ((c = strcmp(pa->problem, pb->problem)) != 0)
		return c;
	return strcmp(pa->detail, pb->detail);
}

/*---- SQL-callable ----*/

/*
 * tenant_verify(tenant_schema text DEFAULT NULL)
 *		RETURNS TABLE(tenant_schema name, problem text, detail text)
 *
 * NULL: every tenant, public's shared history and unregistered schemas
 * with the tenant prefix; 'public': the shared history only; a schema:
 * that one.  No rows: healthy.
 */
Datum
tenant_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *only = NULL;
	bool		shared_only = false;
	List	   *scripts;
	List	   *problems = NIL;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	uint64		i;
	Problem   **sorted;
	int			n;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	if (!PG_ARGISNULL(0))
	{
		only = text_to_cstring(PG_GETARG_TEXT_PP(0));
		tm_check_schema_name(only, false);
		shared_only = (strcmp(only, TM_SHARED_SCHEMA) == 0);
	}

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	values[0] = only ? CStringGetTextDatum(only) : (Datum) 0;
	nulls[0] = only ? ' ' : 'n';
	values[1] = CStringGetTextDatum(tm_schema_prefix);
	values[2] = CStringGetTextDatum(tampered_versions(&scripts));
	tm_catalog_exec(books_query, 3, argtypes, values, nulls, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
		add_problem(&problems, tm_spi_getstr(i, 1), tm_spi_getstr(i, 2), tm_spi_getstr(i, 3));

	/* a name that is nothing at all gets the usual error */
	if (only != NULL && !shared_only && problems == NIL)
	{
		values[0] = CStringGetTextDatum(only);
		tm_catalog_exec("SELECT 1 FROM public.tenant_registry WHERE schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name",
						1, argtypes, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 0)
		{
			TmTenant	tenant;

			tm_tenant_lookup(only, &tenant);
		}
	}

	/*
	 * Schema drift of the tenants.  public also holds objects made outside
	 * migrations (extensions, this extension's tables), so its schema is
	 * not compared.
	 */
	if (!shared_only)
		check_schemas(only, scripts, &problems);

	n = list_length(problems);
	sorted = palloc(sizeof(Problem *) * Max(n, 1));
	i = 0;
	foreach(lc, problems)
		sorted[i++] = (Problem *) lfirst(lc);
	qsort(sorted, n, sizeof(Problem *), problem_cmp);
	for (i = 0; i < (uint64) n; i++)
	{
		Datum		row[3];
		bool		rownulls[3] = {false, false, false};

		row[0] = DirectFunctionCall1(namein, CStringGetDatum(sorted[i]->schema));
		row[1] = CStringGetTextDatum(sorted[i]->problem);
		row[2] = CStringGetTextDatum(sorted[i]->detail);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * tenant_baseline(tenant_schema text, version text, tenant_key text DEFAULT NULL)
 *		RETURNS integer
 *
 * Adopts a schema made outside the extension: registers it (key: the
 * given one, else the name without tenant_migrate.schema_prefix) and
 * records every tenant script up to version as applied, without running
 * it (action baseline in the log).  Returns how many were recorded.
 */
Datum
tenant_baseline(PG_FUNCTION_ARGS)
{
	char	   *schema = tm_schema_arg(fcinfo);
	char	   *version;
	char	   *key;
	char	   *invoker = tm_catalog_invoker();
	Oid			nspoid;
	List	   *pending;
	ListCell   *lc;
	int			count = 0;
	const char *p;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("version must not be null"),
				 errhint("Pass the newest migration the schema already has, such as '0005'.")));
	version = text_to_cstring(PG_GETARG_TEXT_PP(1));
	tm_check_schema_name(schema, true);
	if (strcmp(schema, TM_SHARED_SCHEMA) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("schema \"public\" cannot be adopted as a tenant"),
				 errdetail("Shared migrations are recorded for public by tenant_migrate_shared()."),
				 errhint("Pass a tenant schema.")));
	tm_version_check(version, "version");

	if (!PG_ARGISNULL(2))
		key = text_to_cstring(PG_GETARG_TEXT_PP(2));
	else if (tm_schema_prefix[0] != '\0' &&
			 strncmp(schema, tm_schema_prefix, strlen(tm_schema_prefix)) == 0 &&
			 schema[strlen(tm_schema_prefix)] != '\0')
		key = pstrdup(schema + strlen(tm_schema_prefix));
	else
		key = pstrdup(schema);
	for (p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
			break;
	if (key[0] == '\0' || *p != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tenant key \"%s\"", key),
				 errdetail("A tenant key may contain only letters, digits and underscores."),
				 errhint("Use a key such as \"org_acme\".")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	nspoid = get_namespace_oid(schema, true);
	if (!OidIsValid(nspoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_SCHEMA),
				 errmsg("schema \"%s\" does not exist", schema),
				 errdetail("tenant_baseline() adopts an existing schema."),
				 errhint("Create a new tenant with create_tenant_schema().")));

	/* a concurrent baseline of the same schema waits, then is refused */
	(void) tm_lock_schema(schema, nspoid, false);
	tm_catalog_exec("SELECT r.schema_name::pg_catalog.text, r.tenant_key FROM public.tenant_registry r"
					" WHERE r.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.name OR r.tenant_key OPERATOR(pg_catalog.=) $2",
					2, (Oid[]) {TEXTOID, TEXTOID},
					(Datum[]) {CStringGetTextDatum(schema), CStringGetTextDatum(key)},
					NULL, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		if (strcmp(tm_spi_getstr(0, 1), schema) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("schema \"%s\" is already a registered tenant", schema),
					 errdetail("tenant_baseline() adopts schemas made outside tenant_migrate."),
					 errhint("Migrate it with tenant_migrate(), or check it with tenant_verify().")));
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("tenant key \"%s\" is already in use", key),
				 errdetail("Tenant \"%s\" has that key.", tm_spi_getstr(0, 1)),
				 errhint("Pass another key as the third argument.")));
	}
	tm_check_target(version, TM_SCOPE_TENANT);

	tm_catalog_exec("INSERT INTO public.tenant_registry (schema_name, tenant_key)"
					" VALUES ($1::pg_catalog.name, $2)",
					2, (Oid[]) {TEXTOID, TEXTOID},
					(Datum[]) {CStringGetTextDatum(schema), CStringGetTextDatum(key)},
					NULL, SPI_OK_INSERT);

	/* what tenant_migrate() would apply: checksums and dependencies checked */
	pending = tm_pending_scripts(schema, false, version, tm_keepset_build(), NULL);
	foreach(lc, pending)
	{
		TmPending  *s = (TmPending *) lfirst(lc);
		char	   *rollback_sql = s->down ? tm_script_render(s->down, -1, schema) : NULL;
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

		values[0] = CStringGetTextDatum(schema);
		values[1] = CStringGetTextDatum(s->version);
		values[2] = CStringGetTextDatum(s->name);
		values[3] = CStringGetTextDatum(s->checksum);
		values[4] = rollback_sql ? CStringGetTextDatum(rollback_sql) : (Datum) 0;
		nulls[4] = rollback_sql ? ' ' : 'n';
		values[5] = CStringGetTextDatum(invoker);
		tm_catalog_exec("INSERT INTO public.tenant_migrations"
						" (tenant_schema, version, name, checksum, rollback_sql, duration_ms, applied_by)"
						" VALUES ($1::pg_catalog.name, $2, $3, $4, $5, 0, $6::pg_catalog.name)",
						6, (Oid[]) {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID},
						values, nulls, SPI_OK_INSERT);
		tm_log_attempt(schema, s->version, "baseline", "ok", NULL, 0, 0, invoker);
		count++;
	}
	SPI_finish();
	PG_RETURN_INT32(count);
}

/*---- Registering ----*/

void
tm_warn_out_of_order(const char *version, const char *scope)
{
	tm_catalog_exec("SELECT pg_catalog.count(DISTINCT m.tenant_schema)::pg_catalog.int4,"
					"       (pg_catalog.array_agg(m.version ORDER BY public.tenant_version_key(m.version) DESC))[1]"
					"  FROM public.tenant_migrations m"
					"  JOIN public.tenant_migration_scripts s ON s.version OPERATOR(pg_catalog.=) m.version"
					" WHERE s.scope OPERATOR(pg_catalog.=) $2"
					"   AND public.tenant_version_key(m.version) OPERATOR(pg_catalog.>) public.tenant_version_key($1)",
					2, (Oid[]) {TEXTOID, TEXTOID},
					(Datum[]) {CStringGetTextDatum(version), CStringGetTextDatum(scope)},
					NULL, SPI_OK_SELECT);
	if (SPI_processed > 0 && strcmp(tm_spi_getstr(0, 1), "0") != 0)
		ereport(WARNING,
				(errmsg("migration %s is older than migration %s, already applied to %s schema(s)",
						version, tm_spi_getstr(0, 2), tm_spi_getstr(0, 1)),
				 errdetail("Those schemas will refuse it while tenant_migrate.out_of_order is off; tenant_verify() reports it as out_of_order."),
				 errhint("Register it under a version above %s, or apply it with tenant_migrate.out_of_order = on.",
						 tm_spi_getstr(0, 2))));
}

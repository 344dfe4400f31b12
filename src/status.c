/*-------------------------------------------------------------------------
 *
 * src/status.c
 *		Looking without touching: tenant_migration_plan() and
 *		tenant_migration_status() (the tenant_migration_overview view sums
 *		the latter up in SQL); tenant_migration_status('public') is the
 *		shared scripts' state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(tenant_migration_plan);
PG_FUNCTION_INFO_V1(tenant_migration_status);

/*
 * One set-based query for every tenant: status must stay fast with tens of
 * thousands of them.  The tenant scripts are ranked once in version order,
 * so a tenant's current version is the highest rank it has applied (one
 * hash aggregate, no per-tenant sort); the newest log entry per tenant
 * comes from the (tenant_schema, id) index, and last_error is its error if
 * it failed.
 */
static const char *status_query =
"WITH ranked AS ("
"  SELECT s.version,"
"         pg_catalog.row_number() OVER (ORDER BY public.tenant_version_key(s.version), s.version) AS rn"
"    FROM public.tenant_migration_scripts s WHERE s.scope = 'tenant'),"
" applied AS ("
"  SELECT m.tenant_schema, pg_catalog.count(*)::pg_catalog.int4 AS n, pg_catalog.max(k.rn) AS top"
"    FROM public.tenant_migrations m JOIN ranked k ON k.version = m.version"
"   WHERE $1::pg_catalog.name IS NULL OR m.tenant_schema = $1::pg_catalog.name"
"   GROUP BY m.tenant_schema)"
" SELECT r.schema_name, r.tenant_key, r.status, top.version,"
"        COALESCE(a.n, 0), (SELECT pg_catalog.count(*)::pg_catalog.int4 FROM ranked) - COALESCE(a.n, 0),"
"        CASE WHEN l.status = 'failed' THEN l.error END, l.started_at"
"   FROM public.tenant_registry r"
"   LEFT JOIN applied a ON a.tenant_schema = r.schema_name"
"   LEFT JOIN ranked top ON top.rn = a.top"
"   LEFT JOIN LATERAL ("
"        SELECT g.status, g.error, g.started_at"
"          FROM public.tenant_migration_log g"
"         WHERE g.tenant_schema = r.schema_name"
"         ORDER BY g.id DESC LIMIT 1) l ON true"
"  WHERE $1::pg_catalog.name IS NULL OR r.schema_name = $1::pg_catalog.name"
"  ORDER BY r.schema_name";

/*
 * tenant_migration_status('public'): the shared scripts' state, as one row
 * shaped like a tenant's (status "shared", no key).
 */
static const char *shared_status_query =
"WITH applied AS ("
"  SELECT m.version FROM public.tenant_migrations m"
"    JOIN public.tenant_migration_scripts s ON s.version OPERATOR(pg_catalog.=) m.version"
"   WHERE m.tenant_schema OPERATOR(pg_catalog.=) 'public' AND s.scope OPERATOR(pg_catalog.=) 'shared')"
" SELECT 'public'::pg_catalog.name, NULL::pg_catalog.text, 'shared'::pg_catalog.text,"
"        (SELECT a.version FROM applied a"
"          ORDER BY public.tenant_version_key(a.version) DESC, a.version DESC LIMIT 1),"
"        (SELECT pg_catalog.count(*)::pg_catalog.int4 FROM applied),"
"        (SELECT pg_catalog.count(*)::pg_catalog.int4 FROM public.tenant_migration_scripts s"
"          WHERE s.scope OPERATOR(pg_catalog.=) 'shared'"
"            AND NOT EXISTS (SELECT 1 FROM applied a WHERE a.version OPERATOR(pg_catalog.=) s.version)),"
"        CASE WHEN l.status OPERATOR(pg_catalog.=) 'failed' THEN l.error END, l.started_at"
"   FROM (SELECT 1) AS one"
"   LEFT JOIN LATERAL ("
"        SELECT g.status, g.error, g.started_at"
"          FROM public.tenant_migration_log g"
"         WHERE g.tenant_schema OPERATOR(pg_catalog.=) 'public'"
"         ORDER BY g.id DESC LIMIT 1) l ON true";

/*
 * tenant_migration_plan(tenant_schema text, target_version text DEFAULT NULL)
 *		RETURNS TABLE(version text, name text, sql text)
 *
 * 'public' shows the pending shared scripts, which run as written.
 */
Datum
tenant_migration_plan(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *schema;
	char	   *target = NULL;
	bool		shared;
	List	   *pending;
	ListCell   *lc;

	schema = tm_schema_arg(fcinfo);
	if (!PG_ARGISNULL(1))
	{
		target = text_to_cstring(PG_GETARG_TEXT_PP(1));
		tm_version_check(target, "target version");
	}
	shared = (strcmp(schema, TM_SHARED_SCHEMA) == 0);

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!shared)
	{
		TmTenant	tenant;

		tm_tenant_lookup(schema, &tenant);
		schema = tenant.schema;
	}
	tm_check_target(target, shared ? TM_SCOPE_SHARED : TM_SCOPE_TENANT);
	pending = tm_pending_scripts(schema, shared, target,
								 shared ? NULL : tm_keepset_build(), NULL);
	foreach(lc, pending)
	{
		TmPending  *p = (TmPending *) lfirst(lc);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(p->version);
		values[1] = CStringGetTextDatum(p->name);
		values[2] = CStringGetTextDatum(tm_script_render(p->up, -1, shared ? NULL : schema));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * tenant_migration_status(tenant text DEFAULT NULL)
 *		RETURNS TABLE(tenant_schema name, tenant_key text, status text,
 *					  current_version text, applied integer, pending integer,
 *					  last_error text, last_attempt_at timestamptz)
 */
Datum
tenant_migration_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtype = TEXTOID;
	Datum		arg = (Datum) 0;
	char		argnull = PG_ARGISNULL(0) ? 'n' : ' ';
	uint64		i;

	InitMaterializedSRF(fcinfo, 0);
	if (!PG_ARGISNULL(0))
		arg = PointerGetDatum(PG_GETARG_TEXT_PP(0));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* a fleet run cut short by a crash shows as such (fleet.c) */
	tm_runs_mark_interrupted();
	if (!PG_ARGISNULL(0) && strcmp(TextDatumGetCString(arg), TM_SHARED_SCHEMA) == 0)
		tm_catalog_exec(shared_status_query, 0, NULL, NULL, NULL, SPI_OK_SELECT);
	else
		tm_catalog_exec(status_query, 1, &argtype, &arg, &argnull, SPI_OK_SELECT);

	/* a named tenant that is not there gets the usual error and hint */
	if (SPI_processed == 0 && !PG_ARGISNULL(0))
	{
		TmTenant	tenant;

		tm_tenant_lookup(TextDatumGetCString(arg), &tenant);
	}

	for (i = 0; i < SPI_processed; i++)
	{
		Datum		values[8];
		bool		nulls[8];
		int			c;

		for (c = 0; c < 8; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
									  c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

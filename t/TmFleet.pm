# t/TmFleet.pm
#
# What the fleet-run crash tests (001, 010) share: tenants made in
# batches, a migration that can be made slow, and the consistency checks
# run after an interrupted run.  Every sub takes the node first.

package TmFleet;

use strict;
use warnings;

use Exporter 'import';
use Test::More;

our @EXPORT = qw(create_tenants add_slow_migration check_consistent check_no_failures);

# $ntenants tenants t001..., 50 per transaction (psql runs each statement
# in its own)
sub create_tenants
{
	my ($node, $ntenants) = @_;
	$node->safe_psql('postgres', join(
		"\n",
		map {
			my $lo = $_ * 50 + 1;
			my $hi = $lo + 49;
			"SELECT count(create_tenant_schema(format('t%s', lpad(i::text, 3, '0'))))"
			  . " FROM generate_series($lo, $hi) i;"
		} 0 .. ($ntenants / 50 - 1)));
	is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_registry'),
		$ntenants, "$ntenants tenants created");
	return;
}

# A migration that is slow only when tmtest.sleep is set in the session that
# runs it: the runs we interrupt are slow (so they are surely mid-run when hit),
# the runs that finish the job are fast.  The sleep sits between two DDL
# statements, so an interruption most likely lands inside a tenant's
# transaction with part of its DDL done.
sub add_slow_migration
{
	my ($node, $v) = @_;
	my $up = qq{
CREATE TABLE public.t$v (id int PRIMARY KEY, item_id int REFERENCES public.items (id), note text);
SELECT pg_catalog.pg_sleep(coalesce(nullif(current_setting('tmtest.sleep', true), ''), '0')::float8);
ALTER TABLE public.items ADD COLUMN c$v int NOT NULL DEFAULT $v;
CREATE INDEX t${v}_item_idx ON public.t$v (item_id);
};
	$node->safe_psql('postgres',
		"SELECT tenant_migration_add('$v', 'slow $v', \$m\$$up\$m\$)");
	return;
}

# Per tenant: does it have version $v's table, column and index, its history
# row, how many 'ok' up log rows for it, and what status says is pending.
# Returns "new|old|inconsistent" counts; the inconsistent tenants are listed
# in the test output.
sub check_consistent
{
	my ($node, $v, $label) = @_;
	my $prev = $v - 1;
	my $sql = qq{
WITH per_tenant AS (
  SELECT r.schema_name,
         to_regclass(format('%I.%I', r.schema_name, 't$v')) IS NOT NULL AS has_table,
         to_regclass(format('%I.%I', r.schema_name, 't${v}_item_idx')) IS NOT NULL AS has_index,
         EXISTS (SELECT 1 FROM pg_attribute a
                  WHERE a.attrelid = to_regclass(format('%I.items', r.schema_name))
                    AND a.attname = 'c$v' AND NOT a.attisdropped) AS has_column,
         EXISTS (SELECT 1 FROM tenant_migrations m
                  WHERE m.tenant_schema = r.schema_name AND m.version = '$v') AS has_row,
         (SELECT count(*) FROM tenant_migration_log l
           WHERE l.tenant_schema = r.schema_name AND l.version = '$v'
             AND l.action = 'up' AND l.status = 'ok') AS ok_rows,
         s.pending, s.current_version, s.last_error
    FROM tenant_registry r
    JOIN tenant_migration_status() s ON s.tenant_schema = r.schema_name),
checked AS (
  SELECT *, (has_table = has_row AND has_index = has_row AND has_column = has_row
             AND ok_rows = has_row::int
             AND pending = CASE WHEN has_row THEN 0 ELSE 1 END
             AND current_version = CASE WHEN has_row THEN '$v' ELSE '$prev' END
             AND last_error IS NULL) AS consistent
    FROM per_tenant)
SELECT count(*) FILTER (WHERE has_row),
       count(*) FILTER (WHERE NOT has_row),
       count(*) FILTER (WHERE NOT consistent),
       coalesce(string_agg(schema_name, ',') FILTER (WHERE NOT consistent), '')
  FROM checked};
	my ($new, $old, $bad, $which) =
	  split /\|/, $node->safe_psql('postgres', $sql), -1;
	is($bad, 0, "$label: every tenant is wholly at version $prev or wholly at $v")
	  or diag("inconsistent tenants: $which");
	return ($new, $old);
}

# Nothing was ever logged as failed (an interruption is not a tenant failure),
# and no version was applied twice.
sub check_no_failures
{
	my ($node, $label) = @_;
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM tenant_migration_log WHERE status <> 'ok'"),
		0,
		"$label: no failed or skipped rows in tenant_migration_log");
	is( $node->safe_psql(
			'postgres', q{
SELECT count(*) FROM (
  SELECT tenant_schema, version FROM tenant_migration_log
   WHERE action = 'up' AND status = 'ok'
   GROUP BY 1, 2 HAVING count(*) > 1) d}),
		0,
		"$label: no tenant has a version applied twice");
	return;
}

1;

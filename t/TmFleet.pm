# t/TmFleet.pm
#
# What the fleet-run crash tests (001, 010) share: tenants made in
# batches, a migration that can be made slow, waiting for an interrupted
# run, the consistency checks after it, and the run that finishes the job.  Every sub takes the node first.

package TmFleet;

use strict;
use warnings;

use Exporter 'import';
use Test::More;
use PostgreSQL::Test::Utils;

our @EXPORT = qw(create_tenants add_slow_migration check_consistent check_no_failures
  wait_for_progress wait_session_lost finish_run check_interrupted);

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

# Waits until at least 20 tenants have version $v committed.
sub wait_for_progress
{
	my ($node, $v) = @_;
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) >= 20 FROM tenant_migrations WHERE version = '$v'"),
		"version $v: the run has committed at least 20 tenants");
	return;
}

# Waits for the psql of an interrupted run to report its lost connection,
# then reaps it.  Its input was all sent already, so closing stdin is enough
# (no \q written to a psql that may have exited).
sub wait_session_lost
{
	my ($bg, $label) = @_;
	ok( pump_until(
			$bg->{run}, $bg->{timeout}, \$bg->{stderr},
			qr/server closed the connection unexpectedly|connection to server was lost/
		),
		"$label: the session running the CALL lost its connection");
	$bg->{run}->finish;
	return;
}

# A fast run that finishes the job: it must migrate exactly the tenants the
# interrupted run did not reach, and leave everybody up to date.
sub finish_run
{
	my ($node, $ntenants, $v, $done_before, $label) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', 'CALL tenant_migrate_all()');
	is($ret, 0, "$label: the next run succeeds");
	my $rest = $ntenants - $done_before;
	like(
		$stderr,
		qr/tenant_migrate_all finished in [0-9.]+ s: $ntenants tenant\(s\), $rest migrated, $done_before already up to date, 0 failed, 0 skipped \(busy\)/,
		"$label: the next run migrates the $rest remaining tenants and leaves the $done_before others alone"
	);
	my ($new, $old) = check_consistent($node, $v, "$label, after the next run");
	is($new, $ntenants, "$label: all $ntenants tenants are at version $v");
	is( $node->safe_psql(
			'postgres',
			'SELECT tenants, up_to_date, behind, failing, newest_version FROM tenant_migration_overview'
		),
		"$ntenants|$ntenants|0|0|$v",
		"$label: overview shows everybody up to date");
	check_no_failures($node, "$label, after the next run");
	return;
}

# Checks the state right after an interruption; returns how many tenants
# the interrupted run had committed.
sub check_interrupted
{
	my ($node, $v, $label) = @_;
	my ($new, $old) = check_consistent($node, $v, $label);
	cmp_ok($new, '>=', 20, "$label: the tenants committed before it stay migrated ($new)");
	cmp_ok($old, '>', 0, "$label: the run did not finish ($old tenants left)");
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1414332417"
		),
		0,
		"$label: no tenant advisory lock is left behind");
	check_no_failures($node, $label);
	return $new;
}

1;

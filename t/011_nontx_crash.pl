# t/011_nontx_crash.pl
#
# The server crashes (immediate stop) while a fleet run is in the middle of
# a non-transactional step -- a CREATE INDEX CONCURRENTLY building an index
# whose expression is slow.  The crash leaves that tenant's index INVALID
# and its history without the migration.  The next CALL
# tenant_migrate_all() drops the INVALID index first (a logged step), builds
# it, records the migration: no INVALID index is left and every tenant's
# history is right.  Run by the leader (workers => 0) and by a worker.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('nontx');
$node->init;
$node->append_conf('postgresql.conf', "tenant_migrate.max_workers = 2\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION tenant_migrate');

# Version 1: a table, and an index expression that is slow when the session
# sets tmtest.sleep (the crashing runs) and fast otherwise (the reruns).
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('1', 'items', $m$
CREATE TABLE public.items (id int PRIMARY KEY, note text);
CREATE FUNCTION public.slow_lower(t text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
  PERFORM pg_catalog.pg_sleep(coalesce(nullif(current_setting('tmtest.sleep', true), ''), '0')::float8);
  RETURN lower(t);
END $f$;
$m$);
SELECT create_tenant_schema('a'), create_tenant_schema('b');
INSERT INTO tenant_a.items SELECT i, 'Note ' || i FROM generate_series(1, 40) i;
INSERT INTO tenant_b.items SELECT i, 'Note ' || i FROM generate_series(1, 40) i;
});

# Per version: the tenants that have it recorded, and the INVALID indexes
sub state
{
	my ($v) = @_;
	return $node->safe_psql('postgres', qq{
SELECT coalesce(string_agg(tenant_schema, ',' ORDER BY tenant_schema), '-')
  FROM tenant_migrations WHERE version = '$v';
SELECT coalesce(string_agg(n.nspname || '.' || c.relname, ',' ORDER BY 1), '-')
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid;
});
}

# One scenario: version $v builds index $idx concurrently; a slow run with
# $workers workers is hit by a crash while it builds the index.
sub crash_during_step
{
	my ($v, $idx, $workers, $label) = @_;

	$node->safe_psql('postgres', qq{
SELECT tenant_migration_add('$v', 'index $idx', \$m\$
-- CreateIndex
CREATE INDEX CONCURRENTLY "$idx" ON "public"."items"(public.slow_lower(note));
\$m\$);
});
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe(q{SET tmtest.sleep = '0.25'});
	$bg->query_safe(q{SET tenant_migrate.progress_interval = 0});
	$bg->query_until(qr/run_started/,
		"\\echo run_started\nCALL tenant_migrate_all(workers => $workers);\n\\echo run_ended\n");

	# the index exists (not yet valid) and is being built
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                WHERE c.relname = '$idx' AND NOT i.indisvalid)
   AND EXISTS (SELECT 1 FROM pg_stat_progress_create_index)}),
		"$label: the CREATE INDEX CONCURRENTLY step is under way");
	$node->stop('immediate');
	ok( pump_until(
			$bg->{run}, $bg->{timeout}, \$bg->{stderr},
			qr/server closed the connection unexpectedly|connection to server was lost/),
		"$label: the session running the CALL lost its connection");
	$bg->{run}->finish;
	$node->start;

	my ($recorded, $invalid) = split /\n/, state($v);
	like($invalid, qr/\.$idx/, "$label: the crash left the index INVALID");
	isnt($recorded, 'tenant_a,tenant_b',
		"$label: the tenant hit is not recorded as having version $v");

	# the rerun: fast, completes every tenant
	$node->safe_psql('postgres', qq{SET client_min_messages = warning; CALL tenant_migrate_all(workers => $workers)});
	($recorded, $invalid) = split /\n/, state($v);
	is($recorded, 'tenant_a,tenant_b', "$label: every tenant has version $v recorded");
	is($invalid, '-', "$label: no INVALID index is left");
	is( $node->safe_psql('postgres', qq{
SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relname = '$idx' AND i.indisvalid AND i.indisready}),
		'2', "$label: both tenants have the index, valid");
	like( $node->safe_psql('postgres', qq{
SELECT string_agg(step, E'\n' ORDER BY id) FROM tenant_migration_log
 WHERE version = '$v' AND status = 'ok' AND step LIKE '%INVALID%'}),
		qr/dropped index tenant_[ab]\.$idx, left INVALID by an earlier attempt/,
		"$label: the drop of the INVALID index is a logged step");
	is( $node->safe_psql('postgres', qq{
SELECT count(*) FROM tenant_migrations m
 WHERE m.version = '$v'
   AND (SELECT count(*) FROM tenant_migration_log l
         WHERE l.tenant_schema = m.tenant_schema AND l.version = '$v'
           AND l.status = 'ok' AND l.step IS NULL) = 1}),
		'2', "$label: one 'ok' script row per tenant, with its history row");
	is( $node->safe_psql('postgres', q{
SELECT count(*) FROM tenant_migration_runs WHERE status = 'running'}),
		'0', "$label: no run is left marked running");
	is($node->safe_psql('postgres', "SELECT tenant_a.slow_lower('X')"),
		'x', "$label: the tenant's function works");
	return;
}

crash_during_step('2', 'items_slow_idx', 0, 'leader');
crash_during_step('3', 'items_slow2_idx', 2, 'workers');

$node->stop;
done_testing();

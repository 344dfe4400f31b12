# t/005_workers_and_clients.pl
#
# What the security review asked of background processes:
# 1. A fleet run whose client has gone stops, even with progress NOTICEs
#    off (nothing is ever sent to the client during the run).
# 2. Fleet runs never use more than tenant_migrate.max_workers background
#    workers at once, whatever number of runs, so max_worker_processes
#    keeps room for parallel query and replication.
# 3. A failed one-tenant call's log row is never lost for want of a worker
#    slot: the call waits for one.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $ntenants = 60;

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init;
# the logical replication launcher holds one slot; two are left for us
$node->append_conf('postgresql.conf', qq{
max_worker_processes = 3
max_parallel_workers = 3
tenant_migrate.max_workers = 1
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION tenant_migrate');
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY);');
});
$node->safe_psql('postgres',
	"SELECT count(create_tenant_schema(format('t%s', lpad(i::text, 3, '0')))) FROM generate_series(1, $ntenants) i"
);

# A migration that sleeps when tmtest.sleep is set in the session running it
sub add_slow_migration
{
	my ($v) = @_;
	$node->safe_psql('postgres', qq{
SELECT tenant_migration_add('$v', 'slow $v', \$m\$
CREATE TABLE public.t$v (id int);
SELECT pg_catalog.pg_sleep(coalesce(nullif(current_setting('tmtest.sleep', true), ''), '0')::float8);
\$m\$)});
	return;
}

sub migrated
{
	my ($v) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM tenant_migrations WHERE version = '$v'");
}

#
# 1. The client goes away in the middle of a run with progress_interval = 0
#
add_slow_migration(2);
my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_safe(q{SET tmtest.sleep = '0.1'});
$bg->query_safe(q{SET tenant_migrate.progress_interval = 0});
$bg->query_until(qr/run_started/,
	"\\echo run_started\nCALL tenant_migrate_all();\n");
ok( $node->poll_query_until(
		'postgres', "SELECT count(*) >= 3 FROM tenant_migrations WHERE version = '2'"),
	'the run has committed a few tenants');
# the client dies without a word to the server
$bg->{run}->kill_kill;
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 0 FROM pg_stat_activity
 WHERE pid = $pid OR backend_type = 'tenant_migrate fleet worker'}),
	'the run and its worker stop once the client is gone');
my $done = migrated(2);
cmp_ok($done, '<', $ntenants, "the run stopped early ($done of $ntenants tenants)");
is($node->safe_psql('postgres',
		"SELECT count(*) FROM tenant_migration_log WHERE status = 'failed'"),
	0, 'nothing was logged as failed');
ok($node->log_contains('connection to client lost during a fleet run'),
	'the server log says why the run stopped');

#
# 2. Two runs at once share the one fleet worker allowed
#
my @runs;
for my $i (1 .. 2)
{
	my $run = $node->background_psql('postgres', on_error_stop => 0);
	$run->query_safe(q{SET tmtest.sleep = '0.02'});
	$run->query_safe(q{SET tenant_migrate.progress_interval = 0});
	push @runs, $run;
}
add_slow_migration(3);
$_->query_until(qr/run_started/,
	"\\echo run_started\nCALL tenant_migrate_all();\n\\echo run_ended\n")
  for @runs;
my $max_workers = 0;
my $samples = 0;
while (migrated(3) < $ntenants && $samples < 2000)
{
	my $n = $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tenant_migrate fleet worker'"
	);
	$max_workers = $n if $n > $max_workers;
	$samples++;
}
for my $run (@runs)
{
	ok(pump_until($run->{run}, $run->{timeout}, \$run->{stdout}, qr/run_ended/),
		'a concurrent run finishes');
	$run->quit;
}
is(migrated(3), $ntenants, 'both runs together migrated every tenant once');
is($max_workers, 1,
	"never more than tenant_migrate.max_workers fleet workers ($samples samples)");

#
# 3. No free worker slot: a failed one-tenant call waits for one rather than
# lose its log row.  Two parallel queries hold the two free slots for 3 s.
#
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('4', 'fails', 'INSERT INTO public.no_such_table VALUES (1)');
});
# Two sessions each run a parallel query whose one worker sleeps 3 s on
# the table's only row (the leader does not take part).
$node->safe_psql('postgres', 'CREATE TABLE hog AS SELECT 1 AS g');
my @hogs;
for my $i (1 .. 2)
{
	my $hog = $node->background_psql('postgres', on_error_stop => 0);
	$hog->query_safe(q{
SET force_parallel_mode = on;
SET parallel_leader_participation = off;
});
	$hog->query_until(qr/hog_started/,
		"\\echo hog_started\nSELECT count(*) FROM hog WHERE pg_sleep(3) IS NOT NULL;\n\\echo hog_ended\n");
	push @hogs, $hog;
}
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'parallel worker'"),
	'a parallel query holds every free worker slot');
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', "SELECT * FROM tenant_migrate('tenant_t001')");
isnt($ret, 0, 'the failing migration fails');
like($stderr, qr/relation "tenant_t001.no_such_table" does not exist/,
	'the caller gets the original error');
unlike($stderr, qr/could not record the failed attempt/, 'with no warning about the log');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM tenant_migration_log WHERE tenant_schema = 'tenant_t001' AND version = '4' AND status = 'failed'"
	),
	1,
	'the failed attempt is in the log, written once a slot was free');
for my $hog (@hogs)
{
	ok(pump_until($hog->{run}, $hog->{timeout}, \$hog->{stdout}, qr/hog_ended/),
		'a parallel query finished');
	$hog->quit;
}

$node->stop;
done_testing();

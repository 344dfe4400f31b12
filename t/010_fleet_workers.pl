# t/010_fleet_workers.pl
#
# Fleet runs with four workers taking tenants from one shared queue:
# 1. kill -9 of a worker, and 2. of the leader, mid-run: every tenant is
#    wholly at the old or the new version, the run's record is found
#    'interrupted' (by the next status call), and a rerun completes.
# 3. A cancel: the CALL returns only when no worker is left, every tenant
#    is all-or-nothing, the run is recorded 'cancelled'.
# 4. pg_terminate_backend() of the leader: its workers go too; the run is
#    found 'interrupted'.
# 5. The run record is updated as the run goes: another session watches it.
# 6. A one-tenant call failing while a run's worker waits on a lock is not
#    reported by the run (the run counts its own workers' messages only).
# 7. max_worker_processes nearly exhausted: a run asking for four workers
#    gets what is free and says so; with none free it runs in its own
#    session; both finish.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use TmFleet;
use Time::HiRes qw(time);

my $ntenants = 200;
my $workers = 4;
my $started = time();

my $node = PostgreSQL::Test::Cluster->new('fleet');
$node->init;
$node->append_conf('postgresql.conf', qq{
restart_after_crash = on
tenant_migrate.max_workers = $workers
});
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION tenant_migrate');
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('1', 'items',
  'CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);');
});
create_tenants($node, $ntenants);


# Starts a slow CALL tenant_migrate_all(workers => 4) in a background
# session; returns the session and its backend pid.
sub start_slow_run
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_safe(q{SET tmtest.sleep = '0.05'});
	$bg->query_safe(q{\set VERBOSITY verbose});
	$bg->query_until(qr/run_started/,
		"\\echo run_started\nCALL tenant_migrate_all(workers => $workers);\n\\echo run_ended\n");
	return ($bg, $pid);
}

# PIDs of the fleet workers running now
sub fleet_workers
{
	return split /\n/, $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'tenant_migrate fleet worker' ORDER BY pid");
}

# The last run's status, after a status call had its chance to mark it
sub last_run_status
{
	$node->safe_psql('postgres', 'SELECT count(*) FROM tenant_migration_status()');
	return $node->safe_psql('postgres',
		'SELECT status FROM tenant_migration_runs ORDER BY id DESC LIMIT 1');
}

# A run's record matches what is committed: done = migrated tenants
sub run_record_matches
{
	my ($v, $label) = @_;
	is( $node->safe_psql(
			'postgres', qq{
SELECT r.done - (SELECT count(*) FROM tenant_migrations m WHERE m.version = '$v')
  FROM tenant_migration_runs r ORDER BY r.id DESC LIMIT 1}),
		'0',
		"$label: the run record counts exactly the tenants committed");
	return;
}

# Waits until the server accepts connections again after a crash
sub wait_for_restart
{
	my ($log_offset, $label) = @_;
	$node->wait_for_log(qr/all server processes terminated; reinitializing/,
		$log_offset);
	ok($node->poll_query_until('postgres', 'SELECT 1', '1'),
		"$label: the server is back");
	return;
}

###
### 1. kill -9 of a worker
###
add_slow_migration($node, 2);
{
	my ($bg, $pid) = start_slow_run();
	wait_for_progress($node, 2);
	my @w = fleet_workers();
	cmp_ok(scalar(@w), '>=', 2, 'the run has several workers (' . scalar(@w) . ')');
	my $log_offset = -s $node->logfile;
	is(kill('KILL', $w[0]), 1, 'SIGKILL sent to a fleet worker');
	wait_session_lost($bg, 'worker SIGKILL');
	wait_for_restart($log_offset, 'worker SIGKILL');
	my $done = check_interrupted($node, 2, 'worker SIGKILL');
	is(last_run_status(), 'interrupted', 'worker SIGKILL: the run is found interrupted');
	run_record_matches(2, 'worker SIGKILL');
	finish_run($node, $ntenants, 2, $done, 'worker SIGKILL');
	is($node->safe_psql('postgres',
			'SELECT status FROM tenant_migration_runs ORDER BY id DESC LIMIT 1'),
		'finished', 'worker SIGKILL: the rerun is recorded finished');
}

###
### 2. kill -9 of the leader
###
add_slow_migration($node, 3);
{
	my ($bg, $pid) = start_slow_run();
	wait_for_progress($node, 3);
	my $log_offset = -s $node->logfile;
	is(kill('KILL', $pid), 1, 'SIGKILL sent to the leader');
	wait_session_lost($bg, 'leader SIGKILL');
	wait_for_restart($log_offset, 'leader SIGKILL');
	my $done = check_interrupted($node, 3, 'leader SIGKILL');
	is(last_run_status(), 'interrupted', 'leader SIGKILL: the run is found interrupted');
	run_record_matches(3, 'leader SIGKILL');
	finish_run($node, $ntenants, 3, $done, 'leader SIGKILL');
}

###
### 3. Cancel: no worker left behind when the CALL returns
###
add_slow_migration($node, 4);
{
	my ($bg, $pid) = start_slow_run();
	wait_for_progress($node, 4);
	cmp_ok(scalar(fleet_workers()), '>=', 2, 'the run has several workers');
	is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"),
		't', 'pg_cancel_backend() of the leader');
	ok(pump_until($bg->{run}, $bg->{timeout}, \$bg->{stdout}, qr/run_ended/),
		'the CALL returned after the cancel');
	is(scalar(fleet_workers()), 0, 'no fleet worker is left when the CALL has returned');
	$bg->{stdout} = '';
	$bg->query('SELECT 1');
	like($bg->{stderr}, qr/ERROR:  57014: canceling statement due to user request/,
		'the cancel stops the run with SQLSTATE 57014');
	unlike($bg->{stderr}, qr/WARNING/, 'the cancel is not reported as a tenant failure');
	my $done = check_interrupted($node, 4, 'cancel');
	is(last_run_status(), 'cancelled', 'cancel: the run is recorded cancelled');
	run_record_matches(4, 'cancel');
	$bg->quit;
	finish_run($node, $ntenants, 4, $done, 'cancel');
}

###
### 4. Terminate the leader: its workers go with it
###
add_slow_migration($node, 5);
{
	my ($bg, $pid) = start_slow_run();
	wait_for_progress($node, 5);
	is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"),
		't', 'pg_terminate_backend() of the leader');
	wait_session_lost($bg, 'terminate');
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(*) = 0 FROM pg_stat_activity
 WHERE pid = $pid OR backend_type = 'tenant_migrate fleet worker'}),
		'terminate: the leader and its workers are gone');
	my $done = check_interrupted($node, 5, 'terminate');
	is(last_run_status(), 'interrupted', 'terminate: the run is found interrupted');
	run_record_matches(5, 'terminate');
	finish_run($node, $ntenants, 5, $done, 'terminate');
}

###
### 5. Another session watches a run through its record
###
add_slow_migration($node, 6);
{
	my ($bg, $pid) = start_slow_run();
	ok( $node->poll_query_until(
			'postgres', q{
SELECT status = 'running' AND done >= 20 AND current_tenant IS NOT NULL
       AND workers = 4 AND total = 200
  FROM tenant_migration_runs ORDER BY id DESC LIMIT 1}),
		'the running run\'s record shows its progress to another session');
	is(last_run_status(), 'running', 'a status call leaves a live run running');
	ok(pump_until($bg->{run}, $bg->{timeout}, \$bg->{stdout}, qr/run_ended/),
		'the run finished');
	$bg->quit;
	is( $node->safe_psql(
			'postgres', q{
SELECT status || '|' || total || '|' || done || '|' || failed || '|' || skipped
       || '|' || (finished_at IS NOT NULL)
  FROM tenant_migration_runs ORDER BY id DESC LIMIT 1}),
		'finished|200|200|0|0|true',
		'the finished run\'s record');
	is( $node->safe_psql(
			'postgres', q{
SELECT count(*) FROM tenant_migration_log
 WHERE version = '6' AND run_id = (SELECT max(id) FROM tenant_migration_runs)}),
		$ntenants, 'every log row of the run carries its run id');
}

###
### 6. A failing one-tenant call during a run is not the run's failure
###
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('7', 'flaky',
  $m$ALTER TABLE public.items ADD COLUMN c7 int;
     DO $d$ BEGIN
       IF current_setting('tmtest.fail', true) = 'on' THEN RAISE EXCEPTION 'failing on request'; END IF;
     END $d$;$m$);
});
{
	# the application holds tenant_t001's table: the run's worker waits on it
	my $app = $node->background_psql('postgres');
	$app->query_safe('BEGIN');
	$app->query_safe('LOCK TABLE tenant_t001.items IN ACCESS SHARE MODE');
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe('SET tenant_migrate.lock_timeout = 0');
	$bg->query_until(qr/run_started/,
		"\\echo run_started\nCALL tenant_migrate_all(tenants => '{tenant_t001}', workers => 2);\n\\echo run_ended\n");
	ok( $node->poll_query_until(
			'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE backend_type = 'tenant_migrate fleet worker' AND wait_event_type = 'Lock'}),
		'the run\'s worker waits on the application\'s lock');
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		q{SET tmtest.fail = on; SELECT * FROM tenant_migrate('tenant_t002')});
	like($stderr, qr/ERROR:  failing on request/, 'meanwhile a one-tenant call fails');
	$app->query_safe('COMMIT');
	$app->quit;
	ok(pump_until($bg->{run}, $bg->{timeout}, \$bg->{stdout}, qr/run_ended/),
		'the run finished');
	$bg->query('SELECT 1');
	unlike($bg->{stderr}, qr/WARNING|tenant_t002/, 'the run reports no failure');
	like($bg->{stderr},
		qr/tenant_migrate_all finished in [0-9.]+ s: 1 tenant\(s\), 1 migrated, 0 already up to date, 0 failed, 0 skipped/,
		'its summary: one migrated, none failed');
	$bg->quit;
	is( $node->safe_psql(
			'postgres', q{
SELECT failed FROM tenant_migration_runs ORDER BY id DESC LIMIT 1}),
		'0', 'its record: 0 failed');
	is( $node->safe_psql(
			'postgres', q{
SELECT count(*) FROM tenant_migration_log WHERE tenant_schema = 'tenant_t002' AND status = 'failed' AND run_id IS NULL}),
		'1', 'the one-tenant call\'s failure is logged, outside any run');
}
$node->stop;

###
### 7. max_worker_processes nearly exhausted
###
my $small = PostgreSQL::Test::Cluster->new('small');
$small->init;
# the logical replication launcher holds one slot: two are left
$small->append_conf('postgresql.conf', qq{
max_worker_processes = 3
max_parallel_workers = 3
tenant_migrate.max_workers = 4
});
$small->start;
$small->safe_psql('postgres', q{
CREATE EXTENSION tenant_migrate;
SELECT tenant_migration_add('1', 'items', 'CREATE TABLE public.items (id int PRIMARY KEY);');
SELECT count(create_tenant_schema(format('s%s', i))) FROM generate_series(1, 30) i;
SELECT tenant_migration_add('2', 'col', 'ALTER TABLE public.items ADD COLUMN c int;');
SELECT tenant_migration_add('3', 'col2', 'ALTER TABLE public.items ADD COLUMN d int;');
CREATE TABLE hog AS SELECT 1 AS g;
});
{
	my ($ret, $stdout, $stderr) = $small->psql('postgres',
		"CALL tenant_migrate_all(target_version => '2', workers => 4)");
	is($ret, 0, 'few slots: the run succeeds');
	like($stderr, qr/running with [12] of the 4 worker\(s\) asked for/,
		'few slots: the run says it got fewer workers than asked');
	like($stderr, qr/30 tenant\(s\), 30 migrated, 0 already up to date, 0 failed/,
		'few slots: every tenant migrated');
	my $got = $small->safe_psql('postgres',
		'SELECT workers FROM tenant_migration_runs ORDER BY id DESC LIMIT 1');
	ok($got >= 1 && $got <= 2, "few slots: the record says it ran with $got worker(s)");
}
{
	# two parallel queries hold both free slots for 3 s
	my @hogs;
	for my $i (1 .. 2)
	{
		my $hog = $small->background_psql('postgres', on_error_stop => 0);
		$hog->query_safe(q{
SET force_parallel_mode = on;
SET parallel_leader_participation = off;
});
		$hog->query_until(qr/hog_started/,
			"\\echo hog_started\nSELECT count(*) FROM hog WHERE pg_sleep(3) IS NOT NULL;\n\\echo hog_ended\n");
		push @hogs, $hog;
	}
	ok( $small->poll_query_until(
			'postgres',
			"SELECT count(*) = 2 FROM pg_stat_activity WHERE backend_type = 'parallel worker'"),
		'no slot: parallel queries hold every free worker slot');
	my ($ret, $stdout, $stderr) = $small->psql('postgres',
		"CALL tenant_migrate_all(workers => 4)");
	is($ret, 0, 'no slot: the run succeeds');
	like($stderr, qr/no background worker is free, running every tenant in this session/,
		'no slot: the run says it runs in its own session');
	like($stderr, qr/30 tenant\(s\), 30 migrated, 0 already up to date, 0 failed/,
		'no slot: every tenant migrated');
	is($small->safe_psql('postgres',
			'SELECT workers || \'|\' || status FROM tenant_migration_runs ORDER BY id DESC LIMIT 1'),
		'0|finished', 'no slot: the record says it ran with no worker');
	for my $hog (@hogs)
	{
		ok(pump_until($hog->{run}, $hog->{timeout}, \$hog->{stdout}, qr/hog_ended/),
			'a parallel query finished');
		$hog->quit;
	}
}
$small->stop;

note(sprintf('006_fleet_workers ran in %.1f s', time() - $started));
done_testing();

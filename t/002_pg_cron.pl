# t/002_pg_cron.pl
#
# tenant_migrate driven by a real pg_cron job: a scheduled
# CALL tenant_migrate_all() migrates every tenant (pg_cron runs it over
# libpq, outside any transaction block, so the procedure may commit per
# tenant).  Then two jobs with the same command fire at the same time on a
# slow migration: they share the tenants out (busy ones are skipped, never
# waited on), every tenant gets the version exactly once, nothing fails.
#
# pg_cron before 1.5 has no seconds schedule, so the jobs run on the minute
# and the test waits for minute boundaries (up to about two minutes).

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $ntenants = 20;
my $started = time();

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
# pg_cron connects to the server over libpq like any client: the test server
# listens only on its socket directory.
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '@{[ $node->host ]}'
});
# Fleet workers per run and server-wide (tenant_migrate.max_workers):
# TM_FLEET_WORKERS, default 2; the suite also runs with 1 and 4.
my $workers = $ENV{TM_FLEET_WORKERS} // 2;
$node->append_conf('postgresql.conf', "tenant_migrate.max_workers = $workers\n");
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
$node->safe_psql('postgres', 'CREATE EXTENSION tenant_migrate');

my $cron_version = $node->safe_psql('postgres',
	"SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'");
my ($cron_major, $cron_minor) = $cron_version =~ /^(\d+)\.(\d+)/;
my $seconds_syntax = ($cron_major > 1 || ($cron_major == 1 && $cron_minor >= 5));
# '1 seconds' (pg_cron 1.5+) or every minute.
my $schedule = $seconds_syntax ? '1 seconds' : '* * * * *';
note("pg_cron $cron_version: jobs run on schedule '$schedule'");

# Tenants at version 1.
$node->safe_psql(
	'postgres', qq{
SELECT tenant_migration_add('1', 'customers',
  'CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);');
SELECT count(create_tenant_schema(format('k%s', lpad(i::text, 2, '0'))))
  FROM generate_series(1, $ntenants) i;
});

# Waits until every job in @$jobs has a finished run with runid > $after;
# returns the largest runid seen.
sub wait_for_runs
{
	my ($jobs, $after, $label) = @_;
	my $list = join(',', @$jobs);
	ok( $node->poll_query_until(
			'postgres', qq{
SELECT count(DISTINCT jobid) = @{[ scalar(@$jobs) ]}
  FROM cron.job_run_details
 WHERE jobid IN ($list) AND runid > $after
   AND status IN ('succeeded', 'failed')}),
		$label);
	return;
}

###
### 1. One job migrates every tenant.
###
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('2', 'orders', $m$
CREATE TABLE public.orders (
  id int PRIMARY KEY,
  customer_id int NOT NULL REFERENCES public.customers (id),
  total numeric NOT NULL DEFAULT 0);
$m$);
});
my $job1 = $node->safe_psql('postgres',
	"SELECT cron.schedule('tenants', '$schedule', 'CALL tenant_migrate_all()')");
note("job 1 is $job1; waiting for pg_cron to run it");

wait_for_runs([$job1], 0, 'pg_cron ran the scheduled CALL tenant_migrate_all()');
is( $node->safe_psql(
		'postgres', qq{
SELECT status || '|' || return_message FROM cron.job_run_details
 WHERE jobid = $job1 ORDER BY runid LIMIT 1}),
	'succeeded|CALL',
	'the scheduled run succeeded');
is( $node->safe_psql(
		'postgres',
		'SELECT tenants, up_to_date, behind, failing, newest_version FROM tenant_migration_overview'
	),
	"$ntenants|$ntenants|0|0|2",
	"all $ntenants tenants are at version 2");
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM tenant_migration_log WHERE version = '2' AND status = 'ok'"
	),
	$ntenants,
	'one ok row per tenant for version 2');
# A run without a client is watched through its record and its log rows.
is( $node->safe_psql(
		'postgres', q{
SELECT status || '|' || total || '|' || done || '|' || failed || '|' || started_by
       || '|' || (SELECT count(*) FROM tenant_migration_log l
                   WHERE l.run_id = r.id AND l.version = '2' AND l.status = 'ok')
  FROM tenant_migration_runs r ORDER BY r.id LIMIT 1}),
	"finished|$ntenants|$ntenants|0|postgres|$ntenants",
	'the scheduled run is recorded: finished, every tenant done, its log rows carry its run id');

# The migrated tables work.
$node->safe_psql('postgres', q{
INSERT INTO tenant_k01.customers VALUES (1, 'Ann');
INSERT INTO tenant_k01.orders (id, customer_id) VALUES (1, 1);
});
is($node->safe_psql('postgres', 'SELECT total FROM tenant_k01.orders'),
	'0', 'the default of the migrated table fires');

###
### 2. Two jobs, same command, same time, slow migration.
###
my $last_run = $node->safe_psql('postgres',
	'SELECT coalesce(max(runid), 0) FROM cron.job_run_details');

# The second job and the slow migration appear in one transaction, so the
# next tick sees both.  0.1 s per tenant makes a run last about two seconds
# when it does all tenants alone.
my $job2 = $node->safe_psql(
	'postgres', q{
BEGIN;
SELECT tenant_migration_add('3', 'slow audit', $m$
CREATE TABLE public.audit (id int PRIMARY KEY, customer_id int REFERENCES public.customers (id));
SELECT pg_catalog.pg_sleep(0.1);
ALTER TABLE public.customers ADD COLUMN audited boolean NOT NULL DEFAULT false;
$m$) \g /dev/null
SELECT cron.schedule('tenants_again', '} . $schedule . q{', 'CALL tenant_migrate_all()');
COMMIT;
});
note("job 2 is $job2; waiting for both jobs to run");

wait_for_runs([ $job1, $job2 ], $last_run,
	'both jobs ran the CALL after the slow migration was registered');

# Unschedule both before looking, so no further run changes the picture.
$node->safe_psql('postgres',
	"SELECT cron.unschedule('tenants'), cron.unschedule('tenants_again')");
is($node->safe_psql('postgres', 'SELECT count(*) FROM cron.job'),
	'0', 'both jobs unscheduled');

# The first run of each job after the registration.
my $runs = $node->safe_psql(
	'postgres', qq{
SELECT string_agg(status || '|' || return_message, ',' ORDER BY jobid)
  FROM (SELECT DISTINCT ON (jobid) jobid, status, return_message
          FROM cron.job_run_details
         WHERE jobid IN ($job1, $job2) AND runid > $last_run
         ORDER BY jobid, runid) r});
is($runs, 'succeeded|CALL,succeeded|CALL', 'both runs succeeded');

# Did they overlap?  (Same tick, each lasting about a second or more.)
is( $node->safe_psql(
		'postgres', qq{
WITH r AS (
  SELECT DISTINCT ON (jobid) jobid, start_time, end_time
    FROM cron.job_run_details
   WHERE jobid IN ($job1, $job2) AND runid > $last_run
   ORDER BY jobid, runid)
SELECT max(start_time) < min(end_time) FROM r}),
	't',
	'the two runs overlapped in time');

is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM tenant_registry r
 WHERE (SELECT count(*) FROM tenant_migrations m
         WHERE m.tenant_schema = r.schema_name AND m.version = '3') = 1
   AND (SELECT count(*) FROM tenant_migration_log l
         WHERE l.tenant_schema = r.schema_name AND l.version = '3'
           AND l.action = 'up' AND l.status = 'ok') = 1
   AND to_regclass(format('%I.audit', r.schema_name)) IS NOT NULL}),
	$ntenants,
	'every tenant has version 3 exactly once (history row, one ok log row, the table)');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM tenant_migration_log WHERE status = 'failed'"),
	'0',
	'no failed attempt was logged');
my $skipped = $node->safe_psql(
	'postgres', q{
SELECT count(*) FROM tenant_migration_log
 WHERE status = 'skipped' AND error = 'locked by another session migrating this tenant'});
is( $node->safe_psql(
		'postgres', q{
SELECT count(*) FROM tenant_migration_log
 WHERE status = 'skipped' AND error IS DISTINCT FROM 'locked by another session migrating this tenant'}),
	'0',
	'every skipped row says the tenant was busy');
note("the overlapping runs skipped $skipped busy tenant(s)");
is( $node->safe_psql(
		'postgres',
		'SELECT tenants, up_to_date, behind, failing, newest_version FROM tenant_migration_overview'
	),
	"$ntenants|$ntenants|0|0|3",
	'overview: everybody at version 3, nobody failing');
is( $node->safe_psql(
		'postgres', 'SELECT audited FROM tenant_k01.customers WHERE id = 1'),
	'f',
	'the new column and its default are there');

$node->stop;
note(sprintf('002_pg_cron ran in %.1f s', time() - $started));
done_testing();

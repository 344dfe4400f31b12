# t/004_lock_timeout_retry.pl
#
# An application transaction holds a lock that a migration's ALTER TABLE
# needs.  With tenant_migrate.lock_timeout the migration gives up quickly
# (55P03) instead of queueing; a fleet run logs each failed attempt, backs
# off and retries up to tenant_migrate.lock_retries times, and migrates the
# tenant once the application commits.  With no retries left the tenant is
# recorded as failed, the others are migrated, and the next run picks it up.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $started = time();

my $node = PostgreSQL::Test::Cluster->new('locks');
$node->init;
# Fleet workers per run and server-wide (tenant_migrate.max_workers):
# TM_FLEET_WORKERS, default 2; the suite also runs with 1 and 4.
my $workers = $ENV{TM_FLEET_WORKERS} // 2;
$node->append_conf('postgresql.conf', "tenant_migrate.max_workers = $workers\n");
$node->start;

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION tenant_migrate;
SELECT tenant_migration_add('1', 'accounts',
  'CREATE TABLE public.accounts (id int PRIMARY KEY, balance int NOT NULL DEFAULT 0);');
SELECT create_tenant_schema(k) FROM unnest('{a,b,c}'::text[]) k;
INSERT INTO tenant_a.accounts VALUES (1, 10);
INSERT INTO tenant_b.accounts VALUES (1, 20);
});

sub overview
{
	return $node->safe_psql('postgres',
		'SELECT tenants, up_to_date, behind, failing, newest_version FROM tenant_migration_overview'
	);
}

# Does tenant $schema's accounts table have column $col?
sub has_column
{
	my ($schema, $col) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = '$schema.accounts'::regclass
                  AND attname = '$col' AND NOT attisdropped)});
}

###
### 1. The application commits while the run is retrying: the retry wins.
###
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('2', 'account note',
  'ALTER TABLE public.accounts ADD COLUMN note text;');
});

# The application reads tenant_a.accounts in an open transaction: its
# ACCESS SHARE lock blocks ALTER TABLE's ACCESS EXCLUSIVE.
my $app = $node->background_psql('postgres');
$app->query_safe('BEGIN');
is($app->query_safe('SELECT balance FROM tenant_a.accounts WHERE id = 1'),
	'10', 'the application transaction holds a lock on tenant_a.accounts');

# Retries back off 100 ms, 200 ms, 400 ms, ...: eight of them leave the
# test more than 20 s to notice the first failure and commit.
my $runner = $node->background_psql('postgres', on_error_stop => 0);
$runner->query_safe(q{SET tenant_migrate.lock_timeout = '200ms'});
$runner->query_safe('SET tenant_migrate.lock_retries = 8');
$runner->query_until(qr/run_started/,
	"\\echo run_started\nCALL tenant_migrate_all();\n\\echo run_ended\n");

ok( $node->poll_query_until(
		'postgres', q{
SELECT EXISTS (SELECT 1 FROM tenant_migration_log
                WHERE tenant_schema = 'tenant_a' AND version = '2' AND status = 'failed'
                  AND error LIKE '%canceling statement due to lock timeout%'
                  AND error LIKE '%(attempt 1 of 9; retrying)')}),
	'the first attempt on tenant_a hit the lock timeout and was logged (committed) as failed'
);
# One worker takes the tenants in schema order and waits on tenant_a; with
# more, the others take tenant_b and tenant_c meanwhile.
if ($workers >= 2)
{
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 2 FROM tenant_migrations WHERE version = '2' AND tenant_schema <> 'tenant_a'"),
		'while tenant_a waits, the other workers migrate tenant_b and tenant_c');
}
else
{
	is( $node->safe_psql(
			'postgres',
			"SELECT count(*) FROM tenant_migrations WHERE version = '2'"),
		'0',
		'the run waits on tenant_a (schema order) before the other tenants');
}

$app->query_safe('COMMIT');
ok(pump_until($runner->{run}, $runner->{timeout}, \$runner->{stdout}, qr/run_ended/),
	'the CALL returned after the application committed');
# A query round trip reads everything psql wrote to stderr before it.
$runner->query('SELECT 1');
my $out = $runner->{stderr};
like(
	$out,
	qr/WARNING:  tenant_migrate_all: tenant "tenant_a" hit the lock timeout, retrying: canceling statement due to lock timeout/,
	'each failed attempt is announced with a WARNING');
unlike($out, qr/ERROR|tenant "tenant_[bc]"/,
	'no error, and no other tenant was affected');
like(
	$out,
	qr/NOTICE:  tenant_migrate_all finished in [0-9.]+ s: 3 tenant\(s\), 3 migrated, 0 already up to date, 0 failed, 0 skipped \(busy\)/,
	'the summary: all three tenants migrated, none failed');
# The failed attempts and the retry restored the session's settings.
$runner->{stderr} = '';
is( $runner->query_safe(
		"SELECT current_setting('lock_timeout') || ' / ' || current_setting('search_path')"),
	'0 / "$user", public',
	'lock_timeout and search_path are back to the session defaults after the run');
$runner->quit;

# tenant_a's log: failed attempts 1..k, in order, then the successful one.
# (Errors span lines: rows are joined with a separator of their own.)
my @rows = split /#ROW#/, $node->safe_psql(
	'postgres', q{
SELECT string_agg(status || '|' || coalesce(error, ''), '#ROW#' ORDER BY id)
  FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_a' AND version = '2'});
my $ok_row = pop @rows;
is($ok_row, 'ok|', 'the last attempt on tenant_a succeeded');
cmp_ok(scalar(@rows), '>=', 1, 'it came after ' . scalar(@rows) . ' failed attempt(s)');
my $attempt = 0;
my @bad = grep {
	$attempt++;
	$_ !~ /^failed\|canceling statement due to lock timeout\nCONTEXT: up script of migration 2 \(account note\) on tenant "tenant_a", statement 1 of 1, line 1: ALTER TABLE tenant_a\.accounts ADD COLUMN note text\n\(attempt $attempt of 9; retrying\)$/s
} @rows;
is(scalar(@bad), 0,
	'each failed attempt names the tenant, version, statement and attempt number, in order')
  or diag(explain \@rows);

is(has_column('tenant_a', 'note'), 't', 'tenant_a has the new column');
is($node->safe_psql('postgres', 'SELECT balance FROM tenant_a.accounts WHERE id = 1'),
	'10', "tenant_a's data is intact");
is(overview(), '3|3|0|0|2', 'every tenant is up to date and none is failing');
is( $node->safe_psql(
		'postgres',
		"SELECT count(*) FROM tenant_migration_log WHERE tenant_schema <> 'tenant_a' AND status <> 'ok'"
	),
	'0',
	'the other tenants have no failed attempt');

###
### 2. No retries and the lock held for the whole run: the tenant fails, the
###    others are migrated, the next run finishes it.
###
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('3', 'account flag',
  'ALTER TABLE public.accounts ADD COLUMN flagged boolean NOT NULL DEFAULT false;');
});
$app->query_safe('BEGIN');
is($app->query_safe('SELECT balance FROM tenant_b.accounts WHERE id = 1'),
	'20', 'the application transaction holds a lock on tenant_b.accounts');

# A direct call keeps the lock timeout's SQLSTATE.
{
	my ($ret, $stdout, $stderr) = $node->psql(
		'postgres', q{
SET tenant_migrate.lock_timeout = '200ms';
SELECT version FROM tenant_migrate('tenant_b');},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like(
		$stderr,
		qr/ERROR:  55P03: canceling statement due to lock timeout\n(.*\n)*CONTEXT:  up script of migration 3 \(account flag\) on tenant "tenant_b", statement 1 of 1, line 1: ALTER TABLE tenant_b.accounts ADD COLUMN flagged boolean NOT NULL DEFAULT false\n/,
		'tenant_migrate() gives up after tenant_migrate.lock_timeout with 55P03');
}
# The log is the audit of every attempt: the failed direct call is in it,
# although its transaction rolled back.
is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(status || '|' || error, '#ROW#' ORDER BY id) FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_b' AND version = '3'}),
	qq{failed|canceling statement due to lock timeout\nCONTEXT: up script of migration 3 (account flag) on tenant "tenant_b", statement 1 of 1, line 1: ALTER TABLE tenant_b.accounts ADD COLUMN flagged boolean NOT NULL DEFAULT false},
	'the failed direct call is recorded in tenant_migration_log');
my $last_id = $node->safe_psql('postgres',
	'SELECT max(id) FROM tenant_migration_log');

{
	my ($ret, $stdout, $stderr) = $node->psql(
		'postgres', q{
SET tenant_migrate.lock_timeout = '200ms';
SET tenant_migrate.lock_retries = 0;
CALL tenant_migrate_all();
SELECT current_setting('lock_timeout') || ' / ' || current_setting('search_path');});
	is($ret, 0, 'the run itself succeeds');
	is($stdout, '0 / "$user", public',
		'lock_timeout and search_path are restored after the failed tenant');
	like(
		$stderr,
		qr/WARNING:  tenant_migrate_all: tenant "tenant_b" failed: canceling statement due to lock timeout/,
		'tenant_b is reported as failed');
	unlike($stderr, qr/retrying/, 'no retry with lock_retries = 0');
	like(
		$stderr,
		qr/NOTICE:  tenant_migrate_all finished in [0-9.]+ s: 3 tenant\(s\), 2 migrated, 0 already up to date, 1 failed, 0 skipped \(busy\)/,
		'the summary: two migrated, one failed');
	like($stderr, qr/WARNING:  tenant_migrate_all: 1 tenant\(s\) failed/,
		'the run ends with a warning about the failure');
}

is( $node->safe_psql(
		'postgres', q{
SELECT string_agg(status || '|' || error, '#ROW#' ORDER BY id) FROM tenant_migration_log
 WHERE tenant_schema = 'tenant_b' AND version = '3' AND id > } . $last_id),
	qq{failed|canceling statement due to lock timeout\nCONTEXT: up script of migration 3 (account flag) on tenant "tenant_b", statement 1 of 1, line 1: ALTER TABLE tenant_b.accounts ADD COLUMN flagged boolean NOT NULL DEFAULT false},
	'the run logged exactly one failed row for tenant_b, with the statement and no retry note');
is(has_column('tenant_b', 'flagged'), 'f', 'tenant_b is unchanged');
is(has_column('tenant_a', 'flagged') . has_column('tenant_c', 'flagged'),
	'tt', 'tenant_a and tenant_c were migrated');
is( $node->safe_psql(
		'postgres', q{
SELECT tenant_schema || '|' || current_version || '|' || pending || '|' || (last_error IS NOT NULL)
  FROM tenant_migration_status() ORDER BY 1}),
	"tenant_a|3|0|false\ntenant_b|2|1|true\ntenant_c|3|0|false",
	'status: tenant_b is behind with its last error, the others are current');
is(overview(), '3|2|1|1|3', 'overview: one tenant behind and failing');

# The application commits; the next run migrates only tenant_b.
$app->query_safe('COMMIT');
$app->quit;
{
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', 'CALL tenant_migrate_all()');
	like(
		$stderr,
		qr/NOTICE:  tenant_migrate_all finished in [0-9.]+ s: 3 tenant\(s\), 1 migrated, 2 already up to date, 0 failed, 0 skipped \(busy\)/,
		'the next run migrates tenant_b only');
}
is(has_column('tenant_b', 'flagged'), 't', 'tenant_b has the new column');
is( $node->safe_psql(
		'postgres', 'SELECT flagged, balance FROM tenant_b.accounts WHERE id = 1'),
	'f|20',
	"the column's default fires and tenant_b's data is intact");
is(overview(), '3|3|0|0|3', 'overview: everybody up to date, nobody failing');

$node->stop;
note(sprintf('004_lock_timeout_retry ran in %.1f s', time() - $started));
done_testing();

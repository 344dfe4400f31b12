# t/006_verify_after_crash.pl
#
# tenant_verify() after a crash: a fleet run whose backend is killed with
# SIGKILL mid-run leaves every tenant wholly at the old or the new version,
# so tenant_verify() finds nothing wrong even before the rerun (each
# schema matches its own history), and nothing after the rerun.  The rerun
# skips suspended and archived tenants and says so.  A drift made by hand
# afterwards is found, so the empty results above mean something.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $ntenants = 60;

my $node = PostgreSQL::Test::Cluster->new('verify_crash');
$node->init;
$node->append_conf('postgresql.conf', "restart_after_crash = on\n");
$node->start;

$node->safe_psql('postgres', 'CREATE EXTENSION tenant_migrate');
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('1', 'items', $m$
CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);
CREATE INDEX items_name_idx ON public.items (name);
CREATE FUNCTION public.item_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM public.items $$;
$m$);
});
$node->safe_psql('postgres',
	"SELECT count(create_tenant_schema(format('t%s', lpad(i::text, 3, '0'))))"
	  . " FROM generate_series(1, $ntenants) i");
# two more that fleet runs must leave alone
$node->safe_psql('postgres', q{
SELECT create_tenant_schema('zz_suspended');
SELECT create_tenant_schema('zz_archived');
SELECT tenant_set_status('tenant_zz_suspended', 'suspended');
SELECT tenant_archive('tenant_zz_archived');
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM tenant_verify()'),
	0, 'a fresh fleet verifies clean');

# Version 2, slow only when tmtest.sleep is set in the running session.
$node->safe_psql('postgres', q{
SELECT tenant_migration_add('2', 'slow', $m$
CREATE TABLE public.tags (id int PRIMARY KEY, item_id int REFERENCES public.items (id));
SELECT pg_catalog.pg_sleep(coalesce(nullif(current_setting('tmtest.sleep', true), ''), '0')::float8);
ALTER TABLE public.items ADD COLUMN tag_count int NOT NULL DEFAULT 0;
$m$);
});

my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
$bg->query_safe(q{SET tmtest.sleep = '0.05'});
$bg->query_until(qr/run_started/,
	"\\echo run_started\nCALL tenant_migrate_all();\n\\echo run_ended\n");
ok( $node->poll_query_until(
		'postgres',
		"SELECT count(*) >= 10 FROM tenant_migrations WHERE version = '2'"),
	'the run has committed at least 10 tenants');

my $log_offset = -s $node->logfile;
is(kill('KILL', $pid), 1, 'SIGKILL sent to the backend running the CALL');
ok( pump_until(
		$bg->{run}, $bg->{timeout}, \$bg->{stderr},
		qr/server closed the connection unexpectedly|connection to server was lost/),
	'the session running the CALL lost its connection');
$bg->{run}->finish;
$node->wait_for_log(qr/all server processes terminated; reinitializing/,
	$log_offset);
ok($node->poll_query_until('postgres', 'SELECT 1', '1'),
	'the server is back after the crash');

my $migrated = $node->safe_psql('postgres',
	"SELECT count(*) FROM tenant_migrations WHERE version = '2'");
cmp_ok($migrated, '<', $ntenants, "the run was interrupted ($migrated of $ntenants done)");
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tm_verify_%'"),
	0, 'no scratch schema anywhere');
is($node->safe_psql('postgres', 'SELECT tenant_schema || \' \' || problem || \': \' || detail FROM tenant_verify()'),
	'', 'right after the crash, every tenant matches its own history');

my ($ret, $stdout, $stderr) = $node->psql('postgres', 'CALL tenant_migrate_all()');
is($ret, 0, 'the rerun succeeds');
like($stderr,
	qr/NOTICE:  tenant_migrate_all: skipping 2 tenant\(s\) that are suspended or archived/,
	'the rerun says it skips the suspended and the archived tenant');
like($stderr,
	qr/tenant_migrate_all finished in [0-9.]+ s: $ntenants tenant\(s\), @{[$ntenants - $migrated]} migrated, $migrated already up to date, 0 failed/,
	'the rerun migrates exactly the rest');
is($node->safe_psql('postgres', 'SELECT tenant_schema || \' \' || problem || \': \' || detail FROM tenant_verify()'),
	'', 'after the rerun, tenant_verify() returns no rows');
is($node->safe_psql('postgres',
		"SELECT string_agg(tenant_schema || '=' || coalesce(current_version, '-'), ',' ORDER BY tenant_schema)"
		  . " FROM tenant_migration_status() WHERE status <> 'active'"),
	'tenant_zz_archived=1,tenant_zz_suspended=1',
	'the skipped tenants are still at version 1');

# not vacuous: a hand-made drift is found, and only it
$node->safe_psql('postgres', 'DROP INDEX tenant_t007.items_name_idx');
is($node->safe_psql('postgres', 'SELECT tenant_schema || \' \' || problem || \': \' || detail FROM tenant_verify()'),
	'tenant_t007 schema_drift: index items_name_idx is missing; expected: CREATE INDEX items_name_idx ON tenant_t007.items USING btree (name)',
	'a dropped index is found');

$node->stop;
done_testing();

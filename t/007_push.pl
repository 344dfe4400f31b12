# t/007_push.pl
#
# tenant_migrate_push, the client-side twin of tenant_migrations_load():
# the installed script registers a folder over psql and leaves exactly the
# scripts table the server-side loader leaves (compared both ways with
# EXCEPT), for the example app, the loader fixtures and links inside the
# folder.  A second push reports every version unchanged, an edited file
# is reported changed.  Every bad input names the file, exits non-zero and
# leaves the scripts table exactly as it was, even when earlier versions of
# the same push were new or changed.

use strict;
use warnings;

use Cwd qw(getcwd);
use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = getcwd();
my $app = "$src/migrations";
my $fixtures = "$src/test/fixtures";

# The script as `make install` put it: next to the PostgreSQL 15 binaries
my $bindir = `pg_config --bindir`;
chomp $bindir;
my $push = "$bindir/tenant_migrate_push";
ok(-x $push, "tenant_migrate_push is installed in $bindir");

my $node = PostgreSQL::Test::Cluster->new('push');
$node->init;
$node->start;

my @conn = ('-h', $node->host, '-p', $node->port);

for my $db (qw(load_app push_app load_fix push_fix load_real push_real
	load_links push_links push_dry))
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION tenant_migrate');
}

# Runs the script; returns (exit status, stdout, stderr)
sub run_push
{
	my @args = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ $push, @args ], '<', \undef, '>', \$out, '2>', \$err);
	return ($? >> 8, $out, $err);
}

sub push_ok
{
	my ($db, $dir, $name, @extra) = @_;
	my ($rc, $out, $err) = run_push(@extra, $dir, @conn, '-d', $db);
	is($rc, 0, "$name: exit status 0") or diag("stdout:\n$out\nstderr:\n$err");
	return $out;
}

sub load_ok
{
	my ($db, $dir) = @_;
	return $node->safe_psql($db, "SELECT tenant_migrations_load('$dir')");
}

# What the comparison covers: every column but registered_at/_by
my $cols = 'version, name, scope, up_sql, down_sql, checksum, depends_on';

# The scripts table of push_db copied into a temporary table of load_db,
# then EXCEPT both ways
sub same_scripts
{
	my ($load_db, $push_db, $name) = @_;
	my $data = $node->safe_psql($push_db,
		"COPY (SELECT $cols FROM tenant_migration_scripts) TO STDOUT");
	$data .= "\n" if $data ne '';
	my $result = $node->safe_psql($load_db, qq{
CREATE TEMP TABLE pushed (version text, name text, scope text, up_sql text,
						  down_sql text, checksum text, depends_on text[]);
COPY pushed FROM STDIN;
$data\\.
SELECT (SELECT count(*) FROM (SELECT $cols FROM tenant_migration_scripts
							  EXCEPT SELECT * FROM pushed) x)
	   || ' ' ||
	   (SELECT count(*) FROM (SELECT * FROM pushed
							  EXCEPT SELECT $cols FROM tenant_migration_scripts) y)
	   || ' ' || (SELECT count(*) FROM pushed)
	   || ' ' || (SELECT count(*) FROM tenant_migration_scripts);
});
	my ($only_load, $only_push, $npushed, $nloaded) = split / /, $result;
	is("$only_load $only_push", '0 0', "$name: same scripts both ways");
	is($npushed, $nloaded, "$name: same number of scripts ($nloaded)");
	return $nloaded;
}

# Everything of the scripts table, registration times included
sub scripts_table
{
	my ($db) = @_;
	return $node->safe_psql($db,
		'SELECT t::text FROM tenant_migration_scripts t ORDER BY version');
}

# Lines of the report: "STATUS VERSION ..." for each version
sub statuses
{
	my ($out) = @_;
	my %s;
	for (split /\n/, $out)
	{
		$s{$2} = $1 if /\A(new|changed|unchanged)\s+(\S+) /;
	}
	return \%s;
}

#---- The example app ----

my $out = push_ok('push_app', $app, 'push migrations/');
my $st = statuses($out);
is(scalar(keys %$st), 12, 'twelve versions reported');
is(scalar(grep { $_ eq 'new' } values %$st), 12, 'all of them new');
like($out, qr/^new\s+0006 candidates \(0006_candidates\/migration\.sql, 0006_candidates\/down\.sql\)$/m,
	'a line names the version, its name and its files');
like($out, qr/12 new, 0 changed, 0 unchanged$/, 'summary line');
is(load_ok('load_app', $app), 12, 'tenant_migrations_load registers 12');
is(same_scripts('load_app', 'push_app', 'migrations/'), 12, 'twelve scripts');
is($node->safe_psql('push_app',
		"SELECT count(*) FROM tenant_migration_scripts WHERE scope = 'shared'"),
	3, 'shared/ has scope shared');

# A second push changes nothing and says so for every version
my $before = scripts_table('push_app');
$out = push_ok('push_app', $app, 'second push');
$st = statuses($out);
is(scalar(keys %$st), 12, 'second push: twelve versions reported');
is(scalar(grep { $_ eq 'unchanged' } values %$st), 12, 'second push: all unchanged');
like($out, qr/0 new, 0 changed, 12 unchanged$/, 'second push: summary');
is(scripts_table('push_app'), $before, 'second push: table untouched (registration times too)');

# An edited file is reported changed; the rest stays unchanged
my $tmp = PostgreSQL::Test::Utils::tempdir;
my $edited = "$tmp/edited";
system('cp', '-R', $app, $edited) == 0 or die 'cp failed';
append_to_file("$edited/0005_job_postings.up.sql", "\n-- reviewed\n");
append_to_file("$edited/0008_interviews/down.sql", "\n-- reviewed\n");
$out = push_ok('push_app', $edited, 'push an edited copy');
$st = statuses($out);
is($st->{'0005'}, 'changed', 'edited up script: changed');
is($st->{'0008'}, 'changed', 'edited down script: changed');
is(scalar(grep { $_ eq 'unchanged' } values %$st), 10, 'the other ten: unchanged');
is(load_ok('load_app', $edited), 2, 'tenant_migrations_load counts the same two');
same_scripts('load_app', 'push_app', 'edited copy');

#---- The loader's fixtures, in the order sql/load.sql loads them ----

$out = push_ok('push_fix', "$fixtures/load/mixed", 'push load/mixed');
like($out, qr/10 new, 0 changed, 0 unchanged$/, 'load/mixed: 10 new');
$st = statuses($out);
is_deeply([ sort keys %$st ],
	[ sort qw(001 002 003 4.9 4.10 0006 0007 0008 20240101_120000 20240102120000) ],
	'load/mixed: versions parsed as the loader parses them');
$out = push_ok('push_fix', "$fixtures/load/changed", 'push load/changed');
is(statuses($out)->{'001'}, 'changed', 'load/changed: 001 changed');
my ($rc, $err);
($rc, $out, $err) = run_push("$fixtures/load/no_version", @conn, '-d', 'push_fix');
is($rc, 0, 'load/no_version: exit status 0');
like($err, qr/warning: skipping migration file "notes\.sql": its name does not start with a version/,
	'load/no_version: warns about notes.sql');
is(statuses($out)->{'0500'}, 'new', 'load/no_version: 0500 new');
load_ok('load_fix', "$fixtures/load/$_") for qw(mixed changed no_version);
same_scripts('load_fix', 'push_fix', 'load fixtures');

# Prisma folders with rollback.sql, an empty one, stray files, .DS_Store
push_ok('push_real', "$fixtures/real/history", 'push real/history');
load_ok('load_real', "$fixtures/real/history");
same_scripts('load_real', 'push_real', 'real/history');

# Links that stay inside the folder are followed (a script, shared/, the
# folder itself); a README.md leading out is never read
my $inside = "$tmp/inside";
make_path("$inside/docs", "$inside/shared_scripts");
append_to_file("$inside/docs/create_linked.txt", "CREATE TABLE public.linked (id int);\n");
symlink('docs/create_linked.txt', "$inside/1001_linked.sql") or die;
append_to_file("$inside/shared_scripts/1002_shared_linked.sql", "SELECT 1;\n");
symlink('shared_scripts', "$inside/shared") or die;
symlink('/etc/passwd', "$inside/README.md") or die;
symlink('inside', "$tmp/root_link") or die;
$out = push_ok('push_links', "$tmp/root_link", 'push through links');
like($out, qr/2 new/, 'links: two scripts');
load_ok('load_links', "$tmp/root_link");
same_scripts('load_links', 'push_links', 'links inside the folder');

#---- Dry run and connection options ----

$out = push_ok('push_dry', $app, 'dry run', '--dry-run');
like($out, qr/12 new, 0 changed, 0 unchanged \(dry run: rolled back, nothing registered\)$/,
	'dry run: what would be registered');
is($node->safe_psql('push_dry', 'SELECT count(*) FROM tenant_migration_scripts'),
	0, 'dry run: nothing registered');

# A conninfo string after the folder (push_app holds the edited copy)
my $connstr = $node->connstr('push_app');
($rc, $out, $err) = run_push($edited, $connstr);
is($rc, 0, 'conninfo string: exit status 0') or diag($err);
like($out, qr/12 unchanged$/, 'conninfo string: reaches push_app');

# PG* environment variables only
{
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'push_app';
	($rc, $out, $err) = run_push($edited);
	is($rc, 0, 'PG* variables: exit status 0') or diag($err);
	like($out, qr/12 unchanged$/, 'PG* variables: reach push_app');
}

($rc, $out, $err) = run_push('--help');
is($rc, 0, '--help: exit status 0');
like($out, qr/Usage:/, '--help: usage');
($rc, $out, $err) = run_push($app, '-c', 'SELECT 1');
is($rc, 2, 'an option psql would run something with is refused (exit 2)');
($rc, $out, $err) = run_push();
is($rc, 2, 'no folder: exit 2');
like($err, qr/no migration folder given/, 'no folder: says so');

#---- Privileges: what tenant_migrate_grant gives is what a push needs ----

$node->safe_psql('push_dry', 'CREATE ROLE pusher LOGIN');
($rc, $out, $err) = run_push($app, @conn, '-d', 'push_dry', '-U', 'pusher');
isnt($rc, 0, 'a role without grants: refused');
like($err, qr/migration file "\Q$app\E\/shared\/0001_plans\.up\.sql": ERROR:  permission denied/,
	'a role without grants: the error names the file');
$node->safe_psql('push_dry', "SELECT tenant_migrate_grant('pusher')");
($rc, $out, $err) = run_push($app, @conn, '-d', 'push_dry', '-U', 'pusher');
is($rc, 0, 'after tenant_migrate_grant: exit status 0') or diag($err);
is($node->safe_psql('push_dry',
		"SELECT count(*) || ' ' || string_agg(DISTINCT registered_by, ',') FROM tenant_migration_scripts"),
	'12 pusher', 'after tenant_migrate_grant: registered by the role that pushed');

#---- Bad input: the file named, non-zero exit, nothing registered ----

# Folders made here for cases the fixtures do not have
my $bad = "$tmp/bad";
make_path("$bad/both_downs/0001_x", "$bad/unreadable", "$bad/link_out",
	"$bad/prisma_out/7001_x", "$bad/changed_then_bad");
append_to_file("$bad/both_downs/0001_x/$_", "SELECT 1;\n")
  for qw(migration.sql down.sql rollback.sql);
append_to_file("$bad/unreadable/0001_ok.sql", "SELECT 1;\n");
append_to_file("$bad/unreadable/0002_secret.sql", "SELECT 2;\n");
chmod(0000, "$bad/unreadable/0002_secret.sql") or die;
symlink('/etc/passwd', "$bad/link_out/7001_passwd.sql") or die;
symlink('/etc/passwd', "$bad/prisma_out/7001_x/migration.sql") or die;
append_to_file("$bad/not_a_folder.sql", "SELECT 1;\n");
# a copy of the app: 0005 and 0008 change back to the original, 0003 changes,
# then a version the server refuses
system('cp', '-R', $app, "$bad/changed_then_bad/m") == 0 or die 'cp failed';
append_to_file("$bad/changed_then_bad/m/0003_organizations_and_users.down.sql", "\n-- again\n");
append_to_file("$bad/changed_then_bad/m/9999_commit.sql", "SELECT 1;\nCOMMIT;\n");

my @bad = (
	[ "$fixtures/load/dup_version", qr/"0600_a\.sql" and "0600_b\.up\.sql" have the same version 0600/,
		'same version twice' ],
	[ "$fixtures/load/dup_shared", qr/"0610_c\.sql" and "shared\/610_b\/migration\.sql" have the same version/,
		'same version in shared/ and the top folder' ],
	[ "$fixtures/real/dup", qr/"20240101000000_a\/migration\.sql" and "20240101000000_b\/migration\.sql"/,
		'two Prisma folders with one version' ],
	[ "$fixtures/load/orphan_down", qr/down script "0701_lost\.down\.sql" has no up script/,
		'a down script without its up script' ],
	[ "$fixtures/load/bad_dbmate", qr/migration file "0800_no_up\.sql" has a "-- migrate:down" line but no "-- migrate:up" line/,
		'a dbmate file without an up section' ],
	[ "$bad/both_downs", qr/migration folder "0001_x" has both down\.sql and rollback\.sql/,
		'a Prisma folder with down.sql and rollback.sql' ],
	[ "$fixtures/load/bad_encoding", qr/invalid byte sequence for encoding "UTF8" in migration file "[^"]*\/0950_nul\.sql"/,
		'a NUL byte' ],
	[ "$fixtures/load/bad_utf8", qr/invalid byte sequence for encoding "UTF8" in migration file "[^"]*\/0960_latin1\.sql"\nDETAIL:  The first invalid byte is byte 17 of the file, on line 2\./,
		'a file that is not UTF-8' ],
	[ "$bad/link_out", qr/symbolic link "[^"]*\/link_out\/7001_passwd\.sql" leads outside the migration folder/,
		'a script linked to a file outside the folder' ],
	[ "$bad/prisma_out", qr/symbolic link "[^"]*\/prisma_out\/7001_x\/migration\.sql" leads outside/,
		'a Prisma migration.sql linked outside' ],
	[ "$fixtures/load/bad_sql", qr/migration file "[^"]*\/bad_sql\/0901_commit\.sql": ERROR:  COMMIT without a matching BEGIN is not allowed in a migration/,
		'a script the server refuses (0900 before it was new)' ],
	[ "$fixtures/load/long_version", qr/migration file "[^"]*\/1{64}_too_long\.sql": ERROR:  migration version is too long/,
		'a version the server refuses' ],
	[ "$bad/changed_then_bad/m", qr/migration file "[^"]*\/9999_commit\.sql": ERROR:  COMMIT without a matching BEGIN is not allowed/,
		'a refused script after a changed one' ],
	[ "$tmp/no_such_folder", qr/could not open migration folder "[^"]*\/no_such_folder": No such file or directory/,
		'a missing folder' ],
	[ "$bad/not_a_folder.sql", qr/could not open migration folder "[^"]*\/not_a_folder\.sql": Not a directory/,
		'a file instead of a folder' ],
);
# root reads any file: the unreadable case means something only for others
if ($> != 0)
{
	push @bad, [ "$bad/unreadable", qr/could not open migration file "[^"]*\/unreadable\/0002_secret\.sql": Permission denied/,
		'an unreadable file' ];
}
else
{
	diag('running as root: the unreadable file case is skipped');
}

$before = scripts_table('push_app');
for my $case (@bad)
{
	my ($dir, $message, $name) = @$case;
	($rc, $out, $err) = run_push($dir, @conn, '-d', 'push_app');
	is($rc, 1, "$name: exit status 1");
	like($err, $message, "$name: the error names the file");
	like($err, qr/nothing was registered$/, "$name: says nothing was registered");
	unlike($out, qr/\b(new|changed)\b/, "$name: reports nothing as registered");
	is(scripts_table('push_app'), $before, "$name: scripts table as before");
}

# The server-side loader refuses the same folders
for my $case (@bad)
{
	my ($dir, undef, $name) = @$case;
	next if $dir =~ /no_such_folder|not_a_folder|unreadable/;
	my ($lrc) = $node->psql('load_app', "SELECT tenant_migrations_load('$dir')");
	isnt($lrc, 0, "$name: tenant_migrations_load refuses it too");
}

$node->stop;
done_testing();

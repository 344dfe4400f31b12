# t/009_readme.pl
#
# README.md is the reference: every function, procedure, table and view of
# the installed extension (its pg_depend members) and every
# tenant_migrate.* setting (pg_settings once the library is loaded) must
# appear backquoted in a Reference or Settings section, and in an example
# (an indented or fenced code line) there.  New objects that nobody
# documented fail this test with their names.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $readme = slurp_file('README.md');

# The text of every section (## or ###, any depth) whose heading says
# Reference or Settings, up to the next heading of the same or a higher level
my $sections = '';
my @lines = split /\n/, $readme;
for (my $i = 0; $i < @lines; $i++)
{
	next unless $lines[$i] =~ /\A(#+)\s+.*\b(Reference|Settings)\b/;
	my $level = length($1);
	for (my $j = $i + 1; $j < @lines; $j++)
	{
		last if $lines[$j] =~ /\A(#+)\s/ && length($1) <= $level;
		$sections .= "$lines[$j]\n";
	}
}
cmp_ok(length($sections), '>', 1000, 'README.md has Reference and Settings sections');

# The code lines of those sections: indented by 4, or inside ``` fences
my $code = '';
my $fenced = 0;
for my $line (split /\n/, $sections)
{
	if ($line =~ /\A\s*```/)
	{
		$fenced = !$fenced;
		next;
	}
	$code .= "$line\n" if $fenced || $line =~ /\A(?: {4}|\t)/;
}

my $node = PostgreSQL::Test::Cluster->new('readme');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION tenant_migrate');

my @objects = split /\n/, $node->safe_psql('postgres', q{
SELECT DISTINCT CASE WHEN d.classid = 'pg_proc'::regclass
					 THEN (SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END
								  || ' ' || p.proname FROM pg_proc p WHERE p.oid = d.objid)
					 ELSE (SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'table' END
								  || ' ' || c.relname FROM pg_class c WHERE c.oid = d.objid)
				END
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND e.extname = 'tenant_migrate'
   AND (d.classid = 'pg_proc'::regclass
		OR (d.classid = 'pg_class'::regclass
			AND (SELECT c.relkind FROM pg_class c WHERE c.oid = d.objid) IN ('r', 'p', 'v', 'm')))
 ORDER BY 1
});
push @objects, map { "setting $_" } split /\n/, $node->safe_psql('postgres', q{
LOAD 'tenant_migrate';
SELECT name FROM pg_settings WHERE name LIKE 'tenant_migrate.%' ORDER BY name;
});
cmp_ok(scalar(grep { /^function / } @objects), '>=', 20, 'the extension has functions');
cmp_ok(scalar(grep { /^setting / } @objects), '>=', 5, 'the library has settings');

my (@undocumented, @no_example);
for my $object (@objects)
{
	my ($kind, $name) = split / /, $object, 2;
	# `name`, `name(args)`, `name ...`: the name, then no more of a name
	my $mention = qr/`\Q$name\E(?![A-Za-z0-9_.])[^`]*`/;
	push @undocumented, $object unless $sections =~ $mention;
	push @no_example, $object unless $code =~ /(?<![A-Za-z0-9_.])\Q$name\E(?![A-Za-z0-9_.])/;
}
is(join(', ', @undocumented), '',
	'every function, procedure, table, view and setting is in the README\'s reference');
is(join(', ', @no_example), '',
	'... each with an example');

$node->stop;
done_testing();

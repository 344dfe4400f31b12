# t/008_upgrade.pl
#
# Upgrading in place: install version 1.0, make tenants and history with
# the 1.0 functions (run by the 1.1 library, as after a package update),
# then ALTER EXTENSION tenant_migrate UPDATE.  Afterwards every object of
# the extension (all pg_depend members: functions with their definitions,
# tables with columns, constraints and indexes, views, sequences, ACLs,
# comments; no data) equals a fresh install, the history from before is
# kept, and the old tenants migrate, roll back and verify with the new
# functions.

use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');

# psql's error message for a statement expected to fail
sub error_of
{
	my ($db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql($db, $sql);
	return $rc == 0 ? "(no error)" : $err;
}

#---- Version 1.0, used through the 1.1 library ----

$node->safe_psql('upgraded', "CREATE EXTENSION tenant_migrate VERSION '1.0'");
is($node->safe_psql('upgraded',
		"SELECT extversion FROM pg_extension WHERE extname = 'tenant_migrate'"),
	'1.0', 'version 1.0 installed');

# Everything 1.0 has works on the 1.0 objects
$node->safe_psql('upgraded', q{
SELECT tenant_migration_add('1', 'items',
	$$CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL);$$,
	$$DROP TABLE public.items;$$);
SELECT tenant_migration_add('2', 'plans',
	$$CREATE TABLE public.plans (id int PRIMARY KEY);$$,
	$$DROP TABLE public.plans;$$, 'shared');
SELECT tenant_migration_add('3', 'item_price',
	$$ALTER TABLE public.items ADD COLUMN price numeric NOT NULL DEFAULT 0;$$,
	$$ALTER TABLE public.items DROP COLUMN price;$$);
});
is($node->safe_psql('upgraded',
		"SELECT create_tenant_schema('acme') || ',' || create_tenant_schema('globex')"),
	'tenant_acme,tenant_globex', '1.0: create_tenant_schema');
is($node->safe_psql('upgraded', 'SELECT count(*) FROM tenant_migrate_shared()'),
	1, '1.0: tenant_migrate_shared');
is($node->safe_psql('upgraded', q{SELECT string_agg(version, ',') FROM tenant_rollback('tenant_globex')}),
	'3', '1.0: tenant_rollback');
is($node->safe_psql('upgraded', q{SELECT string_agg(version, ',') FROM tenant_migration_plan('tenant_globex')}),
	'3', '1.0: tenant_migration_plan');
is($node->safe_psql('upgraded', q{SELECT string_agg(version, ',') FROM tenant_migrate('tenant_globex')}),
	'3', '1.0: tenant_migrate');
is($node->safe_psql('upgraded', q{SELECT string_agg(version, ',') FROM tenant_rollback('tenant_globex')}),
	'3', '1.0: tenant_rollback again (globex stays at 1)');
is($node->safe_psql('upgraded', q{DO $$ BEGIN PERFORM tenant_set('tenant_acme'); END $$; SHOW search_path}),
	'tenant_acme, public', '1.0: tenant_set');
is($node->safe_psql('upgraded',
		q{SELECT tenant_migration_rewrite('SELECT * FROM public.items', 'tenant_acme')}),
	'SELECT * FROM tenant_acme.items', '1.0: tenant_migration_rewrite');
is($node->safe_psql('upgraded',
		q{SELECT string_agg(tenant_schema || ':' || current_version || ':' || pending, ',' ORDER BY 1)
		    FROM tenant_migration_status()}),
	'tenant_acme:3:0,tenant_globex:1:1', '1.0: tenant_migration_status');
is($node->safe_psql('upgraded', q{SELECT tenants || ' ' || behind FROM tenant_migration_overview}),
	'2 1', '1.0: the 1.0 overview');

# A fleet run works on 1.0 or says to update; either way it leaves nothing
# half done
my $fleet = error_of('upgraded', "CALL tenant_migrate_all(tenants => ARRAY['tenant_acme'])");
ok($fleet eq '(no error)' || $fleet =~ /extension "tenant_migrate" must be updated/,
	'1.0: tenant_migrate_all works or says to update') or diag($fleet);

# What only 1.1 has is not there yet
like(error_of('upgraded', 'SELECT * FROM tenant_verify()'),
	qr/function tenant_verify\(\) does not exist/, '1.0: tenant_verify does not exist yet');

# A query of the library that needs what the update adds says to update.
# Simulated here by hiding a table the 1.0 install has, as an update adds
# a table the library reads; nothing is written.
my $err = error_of('upgraded', q{
BEGIN;
ALTER TABLE tenant_migration_log RENAME TO hidden_log;
SELECT * FROM tenant_migrate('tenant_globex');
});
like($err, qr/ERROR:  extension "tenant_migrate" must be updated\nDETAIL:  The database has version 1\.0 of the extension's SQL objects, the installed library is version 1\.1, and this function needs what the update adds \(relation "public\.tenant_migration_log" does not exist\)\.\nHINT:  Run ALTER EXTENSION tenant_migrate UPDATE\./,
	'1.0: a missing object: "must be updated", with the hint');
# A library older than the SQL objects is refused outright
like(error_of('upgraded', q{
BEGIN;
UPDATE pg_extension SET extversion = '1.2' WHERE extname = 'tenant_migrate';
SELECT * FROM tenant_migration_status();
}),
	qr/extension "tenant_migrate" version 1\.2 does not match its library\nDETAIL:  The installed library is version 1\.1, older than the database's SQL objects\./,
	'SQL objects newer than the library: refused');

my %before;
for my $t (qw(tenant_registry tenant_migration_scripts tenant_migrations tenant_migration_log))
{
	# every row as JSON: the update may add columns, never change a value
	$before{$t} = $node->safe_psql('upgraded',
		"SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') FROM $t t");
}
my $max_log = $node->safe_psql('upgraded', 'SELECT max(id) FROM tenant_migration_log');
cmp_ok($max_log, '>=', 6, "1.0 history has $max_log log rows");

#---- The update ----

$node->safe_psql('upgraded', 'ALTER EXTENSION tenant_migrate UPDATE');
is($node->safe_psql('upgraded',
		"SELECT extversion FROM pg_extension WHERE extname = 'tenant_migrate'"),
	'1.1', 'updated to 1.1');
$node->safe_psql('fresh', 'CREATE EXTENSION tenant_migrate');

# Every member of the extension, described without OIDs or data
my $describe = q{
WITH members AS (
	SELECT d.classid, d.objid, d.objsubid
	  FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
	 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
	   AND e.extname = 'tenant_migrate'),
rels AS (
	SELECT c.* FROM members m JOIN pg_class c
	    ON m.classid = 'pg_class'::regclass AND c.oid = m.objid)
SELECT line FROM (
	SELECT 'member ' || pg_describe_object(classid, objid, objsubid) AS line FROM members
	UNION ALL
	SELECT 'routine ' || p.oid::regprocedure || E'\n' || pg_get_functiondef(p.oid)
		   || E'\nacl ' || coalesce(p.proacl::text, 'default')
		   || E'\nowner ' || p.proowner::regrole
		   || E'\ncomment ' || coalesce(obj_description(p.oid, 'pg_proc'), '<none>')
	  FROM members m JOIN pg_proc p ON m.classid = 'pg_proc'::regclass AND p.oid = m.objid
	UNION ALL
	SELECT 'relation ' || c.oid::regclass || ' kind ' || c.relkind::text
		   || ' acl ' || coalesce(c.relacl::text, 'default') || ' owner ' || c.relowner::regrole
		   || ' rls ' || c.relrowsecurity || '/' || c.relforcerowsecurity
		   || ' persistence ' || c.relpersistence::text || ' options ' || coalesce(c.reloptions::text, '')
		   || ' comment ' || coalesce(obj_description(c.oid, 'pg_class'), '<none>')
	  FROM rels c
	UNION ALL
	SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' #' || a.attnum
		   || ' ' || format_type(a.atttypid, a.atttypmod)
		   || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
		   || ' identity "' || a.attidentity::text || '" generated "' || a.attgenerated::text || '"'
		   || ' default ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '<none>')
		   || ' collation ' || coalesce(a.attcollation::regcollation::text, '-')
		   || ' acl ' || coalesce(a.attacl::text, 'default')
		   || ' comment ' || coalesce(col_description(a.attrelid, a.attnum), '<none>')
	  FROM rels c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	UNION ALL
	SELECT 'constraint ' || con.conrelid::regclass || ' ' || con.conname || ' '
		   || pg_get_constraintdef(con.oid) || ' validated ' || con.convalidated
		   || ' comment ' || coalesce(obj_description(con.oid, 'pg_constraint'), '<none>')
	  FROM rels c JOIN pg_constraint con ON con.conrelid = c.oid
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid)
		   || ' comment ' || coalesce(obj_description(i.indexrelid, 'pg_class'), '<none>')
	  FROM rels c JOIN pg_index i ON i.indrelid = c.oid
	UNION ALL
	SELECT 'view ' || c.oid::regclass || E'\n' || pg_get_viewdef(c.oid) FROM rels c WHERE c.relkind IN ('v', 'm')
	UNION ALL
	SELECT 'sequence ' || s.seqrelid::regclass || ' ' || format_type(s.seqtypid, NULL)
		   || ' start ' || s.seqstart || ' increment ' || s.seqincrement || ' min ' || s.seqmin
		   || ' max ' || s.seqmax || ' cache ' || s.seqcache || ' cycle ' || s.seqcycle
	  FROM rels c JOIN pg_sequence s ON s.seqrelid = c.oid
	UNION ALL
	SELECT 'dependency ' || pg_describe_object(d.classid, d.objid, d.objsubid) || ' on '
		   || pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid) || ' ' || d.deptype::text
	  FROM rels c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
	 WHERE d.deptype IN ('a', 'i') AND d.refclassid = 'pg_class'::regclass
	UNION ALL
	SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM rels c JOIN pg_trigger t ON t.tgrelid = c.oid AND NOT t.tgisinternal
	UNION ALL
	SELECT 'policy ' || pol.polrelid::regclass || ' ' || pol.polname || ' ' || pol.polcmd::text || ' '
		   || pol.polpermissive || ' ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '')
		   || ' ' || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '')
	  FROM rels c JOIN pg_policy pol ON pol.polrelid = c.oid
	UNION ALL
	SELECT 'rule ' || pg_get_ruledef(r.oid) FROM rels c JOIN pg_rewrite r ON r.ev_class = c.oid AND r.rulename <> '_RETURN'
	UNION ALL
	SELECT 'other ' || pg_describe_object(m.classid, m.objid, m.objsubid)
		   || ' comment ' || coalesce(obj_description(m.objid, m.classid::regclass::text), '<none>')
	  FROM members m WHERE m.classid NOT IN ('pg_proc'::regclass, 'pg_class'::regclass)
	UNION ALL
	SELECT 'extension ' || e.extname || ' ' || e.extversion || ' schema ' || e.extnamespace::regnamespace
		   || ' relocatable ' || e.extrelocatable || ' owner ' || e.extowner::regrole
		   || ' config ' || coalesce((SELECT string_agg(u.x::regclass::text || ':' || coalesce(e.extcondition[u.i], ''), ', '
											  ORDER BY u.x::regclass::text)
									 FROM unnest(e.extconfig) WITH ORDINALITY AS u (x, i)), '')
		   || ' comment ' || coalesce(obj_description(e.oid, 'pg_extension'), '<none>')
	  FROM pg_extension e WHERE e.extname = 'tenant_migrate'
) x ORDER BY line COLLATE "C";
};

my $upgraded = $node->safe_psql('upgraded', $describe);
my $fresh = $node->safe_psql('fresh', $describe);
is($upgraded, $fresh, 'updated objects, privileges and comments equal a fresh install');
my $nroutines = () = $fresh =~ /^routine /mg;
my $nrelations = () = $fresh =~ /^relation /mg;
my $ncomments = () = $fresh =~ /^comment (?!<none>)/mg;
cmp_ok($nroutines, '>=', 20, "the comparison covers $nroutines functions and procedures");
cmp_ok($nrelations, '>=', 6, "... $nrelations tables, views and sequences");
like($fresh, qr/^constraint tenant_registry tenant_registry_schema_name_check /m,
	'... constraints the update adds');
like($fresh, qr/^index CREATE INDEX tenant_migrations_version_idx /m, '... indexes');
like($fresh, qr/^extension tenant_migrate 1\.1 schema public .* config tenant_migration_log:/m,
	'... the extension row with its configuration tables');
# The comparison sees a difference of one comment or one grant
my $changed = $node->safe_psql('fresh', "BEGIN;\nCOMMENT ON FUNCTION tenant_verify(text) IS 'x';\n$describe\nROLLBACK;");
isnt($changed, $fresh, 'a changed comment would be seen');
$node->safe_psql('fresh', 'CREATE ROLE someone');
$changed = $node->safe_psql('fresh', "BEGIN;\nGRANT SELECT ON tenant_migrations TO someone;\n$describe\nROLLBACK;");
isnt($changed, $fresh, 'a changed privilege would be seen');

#---- The history from before is kept, and the old tenants go on ----

for my $t (qw(tenant_registry tenant_migration_scripts tenant_migrations tenant_migration_log))
{
	(my $rows = $before{$t}) =~ s/'/''/g;
	is( $node->safe_psql(
			'upgraded', qq{
SELECT (SELECT count(*) FROM $t) = jsonb_array_length(b)
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(b) r
                        WHERE NOT EXISTS (SELECT 1 FROM $t t WHERE to_jsonb(t) @> r))
  FROM (SELECT '$rows'::jsonb AS b) x}),
		't', "$t: every row from before the update, unchanged (new columns aside)");
}

is($node->safe_psql('upgraded', 'SELECT count(*) FROM tenant_verify()'),
	0, 'tenant_verify() finds nothing wrong with tenants made under 1.0');

$node->safe_psql('upgraded', q{
SELECT tenant_migration_add('4', 'item_tags',
	$$CREATE TABLE public.item_tags (item_id int REFERENCES public.items (id), tag text);$$,
	$$DROP TABLE public.item_tags;$$);
});
is($node->safe_psql('upgraded', q{SELECT string_agg(version, ',') FROM tenant_migrate('tenant_acme')}),
	'4', 'an old tenant migrates');
$node->safe_psql('upgraded', 'SET client_min_messages = warning; CALL tenant_migrate_all()');
is($node->safe_psql('upgraded',
		q{SELECT string_agg(tenant_schema || ':' || current_version, ',' ORDER BY 1) FROM tenant_migration_status()}),
	'tenant_acme:4,tenant_globex:4', 'a fleet run brings every old tenant to 4');
is($node->safe_psql('upgraded', q{SELECT string_agg(version, ',' ORDER BY version) FROM tenant_rollback('tenant_acme', '1')}),
	'3,4', 'an old tenant rolls back');
is($node->safe_psql('upgraded', q{SELECT string_agg(version, ',') FROM tenant_migrate('tenant_acme')}),
	'3,4', '... and migrates again');
is($node->safe_psql('upgraded', 'SELECT count(*) FROM tenant_verify()'),
	0, 'tenant_verify() returns no rows afterwards');
is($node->safe_psql('upgraded', q{SELECT tenant_archive('tenant_globex'); SELECT archived FROM tenant_migration_overview}),
	"tenant_globex\n1", 'the new functions and the new overview work on old tenants');
is($node->safe_psql('upgraded', "SELECT count(*) FROM tenant_migration_log WHERE id <= $max_log"),
	$max_log, 'log rows from before the update are kept');

$node->stop;
done_testing();

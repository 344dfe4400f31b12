--
-- tenant_migration_rewrite() on a few thousand generated scripts: statement
-- templates filled from a pool of tokens (every spelling of public, quoted
-- identifiers, literals of each kind, regclass casts, function and DO
-- bodies in every quoting, keywords), token soup, random characters and
-- unbalanced quotes.  Seeded, so every run sees the same scripts.
--
-- What must hold for every input:
--  (a) the server survives (the test finishing shows it);
--  (b) an error is a clean one: never class XX (internal error, data
--      corrupted, index corrupted);
--  (c) without "public" in any case, the output is the input, byte for byte;
--  (d) rewriting the output again for the same tenant changes nothing.
-- A failing input is shown in a WARNING.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set setup :abs_srcdir '/test/setup.sql'
\i :setup

-- A random element of a
CREATE FUNCTION pg_temp.pick(a text[]) RETURNS text LANGUAGE sql AS
$$ SELECT a[1 + floor(random() * array_length(a, 1))::int] $$;

-- 1 to n random characters: ASCII controls and punctuation, multibyte
CREATE FUNCTION pg_temp.noise(n int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	s text := '';
BEGIN
	FOR i IN 1..1 + floor(random() * n)::int LOOP
		IF random() < 0.8 THEN
			s := s || chr(1 + floor(random() * 126)::int);
		ELSE
			s := s || pg_temp.pick(ARRAY[chr(233), chr(8364), chr(128512), chr(65279), chr(223)]);
		END IF;
	END LOOP;
	RETURN s;
END $f$;

-- text as a string literal of a random kind (some left unbalanced)
CREATE FUNCTION pg_temp.literal(v text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	k float8 := random();
BEGIN
	IF k < 0.45 THEN
		RETURN '''' || replace(v, '''', '''''') || '''';
	ELSIF k < 0.6 THEN
		RETURN 'E''' || replace(replace(v, '\', '\\'), '''', '''''') || '''';
	ELSIF k < 0.7 THEN
		RETURN 'U&''' || replace(replace(v, '\', '\\'), '''', '''''') || '''';
	ELSIF k < 0.8 THEN
		RETURN '$$' || v || '$$';
	ELSIF k < 0.9 THEN
		RETURN '$q$' || v || '$q$';
	ELSIF k < 0.95 THEN
		RETURN 'E''' || replace(v, '''', '\''') || '''';
	ELSE
		RETURN '''' || v;		-- unbalanced
	END IF;
END $f$;

-- One generated statement; bodies nest up to depth 2
CREATE FUNCTION pg_temp.stmt(depth int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	templates text[] := ARRAY[
		'SELECT * FROM @S . @I',
		'SELECT nextval ( @L ::regclass ) , @L :: regclass , @L , @L ::text',
		'CREATE TABLE @S . @I ( id int DEFAULT nextval ( @L ) , v @S . @I )',
		'GRANT USAGE ON SCHEMA @S , @S , @S TO PUBLIC',
		'DROP SCHEMA IF EXISTS @S CASCADE',
		'CREATE FUNCTION @S . f ( ) RETURNS int LANGUAGE @G AS @B',
		'CREATE OR REPLACE PROCEDURE p ( ) AS @B LANGUAGE @G',
		'DO @B',
		'DO LANGUAGE plpgsql @B',
		'CREATE FUNCTION f ( ) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 FROM @S . @I ; SELECT CASE WHEN true THEN 1 END ; END',
		'ALTER TABLE @S . @I SET SCHEMA @S',
		'COMMENT ON TABLE @S . @I IS @L',
		'CREATE FUNCTION f ( ) RETURNS int LANGUAGE sql SET search_path = @S , pg_temp AS @B',
		'SELECT @L :: @S . @I , CAST ( @L AS regclass ) , to_regclass ( @L )',
		'CREATE INDEX i ON @S . @I USING gin ( c @S . gin_trgm_ops )',
		'INSERT INTO @S . @I VALUES ( @L , @L ) RETURNING *',
		'BEGIN @K @S . @I END',
		'@K @K @S @K @I @L @K @X @S . @I @K',
		'@S @K @L @S @X @B @K @S'];
	schemas text[] := ARRAY['public', '"public"', 'PUBLIC', 'Public', 'pUbLiC',
		'"Public"', 'tenant_y', '"tenant_AbC"', 'publicx', 'U&"public"',
		'"pub""lic"', '"public"."public"', 'public.public'];
	idents text[] := ARRAY['t', 'users', '"T x"', '"weird""q"', 'tenant_registry',
		'id_seq', 'f ( )', chr(233) || 't', 'x$1', '"public"', 'public', '*'];
	keywords text[] := ARRAY['SELECT', 'FROM', 'SCHEMA', 'ON', 'TO', 'PUBLIC', 'CASCADE',
		'IF', 'NOT', 'EXISTS', 'AS', 'LANGUAGE', 'sql', 'plpgsql', 'BEGIN', 'END',
		'ATOMIC', 'CASE', 'DO', 'CREATE', 'FUNCTION', '::', 'regclass', '(', ')', ',',
		';', '.', '=', 'E''', '''', '$$', '"', '/*', '*/', '--', E'\n', 'nextval',
		'set_config', 'SET', 'search_path', 'UESCAPE', '\', 'U&', '$1', 'INTO',
		'IMPORT', 'FOREIGN', 'EXTENSION', 'OPERATOR', 'SESSION', 'LOCAL', 'THEN'];
	parts text[];
	p text;
	near_schema bool := false;
	s text := '';
BEGIN
	parts := string_to_array(pg_temp.pick(templates), ' ');
	FOREACH p IN ARRAY parts LOOP
		-- a blank between parts; next to a schema often none, so that it
		-- touches its neighbours (FROM"public".t), or a comment
		IF near_schema OR p = '@S' THEN
			s := s || pg_temp.pick(ARRAY[' ', '', '', E'\n', '/* public.c */']);
		ELSE
			s := s || pg_temp.pick(ARRAY[' ', ' ', ' ', ' ', E'\n', '/* public.c */', E'--public\n']);
		END IF;
		near_schema := (p = '@S');
		p := CASE p
			WHEN '@S' THEN pg_temp.pick(schemas)
			WHEN '@I' THEN pg_temp.pick(idents)
			WHEN '@K' THEN pg_temp.pick(keywords)
			WHEN '@X' THEN pg_temp.noise(4)
			WHEN '@G' THEN pg_temp.pick(ARRAY['sql', 'plpgsql', 'SQL', 'plpython3u', '''sql'''])
			WHEN '@L' THEN pg_temp.literal(pg_temp.pick(schemas) ||
						   pg_temp.pick(ARRAY['.', '', ' . ', '.', '.']) || pg_temp.pick(idents))
			WHEN '@B' THEN CASE WHEN depth < 2
						   THEN pg_temp.literal(pg_temp.script(depth + 1))
						   ELSE pg_temp.literal('SELECT 1 FROM public.t') END
			ELSE p END;
		s := s || p;
	END LOOP;
	RETURN s;
END $f$;

-- One to three statements, sometimes mutated at a random place
CREATE FUNCTION pg_temp.script(depth int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	s text := pg_temp.stmt(depth);
	pos int;
BEGIN
	FOR i IN 2..1 + floor(random() * 3)::int LOOP
		s := s || ';' || pg_temp.pick(ARRAY[' ', E'\n', '']) || pg_temp.stmt(depth);
	END LOOP;
	IF depth = 0 AND random() < 0.25 THEN
		pos := floor(random() * (length(s) + 1))::int;
		IF random() < 0.5 THEN
			s := overlay(s PLACING pg_temp.noise(3) FROM pos + 1 FOR 0);
		ELSE
			s := overlay(s PLACING '' FROM pos + 1 FOR 1 + floor(random() * 3)::int);
		END IF;
	END IF;
	RETURN s;
END $f$;

CREATE FUNCTION pg_temp.fuzz(n int)
RETURNS TABLE(inputs int, internal_errors int, identity_failures int,
			  idempotence_failures int, rewritten int, refused int)
LANGUAGE plpgsql AS $f$
DECLARE
	tenants text[] := ARRAY['tenant_x', 'tenant_AbC', 'o''brien\x'];
	tenant text;
	src text;
	out1 text;
	out2 text;
	st text;
	msg text;
BEGIN
	inputs := 0; internal_errors := 0; identity_failures := 0;
	idempotence_failures := 0; rewritten := 0; refused := 0;
	FOR i IN 1..n LOOP
		src := pg_temp.script(0);
		tenant := tenants[1 + i % 3];
		inputs := inputs + 1;
		BEGIN
			out1 := tenant_migration_rewrite(src, tenant);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			refused := refused + 1;
			IF st LIKE 'XX%' THEN
				internal_errors := internal_errors + 1;
				RAISE WARNING 'internal error % (%) for %: %', st, msg, tenant, src;
			END IF;
			CONTINUE;
		END;
		IF src !~* 'public' THEN
			IF out1 IS DISTINCT FROM src THEN
				identity_failures := identity_failures + 1;
				RAISE WARNING 'changed without public for %: % -> %', tenant, src, out1;
			END IF;
			CONTINUE;
		END IF;
		IF out1 <> src THEN
			rewritten := rewritten + 1;
		END IF;
		BEGIN
			out2 := tenant_migration_rewrite(out1, tenant);
		EXCEPTION WHEN OTHERS THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			out2 := NULL;
			RAISE WARNING 'second rewrite failed % (%) for %: % -> %', st, msg, tenant, src, out1;
		END;
		IF out2 IS DISTINCT FROM out1 THEN
			idempotence_failures := idempotence_failures + 1;
			IF out2 IS NOT NULL THEN
				RAISE WARNING 'not idempotent for %: % -> % -> %', tenant, src, out1, out2;
			END IF;
		END IF;
	END LOOP;
	RETURN NEXT;
END $f$;

-- Quiet: the lexer's NOTICEs about long identifiers are not the point
SET client_min_messages = warning;
SELECT setseed(0.20240611);
SELECT inputs, internal_errors, identity_failures, idempotence_failures,
	   rewritten > inputs / 10 AS many_rewritten,
	   refused > inputs / 10 AS many_refused,
	   inputs - refused > inputs / 4 AS many_accepted
  FROM pg_temp.fuzz(4000);
RESET client_min_messages;

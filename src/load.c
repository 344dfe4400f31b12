/*-------------------------------------------------------------------------
 *
 * src/load.c
 *		tenant_migrations_load(): registers every migration script found in
 *		a folder on the database server.
 *
 * Three layouts are understood, and may be mixed in one folder:
 *
 *	VERSION_name.up.sql (+ VERSION_name.down.sql)	golang-migrate style
 *	VERSION_name.sql with "-- migrate:up" / "-- migrate:down" lines	dbmate
 *	VERSION_name/migration.sql (+ down.sql or rollback.sql)	Prisma
 *
 * Scripts in a "shared" subfolder (same layouts) get scope shared, the rest
 * scope tenant.  The folder tree is scanned first and checked as a whole
 * (duplicate versions, down scripts without an up script), then the scripts
 * are registered in version order with tm_script_register().  Everything
 * happens in the caller's transaction, so any error registers nothing.
 *
 * File contents are read only when their script is registered, one file at
 * a time in a memory context reset after each script, so a large folder
 * never needs all its scripts in memory at once.
 *
 * Symbolic links are followed only while they stay inside the folder: a
 * script file or a folder that is read (shared/, a Prisma folder) must
 * resolve, with realpath(), to a path under the folder's own real path.
 * Otherwise anyone who can write to the migration folder could have a
 * server file (one the caller may not even mean to read) registered as a
 * script, or quoted in an error.  For the same reason errors about a file
 * name the file and a position, never its contents.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tenant_migrate.h"

#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_authid_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(tenant_migrations_load);

/* Larger files are refused: no sane migration is that big. */
#define LOAD_MAX_FILE_SIZE	(64 * 1024 * 1024)
#define LOAD_READ_CHUNK		65536

#define LOAD_SHARED_FOLDER	"shared"
#define LOAD_PRISMA_UP		"migration.sql"
#define LOAD_PRISMA_DOWN	"down.sql"
#define LOAD_PRISMA_ROLLBACK	"rollback.sql"

typedef enum LoadLayout
{
	LOAD_UP_DOWN,				/* VERSION_name.up.sql (+ .down.sql) */
	LOAD_DBMATE,				/* VERSION_name.sql, maybe with sections */
	LOAD_PRISMA					/* VERSION_name/migration.sql (+ down.sql) */
} LoadLayout;

/* One script found in the folder; contents are read when it is registered */
typedef struct LoadScript
{
	char	   *version;		/* must stay first, see load_script_cmp() */
	char	   *name;
	const char *scope;			/* TM_SCOPE_TENANT or TM_SCOPE_SHARED */
	LoadLayout	layout;
	char	   *file;			/* up script, relative to the folder */
	char	   *down_file;		/* down script, relative, or NULL */
	int			seq;			/* discovery order, breaks ties */
} LoadScript;

typedef struct LoadState
{
	const char *root;			/* the folder, as given but canonicalized */
	char	   *root_real;		/* its realpath() with a trailing '/' */
	LoadScript *scripts;
	int			nscripts;
	int			maxscripts;
} LoadState;

/* What the error context callback shows */
typedef struct LoadErrorContext
{
	const char *path;			/* file being read or registered, or NULL */
} LoadErrorContext;

/* Sections of a dbmate file */
typedef enum DbmateMarker
{
	DBMATE_NONE,
	DBMATE_UP,
	DBMATE_DOWN
} DbmateMarker;

/*---- Local functions ----*/

static void load_check_privileges(void);
static void load_check_folder(const char *root);
static char *load_root_realpath(const char *root);
static void load_check_inside(LoadState *state, const char *path);
static int	load_folder_hint(const char *root, int save_errno);
static char *load_path_join(const char *dir, const char *name);
static bool load_has_suffix(const char *name, const char *suffix);
static char **load_read_names(const char *path, int *nnames);
static void load_scan_folder(LoadState *state, const char *rel,
							 const char *scope, bool top);
static bool load_is_regular_file(const char *path);
static bool load_parse_name(const char *stem, char **version, char **name);
static void load_warn_no_version(const char *rel);
static LoadScript *load_add_script(LoadState *state, const char *stem,
								   const char *scope, LoadLayout layout,
								   const char *file);
static int	load_script_cmp(const void *a, const void *b);
static void load_check_duplicates(LoadState *state);
static char *load_read_file(LoadState *state, const char *path);
static DbmateMarker load_dbmate_marker(const char *line, const char *end);
static void load_split_dbmate(const char *text, const char *rel,
							  char **up_sql, char **down_sql);
static bool load_is_blank(const char *s);
static void load_error_callback(void *arg);

/*
 * tenant_migrations_load(directory text) RETURNS integer
 *
 * Registers every script of a migration folder; returns how many were new
 * or changed.
 */
Datum
tenant_migrations_load(PG_FUNCTION_ARGS)
{
	char	   *root = text_to_cstring(PG_GETARG_TEXT_PP(0));
	LoadState	state;
	LoadErrorContext errctx;
	ErrorContextCallback errcallback;
	MemoryContext scriptcxt;
	int			count = 0;
	int			i;

	/* Before looking at the path, so nothing about the file system leaks */
	load_check_privileges();

	if (root[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("migration folder path must not be empty"),
				 errhint("Pass the absolute path of the folder that holds the migration files.")));

	/*
	 * A relative path resolves against the server's working directory, which
	 * is the data directory, as for pg_read_file().
	 */
	canonicalize_path(root);
	load_check_folder(root);

	memset(&state, 0, sizeof(state));
	state.root = root;
	state.root_real = load_root_realpath(root);
	load_scan_folder(&state, "", TM_SCOPE_TENANT, true);

	if (state.nscripts > 1)
		qsort(state.scripts, state.nscripts, sizeof(LoadScript),
			  load_script_cmp);
	load_check_duplicates(&state);

	/* Created before SPI_connect so it is not a child of SPI's context */
	scriptcxt = AllocSetContextCreate(CurrentMemoryContext,
									  "tenant_migrations_load script",
									  ALLOCSET_DEFAULT_SIZES);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	errctx.path = NULL;
	errcallback.callback = load_error_callback;
	errcallback.arg = &errctx;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	for (i = 0; i < state.nscripts; i++)
	{
		LoadScript *script = &state.scripts[i];
		MemoryContext oldcxt;
		char	   *up_path;
		char	   *text;
		char	   *up_sql;
		char	   *down_sql = NULL;
		char	   *checksum = NULL;
		TmRegisterResult result;

		CHECK_FOR_INTERRUPTS();

		oldcxt = MemoryContextSwitchTo(scriptcxt);

		up_path = load_path_join(root, script->file);
		errctx.path = up_path;
		text = load_read_file(&state, up_path);
		if (script->layout == LOAD_DBMATE)
			load_split_dbmate(text, script->file, &up_sql, &down_sql);
		else
			up_sql = text;

		if (script->down_file != NULL)
		{
			errctx.path = load_path_join(root, script->down_file);
			down_sql = load_read_file(&state, errctx.path);
			errctx.path = up_path;
		}

		/*
		 * An empty down section (dbmate writes one in every new file) means
		 * the migration cannot be reverted; registering it as a no-op would
		 * let a rollback "succeed" without undoing anything.
		 */
		if (down_sql != NULL && load_is_blank(down_sql))
			down_sql = NULL;

		result = tm_script_register(script->version, script->name,
									up_sql, down_sql, script->scope,
									NIL, &checksum);
		if (result == TM_SCRIPT_NEW || result == TM_SCRIPT_CHANGED)
		{
			count++;
			ereport(DEBUG1,
					(errmsg_internal("%s migration %s (%s) from \"%s\"",
									 result == TM_SCRIPT_NEW ? "registered" : "updated",
									 script->version, script->name,
									 script->file)));
		}

		errctx.path = NULL;
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(scriptcxt);
	}

	error_context_stack = errcallback.previous;

	SPI_finish();
	MemoryContextDelete(scriptcxt);

	PG_RETURN_INT32(count);
}

/*
 * Reading any file the server can read is what pg_read_server_files grants;
 * superusers have the privileges of every role.
 */
static void
load_check_privileges(void)
{
	if (!has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to load migration files from the server"),
				 errdetail("Only superusers and roles with the privileges of the \"pg_read_server_files\" role may read folders on the server."),
				 errhint("Ask a superuser to grant \"pg_read_server_files\", or register each script with tenant_migration_add().")));
}

/* ERROR with a hint unless root is a directory the server can open */
static void
load_check_folder(const char *root)
{
	struct stat st;
	DIR		   *dir;
	int			save_errno;

	if (stat(root, &st) != 0)
	{
		save_errno = errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open migration folder \"%s\": %m", root),
				 load_folder_hint(root, save_errno)));
	}

	if (!S_ISDIR(st.st_mode))
	{
		/* errcode_for_file_access() maps ENOTDIR to wrong_object_type */
		errno = ENOTDIR;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open migration folder \"%s\": %m", root),
				 load_folder_hint(root, ENOTDIR)));
	}

	/* stat() succeeds on a folder the server may not list */
	dir = AllocateDir(root);
	if (dir == NULL)
	{
		save_errno = errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open migration folder \"%s\": %m", root),
				 load_folder_hint(root, save_errno)));
	}
	FreeDir(dir);
}

/*
 * The real path of the folder (symbolic links resolved), with one trailing
 * '/', so that a prefix match means "inside it": /srv/m/ is no prefix of
 * /srv/m2/x.
 */
static char *
load_root_realpath(const char *root)
{
	char	   *real;
	char	   *result;

	real = realpath(root, NULL);
	if (real == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve migration folder \"%s\": %m", root)));
	if (real[strlen(real) - 1] == '/')
		result = pstrdup(real);		/* the root directory */
	else
		result = psprintf("%s/", real);
	free(real);
	return result;
}

/*
 * ERROR unless path, a file or folder the loader is about to read, resolves
 * to something inside the folder being loaded.  The error names the path
 * as found in the folder, not where it leads, and nothing of what is there.
 */
static void
load_check_inside(LoadState *state, const char *path)
{
	char	   *real;
	bool		inside;

	real = realpath(path, NULL);
	if (real == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve migration file \"%s\": %m", path)));
	inside = strncmp(real, state->root_real, strlen(state->root_real)) == 0;
	free(real);

	if (!inside)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("symbolic link \"%s\" leads outside the migration folder", path),
				 errdetail("Files and folders reached through a symbolic link must lie inside the folder being loaded."),
				 errhint("Copy the file or folder into the migration folder instead of linking to it.")));
}

/* The hint for a folder that cannot be opened, by cause */
static int
load_folder_hint(const char *root, int save_errno)
{
	switch (save_errno)
	{
		case ENOENT:
			if (!is_absolute_path(root))
				return errhint("A relative path is taken relative to the data directory; pass the absolute path of the migration folder.");
			return errhint("The folder is read by the database server, so it must exist on the server's machine, not only on the client's.");
		case EACCES:
		case EPERM:
			return errhint("The operating system user that runs the database server must be able to read the folder.");
		case ENOTDIR:
			return errhint("Pass the folder that holds the migration files, not a file.");
		default:
			return errhint("Check that the folder exists and is readable by the database server.");
	}
}

/* dir/name; an empty dir gives name itself */
static char *
load_path_join(const char *dir, const char *name)
{
	size_t		len = strlen(dir);

	if (len == 0)
		return pstrdup(name);
	if (dir[len - 1] == '/')
		return psprintf("%s%s", dir, name);
	return psprintf("%s/%s", dir, name);
}

/* true if name ends with suffix and has something before it */
static bool
load_has_suffix(const char *name, const char *suffix)
{
	size_t		nlen = strlen(name);
	size_t		slen = strlen(suffix);

	return nlen > slen && strcmp(name + nlen - slen, suffix) == 0;
}

/*
 * The entries of a folder, without "." and ".." and hidden files (editor
 * swap files, .git), sorted bytewise so that nothing depends on the order
 * readdir() returns them in.
 */
static char **
load_read_names(const char *path, int *nnames)
{
	DIR		   *dir;
	struct dirent *de;
	char	  **names;
	int			n = 0;
	int			max = 64;

	names = palloc(max * sizeof(char *));

	dir = AllocateDir(path);
	while ((de = ReadDir(dir, path)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();

		if (de->d_name[0] == '.')
			continue;
		if (n >= max)
		{
			max *= 2;
			names = repalloc(names, max * sizeof(char *));
		}
		names[n++] = pstrdup(de->d_name);
	}
	FreeDir(dir);

	if (n > 1)
		qsort(names, n, sizeof(char *), pg_qsort_strcmp);

	*nnames = n;
	return names;
}

static bool
load_is_regular_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Adds the scripts of one folder (rel is relative to the loaded folder, ""
 * for the folder itself) to state.  Only the top folder looks into
 * "shared"; nothing deeper than a Prisma migration folder is read.
 */
static void
load_scan_folder(LoadState *state, const char *rel, const char *scope,
				 bool top)
{
	char	   *path = load_path_join(state->root, rel);
	char	  **names;
	int			nnames;
	int		   *up_script;		/* per name: index of its .up.sql script */
	int		   *downs;			/* indexes of the .down.sql names to pair */
	int			ndowns = 0;
	int			i;

	names = load_read_names(path, &nnames);
	up_script = palloc(Max(nnames, 1) * sizeof(int));
	downs = palloc(Max(nnames, 1) * sizeof(int));

	for (i = 0; i < nnames; i++)
	{
		const char *fname = names[i];
		char	   *full = load_path_join(path, fname);
		char	   *frel = load_path_join(rel, fname);
		struct stat st;

		CHECK_FOR_INTERRUPTS();
		up_script[i] = -1;

		if (stat(full, &st) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not stat file \"%s\": %m", full)));

		if (S_ISDIR(st.st_mode))
		{
			char	   *up_rel = load_path_join(frel, LOAD_PRISMA_UP);
			char	   *up_full = load_path_join(full, LOAD_PRISMA_UP);
			char	   *down_full;
			LoadScript *script;

			if (top && strcmp(fname, LOAD_SHARED_FOLDER) == 0)
			{
				load_check_inside(state, full);
				load_scan_folder(state, frel, TM_SCOPE_SHARED, false);
				continue;
			}

			/* Other folders (seeds, docs) are none of our business... */
			if (!isdigit((unsigned char) fname[0]))
			{
				/* ... unless they look like a migration without a version */
				if (load_is_regular_file(up_full))
					load_warn_no_version(up_rel);
				continue;
			}

			load_check_inside(state, full);
			if (!load_is_regular_file(up_full))
			{
				ereport(DEBUG1,
						(errmsg_internal("skipping folder \"%s\" without %s",
										 frel, LOAD_PRISMA_UP)));
				continue;
			}

			load_check_inside(state, up_full);
			script = load_add_script(state, fname, scope, LOAD_PRISMA, up_rel);
			down_full = load_path_join(full, LOAD_PRISMA_DOWN);
			if (load_is_regular_file(down_full))
			{
				load_check_inside(state, down_full);
				script->down_file = load_path_join(frel, LOAD_PRISMA_DOWN);
			}
			/* rollback.sql: a common name for the same thing */
			down_full = load_path_join(full, LOAD_PRISMA_ROLLBACK);
			if (load_is_regular_file(down_full))
			{
				if (script->down_file != NULL)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
							 errmsg("migration folder \"%s\" has both %s and %s",
									frel, LOAD_PRISMA_DOWN, LOAD_PRISMA_ROLLBACK),
							 errdetail("Either file is read as the down script; with both, which one reverts the migration would be a guess."),
							 errhint("Keep one of them.")));
				load_check_inside(state, down_full);
				script->down_file = load_path_join(frel, LOAD_PRISMA_ROLLBACK);
			}
			continue;
		}

		/* Sockets, devices and the like are never migrations */
		if (!S_ISREG(st.st_mode))
			continue;

		/* README.md, migration_lock.toml, editor backups... */
		if (!load_has_suffix(fname, ".sql"))
			continue;

		if (!isdigit((unsigned char) fname[0]))
		{
			load_warn_no_version(frel);
			continue;
		}

		/* Checked now so that nothing is registered from such a folder */
		load_check_inside(state, full);

		if (load_has_suffix(fname, ".down.sql"))
		{
			/* paired below, once every .up.sql of the folder is known */
			downs[ndowns++] = i;
		}
		else if (load_has_suffix(fname, ".up.sql"))
		{
			char	   *stem = pnstrdup(fname, strlen(fname) - strlen(".up.sql"));

			load_add_script(state, stem, scope, LOAD_UP_DOWN, frel);
			up_script[i] = state->nscripts - 1;
		}
		else
		{
			char	   *stem = pnstrdup(fname, strlen(fname) - strlen(".sql"));

			load_add_script(state, stem, scope, LOAD_DBMATE, frel);
		}
	}

	for (i = 0; i < ndowns; i++)
	{
		const char *fname = names[downs[i]];
		char	   *stem = pnstrdup(fname, strlen(fname) - strlen(".down.sql"));
		char	   *up_name = psprintf("%s.up.sql", stem);
		char	  **found;

		found = bsearch(&up_name, names, nnames, sizeof(char *),
						pg_qsort_strcmp);
		if (found == NULL || up_script[found - names] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("down script \"%s\" has no up script",
							load_path_join(rel, fname)),
					 errdetail("Its up script must be a file named \"%s\" in the same folder.",
							   up_name),
					 errhint("Add the up script, or remove the down script.")));

		state->scripts[up_script[found - names]].down_file =
			load_path_join(rel, fname);
	}
}

/*
 * Splits a migration's base name (the file name without .sql, .up.sql or
 * .down.sql, or a Prisma folder name) into version and name.
 *
 * The version is digits with single '.' or '_' separators, but a separator
 * and its digits belong to it only when another separator or the end
 * follows, so that "001_2fa_setup" is version 001 named 2fa_setup while
 * "20240101_120000_init" is version 20240101_120000 named init.  One '_' or
 * '-' may separate the name; without a name the version serves as one.
 * Returns false if there is no version at all.
 */
static bool
load_parse_name(const char *stem, char **version, char **name)
{
	const char *p = stem;

	if (!isdigit((unsigned char) *p))
		return false;
	while (isdigit((unsigned char) *p))
		p++;

	while (*p == '.' || *p == '_')
	{
		const char *q = p + 1;

		if (!isdigit((unsigned char) *q))
			break;
		while (isdigit((unsigned char) *q))
			q++;
		if (*q != '\0' && *q != '.' && *q != '_')
			break;
		p = q;
	}

	*version = pnstrdup(stem, p - stem);
	if (*p == '_' || *p == '-')
		p++;
	*name = (*p != '\0') ? pstrdup(p) : pstrdup(*version);
	return true;
}

static void
load_warn_no_version(const char *rel)
{
	ereport(WARNING,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("skipping migration file \"%s\": its name does not start with a version",
					rel),
			 errhint("Name migrations like \"001_create_users.sql\" or \"20240101120000_init/migration.sql\".")));
}

static LoadScript *
load_add_script(LoadState *state, const char *stem, const char *scope,
				LoadLayout layout, const char *file)
{
	LoadScript *script;

	if (state->nscripts >= state->maxscripts)
	{
		state->maxscripts = Max(64, state->maxscripts * 2);
		if (state->scripts == NULL)
			state->scripts = palloc(state->maxscripts * sizeof(LoadScript));
		else
			state->scripts = repalloc(state->scripts,
									  state->maxscripts * sizeof(LoadScript));
	}

	script = &state->scripts[state->nscripts];
	if (!load_parse_name(stem, &script->version, &script->name))
		elog(ERROR, "migration name \"%s\" has no version", stem);
	script->scope = scope;
	script->layout = layout;
	script->file = pstrdup(file);
	script->down_file = NULL;
	script->seq = state->nscripts;
	state->nscripts++;

	return script;
}

/*
 * Version order (tm_version_qsort_cmp() compares the char * at the start of
 * each element, which is LoadScript.version), then discovery order, so that
 * which duplicate is named first never depends on qsort.
 */
static int
load_script_cmp(const void *a, const void *b)
{
	const LoadScript *sa = (const LoadScript *) a;
	const LoadScript *sb = (const LoadScript *) b;
	int			cmp;

	cmp = tm_version_qsort_cmp(&sa->version, &sb->version);
	if (cmp != 0)
		return cmp;
	return (sa->seq > sb->seq) - (sa->seq < sb->seq);
}

/* Two files with one version: the order to apply them would be a guess */
static void
load_check_duplicates(LoadState *state)
{
	int			i;

	for (i = 1; i < state->nscripts; i++)
	{
		LoadScript *prev = &state->scripts[i - 1];
		LoadScript *cur = &state->scripts[i];

		if (tm_version_cmp(prev->version, cur->version) != 0)
			continue;

		if (strcmp(prev->version, cur->version) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("migration files \"%s\" and \"%s\" have the same version %s",
							prev->file, cur->file, cur->version),
					 errhint("Give each migration its own version.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("migration files \"%s\" and \"%s\" have the same version",
							prev->file, cur->file),
					 errdetail("Versions %s and %s are equal, because versions compare part by part as numbers.",
							   prev->version, cur->version),
					 errhint("Give each migration its own version.")));
	}
}

/*
 * The whole file as a string: size checked, UTF-8 byte order mark removed,
 * encoding verified.  AllocateFile() makes sure the file is closed if
 * anything here throws.
 */
static char *
load_read_file(LoadState *state, const char *path)
{
	FILE	   *file;
	struct stat st;
	StringInfoData buf;
	int			bom = 0;
	int			valid;

	/* Again, right before reading: the folder may have changed since */
	load_check_inside(state, path);

	file = AllocateFile(path, PG_BINARY_R);
	if (file == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open migration file \"%s\": %m", path)));

	if (fstat(fileno(file), &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat migration file \"%s\": %m", path)));

	/* Checked before reading, and again while reading in case it grows */
	if (st.st_size > LOAD_MAX_FILE_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("migration file \"%s\" is too large", path),
				 errdetail("The file has %lld bytes; the limit is %d MB.",
						   (long long) st.st_size,
						   LOAD_MAX_FILE_SIZE / (1024 * 1024)),
				 errhint("Split the migration into several smaller ones.")));

	initStringInfo(&buf);
	enlargeStringInfo(&buf, (int) st.st_size + LOAD_READ_CHUNK);

	for (;;)
	{
		size_t		nread;

		CHECK_FOR_INTERRUPTS();

		enlargeStringInfo(&buf, LOAD_READ_CHUNK);
		nread = fread(buf.data + buf.len, 1, LOAD_READ_CHUNK, file);
		buf.len += (int) nread;

		if (buf.len > LOAD_MAX_FILE_SIZE)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("migration file \"%s\" is too large", path),
					 errdetail("The file has more than %d MB.",
							   LOAD_MAX_FILE_SIZE / (1024 * 1024)),
					 errhint("Split the migration into several smaller ones.")));

		if (nread < LOAD_READ_CHUNK)
		{
			if (ferror(file))
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not read migration file \"%s\": %m",
								path)));
			break;
		}
	}
	buf.data[buf.len] = '\0';

	if (FreeFile(file) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close migration file \"%s\": %m", path)));

	/* Editors on Windows like to start UTF-8 files with a byte order mark */
	if (buf.len >= 3 &&
		(unsigned char) buf.data[0] == 0xEF &&
		(unsigned char) buf.data[1] == 0xBB &&
		(unsigned char) buf.data[2] == 0xBF)
	{
		memmove(buf.data, buf.data + 3, buf.len - 3 + 1);
		buf.len -= 3;
		bom = 3;
	}

	/*
	 * Also refuses NUL bytes.  pg_verifymbstr() would quote the bad bytes;
	 * only where they are is reported.
	 */
	valid = pg_encoding_verifymbstr(GetDatabaseEncoding(), buf.data, buf.len);
	if (valid < buf.len)
	{
		int			line = 1;
		int			i;

		for (i = 0; i < valid; i++)
			if (buf.data[i] == '\n')
				line++;
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid byte sequence for encoding \"%s\" in migration file \"%s\"",
						GetDatabaseEncodingName(), path),
				 errdetail("The first invalid byte is byte %d of the file, on line %d.",
						   bom + valid + 1, line),
				 errhint("Save the file in the database's encoding, without NUL bytes.")));
	}

	return buf.data;
}

/*
 * Which dbmate marker the line [line, end) is, if any: optional blanks,
 * "--", optional blanks, "migrate:up" or "migrate:down" in any case, then
 * blanks or the end of the line.  Whatever follows (dbmate's
 * "transaction:false") is ignored; "-- migrate:upgrade" is no marker.
 */
static DbmateMarker
load_dbmate_marker(const char *line, const char *end)
{
	const char *p = line;
	DbmateMarker marker;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (end - p < 2 || p[0] != '-' || p[1] != '-')
		return DBMATE_NONE;
	p += 2;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;

	if (end - p < 8 || pg_strncasecmp(p, "migrate:", 8) != 0)
		return DBMATE_NONE;
	p += 8;

	if (end - p >= 2 && pg_strncasecmp(p, "up", 2) == 0)
	{
		marker = DBMATE_UP;
		p += 2;
	}
	else if (end - p >= 4 && pg_strncasecmp(p, "down", 4) == 0)
	{
		marker = DBMATE_DOWN;
		p += 4;
	}
	else
		return DBMATE_NONE;

	if (p < end && !isspace((unsigned char) *p))
		return DBMATE_NONE;
	return marker;
}

/*
 * Splits a dbmate-style file into its up and down scripts.  Each section
 * runs from the line after its marker to the next marker or the end of the
 * file, in either order; text before the first marker is dropped.  A file
 * without any marker is all up script, with no down script.
 */
static void
load_split_dbmate(const char *text, const char *rel,
				  char **up_sql, char **down_sql)
{
	const char *line = text;
	const char *up_start = NULL;
	const char *up_end = NULL;
	const char *down_start = NULL;
	const char *down_end = NULL;
	const char **open_end = NULL;	/* end of the section being read */

	while (*line != '\0')
	{
		const char *eol = strchr(line, '\n');
		const char *next = eol ? eol + 1 : line + strlen(line);
		DbmateMarker marker;

		if (eol == NULL)
			eol = next;
		marker = load_dbmate_marker(line, eol);

		if (marker != DBMATE_NONE)
		{
			const char *tag = (marker == DBMATE_UP) ? "up" : "down";

			if ((marker == DBMATE_UP ? up_start : down_start) != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
						 errmsg("migration file \"%s\" has more than one \"-- migrate:%s\" line",
								rel, tag),
						 errhint("Keep one up section and at most one down section per file.")));

			if (open_end != NULL)
				*open_end = line;
			if (marker == DBMATE_UP)
			{
				up_start = next;
				open_end = &up_end;
			}
			else
			{
				down_start = next;
				open_end = &down_end;
			}
		}
		line = next;
	}
	if (open_end != NULL)
		*open_end = line;

	if (up_start == NULL && down_start == NULL)
	{
		*up_sql = pstrdup(text);
		*down_sql = NULL;
		return;
	}

	if (up_start == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("migration file \"%s\" has a \"-- migrate:down\" line but no \"-- migrate:up\" line",
						rel),
				 errhint("Put the up script after a line \"-- migrate:up\".")));

	*up_sql = pnstrdup(up_start, up_end - up_start);
	*down_sql = down_start ? pnstrdup(down_start, down_end - down_start) : NULL;
}

/* true if s holds nothing but white space */
static bool
load_is_blank(const char *s)
{
	for (; *s != '\0'; s++)
	{
		if (!isspace((unsigned char) *s))
			return false;
	}
	return true;
}

static void
load_error_callback(void *arg)
{
	LoadErrorContext *ctx = (LoadErrorContext *) arg;

	if (ctx->path != NULL)
		errcontext("while loading migration file \"%s\"", ctx->path);
}

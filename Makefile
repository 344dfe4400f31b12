# Makefile for tenant_migrate (PGXS)

EXTENSION = tenant_migrate
MODULE_big = tenant_migrate
OBJS = \
	src/tenant_migrate.o \
	src/rewrite.o \
	src/scripts.o \
	src/load.o \
	src/registry.o \
	src/runner.o \
	src/fleet.o \
	src/nontx.o \
	src/audit.o \
	src/status.o \
	src/catalog.o \
	src/guard.o \
	src/rls.o \
	src/roles.o \
	src/extnames.o \
	src/copyin.o \
	src/verify.o
DATA = tenant_migrate--1.0.sql tenant_migrate--1.0--1.1.sql
# installed into PostgreSQL's bin directory
SCRIPTS = scripts/tenant_migrate_push
PGFILEDESC = "tenant_migrate - schema-per-tenant migrations inside PostgreSQL"

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare $(EXTRA_CFLAGS)
SHLIB_LINK += -lcrypto

# Every test suite starts its own throwaway server (run as a non-root user).
REGRESS = install versions scripts rewrite rewrite_apply rewrite_fuzz lifecycle rollback status errors privileges security load containment rls tenant_roles real_formats real_history verify retire error_context fleet_runs nontx function_bodies fk_new_table
REGRESS_OPTS = --temp-instance=./tmp_check --temp-config=$(srcdir)/test/regress.conf
ISOLATION = concurrent_migrate concurrent_all migrate_vs_rollback rls_sessions drop_vs_migrate fleet_workers verify_reference
ISOLATION_OPTS = --temp-instance=./tmp_check_iso --temp-config=$(srcdir)/test/regress.conf
TAP_TESTS = 1

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

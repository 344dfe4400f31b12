#!/usr/bin/env bash
# tools/deps.sh — installs the Debian packages that building, testing and
# demonstrating tenant_migrate need. Idempotent: when every package is already
# installed it only checks them (no apt-get at all) and exits within a second.
# Run as root (CI and the dev machines are root); never prompts.
set -euo pipefail

packages=(
	postgresql-15             # server binaries: initdb, pg_ctl, postgres, psql
	postgresql-server-dev-15  # PGXS, pg_config, pg_regress, pg_isolation_regress, TAP modules
	libssl-dev                # OpenSSL (SHA-256 checksums), linked with -lcrypto
	postgresql-15-cron        # pg_cron, which the extension is meant to be driven from
	libipc-run-perl           # IPC::Run, required by PostgreSQL's TAP test modules
	make
	gcc
)

missing=()
for pkg in "${packages[@]}"; do
	# dpkg -s also succeeds for removed packages that left config files,
	# so look at the status line itself.
	if ! dpkg -s "$pkg" 2>/dev/null | grep -qx 'Status: install ok installed'; then
		missing+=("$pkg")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
	exit 1
fi

echo "deps.sh: installing ${missing[*]}"

# Installing postgresql-15 would start Debian's default cluster; tests and the
# demo use throwaway clusters, so keep services from starting during the
# install, unless the machine already has a policy (Docker images do).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# temporary, from tenant_migrate tools/deps.sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	"${missing[@]}"

#!/usr/bin/env bash
# Creates, or converges, the roles, databases and extensions that Synapse and Immich
# need in the shared memu_postgres cluster. Run by the one-shot memu_postgres_init
# service on every stack start, as the cluster's superuser, over TCP.
#
# Idempotent: a second run changes nothing (no catalog row, no password hash). A
# changed password in the env file is applied (detected by trying to log in with it).
#
# Inputs (environment):
#   PGHOST, PGPORT, PGUSER, PGPASSWORD  the superuser connection (libpq variables)
#   SYNAPSE_DB_PASSWORD, IMMICH_DB_PASSWORD   per-device passwords (required)
#   SYNAPSE_DB_NAME/SYNAPSE_DB_USER (synapse), IMMICH_DB_NAME/IMMICH_DB_USER (immich)
#   IMMICH_VECTOR_EXTENSION (vchord)
#   MEMU_PG_INIT_TEST_MODE_ALLOW_MISSING_VECTOR_EXTENSION=1
#       TEST MODE ONLY: Debian's PostgreSQL has no VectorChord, so the tests let the
#       script skip that one extension (loudly). Never set on a device: without it a
#       missing vector extension is a hard failure, because Immich cannot start.
set -euo pipefail

log() { printf 'memu-postgres-init: %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

: "${PGHOST:?PGHOST is required}"
: "${PGUSER:?PGUSER is required}"
: "${PGPASSWORD:?PGPASSWORD (the superuser password) is required}"
: "${SYNAPSE_DB_PASSWORD:?SYNAPSE_DB_PASSWORD is required}"
: "${IMMICH_DB_PASSWORD:?IMMICH_DB_PASSWORD is required}"
SYNAPSE_DB_NAME="${SYNAPSE_DB_NAME:-synapse}"
SYNAPSE_DB_USER="${SYNAPSE_DB_USER:-synapse}"
IMMICH_DB_NAME="${IMMICH_DB_NAME:-immich}"
IMMICH_DB_USER="${IMMICH_DB_USER:-immich}"
IMMICH_VECTOR_EXTENSION="${IMMICH_VECTOR_EXTENSION:-vchord}"
TEST_MODE="${MEMU_PG_INIT_TEST_MODE_ALLOW_MISSING_VECTOR_EXTENSION:-0}"
SUPERUSER_PASSWORD="$PGPASSWORD"

# Runs SQL from stdin as the superuser; psql variables (-v) are quoted by psql itself
# (:'name' for literals), never pasted into SQL by the shell. Passwords travel in the
# environment (psql's \getenv), never on a command line.
sql() {
  local db="$1"
  shift
  PGPASSWORD="$SUPERUSER_PASSWORD" psql --no-psqlrc --quiet --tuples-only --no-align \
    -v ON_ERROR_STOP=1 --dbname="$db" "$@"
}

wait_for_server() {
  local tries=0
  until pg_isready --quiet --dbname=postgres; do
    tries=$((tries + 1))
    [ "$tries" -ge 60 ] && fail "PostgreSQL at ${PGHOST}:${PGPORT:-5432} did not become ready in 60 s"
    sleep 1
  done
}

# ensure_role NAME PASSWORD: a LOGIN role, not superuser, with exactly that password.
ensure_role() {
  local role="$1" password="$2"
  MEMU_ROLE_PASSWORD="$password" sql postgres -v role="$role" <<'SQL'
\getenv password MEMU_ROLE_PASSWORD
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role')
\gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER', :'role')
FROM pg_roles WHERE rolname = :'role' AND (NOT rolcanlogin OR rolsuper)
\gexec
SQL
  # Setting a password rewrites its hash (new salt) even when unchanged, so only do it
  # when logging in with the wanted password fails.
  if ! PGPASSWORD="$password" psql --no-psqlrc --quiet --username="$role" --dbname=postgres \
    --command='SELECT 1' >/dev/null 2>&1; then
    log "setting the password of role ${role}"
    MEMU_ROLE_PASSWORD="$password" sql postgres -v role="$role" <<'SQL'
\getenv password MEMU_ROLE_PASSWORD
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password')
\gexec
SQL
  fi
}

# ensure_database NAME OWNER COLLATE: created from template0; an existing database keeps
# its locale (which cannot change), so a wrong one is reported, not silently kept.
ensure_database() {
  local db="$1" owner="$2" locale="$3"
  if [ "$locale" = "C" ]; then
    sql postgres -v db="$db" -v owner="$owner" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L LC_COLLATE %L LC_CTYPE %L TEMPLATE template0',
              :'db', :'owner', 'UTF8', 'C', 'C')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
SQL
    local actual
    actual="$(sql postgres -v db="$db" <<'SQL'
SELECT datcollate || '/' || datctype || '/' || pg_encoding_to_char(encoding) FROM pg_database WHERE datname = :'db';
SQL
)"
    [ "$actual" = "C/C/UTF8" ] || fail "database ${db} exists with collate/ctype/encoding ${actual}; Synapse needs C/C/UTF8. Dump it, drop it and run this again."
  else
    sql postgres -v db="$db" -v owner="$owner" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db', :'owner', 'UTF8')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db')
\gexec
SQL
  fi
  sql postgres -v db="$db" -v owner="$owner" <<'SQL'
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner')
FROM pg_database d WHERE d.datname = :'db' AND d.datdba <> (SELECT oid FROM pg_roles WHERE rolname = :'owner')
\gexec
SQL
}

# Immich's extensions, created by the superuser because Immich's role is not one.
ensure_immich_extensions() {
  local available
  available="$(sql "$IMMICH_DB_NAME" -v ext="$IMMICH_VECTOR_EXTENSION" <<'SQL'
SELECT count(*) FROM pg_available_extensions WHERE name = :'ext';
SQL
)"
  if [ "$available" = "1" ]; then
    # UPDATE is a no-op when current; after an image update it moves the extension to
    # the version the new image ships (Immich's role could not do it itself).
    sql "$IMMICH_DB_NAME" -v ext="$IMMICH_VECTOR_EXTENSION" <<'SQL'
SELECT format('CREATE EXTENSION IF NOT EXISTS %I CASCADE', :'ext')
\gexec
SET client_min_messages = warning;
SELECT format('ALTER EXTENSION %I UPDATE', :'ext')
FROM pg_extension e
WHERE e.extname = :'ext'
  AND e.extversion <> (SELECT default_version FROM pg_available_extensions WHERE name = :'ext')
\gexec
SQL
  elif [ "$TEST_MODE" = "1" ]; then
    log "TEST MODE: extension ${IMMICH_VECTOR_EXTENSION} is not available in this PostgreSQL; skipping it"
  else
    fail "extension ${IMMICH_VECTOR_EXTENSION} is not available in this PostgreSQL; run Immich's postgres image (see compose/stack.yml)"
  fi
  sql "$IMMICH_DB_NAME" <<'SQL'
CREATE EXTENSION IF NOT EXISTS cube;
CREATE EXTENSION IF NOT EXISTS earthdistance;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
SQL
}

wait_for_server
ensure_role "$SYNAPSE_DB_USER" "$SYNAPSE_DB_PASSWORD"
ensure_role "$IMMICH_DB_USER" "$IMMICH_DB_PASSWORD"
ensure_database "$SYNAPSE_DB_NAME" "$SYNAPSE_DB_USER" C
log "database ${SYNAPSE_DB_NAME} ready (owner ${SYNAPSE_DB_USER}, C collation)"
ensure_database "$IMMICH_DB_NAME" "$IMMICH_DB_USER" default
ensure_immich_extensions
log "database ${IMMICH_DB_NAME} ready (owner ${IMMICH_DB_USER}, extensions)"

/**
 * memu.db's schema, as an ordered list of named migrations. Each is applied once, in its
 * own transaction, and recorded in `schema_migrations` with `PRAGMA user_version` kept
 * equal to the last one's version (migrate.ts). A shipped migration is never edited: a
 * change is a new migration at the end of the list.
 */
export interface Migration {
  /** 1, 2, 3 … in list order: the schema version once it is applied. */
  version: number;
  /** Lowercase words joined by dashes; recorded with the version, so a database from another history is refused. */
  name: string;
  sql: string;
}

/**
 * A username: what a Matrix localpart and an Immich login can both carry, 1–32
 * characters of a-z 0-9 . _ - starting with a letter.
 */
const username = (column: string) =>
  `length(${column}) BETWEEN 1 AND 32 AND substr(${column}, 1, 1) GLOB '[a-z]' AND ${column} NOT GLOB '*[^a-z0-9._-]*'`;
/** Free text shown to people (family and member names): any script, never empty or only spaces, bounded. */
const displayText = (column: string, max: number) => `length(trim(${column})) >= 1 AND length(${column}) <= ${max}`;

/*
 * Conventions of migration 1, for the migrations after it:
 * - STRICT tables: a value of the wrong type is an error, not silently stored.
 * - Times are INTEGER milliseconds since the Unix epoch (UTC). No CHECK orders two times
 *   of a row (created before last seen …): a device's clock can jump back when NTP first
 *   answers, and a write must not fail because of it.
 * - Rows of one-row tables (family, wizard) have id 1, enforced.
 */
const INITIAL_SCHEMA = /* sql */ `
CREATE TABLE family (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  name       TEXT    NOT NULL CHECK (${displayText('name', 100)}),
  created_at INTEGER NOT NULL CHECK (created_at >= 0)
) STRICT;

-- password_hash holds a PHC-style string ($scrypt$… or $argon2id$…): never a bare password.
CREATE TABLE admins (
  username            TEXT    PRIMARY KEY CHECK (${username('username')}),
  display_name        TEXT    NOT NULL CHECK (${displayText('display_name', 100)}),
  password_hash       TEXT    NOT NULL CHECK (password_hash GLOB '$[a-z0-9]*$*' AND length(password_hash) >= 40),
  created_at          INTEGER NOT NULL CHECK (created_at >= 0),
  password_changed_at INTEGER NOT NULL CHECK (password_changed_at >= 0)
) STRICT, WITHOUT ROWID;

-- A session is stored as the SHA-256 (hex) of its cookie's token, so reading the database
-- does not give anyone a working cookie.
CREATE TABLE sessions (
  id_hash      TEXT    PRIMARY KEY CHECK (length(id_hash) = 64 AND id_hash NOT GLOB '*[^0-9a-f]*'),
  username     TEXT    NOT NULL REFERENCES admins (username) ON UPDATE CASCADE ON DELETE CASCADE,
  created_at   INTEGER NOT NULL CHECK (created_at >= 0),
  last_seen_at INTEGER NOT NULL CHECK (last_seen_at >= 0),
  expires_at   INTEGER NOT NULL CHECK (expires_at >= 0),
  revoked_at   INTEGER CHECK (revoked_at IS NULL OR revoked_at >= 0),
  user_agent   TEXT    CHECK (user_agent IS NULL OR length(user_agent) <= 512)
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_by_username ON sessions (username);

-- Members are removed by setting removed_at, never by deleting the row: their service
-- accounts refer to them. A username is never reused, as Matrix never reuses a user ID.
CREATE TABLE members (
  id           INTEGER PRIMARY KEY,
  username     TEXT    NOT NULL UNIQUE CHECK (${username('username')}),
  display_name TEXT    NOT NULL CHECK (${displayText('display_name', 100)}),
  created_at   INTEGER NOT NULL CHECK (created_at >= 0),
  removed_at   INTEGER CHECK (removed_at IS NULL OR removed_at >= 0)
) STRICT;

-- One row per member and service: the account's state machine (agent/accounts). The
-- columns are what the dashboard lists; the record column is the whole state as the accounts
-- module keeps it (attempts, whether a create may have reached the service, when a
-- password was last handed out — never the password).
CREATE TABLE service_accounts (
  member_id   INTEGER NOT NULL REFERENCES members (id) ON DELETE RESTRICT,
  service     TEXT    NOT NULL CHECK (service IN ('synapse', 'immich')),
  state       TEXT    NOT NULL CHECK (state IN ('pending', 'creating', 'created', 'failed', 'removing', 'removed')),
  external_id TEXT    CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255),
  last_error  TEXT    CHECK (last_error IS NULL OR length(last_error) <= 2000),
  attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  record      TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(record) AND json_type(record) = 'object'),
  updated_at  INTEGER NOT NULL CHECK (updated_at >= 0),
  PRIMARY KEY (member_id, service),
  CHECK (state NOT IN ('created', 'removing') OR external_id IS NOT NULL),
  CHECK (state <> 'failed' OR last_error IS NOT NULL)
) STRICT, WITHOUT ROWID;

-- Append-only: rows are added, and old ones may be pruned, never changed. AUTOINCREMENT
-- keeps ids rising even after pruning, so the order of events is never ambiguous.
-- actor is an admin's username or 'system', kept as text so the log outlives the admin.
CREATE TABLE audit_log (
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  at     INTEGER NOT NULL CHECK (at >= 0),
  actor  TEXT    NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
  action TEXT    NOT NULL CHECK (length(action) BETWEEN 1 AND 64 AND action NOT GLOB '*[^a-z0-9._-]*'),
  detail TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(detail) AND json_type(detail) = 'object')
) STRICT;
CREATE INDEX audit_log_by_at ON audit_log (at);
CREATE TRIGGER audit_log_is_append_only BEFORE UPDATE ON audit_log
BEGIN
  SELECT RAISE(ABORT, 'audit_log is append-only');
END;

-- The setup wizard's progress, so a reload or a power cut resumes where it stopped. The
-- step names belong to the wizard; the table only insists they are names.
CREATE TABLE wizard (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  completed_steps TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(completed_steps) AND json_type(completed_steps) = 'array'),
  current_step    TEXT    NOT NULL CHECK (length(current_step) BETWEEN 1 AND 32 AND current_step NOT GLOB '*[^a-z0-9-]*'),
  updated_at      INTEGER NOT NULL CHECK (updated_at >= 0)
) STRICT;

-- Attempts per rate-limit key ('claim:global', 'claim:ip:192.0.2.7', 'login:user:mum' …)
-- and window, so a restart does not hand a brute force a fresh allowance.
CREATE TABLE login_attempts (
  key          TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
  window_start INTEGER NOT NULL CHECK (window_start >= 0),
  count        INTEGER NOT NULL CHECK (count >= 1),
  last_at      INTEGER NOT NULL CHECK (last_at >= 0),
  PRIMARY KEY (key, window_start)
) STRICT, WITHOUT ROWID;
CREATE INDEX login_attempts_by_window ON login_attempts (window_start);
`;

export const FAMILY_DB_MIGRATIONS: readonly Migration[] = [{ version: 1, name: 'initial-schema', sql: INITIAL_SCHEMA }];

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStackConfig } from '../../../agent/config-templates/render-stack.ts';
import { generateStackSecrets } from '../../../agent/config-templates/stack-secrets.ts';
import { PG_BIN, startPostgres, type PostgresCluster } from '../../helpers/postgres.ts';

const run = promisify(execFile);
const PG_PORT = 18110;

/**
 * Runs the init script the renderer puts into the config dir against a real PostgreSQL
 * 15, with the env file the renderer wrote, as the memu_postgres_init job does.
 * Debian's PostgreSQL has no VectorChord: the script's clearly named test mode skips
 * only that extension (and a separate case proves it refuses without test mode).
 */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

describe('postgres init (memu_postgres_init job)', () => {
  let pg: PostgresCluster;
  let dir: string;
  let scriptPath: string;
  let secretsEnv: Record<string, string>;

  const runInit = async (extra: Record<string, string> = {}, testMode = true) => {
    const env = {
      PATH: `${PG_BIN}:${process.env.PATH}`,
      ...secretsEnv,
      PGHOST: '127.0.0.1',
      PGPORT: String(PG_PORT),
      PGUSER: 'postgres',
      // The cluster's real superuser password (the rendered one belongs to a device).
      PGPASSWORD: pg.superuserPassword,
      ...(testMode ? { MEMU_PG_INIT_TEST_MODE_ALLOW_MISSING_VECTOR_EXTENSION: '1' } : {}),
      ...extra,
    };
    return run('bash', [scriptPath], { env });
  };

  /** Everything the init is responsible for, including password hashes. */
  const catalogSnapshot = async () => ({
    roles: await pg.query(
      "SELECT rolname, rolsuper, rolcanlogin, rolcreatedb, rolpassword FROM pg_authid WHERE rolname IN ('synapse','immich') ORDER BY 1",
    ),
    databases: await pg.query(
      "SELECT datname, pg_get_userbyid(datdba), datcollate, datctype, pg_encoding_to_char(encoding), oid FROM pg_database WHERE datname IN ('synapse','immich') ORDER BY 1",
    ),
    extensions: await pg.query('SELECT extname, extversion, oid FROM pg_extension ORDER BY 1', 'immich'),
  });

  beforeAll(async () => {
    pg = await startPostgres(PG_PORT);
    dir = await mkdtemp(join(tmpdir(), 'memu-pginit-'));
    await renderStackConfig(
      { device: { name: 'Test family', hostname: 'memu-hub' }, paths: { dataDir: join(dir, 'data') }, secrets: generateStackSecrets() },
      join(dir, 'config'),
    );
    scriptPath = join(dir, 'config', 'postgres', 'init-databases.sh');
    secretsEnv = parseEnvFile(await readFile(join(dir, 'config', 'env', 'postgres.env'), 'utf8'));
  });

  afterAll(async () => {
    await pg?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses to finish without the vector extension outside test mode', async () => {
    const failure = await runInit({}, false).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failure).not.toBeNull();
    expect(failure!.stderr).toMatch(/extension vchord is not available/);
  });

  it("creates Synapse's database with C collation and ctype, and both roles", async () => {
    const { stderr } = await runInit();
    expect(stderr).toMatch(/TEST MODE: extension vchord is not available/);

    expect(await pg.query("SELECT datcollate, datctype, pg_encoding_to_char(encoding), pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'synapse'")).toBe(
      'C|C|UTF8|synapse',
    );
    expect(await pg.query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'immich'")).toBe('immich');
    expect(await pg.query("SELECT rolname, rolsuper, rolcanlogin FROM pg_roles WHERE rolname IN ('synapse','immich') ORDER BY 1")).toBe(
      'immich|f|t\nsynapse|f|t',
    );
    const extensions = (await pg.query('SELECT extname FROM pg_extension ORDER BY 1', 'immich')).split('\n');
    expect(extensions).toEqual(expect.arrayContaining(['cube', 'earthdistance', 'pg_trgm', 'unaccent', 'uuid-ossp']));
  });

  it('lets each app log in to its own database with its rendered password, and only there', async () => {
    const login = (user: string, password: string, db: string) =>
      run(`${PG_BIN}/psql`, ['--no-psqlrc', '-h', '127.0.0.1', '-p', String(PG_PORT), '-U', user, '-d', db, '-tAc', 'SELECT current_user'], {
        env: { ...process.env, PGPASSWORD: password },
      }).then((r) => r.stdout.trim());
    expect(await login('synapse', secretsEnv.SYNAPSE_DB_PASSWORD!, 'synapse')).toBe('synapse');
    expect(await login('immich', secretsEnv.IMMICH_DB_PASSWORD!, 'immich')).toBe('immich');
    await expect(login('synapse', 'wrong-password', 'synapse')).rejects.toThrow(/password authentication failed/);
    // Immich's role owns its schema: it can create tables (its migrations need that).
    await run(`${PG_BIN}/psql`, ['-h', '127.0.0.1', '-p', String(PG_PORT), '-U', 'immich', '-d', 'immich', '-c', 'CREATE TABLE probe (id int); DROP TABLE probe;'], {
      env: { ...process.env, PGPASSWORD: secretsEnv.IMMICH_DB_PASSWORD! },
    });
  });

  it('changes nothing when run a second time', async () => {
    const before = await catalogSnapshot();
    await runInit();
    expect(await catalogSnapshot()).toEqual(before);
  });

  it('applies a changed password, and only that', async () => {
    const before = await catalogSnapshot();
    await runInit({ SYNAPSE_DB_PASSWORD: 'rotated-synapse-password-0123456789abcdef' });
    const after = await catalogSnapshot();
    const rolesBefore = before.roles.split('\n');
    const rolesAfter = after.roles.split('\n');
    expect(rolesAfter[0]).toBe(rolesBefore[0]); // immich untouched
    expect(rolesAfter[1]).not.toBe(rolesBefore[1]); // synapse's hash changed
    expect(after.databases).toBe(before.databases);
    const { stdout } = await run(`${PG_BIN}/psql`, ['-h', '127.0.0.1', '-p', String(PG_PORT), '-U', 'synapse', '-d', 'synapse', '-tAc', 'SELECT 1'], {
      env: { ...process.env, PGPASSWORD: 'rotated-synapse-password-0123456789abcdef' },
    });
    expect(stdout.trim()).toBe('1');
  });

  it("reports a Synapse database with the wrong collation instead of keeping it", async () => {
    await pg.query("CREATE DATABASE wrong_locale TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'");
    const failure = await runInit({ SYNAPSE_DB_NAME: 'wrong_locale' }).then(
      () => null,
      (err: { stderr: string }) => err,
    );
    expect(failure?.stderr).toMatch(/database wrong_locale exists with collate\/ctype\/encoding C\.UTF-8\/C\.UTF-8\/UTF8; Synapse needs C\/C\/UTF8/);
  });
});

import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A throwaway PostgreSQL 15 cluster (Debian's postgresql-15) in a temporary directory,
 * run as the `postgres` system user (initdb refuses root). TCP on 127.0.0.1 only, with
 * password (scram) authentication, as memu_postgres accepts the init job's connection.
 */
export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PostgresCluster {
  port: number;
  superuser: string;
  superuserPassword: string;
  /** Runs SQL as the superuser and returns psql's unaligned, tuples-only output. */
  query(sql: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

async function asPostgres(args: string[]): Promise<string> {
  const { stdout } = await run('runuser', ['-u', 'postgres', '--', ...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

export async function startPostgres(port: number): Promise<PostgresCluster> {
  const base = await mkdtemp(join(tmpdir(), 'memu-pg-'));
  const { stdout: ids } = await run('id', ['-u', 'postgres']);
  const { stdout: gids } = await run('id', ['-g', 'postgres']);
  const uid = Number(ids.trim());
  const gid = Number(gids.trim());
  await chown(base, uid, gid);
  await chmod(base, 0o700);
  const superuserPassword = 'test-superuser-password-0123456789';
  const pwfile = join(base, 'pwfile');
  await writeFile(pwfile, `${superuserPassword}\n`, { mode: 0o600 });
  await chown(pwfile, uid, gid);
  const dataDir = join(base, 'data');
  await asPostgres([
    `${PG_BIN}/initdb`,
    '-D',
    dataDir,
    '-U',
    'postgres',
    `--pwfile=${pwfile}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C.UTF-8',
  ]);
  await asPostgres([
    `${PG_BIN}/pg_ctl`,
    '-D',
    dataDir,
    '-l',
    join(base, 'server.log'),
    '-o',
    `-p ${port} -k ${base} -c listen_addresses=127.0.0.1`,
    '-w',
    'start',
  ]);
  const cluster: PostgresCluster = {
    port,
    superuser: 'postgres',
    superuserPassword,
    async query(sql, database = 'postgres') {
      const { stdout } = await run(
        `${PG_BIN}/psql`,
        ['--no-psqlrc', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', database, '-tA', '-v', 'ON_ERROR_STOP=1', '-c', sql],
        { env: { ...process.env, PGPASSWORD: superuserPassword } },
      );
      return stdout.trim();
    },
    async stop() {
      await asPostgres([`${PG_BIN}/pg_ctl`, '-D', dataDir, '-m', 'fast', '-w', 'stop']).catch(() => {});
      await rm(base, { recursive: true, force: true });
    },
  };
  return cluster;
}

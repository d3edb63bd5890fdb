import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { runCommand, runCommandOutcome } from '../../shared/process/run-command.ts';
import type { BackupRepository } from './backup-repository.ts';
import type { RestoreCommand } from './restore.ts';

/**
 * A restore drill: a backup nobody restored is a hope. The latest complete set's database
 * dumps are restored into a throwaway PostgreSQL (on the device a container of the
 * stack's own postgres image, with no network, removed after), and a random sample of
 * its files into scratch space with restic's --verify; each sampled file that has not
 * changed on the box since is compared byte for byte with it. Any problem fails the drill.
 */

export interface ThrowawayDatabase {
  /** Makes an empty database `name` and returns the command that loads a custom-format dump into it. */
  prepare(name: string): Promise<RestoreCommand>;
  /** Rows per table of `name` (schema-qualified), counted exactly. */
  tableRows(name: string): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

export interface RestoreDrillResult {
  runId: string;
  ok: boolean;
  durationMs: number;
  databases: { name: string; bytes: number; tables: number; rows: number }[];
  files: { sampled: number; compared: number; changedSince: number };
  problems: string[];
}

export interface RestoreDrillOptions {
  /** The throwaway server; without one a set holding dumps fails the drill (nothing proved). */
  throwawayDatabase?: () => Promise<ThrowawayDatabase>;
  /** The data directory the live files are in. */
  dataDir: string;
  /** Emptied before and removed after. */
  scratchDir: string;
  sampleSize: number;
  random?: () => number;
  log: Logger;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `count` distinct items, uniformly (a partial Fisher–Yates shuffle). */
export function pickSample<T>(items: readonly T[], count: number, random: () => number = Math.random): T[] {
  const pool = [...items];
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}

export async function runRestoreDrill(repository: BackupRepository, opts: RestoreDrillOptions): Promise<RestoreDrillResult> {
  const started = Date.now();
  const problems: string[] = [];
  const { set, manifest } = await repository.openSet('latest');
  const databases: RestoreDrillResult['databases'] = [];

  if (manifest.databases.length > 0) {
    if (!opts.throwawayDatabase) {
      problems.push('no throwaway database server is available, so the database dumps were not restored');
    } else {
      const server = await opts.throwawayDatabase();
      try {
        for (const db of manifest.databases) {
          try {
            const { bytes } = await repository.restoreDatabase(set.runId, db.name, await server.prepare(db.name));
            const rows = await server.tableRows(db.name);
            const tables = Object.keys(rows).length;
            databases.push({ name: db.name, bytes, tables, rows: Object.values(rows).reduce((a, b) => a + b, 0) });
            if (tables === 0) problems.push(`database ${db.name} restored with no tables`);
          } catch (err) {
            problems.push(`database ${db.name} could not be restored: ${(err as Error).message}`);
          }
        }
      } finally {
        await server.stop().catch((err: unknown) => opts.log.warn({ err }, 'the throwaway database could not be removed'));
      }
    }
  }

  const files = { sampled: 0, compared: 0, changedSince: 0 };
  const sample = pickSample(await repository.listFiles(set.runId), opts.sampleSize, opts.random);
  files.sampled = sample.length;
  if (sample.length > 0) {
    await rm(opts.scratchDir, { recursive: true, force: true });
    await mkdir(opts.scratchDir, { recursive: true, mode: 0o700 });
    try {
      await repository.restoreSample(set.runId, sample.map((f) => f.path), opts.scratchDir);
      for (const file of sample) {
        const restored = join(opts.scratchDir, file.path);
        const restoredSize = await stat(restored).then((s) => s.size, () => undefined);
        if (restoredSize !== file.size) {
          problems.push(`${file.path} came back with ${restoredSize ?? 'no'} bytes, the backup records ${file.size}`);
          continue;
        }
        const live = await stat(join(opts.dataDir, file.path)).catch(() => undefined);
        // Changed (or removed) on the box since the backup: nothing to compare it with.
        if (!live || live.size !== file.size || Math.abs(live.mtimeMs - Date.parse(file.mtime)) >= 1) {
          files.changedSince += 1;
          continue;
        }
        files.compared += 1;
        if ((await sha256(restored)) !== (await sha256(join(opts.dataDir, file.path)))) problems.push(`${file.path} came back different from the file on the box, though it has not changed since`);
      }
    } catch (err) {
      problems.push(`the sample of files could not be restored: ${(err as Error).message}`);
    } finally {
      await rm(opts.scratchDir, { recursive: true, force: true });
    }
  }
  return { runId: set.runId, ok: problems.length === 0, durationMs: Date.now() - started, databases, files, problems };
}

/**
 * The device's throwaway database: a container of the stack's own postgres image (the
 * one memu_postgres runs, so Immich's extensions are there), with no network, removed
 * after. Its password is random and reaches docker by name only.
 */
export function dockerThrowawayPostgres(opts: { image: () => Promise<string>; docker?: string; log: Logger }): () => Promise<ThrowawayDatabase> {
  const docker = opts.docker ?? 'docker';
  return async () => {
    const name = `memu-restore-drill-${randomBytes(4).toString('hex')}`;
    const env = { POSTGRES_PASSWORD: randomBytes(24).toString('base64url'), PGPASSWORD: '' };
    env.PGPASSWORD = env.POSTGRES_PASSWORD;
    const image = await opts.image();
    await runCommand(docker, ['run', '--detach', '--rm', '--name', name, '--network', 'none', '--label', 'org.memu.restore-drill=1', '-e', 'POSTGRES_PASSWORD', image], { env });
    const exec = (program: string[]) => [docker, 'exec', '-i', '-e', 'PGPASSWORD', name, program[0]!, '-h', '127.0.0.1', '-U', 'postgres', ...program.slice(1)];
    const psql = async (database: string, sql: string) => {
      const [cmd, ...args] = exec(['psql', '-d', database, '-AtX', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
      return (await runCommand(cmd!, args, { env })).stdout;
    };
    // The image's entrypoint initialises with a server on the socket only; TCP answers once it is ready.
    const until = Date.now() + 120_000;
    for (;;) {
      const [cmd, ...args] = exec(['psql', '-d', 'postgres', '-AtX', '-c', 'SELECT 1']);
      if ((await runCommandOutcome(cmd!, args, { env })).code === 0) break;
      if (Date.now() > until) {
        await runCommandOutcome(docker, ['rm', '--force', name]);
        throw new Error(`the throwaway database (${image}) did not start within 2 minutes`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    opts.log.info({ container: name, image }, 'throwaway database for the restore drill started');
    return {
      async prepare(database) {
        await psql('postgres', `CREATE DATABASE "${database}"`);
        return { command: exec(['pg_restore', '-d', database, '--exit-on-error', '--no-owner']), env };
      },
      async tableRows(database) {
        const tables = (await psql(database, "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"))
          .split('\n')
          .filter(Boolean);
        const rows: Record<string, number> = {};
        for (const t of tables) rows[t] = Number((await psql(database, `SELECT count(*) FROM ${t}`)).trim());
        return rows;
      },
      async stop() {
        await runCommandOutcome(docker, ['rm', '--force', name]);
      },
    };
  };
}

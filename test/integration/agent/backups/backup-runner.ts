import { writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { openBackupRepository } from '../../../../agent/backups/index.ts';
import { familyDbPath, openFamilyDb } from '../../../../agent/family-db/index.ts';
import type { PostgresCluster } from '../../../helpers/postgres.ts';
import { DATABASES, dumpSource, engineOptions, FILE_PATHS } from './backup-fixtures.ts';

/**
 * The process backup-crash.test.ts kills: opens the repository and memu.db and runs one
 * backup of the family's databases, memu.db and files, printing each progress report as
 * `progress <stage> <bytes done>` and `done <run id>` at the end.
 *
 *   node --import tsx test/integration/agent/backups/backup-runner.ts CONFIG_JSON
 */
export interface RunnerConfig {
  baseDir: string;
  passwordFile: string;
  repoPath: string;
  pgPort: number;
  pgPassword: string;
  /** Slows the run down so that a kill lands inside a stage. */
  limitUploadKiBPerSecond: number;
  logPath: string;
}

async function main(configPath: string): Promise<void> {
  const config = JSON.parse(await readFile(configPath, 'utf8')) as RunnerConfig;
  const log = pino({ level: 'info' }, pino.destination({ dest: config.logPath, sync: true, append: true, mkdir: true }));
  const pg = { port: config.pgPort, superuserPassword: config.pgPassword } as PostgresCluster;
  const repository = await openBackupRepository(
    { kind: 'local', path: config.repoPath },
    engineOptions(config.baseDir, config.passwordFile, log, { limitUploadKiBPerSecond: config.limitUploadKiBPerSecond, progressFps: 20 }),
  );
  const db = openFamilyDb(familyDbPath(config.baseDir), log);
  const result = await repository.backup({
    host: 'memu-test',
    stack: { memuOs: '0.1.0' },
    databases: DATABASES.map((d) => dumpSource(pg, d)),
    familyDb: db,
    files: { baseDir: config.baseDir, paths: FILE_PATHS },
    onProgress: (p) => writeSync(1, `progress ${p.stage} ${p.bytesDone}\n`),
  });
  db.close();
  writeSync(1, `done ${result.set.runId}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv[2]!).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}

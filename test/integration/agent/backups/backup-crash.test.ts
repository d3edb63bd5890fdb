import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackupCancelledError,
  createBackupModule,
  ensureBackupPassword,
  initBackupRepository,
  openBackupRepository,
  type BackupRepository,
  type BackupSetInfo,
} from '../../../../agent/backups/index.ts';
import { familyDbPath, openFamilyDb, type FamilyDb } from '../../../../agent/family-db/index.ts';
import { startPostgres, type PostgresCluster } from '../../../helpers/postgres.ts';
import { REPO_ROOT } from '../../../helpers/memu-build.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';
import {
  addFamilyRows,
  createFamilyDatabases,
  createFamilyFiles,
  databaseFingerprint,
  DATABASES,
  dumpSource,
  engineOptions,
  FILE_PATHS,
  familyFileHashes,
  familyRows,
  requireBackupPrerequisites,
  restoreInto,
} from './backup-fixtures.ts';
import type { RunnerConfig } from './backup-runner.ts';

/**
 * A power cut during a backup: a child process (backup-runner.ts) runs a backup and is
 * SIGKILLed, with its whole process group (restic and pg_dump die with it, as they would
 * in a power cut), in the middle of a database dump and in the middle of the files. Each
 * time the earlier set must still be listed complete and restore identically, the killed
 * run's set must be incomplete and refused, and afterwards the next run must complete and
 * retention must remove what the killed runs left (their restic locks included).
 */
const RUNNER = fileURLToPath(new URL('./backup-runner.ts', import.meta.url));
const PG_PORT = 18161;
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });

let pg: PostgresCluster;
let work: string;
let baseDir: string;
let passwordFile: string;
let repoPath: string;
let repository: BackupRepository;
let previous: { runId: string; dbs: Record<string, Record<string, string>>; files: Record<string, string>; rows: unknown };

interface RunnerResult {
  pid: number;
  signal: NodeJS.Signals | null;
  code: number | null;
  stages: string[];
  done: boolean;
  stderr: string;
}

/** Runs the backup in a child and kills its process group at the first progress report of `killAt` with bytes done. */
async function runAndKill(killAt: 'database' | 'files'): Promise<RunnerResult> {
  const config: RunnerConfig = { baseDir, passwordFile, repoPath, pgPort: pg.port, pgPassword: pg.superuserPassword, limitUploadKiBPerSecond: 400, logPath: join(work, 'runner.log') };
  const configPath = join(work, 'runner.json');
  await writeFile(configPath, JSON.stringify(config));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, configPath], { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed = false;
    let done = false;
    const stages: string[] = [];
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      for (const line of stdout.split('\n').slice(0, -1)) {
        const [word, stage, bytes] = line.split(' ');
        if (word === 'done') done = true;
        if (word !== 'progress') continue;
        if (!stages.includes(stage!)) stages.push(stage!);
        if (!killed && stage === killAt && Number(bytes) > 0) {
          killed = true;
          process.kill(-child.pid!, 'SIGKILL');
        }
      }
      stdout = stdout.slice(stdout.lastIndexOf('\n') + 1);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ pid: child.pid!, signal, code, stages, done, stderr }));
  });
}

/** True while any process of the group still runs (restic or pg_dump outliving the kill). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  requireBackupPrerequisites();
  work = await mkdtemp(join(tmpdir(), 'memu-backup-crash-'));
  baseDir = join(work, 'data');
  passwordFile = join(work, 'secrets', 'backup-repository-password');
  repoPath = join(work, 'usb', 'memu-backups');
  pg = await startPostgres(PG_PORT);
  await createFamilyDatabases(pg);
  await createFamilyFiles(baseDir);
  await ensureBackupPassword(passwordFile);
  // The set that must survive: made before any kill, by an uninterrupted run.
  const db: FamilyDb = openFamilyDb(familyDbPath(baseDir), log);
  addFamilyRows(db, ['ada', 'brian']);
  ({ repository } = await initBackupRepository({ kind: 'local', path: repoPath }, engineOptions(baseDir, passwordFile, log)));
  const result = await repository.backup({ host: 'memu-test', stack: { memuOs: '0.1.0' }, databases: DATABASES.map((d) => dumpSource(pg, d)), familyDb: db, files: { baseDir, paths: FILE_PATHS } });
  previous = {
    runId: result.set.runId,
    dbs: Object.fromEntries(await Promise.all(DATABASES.map(async (d) => [d, await databaseFingerprint(pg, d)] as const))),
    files: await familyFileHashes(baseDir),
    rows: familyRows(db),
  };
  db.close();
});

afterAll(async () => {
  await pg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The earlier set restores identically: both databases into fresh ones, the files, memu.db. */
async function expectPreviousSetRestores(): Promise<void> {
  for (const d of DATABASES) {
    const copy = `${d}_restored`;
    await pg.query(`DROP DATABASE IF EXISTS ${copy}`);
    await pg.query(`CREATE DATABASE ${copy}`);
    await repository.restoreDatabase(previous.runId, d, restoreInto(pg, copy));
    expect(await databaseFingerprint(pg, copy), d).toEqual(previous.dbs[d]);
  }
  const target = await tempDir('memu-backup-crash-restore-');
  await repository.restoreFiles(previous.runId, target);
  expect(await familyFileHashes(target)).toEqual(previous.files);
  const dbPath = join(target, 'agent', 'memu.db');
  await repository.restoreFamilyDb(previous.runId, dbPath);
  const restored = openFamilyDb(dbPath, log);
  try {
    expect(familyRows(restored)).toEqual(previous.rows);
  } finally {
    restored.close();
  }
}

describe('a backup killed half-way (power cut)', () => {
  const killed: string[] = [];

  for (const stage of ['database', 'files'] as const) {
    it(`killed during the ${stage === 'database' ? 'database dump' : 'files'}: the earlier set stays whole and restorable, the killed one is incomplete`, async () => {
      // New data since the earlier set, so each stage has something to upload (unchanged data
      // would be deduplicated and done before a kill could land in it).
      await pg.query(`CREATE TABLE IF NOT EXISTS attachments_${stage} (body text NOT NULL); INSERT INTO attachments_${stage} SELECT md5(random()::text) || md5(random()::text) FROM generate_series(1, 80000)`, 'synapse');
      mkdirSync(join(baseDir, 'photos', `new-${stage}`), { recursive: true });
      for (let i = 0; i < 30; i++) writeFileSync(join(baseDir, 'photos', `new-${stage}`, `IMG_${i}.jpg`), randomBytes(200_000));
      const before = await repository.listSets();
      const run = await runAndKill(stage);
      expect({ signal: run.signal, code: run.code, stderr: run.stderr.slice(-3000) }).toMatchObject({ signal: 'SIGKILL' });
      expect(run.done).toBe(false);
      expect(run.stages.at(-1)).toBe(stage);
      // The group's restic and pg_dump are gone too, as in a power cut.
      for (let i = 0; i < 50 && groupAlive(run.pid); i++) await new Promise((r) => setTimeout(r, 100));
      expect(groupAlive(run.pid)).toBe(false);

      repository = await openBackupRepository({ kind: 'local', path: repoPath }, engineOptions(baseDir, passwordFile, log));
      const after = await repository.listSets();
      const complete = (sets: BackupSetInfo[]) => sets.filter((s) => s.complete).map((s) => s.runId);
      expect(complete(after)).toEqual(complete(before));
      expect((await repository.openSet('latest')).set.runId).toBe(previous.runId);
      const newIncomplete = after.filter((s) => !s.complete && !before.some((b) => b.runId === s.runId));
      // Killed in the files, both dumps were saved; killed in a dump, at most the first.
      if (stage === 'files') expect(newIncomplete.map((s) => s.snapshots.map((x) => x.database))).toEqual([['synapse', 'immich']]);
      else expect(newIncomplete.length).toBeLessThanOrEqual(1);
      killed.push(...newIncomplete.map((s) => s.runId));
      for (const s of newIncomplete) await expect(repository.openSet(s.runId)).rejects.toThrow(/is incomplete: its run stopped before it finished/);
      await expectPreviousSetRestores();
    });
  }

  it('the next run completes, and retention then removes what the killed runs left', async () => {
    // The killed restic processes left their locks in the repository.
    expect(readdirSync(join(repoPath, 'locks')).length).toBeGreaterThan(0);
    const db = openFamilyDb(familyDbPath(baseDir), log);
    addFamilyRows(db, ['chloe']);
    const next = await repository.backup({ host: 'memu-test', stack: { memuOs: '0.1.0' }, databases: DATABASES.map((d) => dumpSource(pg, d)), familyDb: db, files: { baseDir, paths: FILE_PATHS } });
    const rows = familyRows(db);
    db.close();
    expect(next.set.complete).toBe(true);
    expect(existsSync(join(baseDir, 'agent', 'backup-staging', 'memu-backup-set'))).toBe(false);
    // forget --prune needs the repository alone: the dead runs' locks are removed as stale.
    const decision = await repository.forget({ daily: 7, weekly: 0, monthly: 0 });
    expect(decision.forget.filter((f) => f.reason === 'incomplete').map((f) => f.runId).sort()).toEqual([...killed].sort());
    const sets = await repository.listSets();
    expect(sets.map((s) => [s.runId, s.complete])).toEqual([[next.set.runId, true]]);
    expect((await repository.check(1)).subset).toBe('1/1');
    const dbPath = join(await tempDir('memu-backup-crash-next-'), 'memu.db');
    await repository.restoreFamilyDb('latest', dbPath);
    const restored = openFamilyDb(dbPath, log);
    expect(familyRows(restored)).toEqual(rows);
    restored.close();
  });

  it("the agent stopping stops a running backup: restic ends cleanly (its lock removed), no set is completed", async () => {
    const dataDir = await tempDir('memu-backup-stop-');
    await createFamilyFiles(dataDir, 120);
    const module = createBackupModule({ dataDir, limitUploadKiBPerSecond: 300 }, log);
    await module.start();
    const usb = join(await tempDir('memu-backup-stop-usb-'), 'repo');
    const { repository: target } = await module.init({ kind: 'local', path: usb });
    let reachedFiles!: () => void;
    const inFiles = new Promise<void>((resolve) => (reachedFiles = resolve));
    const running = target
      .backup({ host: 'memu-test', stack: { memuOs: '0.1.0' }, files: { baseDir: dataDir, paths: FILE_PATHS }, onProgress: (p) => p.bytesDone > 0 && reachedFiles() })
      .catch((err: unknown) => err);
    await inFiles;
    const started = Date.now();
    await module.stop();
    const error = await running;
    expect(error).toBeInstanceOf(BackupCancelledError);
    expect((error as Error).message).toBe('restic backup of the files was stopped because the agent is stopping. This run recorded no backup set; earlier backups are intact. It runs again at its next time.');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(readdirSync(join(usb, 'locks'))).toEqual([]);
    const reopened = await openBackupRepository({ kind: 'local', path: usb }, engineOptions(dataDir, module.passwordFile, log));
    expect((await reopened.listSets()).filter((s) => s.complete)).toEqual([]);
  });
});

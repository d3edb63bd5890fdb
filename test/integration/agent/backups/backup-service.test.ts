import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackupService, type BackupService, type BackupsStatus, type ThrowawayDatabase } from '../../../../agent/backups/index.ts';
import { familyDbPath, openFamilyDb, type FamilyDb } from '../../../../agent/family-db/index.ts';
import { createHttpModule, type HttpModule } from '../../../../agent/http/index.ts';
import { createMaintenanceLock, MaintenanceBusyError, type MaintenanceLock } from '../../../../agent/maintenance/maintenance-lock.ts';
import { apiKeyDigest } from '../../../../shared/contracts/agent-api.ts';
import { startPostgres, type PostgresCluster } from '../../../helpers/postgres.ts';
import { addFamilyRows, createFamilyDatabases, createFamilyFiles, DATABASES, dumpSource, requireBackupPrerequisites, restoreInto, treeHashes } from './backup-fixtures.ts';

/**
 * The backup service as the agent runs it, with real restic and a real PostgreSQL 15:
 * a scheduled run (missed while the box was "off") to a local-directory target, "back up
 * now" through the HTTP API, an off-site target that does not answer, and a single-item
 * restore through the API.
 *
 * Two stand-ins, because this test does not run the family's container stack: the
 * databases are dumped by the host's pg_dump from the test cluster (on the device the
 * same dump runs through `docker exec` in memu_postgres; its command line is unit-tested),
 * and `recordingStack` stands in for the reconciler's hold, recording when it was taken
 * and released.
 */
const PG_PORT = 18162;
const UNREACHABLE_REST = 'rest:http://127.0.0.1:18168/';
const API_KEY = 'backup-service-test-api-key-0123456789abcdef';
const DAY = 86_400_000;
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });

let pg: PostgresCluster;
let work: string;
let dataDir: string;
let db: FamilyDb | undefined;
let lock: MaintenanceLock;
let service: BackupService;
let http: HttpModule;
let base: string;
let clock = Date.now();
const holds: { reason: string; from: number; to?: number }[] = [];

const recordingStack = {
  async runExclusive<T>(reason: string, fn: () => Promise<T>): Promise<T> {
    const hold: { reason: string; from: number; to?: number } = { reason, from: Date.now() };
    holds.push(hold);
    try {
      return await fn();
    } finally {
      hold.to = Date.now();
    }
  },
};

/**
 * Stands in for the drill's throwaway container of the stack's postgres image: fresh
 * databases `drill_<name>` in the test's cluster, restored with the host's pg_restore,
 * dropped after.
 */
async function throwawayInTestCluster(): Promise<ThrowawayDatabase> {
  const made: string[] = [];
  return {
    async prepare(name) {
      await pg.query(`DROP DATABASE IF EXISTS drill_${name}`);
      await pg.query(`CREATE DATABASE drill_${name}`);
      made.push(`drill_${name}`);
      return restoreInto(pg, `drill_${name}`);
    },
    async tableRows(name) {
      const rows: Record<string, number> = {};
      for (const t of (await pg.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", `drill_${name}`)).split('\n').filter(Boolean)) {
        rows[t] = Number(await pg.query(`SELECT count(*) FROM ${t}`, `drill_${name}`));
      }
      return rows;
    },
    async stop() {
      for (const d of made) await pg.query(`DROP DATABASE IF EXISTS ${d}`);
    },
  };
}

function makeService(tuning: { firstTickDelayMs?: number } = {}): BackupService {
  return createBackupService(
    {
      dataDir,
      lock,
      stack: recordingStack,
      databases: async () => DATABASES.map((d) => dumpSource(pg, d)),
      familyDb: () => db,
      host: async () => 'memu-test',
      stackVersions: () => ({ memuOs: '0.1.0-test' }),
      unreachableAfterMs: 3000,
      throwawayDatabase: throwawayInTestCluster,
      drillSampleSize: 1000,
      tickMs: 3600_000,
      firstTickDelayMs: tuning.firstTickDelayMs ?? 3600_000,
      now: () => clock,
    },
    log,
  );
}

const api = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${base}/admin/api/backups${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> & unknown[] };
};

async function waitUntilIdle(timeoutMs = 120_000): Promise<BackupsStatus> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const status = (await api('GET', '')).body as unknown as BackupsStatus;
    if (!status.running && !lock.holder()) return status;
    if (Date.now() > until) throw new Error(`the backup did not finish within ${timeoutMs / 1000} s: ${JSON.stringify(status.running)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  requireBackupPrerequisites();
  work = await mkdtemp(join(tmpdir(), 'memu-backup-service-'));
  dataDir = join(work, 'data');
  await mkdir(dataDir, { recursive: true });
  pg = await startPostgres(PG_PORT);
  await createFamilyDatabases(pg);
  await createFamilyFiles(dataDir, 40);
  db = openFamilyDb(familyDbPath(dataDir), log);
  addFamilyRows(db, ['ada', 'brian']);
  lock = createMaintenanceLock();
  service = makeService();
  await service.start();
  await serve(service);
}, 120_000);

/** The service's API on the real http module, with the API key. */
async function serve(s: BackupService): Promise<void> {
  http = createHttpModule(
    { listenHosts: ['127.0.0.1'], port: 0, routes: [s.routes!], apiKeyDigest: async () => apiKeyDigest(API_KEY), cookieSecretPath: join(work, 'cookie-secret') },
    log,
  );
  await http.start();
  base = `http://127.0.0.1:${http.addresses()[0]!.port}`;
}

afterAll(async () => {
  await http?.stop();
  await service?.stop();
  db?.close();
  await pg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the backup service', () => {
  let targetId: string;

  it('runs a backup missed while the box was off on its own soon after start, to a folder target, with the weekly check and drill, and remembers it across a restart', async () => {
    expect(await api('POST', '/run')).toEqual({ status: 400, body: { error: 'No backup target is set up: add a USB drive or an off-site backup first.' } });
    // The target was added two days ago; the box was off at every 03:30 since.
    clock = Date.now() - 2 * DAY;
    const added = await api('POST', '/targets', { kind: 'directory', label: 'Backup folder', path: join(work, 'target-folder') });
    expect(added.status).toBe(201);
    targetId = added.body.id as string;
    // The box starts again: its first look at the schedule finds the missed run and runs it, on its own.
    clock = Date.now();
    await http.stop();
    await service.stop();
    service = makeService({ firstTickDelayMs: 50 });
    await service.start();
    await serve(service);
    for (let i = 0; i < 600 && !(await service.status()).targets[0]?.lastSuccess; i++) await new Promise((r) => setTimeout(r, 200));
    await waitUntilIdle();

    const status = (await api('GET', '')).body as unknown as BackupsStatus;
    const target = status.targets[0]!;
    expect(target).toMatchObject({ id: targetId, kind: 'directory', label: 'Backup folder', address: join(work, 'target-folder') });
    expect(target.lastFailure).toBeUndefined();
    expect(target.lastSuccess!.filesProcessed).toBeGreaterThan(40);
    expect(target.lastCheck).toMatchObject({ ok: true });
    // The weekly drill ran with the check: both dumps restored into the throwaway server, every file compared.
    expect(status.lastDrill).toMatchObject({ ok: true, target: targetId, runId: target.lastSuccess!.runId, problems: [], databases: 2 });
    expect(status.lastDrill!.filesCompared).toBeGreaterThan(40);
    // The next run is the next 03:30 local time, within a day.
    expect(Date.parse(status.nextRunAt!) - clock).toBeGreaterThan(0);
    expect(Date.parse(status.nextRunAt!) - clock).toBeLessThanOrEqual(DAY);

    const repository = await service.repository(targetId);
    const { manifest } = await repository.openSet('latest');
    expect(manifest.databases.map((d) => d.name)).toEqual(['synapse', 'immich']);
    expect(manifest.familyDb?.bytes).toBeGreaterThan(0);
    expect(manifest.files?.paths).toEqual(['photos', 'synapse', 'config', 'secrets']);

    // A restarted agent reads what ran: nothing is due again until tomorrow.
    const restarted = makeService();
    await restarted.start();
    try {
      await restarted.runDue();
      expect((await restarted.status()).targets[0]!.lastSuccess!.runId).toBe(target.lastSuccess!.runId);
      expect((await (await restarted.repository(targetId)).listSets()).filter((s) => s.complete)).toHaveLength(1);
    } finally {
      await restarted.stop();
    }
  }, 120_000);

  it('"back up now" through the API holds the stack still only while the databases are dumped, and keeps updates out while it runs', async () => {
    holds.length = 0;

    const started = await api('POST', '/run');
    expect(started).toEqual({ status: 202, body: { started: true } });
    const again = await api('POST', '/run');
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/^A backup cannot start while a backup is running \(since .*\)\. Try again when it has finished\.$/);
    await expect(lock.run('update', async () => 'updated')).rejects.toBeInstanceOf(MaintenanceBusyError);

    const status = await waitUntilIdle();
    const sets = (await (await service.repository(targetId)).listSets()).filter((s) => s.complete);
    // Retention keeps the newest set of each day: this one replaced the scheduled run's.
    expect(sets.map((s) => s.runId)).toEqual([status.targets[0]!.lastSuccess!.runId]);
    const newest = sets.at(-1)!;
    const dumps = newest.snapshots.filter((s) => s.kind === 'database').map((s) => s.summary!);
    const files = newest.snapshots.find((s) => s.kind === 'final')!.summary!;
    expect(holds).toHaveLength(1);
    const hold = holds[0]!;
    expect(hold.reason).toBe('backup');
    // Held before the first dump began, released after the last dump ended and before the files began.
    expect(hold.from).toBeLessThanOrEqual(Date.parse(dumps[0]!.backupStart));
    expect(hold.to!).toBeGreaterThanOrEqual(Date.parse(dumps.at(-1)!.backupEnd) - 1000);
    expect(hold.to!).toBeLessThanOrEqual(Date.parse(files.backupStart) + 1000);
    await expect(lock.run('update', async () => 'updated')).resolves.toBe('updated');
  }, 120_000);

  it('an off-site target that does not answer gives its reason on the API and in health, and the other target is still backed up', async () => {
    const added = await api('POST', '/targets', { kind: 'rest', label: 'Grandma', url: UNREACHABLE_REST });
    expect(added.status).toBe(201);
    const before = (await api('GET', '')).body as unknown as BackupsStatus;
    const folderRuns = before.targets[0]!.lastSuccess!.runId;
    service.runNow('api');
    const status = await waitUntilIdle();
    const grandma = status.targets.find((t) => t.label === 'Grandma')!;
    expect(grandma.lastSuccess).toBeUndefined();
    expect(grandma.lastFailure).toMatchObject({ reason: 'repository-unreachable' });
    expect(grandma.lastFailure!.message).toContain('rest:http://127.0.0.1:18168/');
    expect(status.targets[0]!.lastSuccess!.runId).not.toBe(folderRuns);

    const health = await service.health.report();
    expect(health.reasons).toEqual([
      expect.objectContaining({ source: 'backups', code: 'backup-never-succeeded', message: `Nothing has been backed up to Grandma yet. The last attempt failed: ${grandma.lastFailure!.message}` }),
    ]);
    expect((await api('DELETE', `/targets/${grandma.id}`)).status).toBe(204);
    expect((await service.health.report()).reasons).toEqual([]);
  }, 120_000);

  it('restores one photo folder from a chosen backup through the API into a new folder, never over existing files', async () => {
    const sets = (await api('GET', `/targets/${targetId}/sets`)).body as unknown as { runId: string }[];
    expect(sets).toHaveLength(1);
    const runId = sets[0]!.runId;
    const top = (await api('GET', `/targets/${targetId}/sets/${runId}/items`)).body as unknown as { path: string }[];
    expect(top.map((i) => i.path)).toEqual(['photos', 'synapse', 'config', 'secrets']);
    const years = (await api('GET', `/targets/${targetId}/sets/${runId}/items?path=photos/library`)).body as unknown as { name: string; type: string }[];
    expect(years).toEqual(['2020', '2021', '2022', '2023', '2024'].map((name) => expect.objectContaining({ name, type: 'dir' })));

    const restored = await api('POST', `/targets/${targetId}/sets/${runId}/restore`, { path: 'photos/library/2021', into: 'Photos 2021 back' });
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ directory: 'photos/restored/Photos 2021 back', files: 8 });
    const original = await treeHashes(join(dataDir, 'photos', 'library', '2021'));
    expect(await treeHashes(join(dataDir, 'photos', 'restored', 'Photos 2021 back', 'photos', 'library', '2021'))).toEqual(original);

    const twice = await api('POST', `/targets/${targetId}/sets/${runId}/restore`, { path: 'photos/library/2022', into: 'Photos 2021 back' });
    expect(twice.status).toBe(400);
    expect(twice.body.error).toBe('photos/restored/Photos 2021 back already exists; nothing is restored over existing files. Choose another folder name.');
    const escape = await api('POST', `/targets/${targetId}/sets/${runId}/restore`, { path: 'photos/library/2022', into: '../../etc' });
    expect(escape.status).toBe(400);
    const missing = await api('POST', `/targets/${targetId}/sets/${runId}/restore`, { path: 'photos/library/1999', into: 'Nothing' });
    expect(missing.status).toBe(404);
    expect(await treeHashes(join(dataDir, 'photos', 'restored', 'Nothing'))).toEqual({});
  }, 120_000);

  it('a restore drill that finds a file not coming back as it is on the box fails, with the file named on the API and as a health reason', async () => {
    const photo = join(dataDir, 'photos', 'library', '2022', '03', 'IMG_0002.jpg');
    const original = await readFile(photo);
    const { mtime } = await stat(photo);
    // Same size and time, other bytes: to the drill the box's file has not changed, so the backup's copy must equal it.
    await writeFile(photo, Buffer.alloc(original.length, 7));
    await utimes(photo, mtime, mtime);
    try {
      const drill = await api('POST', '/drill');
      expect(drill.status).toBe(200);
      expect(drill.body).toMatchObject({ ok: false, problems: ['photos/library/2022/03/IMG_0002.jpg came back different from the file on the box, though it has not changed since'] });
      expect((await service.health.report()).reasons).toEqual([expect.objectContaining({ code: 'restore-drill-failed', message: expect.stringContaining('IMG_0002.jpg came back different') })]);
    } finally {
      await writeFile(photo, original);
      await utimes(photo, mtime, mtime);
    }
  }, 120_000);
});

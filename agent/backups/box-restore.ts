import { chmod, copyFile, lstat, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fsyncDirectory, readJsonIfPresent, writeJsonDurably } from '../../shared/files/durable-files.ts';
import { isNotFound } from '../../shared/errors.ts';
import type { BackupRepository } from './backup-repository.ts';
import type { RestoreCommand } from './restore.ts';

/**
 * A new box brought back from the family's backup (the wizard's "restore from a backup"):
 * the files (photos, Synapse's media and keys, the rendered configuration, the old box's
 * secrets), then the databases into the stack's own PostgreSQL before Synapse and Immich
 * start, then memu.db, whose finished wizard and admin account end the setup. The family's
 * apps are held stopped by the reconciler meanwhile (StackHold, kept on the data partition).
 *
 * A power cut before memu.db is in leaves the wizard where it was: the restore is started
 * again and redoes every stage (each replaces what the last attempt put in place). After
 * memu.db is in, the agent's next start only lifts the hold and clears the staging.
 */

export const BOX_RESTORE_STAGES = ['opening', 'holding', 'files', 'databases', 'family-db', 'starting', 'done'] as const;
export type BoxRestoreStage = (typeof BOX_RESTORE_STAGES)[number];

/** The new box's own secrets, which the old box's never replace: its label's claim code, its fleet key, its Tailscale key. */
export const SECRETS_OF_THIS_BOX = ['claim-code', 'claim-code.scrypt', 'agent-api-key.sha256', 'tailscale-auth-key'] as const;
/** Where the stack's PostgreSQL keeps its cluster (compose/stack.yml); the new box's empty one is set aside. */
export const POSTGRES_DATA_PATH = 'postgres';
/** The database services, held until the files are in, then started on an empty cluster. */
export const DATABASE_SERVICES = ['memu_postgres', 'memu_postgres_init'] as const;
/** The role label of the family's apps (Synapse, Immich…), held until the databases are in. */
export const APP_ROLE = 'app';

export interface BoxRestoreRecord {
  runId: string;
  /** Where the backup came from, as the family named it (no secret). */
  source: string;
  stage: BoxRestoreStage;
  startedAt: string;
  finishedAt?: string;
  /** Set when the restore stopped; the stage it stopped in is `stage`. */
  error?: string;
}

export interface BoxRestoreProgress {
  stage: BoxRestoreStage;
  database?: string;
  percent?: number;
  bytesDone?: number;
  bytesTotal?: number;
}

/** The stack's database as a restore reaches it; undefined when the installed stack has none. */
export interface DatabaseRestoreTarget {
  /** Resolves once the database service answers and its init has made the roles. */
  ready(): Promise<void>;
  /** Removes a database the init made empty, so the dump brings back the old one whole. */
  drop(name: string): Promise<void>;
  /** The command that reads the dump on stdin and creates the database from it. */
  restoreCommand(name: string): Promise<RestoreCommand>;
}

export interface BoxRestoreDeps {
  dataDir: string;
  /** Opened with the recovery kit's password. */
  repository: BackupRepository;
  source: string;
  stack: { setHold(hold: { reason: string; services: readonly string[]; roles: readonly string[] } | undefined): Promise<void> };
  databases: () => Promise<DatabaseRestoreTarget | undefined>;
  familyDb: { replace<T>(write: (path: string) => Promise<T>): Promise<T> };
  onProgress?: (p: BoxRestoreProgress) => void;
  log: Logger;
  now?: () => number;
}

const HOLD_REASON = "bringing back the family's backup";

export function boxRestorePaths(dataDir: string) {
  const agent = join(dataDir, 'agent');
  return { record: join(agent, 'box-restore.json'), staging: join(agent, 'box-restore-staging'), replaced: join(agent, 'box-restore-replaced') };
}

export async function readBoxRestoreRecord(dataDir: string): Promise<BoxRestoreRecord | undefined> {
  return (await readJsonIfPresent(boxRestorePaths(dataDir).record)) as BoxRestoreRecord | undefined;
}

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    (err: unknown) => {
      if (isNotFound(err)) return false;
      throw err;
    },
  );

/** Puts `from` at `to`, setting what was at `to` aside under `aside` (same file system: renames only). */
async function swapInto(from: string, to: string, aside: string): Promise<void> {
  if (await exists(to)) {
    await rm(aside, { recursive: true, force: true });
    await rename(to, aside);
  }
  await rename(from, to);
}

/** The restore itself; throws with the stage it stopped in recorded. */
export async function restoreOntoThisBox(d: BoxRestoreDeps): Promise<BoxRestoreRecord> {
  const now = d.now ?? Date.now;
  const paths = boxRestorePaths(d.dataDir);
  const record: BoxRestoreRecord = { runId: '', source: d.source, stage: 'opening', startedAt: new Date(now()).toISOString() };
  const enter = async (stage: BoxRestoreStage) => {
    record.stage = stage;
    await writeJsonDurably(paths.record, record, 0o600);
    d.onProgress?.({ stage });
    d.log.info({ stage, runId: record.runId }, 'restore onto this box: stage');
  };
  let held = false;
  let moved = false;
  try {
    await mkdir(join(d.dataDir, 'agent'), { recursive: true, mode: 0o700 });
    await enter('opening');
    const { set, manifest } = await d.repository.openSet('latest');
    record.runId = set.runId;

    await enter('holding');
    held = true;
    await d.stack.setHold({ reason: HOLD_REASON, services: [...DATABASE_SERVICES], roles: [APP_ROLE] });

    await enter('files');
    await rm(paths.staging, { recursive: true, force: true });
    await mkdir(paths.staging, { recursive: true, mode: 0o700 });
    await mkdir(paths.replaced, { recursive: true, mode: 0o700 });
    if (manifest.files && manifest.files.paths.length > 0) {
      await d.repository.restoreFiles(set.runId, paths.staging, {
        verify: true,
        onProgress: (p) => d.onProgress?.({ stage: 'files', percent: p.percent, bytesDone: p.bytesDone, bytesTotal: p.bytesTotal }),
      });
      const secrets = join(paths.staging, 'secrets');
      if (await exists(secrets)) {
        for (const name of SECRETS_OF_THIS_BOX) {
          const mine = join(d.dataDir, 'secrets', name);
          await rm(join(secrets, name), { force: true });
          // Copied, not moved: until the swap below, the box's own copy stays where it was.
          if (await exists(mine)) {
            await copyFile(mine, join(secrets, name));
            await chmod(join(secrets, name), 0o600);
          }
        }
        await fsyncDirectory(secrets);
      }
      for (const path of manifest.files.paths) {
        moved = true;
        if (await exists(join(paths.staging, path))) await swapInto(join(paths.staging, path), join(d.dataDir, path), join(paths.replaced, path));
      }
      await fsyncDirectory(d.dataDir);
    }

    await enter('databases');
    if (manifest.databases.length > 0) {
      const database = await d.databases();
      if (!database) throw new Error(`the backup holds ${manifest.databases.length} database(s) (${manifest.databases.map((x) => x.name).join(', ')}), but the installed stack has no database service to restore them into`);
      // The new box's cluster holds nothing of the family's; the old box's secrets (now in
      // place) must make a new one, so the init gives the roles the old passwords.
      if (await exists(join(d.dataDir, POSTGRES_DATA_PATH))) await swapInto(join(d.dataDir, POSTGRES_DATA_PATH), join(paths.replaced, POSTGRES_DATA_PATH), join(paths.replaced, `${POSTGRES_DATA_PATH}.old`));
      await d.stack.setHold({ reason: HOLD_REASON, services: [], roles: [APP_ROLE] });
      await database.ready();
      for (const item of manifest.databases) {
        d.onProgress?.({ stage: 'databases', database: item.name });
        await database.drop(item.name);
        await d.repository.restoreDatabase(set.runId, item.name, await database.restoreCommand(item.name));
        d.log.info({ database: item.name, bytes: item.bytes }, 'database restored');
      }
    }

    await enter('family-db');
    if (manifest.familyDb) await d.familyDb.replace((path) => d.repository.restoreFamilyDb(set.runId, path));

    await enter('starting');
    await finishBoxRestore(d.dataDir, d.stack, d.log);
    record.stage = 'done';
    record.finishedAt = new Date(now()).toISOString();
    await writeJsonDurably(paths.record, record, 0o600);
    d.onProgress?.({ stage: 'done' });
    return record;
  } catch (err) {
    record.error = (err as Error).message;
    await writeJsonDurably(paths.record, record, 0o600).catch(() => undefined);
    // Before any file moved, nothing changed: the apps may run again.
    if (held && !moved) {
      await d.stack.setHold(undefined).catch(() => undefined);
    }
    d.log.error({ err, stage: record.stage }, 'restore onto this box failed');
    throw err;
  }
}

/** Lifts the hold and clears what the restore set aside; also what a start after a power cut does once memu.db is in. */
export async function finishBoxRestore(dataDir: string, stack: BoxRestoreDeps['stack'], log: Logger): Promise<void> {
  const paths = boxRestorePaths(dataDir);
  await stack.setHold(undefined);
  await rm(paths.staging, { recursive: true, force: true });
  await rm(paths.replaced, { recursive: true, force: true });
  log.info('restore onto this box: the family apps start on the restored data');
}

type ServiceStates = Record<string, { state: string; exitCode?: number; summary?: string }>;

/** Resolves once memu_postgres is healthy and its init has ended well (the roles exist); rejects after `timeoutMs` saying what each was doing. */
export async function waitForDatabaseServices(services: () => ServiceStates, timeoutMs = 10 * 60_000, pollMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = services();
    const db = s[DATABASE_SERVICES[0]];
    const init = s[DATABASE_SERVICES[1]];
    if (db?.state === 'healthy' && (!init || (init.state === 'exited' && init.exitCode === 0))) return;
    if (Date.now() > deadline) {
      const said = DATABASE_SERVICES.map((name) => `${name}: ${s[name]?.summary ?? s[name]?.state ?? 'not in the stack'}`).join('; ');
      throw new Error(`the database did not come up on the restored secrets within ${Math.round(timeoutMs / 60_000)} min (${said})`);
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

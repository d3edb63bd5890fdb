import type { BackupManifest } from '../../shared/contracts/backup-manifest.ts';
import { runBackup, type BackupRunRequest, type BackupRunResult } from './backup-run.ts';
import { findCompleteSet, listBackupSets, readSetManifest, type BackupSetInfo } from './backup-sets.ts';
import { checkRepository, type IntegrityCheckResult } from './integrity-check.ts';
import { initRepository, readRepositoryId, resticAccess, resticVersion, type BackupEngineOptions, type BackupTarget } from './repository.ts';
import { applyRetention, type RetentionDecision, type RetentionPolicy } from './retention.ts';
import { listSetFiles, listSetItems, restoreDatabase, restoreFamilyDb, restoreFiles, restoreItem, restoreSample, type RestoreCommand, type RestoreProgress, type SetFile, type SetItem } from './restore.ts';
import type { RestoreSummary } from './restic-messages.ts';
import type { ResticAccess } from './restic-process.ts';

/**
 * One open backup repository: what the schedule, the dashboard and the setup wizard
 * call. Its operations run one at a time (a backup, a retention pass, a check and a
 * restore of the same repository never overlap), which is also what lets retention
 * treat an incomplete set older than a complete one as abandoned.
 */
export class BackupRepository {
  private queue: Promise<unknown> = Promise.resolve();
  /** Manifests by their snapshot's id: a snapshot never changes, so each is read once (a restic run saved per restore). */
  private readonly manifests = new Map<string, BackupManifest>();

  constructor(
    readonly target: BackupTarget,
    /** restic's id of the repository (from its config). */
    readonly repositoryId: string,
    readonly resticVersion: string,
    private readonly access: ResticAccess,
    private readonly opts: BackupEngineOptions,
  ) {}

  /** The repository as shown to people. */
  get location(): string {
    return this.access.displayLocation;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work, work);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Waits for the operation in progress (and those queued) to end. */
  async idle(): Promise<void> {
    await this.queue;
  }

  backup(request: BackupRunRequest): Promise<BackupRunResult> {
    return this.exclusive(() => runBackup(this.access, this.opts.stagingDir, this.resticVersion, request));
  }

  /** Every set, oldest first, complete or not. */
  listSets(): Promise<BackupSetInfo[]> {
    return this.exclusive(() => listBackupSets(this.access));
  }

  /** A complete set and its manifest (`latest`: the newest complete set). */
  openSet(runId: string | 'latest'): Promise<{ set: BackupSetInfo; manifest: BackupManifest }> {
    return this.exclusive(() => this.openSetNow(runId));
  }

  private async openSetNow(runId: string | 'latest'): Promise<{ set: BackupSetInfo; manifest: BackupManifest }> {
    const set = findCompleteSet(await listBackupSets(this.access), runId, this.location);
    const cached = this.manifests.get(set.finalSnapshotId!);
    if (cached) return { set, manifest: cached };
    const manifest = await readSetManifest(this.access, set);
    this.manifests.set(set.finalSnapshotId!, manifest);
    return { set, manifest };
  }

  forget(policy: RetentionPolicy, now = new Date()): Promise<RetentionDecision & { snapshotsForgotten: number }> {
    return this.exclusive(async () => applyRetention(this.access, await listBackupSets(this.access), policy, now));
  }

  /** Checks the structure and reads the next of `subsets` parts of the data. */
  check(subsets: number): Promise<IntegrityCheckResult> {
    return this.exclusive(() => checkRepository(this.access, { repositoryId: this.repositoryId, stateDir: this.opts.stateDir, subsets }));
  }

  restoreDatabase(runId: string | 'latest', name: string, into: RestoreCommand): Promise<{ bytes: number; durationMs: number }> {
    return this.exclusive(async () => {
      const { set, manifest } = await this.openSetNow(runId);
      return restoreDatabase(this.access, set, manifest, name, into);
    });
  }

  restoreFiles(runId: string | 'latest', targetDir: string, opts: { verify?: boolean; onProgress?: (p: RestoreProgress) => void } = {}): Promise<RestoreSummary> {
    return this.exclusive(async () => {
      const { set, manifest } = await this.openSetNow(runId);
      return restoreFiles(this.access, set, manifest, targetDir, opts);
    });
  }

  restoreFamilyDb(runId: string | 'latest', destination: string): Promise<{ bytes: number; sha256: string }> {
    return this.exclusive(async () => {
      const { set, manifest } = await this.openSetNow(runId);
      return restoreFamilyDb(this.access, set, manifest, destination);
    });
  }

  /** One folder of a set (`''`: the backed-up folders themselves). */
  listItems(runId: string | 'latest', path: string): Promise<SetItem[]> {
    return this.exclusive(async () => {
      const { set, manifest } = await this.openSetNow(runId);
      return listSetItems(this.access, set, manifest, path);
    });
  }

  /** Every regular file of a set's files (a restore drill picks its sample from them). */
  listFiles(runId: string | 'latest'): Promise<SetFile[]> {
    return this.exclusive(async () => {
      const { set, manifest } = await this.openSetNow(runId);
      return listSetFiles(this.access, set, manifest);
    });
  }

  /** Some files of a set into `targetDir`, verified by restic as they are written. */
  restoreSample(runId: string | 'latest', paths: readonly string[], targetDir: string): Promise<RestoreSummary> {
    return this.exclusive(async () => {
      const { set, manifest } = await this.openSetNow(runId);
      return restoreSample(this.access, set, manifest, paths, targetDir);
    });
  }

  restoreItem(runId: string | 'latest', path: string, targetDir: string, opts: { onProgress?: (p: RestoreProgress) => void } = {}): Promise<RestoreSummary> {
    return this.exclusive(async () => {
      const { set, manifest } = await this.openSetNow(runId);
      return restoreItem(this.access, set, manifest, path, targetDir, opts);
    });
  }
}

/** Opens the repository at `target`: restic must be new enough, the repository there, the password right. */
export async function openBackupRepository(target: BackupTarget, opts: BackupEngineOptions): Promise<BackupRepository> {
  const access = resticAccess(target, opts);
  const version = await resticVersion(opts.resticBinary);
  const id = await readRepositoryId(access);
  return new BackupRepository(target, id, version, access, opts);
}

/** Makes a repository at `target` (or takes the one there that opens with this password) and opens it. */
export async function initBackupRepository(target: BackupTarget, opts: BackupEngineOptions): Promise<{ repository: BackupRepository; created: boolean }> {
  const access = resticAccess(target, opts);
  const version = await resticVersion(opts.resticBinary);
  const { repositoryId, created } = await initRepository(access);
  opts.log.info({ repository: access.displayLocation, created }, created ? 'backup repository made' : 'backup repository already there; using it');
  return { repository: new BackupRepository(target, repositoryId, version, access, opts), created };
}

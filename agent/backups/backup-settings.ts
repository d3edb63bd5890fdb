import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { describeInvalid } from '../../shared/errors.ts';
import { readJsonIfPresent, writeFileDurably } from '../../shared/files/durable-files.ts';
import { DAILY_TIME_PATTERN, DEFAULT_DAILY_TIME } from './backup-schedule.ts';
import { displayLocation, type BackupTarget } from './repository.ts';

/**
 * Where the family's backups go and when: kept as one 0600 JSON file in the device's
 * secrets directory (0700), written durably (temporary name, fsync, rename). Not in
 * memu.db: the off-site target's credentials sit with the device's other secrets, and a
 * restore of memu.db (which a backup carries) must never replace the targets it is being
 * restored from.
 */

export const BACKUP_SETTINGS_FORMAT = 'memu-backup-settings/1';
export const MAX_TARGETS = 4;

export function backupSettingsPath(dataDir: string): string {
  return join(dataDir, 'secrets', 'backup-settings.json');
}

const label = z.string().trim().min(1, 'give the target a name').max(60, 'a name of at most 60 characters');
const noControl = (s: string) => !/[\u0000-\u001f\u007f]/.test(s);
const common = { id: z.string().regex(/^t-[0-9a-f]{8}$/), label, addedAt: z.number().int().nonnegative() };

const targetSchema = z.discriminatedUnion('kind', [
  z.object({ ...common, kind: z.literal('usb-drive') }).strict(),
  z.object({ ...common, kind: z.literal('directory'), path: z.string().regex(/^\/[^\0]*$/, 'an absolute path, like /mnt/nas/memu') }).strict(),
  z
    .object({
      ...common,
      kind: z.literal('rest'),
      url: z.string().regex(/^rest:https?:\/\/[^\s]+$/, 'a restic REST server address, like rest:https://user:password@backup.example.net:8000/memu').refine(noControl),
    })
    .strict(),
  z
    .object({
      ...common,
      kind: z.literal('s3'),
      url: z.string().regex(/^s3:[^\s]+\/[^\s]+$/, 'an S3 address with a bucket, like s3:https://s3.eu-central-1.example.com/family-backups').refine(noControl),
      accessKeyId: z.string().regex(/^[\x21-\x7e]{1,128}$/, 'the access key id, without spaces'),
      secretAccessKey: z.string().regex(/^[\x21-\x7e]{1,256}$/, 'the secret access key, without spaces'),
      region: z.string().regex(/^[a-z0-9-]{1,40}$/, 'a region name like eu-central-1').optional(),
    })
    .strict(),
  z
    .object({
      ...common,
      kind: z.literal('sftp'),
      url: z.string().regex(/^sftp:[^\s]+:[^\s]*$/, 'an SFTP address, like sftp:backup@nas.example.net:/srv/memu').refine(noControl),
    })
    .strict(),
]);

export type BackupTargetSettings = z.infer<typeof targetSchema>;
export type TargetKind = BackupTargetSettings['kind'];

const settingsSchema = z
  .object({
    format: z.literal(BACKUP_SETTINGS_FORMAT),
    dailyTime: z.string().regex(DAILY_TIME_PATTERN, 'HH:MM on a 24-hour clock, like 03:30'),
    targets: z.array(targetSchema).max(MAX_TARGETS),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.targets.filter((t) => t.kind === 'usb-drive').length > 1) ctx.addIssue({ code: 'custom', path: ['targets'], message: 'only one USB drive target' });
    if (new Set(s.targets.map((t) => t.id)).size !== s.targets.length) ctx.addIssue({ code: 'custom', path: ['targets'], message: 'two targets with the same id' });
  });

export type BackupSettings = z.infer<typeof settingsSchema>;

export const DEFAULT_BACKUP_SETTINGS: BackupSettings = { format: BACKUP_SETTINGS_FORMAT, dailyTime: DEFAULT_DAILY_TIME, targets: [] };

export async function readBackupSettings(dataDir: string): Promise<BackupSettings> {
  const path = backupSettingsPath(dataDir);
  let raw: unknown;
  try {
    raw = await readJsonIfPresent(path);
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message}); fix it or remove it and add the backup targets again`);
  }
  if (raw === undefined) return structuredClone(DEFAULT_BACKUP_SETTINGS);
  const parsed = settingsSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${describeInvalid(path, parsed.error.issues)}\nFix it, or remove it and add the backup targets again.`);
  return parsed.data;
}

export async function writeBackupSettings(dataDir: string, settings: BackupSettings): Promise<void> {
  const checked = settingsSchema.parse(settings);
  await writeFileDurably(backupSettingsPath(dataDir), `${JSON.stringify(checked, null, 2)}\n`, 0o600);
}

/** What a person (the dashboard's form) or the API gives to add a target; checked by targetFromInput. */
export interface TargetInput {
  kind?: unknown;
  label?: unknown;
  path?: unknown;
  url?: unknown;
  accessKeyId?: unknown;
  secretAccessKey?: unknown;
  region?: unknown;
}

export class TargetInputError extends Error {
  constructor(readonly problems: string[]) {
    super(`The backup target cannot be added: ${problems.join('; ')}.`);
    this.name = 'TargetInputError';
  }
}

export class TargetNotFoundError extends Error {
  constructor(id: string) {
    super(`There is no backup target ${id}; the Backups page lists the targets there are.`);
    this.name = 'TargetNotFoundError';
  }
}

const KIND_NAMES: Record<TargetKind, string> = { 'usb-drive': 'USB drive', directory: 'folder', rest: 'restic REST server', s3: 'S3 storage', sftp: 'SFTP server' };

/** A new target from a form or API body: every problem named with what to type instead. */
export function targetFromInput(input: TargetInput, settings: BackupSettings, now: number): BackupTargetSettings {
  const kind = typeof input.kind === 'string' ? input.kind : '';
  if (!Object.hasOwn(KIND_NAMES, kind)) throw new TargetInputError([`the kind must be one of ${Object.keys(KIND_NAMES).join(', ')} (got ${JSON.stringify(input.kind ?? null)})`]);
  const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
  const candidate = {
    id: `t-${randomBytes(4).toString('hex')}`,
    kind,
    label: text(input.label) ?? KIND_NAMES[kind as TargetKind],
    addedAt: now,
    ...(kind === 'directory' ? { path: text(input.path) ?? '' } : {}),
    ...(kind === 'rest' || kind === 's3' || kind === 'sftp' ? { url: text(input.url) ?? '' } : {}),
    ...(kind === 's3' ? { accessKeyId: text(input.accessKeyId) ?? '', secretAccessKey: text(input.secretAccessKey) ?? '', ...(text(input.region) ? { region: text(input.region) } : {}) } : {}),
  };
  const parsed = targetSchema.safeParse(candidate);
  if (!parsed.success) throw new TargetInputError(parsed.error.issues.map((i) => `${String(i.path[0] ?? 'target')}: ${i.message === 'Invalid input' ? 'is not valid' : i.message}`));
  const target = parsed.data;
  const problems: string[] = [];
  if (settings.targets.length >= MAX_TARGETS) problems.push(`there are already ${MAX_TARGETS} targets; remove one first`);
  if (target.kind === 'usb-drive' && settings.targets.some((t) => t.kind === 'usb-drive')) problems.push('a USB drive is already a target');
  const where = targetAddress(target);
  if (target.kind !== 'usb-drive' && settings.targets.some((t) => targetAddress(t) === where)) problems.push(`${displayLocation(where)} is already a target`);
  if (problems.length > 0) throw new TargetInputError(problems);
  return target;
}

/** The repository's address as restic takes it (the USB drive's under its mount point). */
export function targetAddress(target: BackupTargetSettings, driveMountPoint = '/run/memu/backup-drive'): string {
  switch (target.kind) {
    case 'usb-drive':
      return join(driveMountPoint, 'memu-backups');
    case 'directory':
      return target.path;
    default:
      return target.url;
  }
}

/** The repository restic opens for a target (the USB drive's once it is mounted at `driveMountPoint`). */
export function resticTarget(t: BackupTargetSettings, driveMountPoint: string): BackupTarget {
  switch (t.kind) {
    case 'usb-drive':
      return { kind: 'local', path: targetAddress(t, driveMountPoint) };
    case 'directory':
      return { kind: 'local', path: t.path };
    case 's3':
      return { kind: 's3', url: t.url, env: { AWS_ACCESS_KEY_ID: t.accessKeyId, AWS_SECRET_ACCESS_KEY: t.secretAccessKey, ...(t.region ? { AWS_DEFAULT_REGION: t.region } : {}) } };
    default:
      return { kind: t.kind, url: t.url };
  }
}

/** The address as shown on pages and in the recovery kit: no password. */
export function describeTarget(target: BackupTargetSettings): { kind: string; address: string } {
  return { kind: KIND_NAMES[target.kind], address: target.kind === 'usb-drive' ? 'the USB drive labelled MEMU-BACKUP (folder memu-backups)' : displayLocation(targetAddress(target)) };
}

/** The settings without credentials, for the API and the pages. */
export function publicTarget(target: BackupTargetSettings): { id: string; kind: TargetKind; label: string; address: string; addedAt: string } {
  return { id: target.id, kind: target.kind, label: target.label, address: describeTarget(target).address, addedAt: new Date(target.addedAt).toISOString() };
}

import { posix } from 'node:path';
import { z } from 'zod';
import { describeInvalid } from '../errors.ts';

/**
 * The manifest of a backup set (agent/backups): one run of the device's backup makes
 * several restic snapshots (one per database dump, streamed from the dump command, then
 * one of the files), since restic cannot put a stream and files in one snapshot. The
 * manifest says which snapshots the run made and what the stack was; it travels inside
 * the run's last snapshot, beside the files and memu.db's copy, so a set is complete
 * exactly when that snapshot exists. A reader refuses a format it does not know.
 */
export const BACKUP_MANIFEST_FORMAT = 'memu-backup-manifest/1';

/** Where the manifest and memu.db's copy sit inside the run's last snapshot. */
export const BACKUP_SET_DIR_IN_SNAPSHOT = '/memu-backup-set';
export const MANIFEST_PATH_IN_SNAPSHOT = `${BACKUP_SET_DIR_IN_SNAPSHOT}/manifest.json`;
export const FAMILY_DB_PATH_IN_SNAPSHOT = `${BACKUP_SET_DIR_IN_SNAPSHOT}/memu.db`;

/** `20261205T185000Z-3fa1c2`: when the run started (UTC) and 24 random bits, so run ids sort by time. */
export const RUN_ID_PATTERN = /^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$/;
/** A database's name becomes a tag and a file name: lower case, digits, `_` and `-`. */
export const DATABASE_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

const snapshotId = z.string().regex(/^[0-9a-f]{64}$/, 'must be a restic snapshot id (64 hex digits)');
const isoTime = z.string().datetime({ offset: true, message: 'must be an ISO 8601 time' });
const byteCount = z.number().int().nonnegative();
const durationMs = z.number().nonnegative();

/** A path under the files' base directory: relative, normalised, never leaving it. */
const relativePath = z
  .string()
  .min(1)
  .refine((p) => !posix.isAbsolute(p) && posix.normalize(p) === p && p !== '.' && !p.startsWith('../') && p !== '..', {
    message: 'must be a normalised relative path inside the base directory',
  });

export const backupDatabaseItemSchema = z
  .object({
    name: z.string().regex(DATABASE_NAME_PATTERN, 'must be lower case letters, digits, _ or -'),
    snapshotId,
    /** The dump's name inside its snapshot (`/<name>.pgdump`). */
    path: z.string().regex(/^\/[a-z0-9][a-z0-9_-]*\.pgdump$/, 'must be /<name>.pgdump'),
    /** Size of the dump as the command wrote it. */
    bytes: byteCount,
    /**
     * How long its snapshot took (restic opening the repository, the dump, saving): an
     * upper bound on how long the dump held its database's locks.
     */
    durationMs,
  })
  .strict();

export const backupFamilyDbItemSchema = z
  .object({
    path: z.literal(FAMILY_DB_PATH_IN_SNAPSHOT),
    bytes: byteCount,
    /** SHA-256 (hex) of the copy; a restore checks it before putting the file in place. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'),
    /** memu.db's migration number when copied (PRAGMA user_version). */
    schemaVersion: z.number().int().nonnegative(),
    durationMs,
  })
  .strict();

export const backupFilesItemSchema = z
  .object({
    /** The absolute directory the paths are under (the data partition on the device). */
    baseDir: z.string().refine((p) => posix.isAbsolute(p) && posix.normalize(p) === p && p !== '/', { message: 'must be a normalised absolute directory other than /' }),
    /** What the last snapshot holds, relative to baseDir. */
    paths: z.array(relativePath),
    /** Paths asked for that did not exist when the run started (a service that never wrote its folder yet). */
    missingPaths: z.array(relativePath),
  })
  .strict();

export const backupManifestSchema = z
  .object({
    format: z.literal(BACKUP_MANIFEST_FORMAT),
    runId: z.string().regex(RUN_ID_PATTERN, 'must look like 20261205T185000Z-3fa1c2'),
    /** The host name every snapshot of the set carries. */
    host: z.string().min(1).max(253),
    startedAt: isoTime,
    /** When the manifest was written: after every database snapshot, before the last snapshot. */
    writtenAt: isoTime,
    /** Versions of what made the data (the OS release, Synapse, Immich, PostgreSQL…), as the caller gave them. */
    stack: z.record(z.string().min(1).max(64), z.string().min(1).max(128)),
    /** `restic version` of the program that wrote the set. */
    resticVersion: z.string().min(1),
    databases: z.array(backupDatabaseItemSchema),
    familyDb: backupFamilyDbItemSchema.nullable(),
    files: backupFilesItemSchema.nullable(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const names = m.databases.map((d) => d.name);
    names.forEach((name, i) => {
      if (names.indexOf(name) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['databases', i, 'name'], message: `database ${name} is listed twice` });
    });
    const ids = m.databases.map((d) => d.snapshotId);
    ids.forEach((id, i) => {
      if (ids.indexOf(id) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['databases', i, 'snapshotId'], message: 'the same snapshot is listed for two databases' });
    });
    m.databases.forEach((d, i) => {
      if (d.path !== `/${d.name}.pgdump`) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['databases', i, 'path'], message: `must be /${d.name}.pgdump for database ${d.name}` });
    });
    if (m.files) {
      const all = [...m.files.paths, ...m.files.missingPaths];
      all.forEach((p, i) => {
        if (all.indexOf(p) !== i) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['files'], message: `${p} is listed twice` });
        const inside = all.find((other) => other !== p && p.startsWith(`${other}/`));
        if (inside) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['files'], message: `${p} is inside ${inside}, which is listed too` });
      });
    }
    if (Date.parse(m.writtenAt) < Date.parse(m.startedAt)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['writtenAt'], message: 'is before startedAt' });
  });

export type BackupDatabaseItem = z.infer<typeof backupDatabaseItemSchema>;
export type BackupFamilyDbItem = z.infer<typeof backupFamilyDbItemSchema>;
export type BackupFilesItem = z.infer<typeof backupFilesItemSchema>;
export type BackupManifest = z.infer<typeof backupManifestSchema>;

/** The manifest in `value`, or an error listing every problem; `source` names where it came from. */
export function parseBackupManifest(value: unknown, source: string): BackupManifest {
  const format = typeof value === 'object' && value !== null ? (value as { format?: unknown }).format : undefined;
  if (typeof format === 'string' && format.startsWith('memu-backup-manifest/') && format !== BACKUP_MANIFEST_FORMAT) {
    throw new Error(`${source} is a backup manifest of format ${format}, which this agent does not read (it reads ${BACKUP_MANIFEST_FORMAT}); restore it with a newer Memu OS`);
  }
  const result = backupManifestSchema.safeParse(value);
  if (!result.success) throw new Error(describeInvalid(source, result.error.issues));
  return result.data;
}

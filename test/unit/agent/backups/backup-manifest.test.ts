import { describe, expect, it } from 'vitest';
import { BACKUP_MANIFEST_FORMAT, parseBackupManifest, type BackupManifest } from '../../../../shared/contracts/backup-manifest.ts';

/**
 * The backup set's manifest (shared/contracts/backup-manifest.ts). Its tests sit with the
 * engine that writes and reads it, agent/backups.
 */
const id = (c: string) => c.repeat(64);

function manifest(): BackupManifest {
  return {
    format: BACKUP_MANIFEST_FORMAT,
    runId: '20261205T030000Z-3fa1c2',
    host: 'memu',
    startedAt: '2026-12-05T03:00:00.000Z',
    writtenAt: '2026-12-05T03:01:10.000Z',
    stack: { memuOs: '0.1.0', synapse: '1.119.0', immich: '1.123.0', postgres: '15.10' },
    resticVersion: '0.18.0',
    databases: [
      { name: 'synapse', snapshotId: id('a'), path: '/synapse.pgdump', bytes: 1_234_567, durationMs: 2100 },
      { name: 'immich', snapshotId: id('b'), path: '/immich.pgdump', bytes: 7_654_321, durationMs: 5300 },
    ],
    familyDb: { path: '/memu-backup-set/memu.db', bytes: 73_728, sha256: id('c'), schemaVersion: 1, durationMs: 20 },
    files: { baseDir: '/var/lib/memu', paths: ['photos', 'synapse/media', 'config', 'secrets'], missingPaths: [] },
  };
}

const problems = (value: unknown) => {
  try {
    parseBackupManifest(value, 'the manifest');
    return '';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('the backup manifest', () => {
  it('accepts a whole set, and one with only files or only dumps', () => {
    expect(parseBackupManifest(manifest(), 'm')).toEqual(manifest());
    expect(problems({ ...manifest(), databases: [], familyDb: null })).toBe('');
    expect(problems({ ...manifest(), files: null })).toBe('');
  });

  it('refuses a format it does not read, saying which', () => {
    expect(problems({ ...manifest(), format: 'memu-backup-manifest/2' })).toBe(
      'the manifest is a backup manifest of format memu-backup-manifest/2, which this agent does not read (it reads memu-backup-manifest/1); restore it with a newer Memu OS',
    );
    expect(problems({ ...manifest(), format: undefined })).toMatch(/format: /);
  });

  it('refuses unknown fields, so a misspelt one is not silently dropped', () => {
    expect(problems({ ...manifest(), databse: [] })).toBe('the manifest is invalid: databse: not a known field');
  });

  it('checks the databases: names, snapshot ids, paths, no duplicates', () => {
    const m = manifest();
    expect(problems({ ...m, databases: [{ ...m.databases[0]!, name: 'Synapse DB' }] })).toMatch(/databases\[0\]\.name: must be lower case/);
    expect(problems({ ...m, databases: [{ ...m.databases[0]!, snapshotId: 'abc' }] })).toMatch(/snapshotId: must be a restic snapshot id/);
    expect(problems({ ...m, databases: [{ ...m.databases[0]!, path: '/immich.pgdump' }] })).toMatch(/databases\[0\]\.path: must be \/synapse\.pgdump/);
    expect(problems({ ...m, databases: [m.databases[0]!, { ...m.databases[1]!, name: 'synapse', path: '/synapse.pgdump' }] })).toMatch(/database synapse is listed twice/);
    expect(problems({ ...m, databases: [m.databases[0]!, { ...m.databases[1]!, snapshotId: id('a') }] })).toMatch(/the same snapshot is listed for two databases/);
    expect(problems({ ...m, databases: [{ ...m.databases[0]!, bytes: -1 }] })).toMatch(/bytes/);
  });

  it("checks the files: relative paths inside the base directory, none inside another", () => {
    const m = manifest();
    const files = (patch: object) => problems({ ...m, files: { ...m.files!, ...patch } });
    expect(files({ paths: ['/etc'] })).toMatch(/must be a normalised relative path/);
    expect(files({ paths: ['../etc'] })).toMatch(/must be a normalised relative path/);
    expect(files({ paths: ['photos/../secrets'] })).toMatch(/must be a normalised relative path/);
    expect(files({ paths: ['photos', 'photos/2024'] })).toMatch(/photos\/2024 is inside photos/);
    expect(files({ paths: ['photos'], missingPaths: ['photos'] })).toMatch(/photos is listed twice/);
    expect(files({ baseDir: 'var/lib/memu' })).toMatch(/baseDir: must be a normalised absolute directory/);
    expect(files({ baseDir: '/' })).toMatch(/other than \//);
  });

  it('checks the run id, the times and memu.db\'s copy', () => {
    const m = manifest();
    expect(problems({ ...m, runId: 'yesterday' })).toMatch(/runId: must look like/);
    expect(problems({ ...m, writtenAt: '2026-12-05T02:59:00.000Z' })).toMatch(/writtenAt: is before startedAt/);
    expect(problems({ ...m, startedAt: 'Friday' })).toMatch(/startedAt: must be an ISO 8601 time/);
    expect(problems({ ...m, familyDb: { ...m.familyDb!, path: '/memu.db' } })).toMatch(/familyDb\.path/);
    expect(problems({ ...m, familyDb: { ...m.familyDb!, sha256: 'x' } })).toMatch(/familyDb\.sha256: must be 64 hex digits/);
  });

  it('lists every problem at once', () => {
    const message = problems({ ...manifest(), runId: 'x', host: '' });
    expect(message.split('\n')).toEqual(['the manifest is invalid:', expect.stringMatching(/^  - runId:/), expect.stringMatching(/^  - host:/)]);
  });
});

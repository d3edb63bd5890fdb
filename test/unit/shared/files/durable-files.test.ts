import { chmod, chown, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createFileOnce, ensureDirectory, removeStaleTemporaryFiles } from '../../../../shared/files/durable-files.ts';
import { isRoot, prerequisite } from '../../../helpers/prerequisites.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

describe('ensureDirectory', () => {
  it('creates a missing directory with its mode, whatever the umask', async () => {
    const path = join(await tempDir('memu-files-'), 'a', 'b');
    const umask = process.umask(0o077);
    try {
      await ensureDirectory(path, 0o755);
    } finally {
      process.umask(umask);
    }
    expect((await stat(path)).mode & 0o7777).toBe(0o755);
  });

  it('applies the mode to a directory that already exists (an interrupted earlier run made it)', async () => {
    const path = join(await tempDir('memu-files-'), 'media_store');
    await mkdir(path, { mode: 0o777 });
    await chmod(path, 0o777);
    await ensureDirectory(path, 0o750);
    expect((await stat(path)).mode & 0o7777).toBe(0o750);
  });

  it.skipIf(!prerequisite('root (chown)', isRoot))('applies the owner to a directory that already exists, and runs the checkpoint between mkdir and chown', async () => {
    const path = join(await tempDir('memu-files-'), 'media_store');
    await mkdir(path);
    await chown(path, 0, 0);
    let atCheckpoint: number | undefined;
    await ensureDirectory(path, 0o750, { uid: 991, gid: 992 }, async () => {
      atCheckpoint = (await stat(path)).uid;
    });
    expect(atCheckpoint).toBe(0);
    expect(await stat(path)).toMatchObject({ uid: 991, gid: 992 });
  });
});

// The per-device secrets rely on these two guarantees: a secret is created once and never
// replaced, and an interrupted write's temporary file is cleared before a step runs again.
describe('create-once secret files', () => {
  it('never replaces a secret that exists, even when racing another writer', async () => {
    const dir = await tempDir('memu-files-');
    const path = join(dir, 'secrets', 'key');
    const results = await Promise.all(['first', 'second', 'third'].map((c) => createFileOnce(path, c, { mode: 0o600 })));
    const winner = await readFile(path, 'utf8');
    expect(results.filter((r) => r.created)).toHaveLength(1);
    for (const r of results) expect(r.content).toBe(winner);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await createFileOnce(path, 'later', { mode: 0o600 })).toEqual({ content: winner, created: false });
    expect(await readdir(join(dir, 'secrets'))).toEqual(['key']);
  });
});

describe('stale temporary files', () => {
  it('removes only interrupted writes\' temporary names, and only the listed ones in shared dirs', async () => {
    const dir = await tempDir('memu-files-');
    for (const name of ['.hostname.tmp-123-kq2', '.passwd.tmp-9-abc', 'hostname', 'notes.tmp', '.hidden']) await writeFile(join(dir, name), 'x');
    await removeStaleTemporaryFiles(dir, { only: ['hostname'] });
    expect((await readdir(dir)).sort()).toEqual(['.hidden', '.passwd.tmp-9-abc', 'hostname', 'notes.tmp']);
    await removeStaleTemporaryFiles(dir);
    expect((await readdir(dir)).sort()).toEqual(['.hidden', 'hostname', 'notes.tmp']);
    expect(await removeStaleTemporaryFiles(join(dir, 'missing'))).toEqual([]);
  });
});

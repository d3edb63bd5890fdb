import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parsePreseed } from '../../../../../shared/contracts/preseed.ts';
import { createFileOnce, removeStaleTemporaryFiles } from '../../../../../shared/files/durable-files.ts';
import { generateClaimCode } from '../../../../../agent/provisioning/steps/secrets-steps.ts';

/** A fresh directory, removed when the test ends. */
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-secrets-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('generated claim codes', () => {
  it('follow the preseed contract (4 groups of 4 Crockford base32 symbols) and do not repeat', () => {
    const codes = new Set(Array.from({ length: 500 }, generateClaimCode));
    expect(codes.size).toBe(500);
    for (const code of [...codes].slice(0, 50)) {
      expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
      expect(parsePreseed(JSON.stringify({ version: 1, claimCode: code }))).toMatchObject({ ok: true });
    }
  });
});

// device-secrets relies on these two guarantees of shared/files/durable-files.ts: a
// secret is created once and never replaced, and an interrupted write's temporary file
// is cleared before the step runs again.
describe('create-once secret files', () => {
  it('never replaces a secret that exists, even when racing another writer', async () => {
    const dir = await tempDir();
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
    const dir = await tempDir();
    for (const name of ['.hostname.tmp-123-kq2', '.passwd.tmp-9-abc', 'hostname', 'notes.tmp', '.hidden']) await writeFile(join(dir, name), 'x');
    await removeStaleTemporaryFiles(dir, { only: ['hostname'] });
    expect((await readdir(dir)).sort()).toEqual(['.hidden', '.passwd.tmp-9-abc', 'hostname', 'notes.tmp']);
    await removeStaleTemporaryFiles(dir);
    expect((await readdir(dir)).sort()).toEqual(['.hidden', 'hostname', 'notes.tmp']);
    expect(await removeStaleTemporaryFiles(join(dir, 'missing'))).toEqual([]);
  });
});

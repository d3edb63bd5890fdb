import { execFile } from 'node:child_process';
import { readFileSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { cliBundleRoot, type CliBundlePointer } from '../../../../image/cli/bundle.ts';
import { repoRoot } from '../../../../image/host/repo-root.ts';

const execFileAsync = promisify(execFile);
const memu = join(repoRoot, 'bin/memu.mjs');
const pointer = (): CliBundlePointer => JSON.parse(readFileSync(join(cliBundleRoot, 'current.json'), 'utf8'));
const run = (...args: string[]) => execFileAsync(process.execPath, [memu, ...args], { env: { ...process.env, MEMU_CLI_FROM_SOURCE: '' } });

describe('memu starts from a bundle of the CLI that is never stale', () => {
  it('reuses a fresh bundle, rebuilds it after a source change, and answers the same', async () => {
    const first = await run('flash', '--help');
    const built = pointer();
    expect(built.inputs).toContain('image/cli/main.ts');
    expect(built.inputs).toContain('image/flash/flash-image.ts');
    expect(statSync(join(cliBundleRoot, built.dir, 'main.js')).isFile()).toBe(true);

    // Nothing changed: the same bundle runs.
    expect((await run('flash', '--help')).stdout).toBe(first.stdout);
    expect(pointer().dir).toBe(built.dir);

    // A source file the CLI is built from changes (here only its time): the next run rebuilds.
    const source = join(repoRoot, 'image/flash/verify.ts');
    const now = new Date();
    expect(now.getTime()).toBeGreaterThan(built.builtAt);
    utimesSync(source, now, now);
    const afterChange = await run('flash', '--help');
    expect(afterChange.stdout).toBe(first.stdout);
    expect(pointer().dir).not.toBe(built.dir);
    expect(pointer().builtAt).toBeGreaterThan(built.builtAt);
  });

  it('runs from the sources through tsx when asked, with the same commands', async () => {
    const fromSource = await execFileAsync(process.execPath, [memu, '--help'], { env: { ...process.env, MEMU_CLI_FROM_SOURCE: '1' } });
    const fromBundle = await run('--help');
    expect(fromSource.stdout).toBe(fromBundle.stdout);
    expect(fromBundle.stdout).toMatch(/^\s+flash\b/m);
  });
});

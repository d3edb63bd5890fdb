import { randomBytes } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { nodeBundleOptions } from '../pipeline/node-bundle-options.ts';
import { repoRoot } from '../host/repo-root.ts';

/**
 * `memu` starts from an esbuild bundle of the CLI instead of compiling its TypeScript
 * through tsx on every run: 0.12 s instead of 0.55 s to `memu flash --help`, which a
 * factory station pays once per drive. `bin/memu.mjs` uses the bundle while it is
 * fresh and calls `rebuildCliBundle()` when it is not, so a checkout never runs stale
 * code and needs no build step.
 *
 * Layout, read by bin/memu.mjs (plain JavaScript, it runs before tsx):
 *   .cache/cli/current.json  { dir, builtAt, inputs }: the bundle in use, when its
 *                            build started (ms since the epoch), and the files it was
 *                            built from (relative to the checkout); it is stale once
 *                            any of them is newer than builtAt or gone.
 *   .cache/cli/<dir>/main.js the entry (commands are split into chunks beside it,
 *                            loaded only when invoked).
 * A new build goes to a new directory and then the pointer is replaced atomically,
 * so processes running the previous bundle keep their chunks.
 */
export const cliBundleRoot = join(repoRoot, '.cache/cli');

export interface CliBundlePointer {
  dir: string;
  builtAt: number;
  inputs: string[];
}

/** Besides the sources: a changed package.json or `npm ci` (which rewrites node_modules/.package-lock.json) means new dependencies. */
const dependencyStamps = ['package.json', 'node_modules/.package-lock.json'];

/** Older bundles than this are removed after a rebuild; a process that started from one is long done. */
const keepOldBundlesMs = 60 * 60 * 1000;

/** Builds the CLI bundle, points `current.json` at it and returns the path of its entry. */
export async function rebuildCliBundle(): Promise<string> {
  const builtAt = Date.now();
  const dir = `${builtAt.toString(36)}-${randomBytes(4).toString('hex')}`;
  const outdir = join(cliBundleRoot, dir);
  const result = await build({
    ...nodeBundleOptions,
    entryPoints: { main: 'image/cli/main.ts' },
    outdir,
    splitting: true,
    // esbuild's JavaScript API finds its native binary relative to its own package, and
    // pdfkit its standard fonts through its own package.json's "imports" (#standard-fonts/…):
    // both are loaded from node_modules.
    external: [...nodeBundleOptions.external, 'esbuild', 'pdfkit'],
    metafile: true,
    logLevel: 'error',
  });
  const sources = Object.keys(result.metafile.inputs).filter((p) => !p.startsWith('node_modules/') && !p.includes(':'));
  const stamps: string[] = [];
  for (const p of dependencyStamps) if (await stat(join(repoRoot, p)).then(() => true, () => false)) stamps.push(p);
  const pointer: CliBundlePointer = { dir, builtAt, inputs: [...sources, ...stamps] };
  await writeFileAtomic(join(cliBundleRoot, 'current.json'), `${JSON.stringify(pointer)}\n`);
  await removeOldBundles(dir);
  return join(outdir, 'main.js');
}

async function removeOldBundles(keep: string): Promise<void> {
  for (const entry of await readdir(cliBundleRoot, { withFileTypes: true }).catch(() => [])) {
    if (!entry.isDirectory() || entry.name === keep) continue;
    const path = join(cliBundleRoot, entry.name);
    const age = Date.now() - (await stat(path).then((s) => s.mtimeMs, () => Date.now()));
    if (age > keepOldBundlesMs) await rm(path, { recursive: true, force: true });
  }
}


import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The checkout's root directory (with a trailing slash), found by walking up to memu's
 * package.json. The host CLI runs both from its TypeScript sources and from its bundle
 * in `.cache/cli/`, so a fixed `../../` from this file would be right for only one.
 */
function findRepoRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'memu-os') return `${dir}/`;
    if (dirname(dir) === dir) throw new Error(`no memu-os package.json above ${from}: run memu from its checkout`);
  }
}

export const repoRoot = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

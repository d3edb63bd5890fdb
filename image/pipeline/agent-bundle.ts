import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';
import { repoRoot } from '../host/repo-root.ts';
import { nodeBundleOptions } from './node-bundle-options.ts';

export interface AgentBundle {
  /** The whole agent as one ES module: no native modules, so one bundle serves arm64 and amd64. */
  code: Buffer;
  version: string;
  sha256: string;
}

/**
 * Stage 3 input: bundles `agent/main.ts` and its dependencies into a single file with
 * esbuild. The output depends only on the sources, so it is reproducible.
 */
export async function bundleAgent(releaseVersion: string): Promise<AgentBundle> {
  const result = await build({
    ...nodeBundleOptions,
    entryPoints: ['agent/main.ts'],
    write: false,
    define: { __MEMU_AGENT_VERSION__: JSON.stringify(releaseVersion) },
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('esbuild produced no agent bundle');
  const code = Buffer.from(file.contents);
  return { code, version: releaseVersion, sha256: createHash('sha256').update(code).digest('hex') };
}

export async function projectVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(`${repoRoot}package.json`, 'utf8')) as { version: string };
  return pkg.version;
}


import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

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
    entryPoints: ['agent/main.ts'],
    // Paths in the bundle's comments are relative to the repository, not the build host.
    absWorkingDir: REPO_ROOT,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    write: false,
    minify: false,
    legalComments: 'none',
    define: { __MEMU_AGENT_VERSION__: JSON.stringify(releaseVersion) },
    // Some dependencies still call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as __memuCreateRequire } from 'node:module'; const require = __memuCreateRequire(import.meta.url);" },
    logLevel: 'silent',
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('esbuild produced no agent bundle');
  const code = Buffer.from(file.contents);
  return { code, version: releaseVersion, sha256: createHash('sha256').update(code).digest('hex') };
}

export async function projectVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(`${REPO_ROOT}package.json`, 'utf8')) as { version: string };
  return pkg.version;
}

export const repoRoot = REPO_ROOT;

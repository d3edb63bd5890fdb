import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * dockerode loads gRPC and protobufjs (BuildKit sessions for image builds) and
 * docker-modem loads ssh2 (Docker over SSH) at start-up. The agent does neither: it talks
 * to the local socket. On a device where the agent's budget is 80 MB, those modules are
 * replaced by stubs that say so if anything ever calls them.
 */
const UNUSED_DOCKER_FEATURES: { importer: RegExp; request: RegExp; feature: string }[] = [
  { importer: /dockerode[\\/]lib[\\/]/, request: /^\.\/(session|buildkit)$/, feature: 'BuildKit builds' },
  { importer: /docker-modem[\\/]lib[\\/]/, request: /^\.\/ssh$/, feature: 'Docker over SSH' },
];
const dockerodeWithoutUnusedFeatures: Plugin = {
  name: 'dockerode-without-unused-features',
  setup(build) {
    for (const { importer, request, feature } of UNUSED_DOCKER_FEATURES) {
      build.onResolve({ filter: request }, (args) => (importer.test(args.importer) ? { path: feature, namespace: 'memu-stub' } : undefined));
    }
    build.onLoad({ filter: /.*/, namespace: 'memu-stub' }, (args) => ({
      contents: `module.exports = function () { throw new Error(${JSON.stringify(`${args.path} are not part of memu-agent`)}); };`,
      loader: 'js',
    }));
  },
};

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
    // CommonJS dependencies expect require, __filename and __dirname; give the ESM bundle them.
    banner: {
      js: [
        "import { createRequire as __memuCreateRequire } from 'node:module';",
        "import { fileURLToPath as __memuFileURLToPath } from 'node:url';",
        "import { dirname as __memuDirname } from 'node:path';",
        'const require = __memuCreateRequire(import.meta.url);',
        'const __filename = __memuFileURLToPath(import.meta.url);',
        'const __dirname = __memuDirname(__filename);',
      ].join(' '),
    },
    // ssh2's optional native speed-ups (dockerode never uses SSH here; the agent talks to
    // the Docker socket). ssh2 loads both inside try/catch, so leaving them out is safe and
    // keeps the bundle free of native code.
    external: ['cpu-features', '*.node'],
    plugins: [dockerodeWithoutUnusedFeatures],
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

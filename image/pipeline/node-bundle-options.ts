import type { BuildOptions, Plugin } from 'esbuild';
import { repoRoot } from '../host/repo-root.ts';

/**
 * dockerode loads gRPC and protobufjs (BuildKit sessions for image builds) and
 * docker-modem loads ssh2 (Docker over SSH) at start-up. Neither memu nor the agent
 * uses them: both talk to a local socket. Bundles replace those modules with stubs
 * that say so if anything ever calls them (on a device that is -6 MB resident).
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
      contents: `module.exports = function () { throw new Error(${JSON.stringify(`${args.path} are not part of memu`)}); };`,
      loader: 'js',
    }));
  },
};

/** What the agent bundle and the CLI bundle share: Node 20 ES modules with their dependencies inside. */
export const nodeBundleOptions = {
  // Paths in the bundle's comments are relative to the repository, not the build host.
  absWorkingDir: repoRoot,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: false,
  // esbuild's default, stated: strings are escaped to ASCII (see agent-bundle.ts for why it matters).
  charset: 'ascii',
  legalComments: 'none',
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
  // ssh2's optional native speed-ups: ssh2 loads both inside try/catch, so leaving them
  // out is safe and keeps bundles free of native code.
  external: ['cpu-features', '*.node'],
  plugins: [dockerodeWithoutUnusedFeatures],
  logLevel: 'silent',
} satisfies BuildOptions;

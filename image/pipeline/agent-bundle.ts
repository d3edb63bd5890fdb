import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { repoRoot } from '../host/repo-root.ts';
import { nodeBundleOptions } from './node-bundle-options.ts';

/**
 * node-sqlite3-wasm (memu.db) reads node-sqlite3-wasm.wasm from beside its own file when
 * it loads. The agent ships as one file, so the bundle carries that binary (esbuild's
 * binary loader) and hands it over with a `var Module = { wasmBinary }` ahead of the
 * package's code: Emscripten's way of configuring a module, whose output begins with
 * `var Module = typeof Module != "undefined" ? Module : {}` and so keeps a Module declared
 * before it. A version that no longer begins so stops the build.
 */
const EMSCRIPTEN_MODULE_HEAD = 'var Module=typeof Module!="undefined"?Module:{};';
const sqliteWasmInside: Plugin = {
  name: 'sqlite-wasm-inside',
  setup(build) {
    build.onLoad({ filter: /node-sqlite3-wasm[\\/]dist[\\/]node-sqlite3-wasm\.js$/ }, async (args) => {
      const code = await readFile(args.path, 'utf8');
      if (!code.startsWith(EMSCRIPTEN_MODULE_HEAD)) {
        throw new Error(`${args.path} no longer begins with Emscripten's Module declaration, so the bundle cannot hand it the embedded node-sqlite3-wasm.wasm`);
      }
      return { contents: `var Module = { wasmBinary: require('./node-sqlite3-wasm.wasm') };\n${code}`, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

export interface AgentBundle {
  /** The whole agent as one ES module: no native modules (SQLite is WebAssembly, inside), so one bundle serves arm64 and amd64. */
  code: Buffer;
  version: string;
  sha256: string;
}

/**
 * Stage 3 input: bundles `agent/main.ts` and its dependencies into a single file with
 * esbuild, WebAssembly included. The output depends only on the sources, so it is
 * reproducible. Tests bundle other entries (`entryPoint`) the same way.
 */
export async function bundleAgent(releaseVersion: string, entryPoint = 'agent/main.ts'): Promise<AgentBundle> {
  const result = await build({
    ...nodeBundleOptions,
    entryPoints: [entryPoint],
    write: false,
    loader: { '.wasm': 'binary' },
    plugins: [...nodeBundleOptions.plugins, sqliteWasmInside],
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


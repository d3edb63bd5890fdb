import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import { repoRoot } from '../host/repo-root.ts';
import { nodeBundleOptions } from './node-bundle-options.ts';

/** Where the image keeps the agent: the bundle and SQLite's WebAssembly beside it. */
export const AGENT_INSTALL_DIR = 'usr/lib/memu/agent';
export const AGENT_BUNDLE_NAME = 'memu-agent.mjs';
/**
 * node-sqlite3-wasm (memu.db) loads this file from beside its own code, which in the
 * bundle is beside the bundle. It stays a file rather than going inside the bundle: V8
 * keeps a script's source for as long as the script lives, so an embedded copy (base64)
 * plus the decoded bytes would cost 3.3 MB of the agent's memory for the rest of its life.
 */
export const SQLITE_WASM_NAME = 'node-sqlite3-wasm.wasm';

export interface AgentBundleFile {
  name: string;
  contents: Buffer;
}

export interface AgentBundle {
  /** What goes into the agent's directory: the ES module and its WebAssembly. Architecture-independent: one bundle serves arm64 and amd64. */
  files: AgentBundleFile[];
  version: string;
  /** Over every file's name and contents, in order. */
  sha256: string;
}

/**
 * A non-ASCII character anywhere in the source makes V8 hold the whole script as UTF-16:
 * twice its size, for as long as the agent runs. esbuild escapes strings but leaves tagged
 * templates and regular expressions as written, so the bundle is checked rather than trusted.
 */
function requireAscii(code: string, entryPoint: string): void {
  const at = code.search(/[^\x00-\x7f]/);
  if (at < 0) return;
  const excerpt = code.slice(Math.max(0, at - 60), at + 20).replace(/\s+/g, ' ');
  throw new Error(
    `the agent bundle of ${entryPoint} contains the non-ASCII character "${code[at]}" (U+${code.codePointAt(at)!.toString(16).toUpperCase().padStart(4, '0')}) near: ${excerpt}\n` +
      'V8 would keep the whole bundle as UTF-16, doubling its memory. Write it as an HTML entity (&hellip;) in page templates or as \\u escape in regular expressions.',
  );
}

/**
 * Stage 3 input: bundles `agent/main.ts` and its dependencies into a single ES module
 * with esbuild, SQLite's WebAssembly beside it. Whitespace and comments are left out
 * (names are kept, so stack traces still say which function): the source is resident for
 * the agent's whole life. The output depends only on the sources, so it is reproducible.
 * Tests bundle other entries (`entryPoint`) the same way.
 */
export async function bundleAgent(releaseVersion: string, entryPoint = 'agent/main.ts'): Promise<AgentBundle> {
  const result = await build({
    ...nodeBundleOptions,
    minifyWhitespace: true,
    minifySyntax: true,
    entryPoints: [entryPoint],
    write: false,
    define: { __MEMU_AGENT_VERSION__: JSON.stringify(releaseVersion) },
  });
  const file = result.outputFiles[0];
  if (!file) throw new Error('esbuild produced no agent bundle');
  requireAscii(file.text, entryPoint);
  const wasmPath = createRequire(`${repoRoot}package.json`).resolve(`node-sqlite3-wasm/dist/${SQLITE_WASM_NAME}`);
  const files = [
    { name: AGENT_BUNDLE_NAME, contents: Buffer.from(file.contents) },
    { name: SQLITE_WASM_NAME, contents: await readFile(wasmPath) },
  ];
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.name}\0${f.contents.length}\0`).update(f.contents);
  return { files, version: releaseVersion, sha256: hash.digest('hex') };
}

export async function projectVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(`${repoRoot}package.json`, 'utf8')) as { version: string };
  return pkg.version;
}

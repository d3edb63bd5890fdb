import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';
import type { Logger } from 'pino';
import { AGENT_BUNDLE_NAME, SQLITE_ADDON_NAME } from '../../shared/contracts/agent-install.ts';
import { repoRoot } from '../host/repo-root.ts';
import { nodeBundleOptions } from './node-bundle-options.ts';
import { sqliteAddon, type AddonArch, type SqliteAddonKey } from './sqlite-addon.ts';

export interface AgentBundleFile {
  name: string;
  contents: Buffer;
}

export interface AgentBundle {
  /** What goes into the agent's directory (AGENT_INSTALL_DIR): the ES module, and SQLite's addon for the image's architecture. */
  files: AgentBundleFile[];
  version: string;
  sqliteAddon: SqliteAddonKey;
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
 * The agent's V8 runs without WebAssembly (`--lite-mode`, memu-agent.service), and Node's
 * fetch parses HTTP with WebAssembly: on the device a call to fetch ends the process. So
 * the build refuses a bundle that calls the global fetch or names WebAssembly, and says
 * what to use instead.
 */
function refuseWebAssemblyUsers(code: string, entryPoint: string): void {
  const use = /(?<![\w$.])fetch\(|\bWebAssembly\b/.exec(code);
  if (!use) return;
  const excerpt = code.slice(Math.max(0, use.index - 80), use.index + 40).replace(/\s+/g, ' ');
  throw new Error(
    `the agent bundle of ${entryPoint} uses ${use[0].startsWith('fetch') ? 'the global fetch' : 'WebAssembly'} near: ${excerpt}\n` +
      "the agent runs without WebAssembly (V8's lite mode), where Node's fetch ends the process: call services through node:http (shared/http/http-json.ts does), and keep WebAssembly out of the agent.",
  );
}

/**
 * The agent's code: `agent/main.ts` and its dependencies as one ES module, by esbuild.
 * Whitespace and comments are left out (names are kept, so stack traces still say which
 * function): the source is resident for the agent's whole life. The output depends only
 * on the sources, so it is reproducible. Tests bundle other entries the same way.
 */
export async function bundleAgentCode(releaseVersion: string, entryPoint = 'agent/main.ts'): Promise<Buffer> {
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
  refuseWebAssemblyUsers(file.text, entryPoint);
  return Buffer.from(file.contents);
}

/**
 * Stage 3 input: the agent's code, and beside it better-sqlite3's compiled addon for the
 * image's architecture (sqlite-addon.ts), which the agent loads from there (family-db.ts).
 * Nothing else from node_modules goes into the image.
 */
export async function bundleAgent(opts: { version: string; arch: AddonArch; cacheDir: string; log: Logger; entryPoint?: string }): Promise<AgentBundle> {
  const code = await bundleAgentCode(opts.version, opts.entryPoint);
  const addon = await sqliteAddon(opts.arch, opts.cacheDir, opts.log);
  const files = [
    { name: AGENT_BUNDLE_NAME, contents: code },
    { name: SQLITE_ADDON_NAME, contents: addon.contents },
  ];
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f.name}\0${f.contents.length}\0`).update(f.contents);
  return { files, version: opts.version, sqliteAddon: addon.key, sha256: hash.digest('hex') };
}

export async function projectVersion(): Promise<string> {
  const pkg = JSON.parse(await readFile(`${repoRoot}package.json`, 'utf8')) as { version: string };
  return pkg.version;
}

import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { runCommand, runCommandOutcome } from '../../shared/process/run-command.ts';
import { cachePaths } from '../host/cache-dir.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { repoRoot } from '../host/repo-root.ts';

export type AddonArch = 'amd64' | 'arm64';

/** Debian's cross toolchain that compiles for each image architecture on a host of another one. */
const TOOLCHAIN: Record<AddonArch, { gnuTriplet: string; crossPackage: string; nodeArch: string }> = {
  amd64: { gnuTriplet: 'x86_64-linux-gnu', crossPackage: 'g++-x86-64-linux-gnu', nodeArch: 'x64' },
  arm64: { gnuTriplet: 'aarch64-linux-gnu', crossPackage: 'g++-aarch64-linux-gnu', nodeArch: 'arm64' },
};

/** What decides the addon's bytes: a change of any field builds it again. */
export interface SqliteAddonKey {
  arch: AddonArch;
  /** `npm-install`: the build npm made for this host at `npm ci`; `compiled`: built here for another architecture. */
  source: 'npm-install' | 'compiled';
  betterSqlite3: string;
  /** Node's headers the addon is compiled against, and the ABI they give. */
  nodeHeaders: string;
  nodeModuleVersion: string;
  /** The cross compiler, for an addon compiled here. */
  compiler?: string;
}

function packageDir(): string {
  return dirname(createRequire(`${repoRoot}package.json`).resolve('better-sqlite3/package.json'));
}

/** node-gyp as npm ships it: the tool npm itself built the host's addon with. */
function nodeGypScript(): string {
  const npmDir = join(dirname(process.execPath), '../lib/node_modules/npm');
  try {
    return createRequire(join(npmDir, 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    throw new MemuError(`cannot cross-compile SQLite: no node-gyp in npm's directory ${npmDir}`, ExitCode.environment, 'install npm beside this Node (Debian: the npm package)');
  }
}

/** Node's own headers beside its binary (`/usr/include/node`): nodejs.org, where node-gyp would fetch them, is out of reach. */
function nodeHeadersDir(): string {
  return join(dirname(process.execPath), '..');
}

export async function sqliteAddonKey(arch: AddonArch): Promise<SqliteAddonKey> {
  const { gnuTriplet, crossPackage, nodeArch } = TOOLCHAIN[arch];
  const pkg = JSON.parse(await readFile(join(packageDir(), 'package.json'), 'utf8')) as { version: string };
  const key = { arch, betterSqlite3: pkg.version, nodeHeaders: process.versions.node, nodeModuleVersion: process.versions.modules };
  if (process.arch === nodeArch) return { ...key, source: 'npm-install' };
  const compiler = await runCommandOutcome(`${gnuTriplet}-g++`, ['--version']);
  if (compiler.code !== 0) {
    throw new MemuError(`cannot compile SQLite for ${arch}: ${gnuTriplet}-g++ is not installed`, ExitCode.environment, `install ${crossPackage} (scripts/setup-host does)`);
  }
  return { ...key, source: 'compiled', compiler: compiler.stdout.split('\n')[0]!.trim() };
}

/**
 * The image's Node must load an addon built against these headers: Node keeps its addon
 * ABI (NODE_MODULE_VERSION) within one major version, so the image's `nodejs` package
 * must have the major of the Node that builds.
 */
export function checkImageNode(imageNodeVersion: string | undefined, key: SqliteAddonKey): void {
  const imageMajor = imageNodeVersion?.match(/^(?:\d+:)?(\d+)\./)?.[1];
  const buildMajor = key.nodeHeaders.split('.')[0];
  if (imageMajor === buildMajor) return;
  throw new MemuError(
    imageNodeVersion === undefined
      ? 'the image has no nodejs package, which the agent runs on'
      : `the image's nodejs is ${imageNodeVersion}, but SQLite's addon for the agent is built against Node ${key.nodeHeaders} (ABI ${key.nodeModuleVersion}), which the image's Node ${imageMajor} cannot load`,
    ExitCode.environment,
    `build on a machine whose Node has major version ${imageMajor ?? 'of the image'} (its headers are what the addon is compiled against)`,
  );
}

/**
 * Stage input: better-sqlite3's addon for an image's architecture. For the host's own
 * architecture it is the one npm compiled from the package's SQLite sources at install
 * (the tests run on it); for another, node-gyp compiles the same sources with Debian's
 * cross compiler, once per key into the cache (about 100 s on one core), read from there
 * after.
 */
export async function sqliteAddon(arch: AddonArch, cacheDir: string, log: Logger): Promise<{ contents: Buffer; key: SqliteAddonKey }> {
  const key = await sqliteAddonKey(arch);
  if (key.source === 'npm-install') return { contents: await readFile(join(packageDir(), 'build/Release/better_sqlite3.node')), key };
  const digest = createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 24);
  const cached = join(cachePaths(cacheDir).addons, `better-sqlite3-${digest}.node`);
  try {
    return { contents: await readFile(cached), key };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  const started = Date.now();
  const { gnuTriplet, nodeArch } = TOOLCHAIN[arch];
  // A fixed directory per key: the compiler sees the same paths on every build.
  const work = join(cachePaths(cacheDir).addons, `build-${digest}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    for (const part of ['binding.gyp', 'package.json', 'deps', 'src']) await cp(join(packageDir(), part), join(work, part), { recursive: true });
    await runCommand(process.execPath, [nodeGypScript(), 'rebuild', '--release', `--arch=${nodeArch}`, `--nodedir=${nodeHeadersDir()}`, `--jobs=max`], {
      cwd: work,
      env: { CC: `${gnuTriplet}-gcc`, CXX: `${gnuTriplet}-g++`, LINK: `${gnuTriplet}-g++`, AR: `${gnuTriplet}-ar` },
    });
    const contents = await readFile(join(work, 'build/Release/better_sqlite3.node'));
    await writeFileAtomic(cached, contents);
    log.info({ arch, key, seconds: (Date.now() - started) / 1000, bytes: contents.length }, 'SQLite addon compiled');
    return { contents, key };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

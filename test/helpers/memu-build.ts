import type { RaucKeyringIdentity } from '../../image/release/rauc-certificates.ts';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Runs the real `memu` CLI as a user would, and shares one build cache across the
 * integration and end-to-end test files, so a CI run builds the root filesystem once.
 */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TEST_CACHE_DIR = process.env.MEMU_TEST_CACHE_DIR ?? '/var/tmp/memu-test-cache';

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runMemu(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`${REPO_ROOT}bin/memu.mjs`, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, MEMU_CACHE_DIR: TEST_CACHE_DIR, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30 * 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface BuildOutput {
  image: string;
  zst: string;
  bmap: string;
  manifest: string;
  signature: string;
  rootfsCacheHit: boolean;
  stageSeconds: Record<string, number>;
  /** The CA the image's RAUC trusts. */
  raucKeyring: { source: 'release' | 'development'; identity: RaucKeyringIdentity };
}

/** `memu build qemu-amd64 --out DIR ...`; fails the test with the CLI's stderr if the build fails. */
export async function buildQemuImage(outDir: string, extraArgs: string[] = []): Promise<BuildOutput> {
  const r = await runMemu(['--json', 'build', 'qemu-amd64', '--out', outDir, ...extraArgs]);
  if (r.code !== 0) throw new Error(`memu build failed (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
  return commandResult<BuildOutput>(r);
}

/** The `result` line a `memu --json` command ends its stdout with (README, "Commands"). */
export function commandResult<T = Record<string, unknown>>(r: CliRun): T & { type: 'result'; ok: boolean; command: string; exitCode?: number; error?: string; hint?: string } {
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  const parsed = JSON.parse(line) as T & { type: 'result'; ok: boolean; command: string };
  if (parsed.type !== 'result') throw new Error(`the last stdout line of memu --json is not its result: ${line}`);
  return parsed;
}

/**
 * Runs a qemu-amd64 build into `outDir` in a child process that SIGKILLs itself at one
 * point of the artifacts' publication (the pipeline's crash-test hook), as a power cut or
 * `kill -9` there would stop it.
 */
export function buildKilledAt(point: string, outDir: string): Promise<CliRun & { signal: NodeJS.Signals | null }> {
  const script = [
    `import { loadProfile } from ${JSON.stringify(`${REPO_ROOT}hardware/index.ts`)};`,
    `import { buildImage, defaultBuildConfig } from ${JSON.stringify(`${REPO_ROOT}image/pipeline/pipeline.ts`)};`,
    `import { createHostLogger } from ${JSON.stringify(`${REPO_ROOT}image/host/log.ts`)};`,
    `import { createProgress } from ${JSON.stringify(`${REPO_ROOT}image/host/progress.ts`)};`,
    'const log = createHostLogger({ json: true });',
    `const config = await defaultBuildConfig(loadProfile('qemu-amd64'), { outDir: ${JSON.stringify(outDir)}, cacheDir: ${JSON.stringify(TEST_CACHE_DIR)},`,
    `  publishCheckpoint: async (p) => { if (p === ${JSON.stringify(point)}) process.kill(process.pid, 'SIGKILL'); } });`,
    'await buildImage(config, log, createProgress(log, { tty: false }));',
  ].join('\n');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

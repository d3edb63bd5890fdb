import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Logger } from 'pino';
import { runCommandOutcome } from '../../shared/process/run-command.ts';

/**
 * Where the data partition's space goes, per top-level directory (each service keeps its
 * data in its own: photos/, postgres/, synapse/, ollama/, docker/ for the images). Measured
 * by `du` at the lowest CPU priority, in the background, at most every 15 minutes: a
 * partition of photos holds hundreds of thousands of files, far too many to walk per page.
 * Docker's own `system df` would give per-image sizes but not the bind-mounted data, which
 * is where a family's space goes.
 */
export interface DirectoryUse {
  name: string;
  /** What a person calls it. */
  label: string;
  bytes: number;
}

export type StorageUse =
  | { state: 'measuring'; since: number }
  | { state: 'measured'; at: number; directories: DirectoryUse[]; refreshing: boolean }
  | { state: 'failed'; at: number; error: string };

const LABELS: Record<string, string> = {
  docker: 'Apps (container images)',
  photos: 'Photos and videos (Memu Memories)',
  postgres: 'Databases (Chat and Memories)',
  synapse: 'Chat files (Memu Chat)',
  ollama: 'AI models',
  'immich-ml-cache': 'Photo search models',
  redis: 'Cache',
  tailscale: 'Remote access',
  agent: "Memu's own records",
  config: 'Settings',
};

/** `du -s -B1` output ("<bytes>\t<path>" per line) → sizes by directory name, largest first. */
export function parseDu(stdout: string): DirectoryUse[] {
  const out: DirectoryUse[] = [];
  for (const line of stdout.split('\n')) {
    const match = /^(\d+)\t(.+)$/.exec(line);
    if (!match) continue;
    const name = basename(match[2]!);
    out.push({ name, label: LABELS[name] ?? name, bytes: Number(match[1]) });
  }
  return out.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
}

/** The data partition's top-level directories, sized with one `du` run. */
export async function measureDataDirectories(dataDir: string): Promise<DirectoryUse[]> {
  const entries = await readdir(dataDir, { withFileTypes: true });
  const dirs = entries.filter((e) => e.isDirectory() && e.name !== 'lost+found').map((e) => join(dataDir, e.name));
  if (dirs.length === 0) return [];
  // -x: stay on the data partition; du exits 1 when it cannot read a file, yet prints every total.
  const outcome = await runCommandOutcome('nice', ['-n', '19', 'du', '-s', '-B1', '-x', '--', ...dirs]);
  const sizes = parseDu(outcome.stdout);
  if (sizes.length === 0) throw new Error(outcome.startError ?? (outcome.stderr.trim().split('\n').at(-1) || `du ended with code ${outcome.code}`));
  return sizes;
}

export interface StorageUseOptions {
  dataDir: string;
  log: Logger;
  maxAgeMs?: number;
  now?: () => number;
  measure?: (dataDir: string) => Promise<DirectoryUse[]>;
}

/** The last measurement, starting a new one in the background when it is missing or stale; never waits for it. */
export function createStorageUse(opts: StorageUseOptions): { current(): StorageUse } {
  const now = opts.now ?? Date.now;
  const maxAgeMs = opts.maxAgeMs ?? 15 * 60_000;
  const measure = opts.measure ?? measureDataDirectories;
  let last: StorageUse | undefined;
  let running: Promise<void> | undefined;

  const refresh = (started: number) => {
    running = measure(opts.dataDir)
      .then(
        (directories) => {
          last = { state: 'measured', at: now(), directories, refreshing: false };
          opts.log.debug({ ms: now() - started }, 'data partition measured');
        },
        (err: unknown) => {
          last = { state: 'failed', at: now(), error: (err as Error).message };
          opts.log.warn({ err }, 'measuring the data partition failed');
        },
      )
      .finally(() => (running = undefined));
  };

  return {
    current() {
      const t = now();
      const stale = !last || last.state === 'measuring' || t - last.at >= maxAgeMs;
      if (stale && !running) {
        refresh(t);
        if (!last) last = { state: 'measuring', since: t };
      }
      return last!.state === 'measured' ? { ...last!, refreshing: running !== undefined } : last!;
    },
  };
}

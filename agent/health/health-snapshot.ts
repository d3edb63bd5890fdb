import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isNotFound } from '../../shared/errors.ts';
import { temporaryNameFor } from '../../shared/files/durable-files.ts';
import type { HealthBody } from './health-report.ts';

/**
 * The latest health report as a file in /run (memory; the agent's config says where), rewritten after every health round:
 * `memu-agent health` prints it even when the agent hangs or is restarting, and says how
 * old it is. /run is lost at power-off, so no fsync: the next round writes it again.
 */
export interface HealthSnapshot {
  writtenAt: number;
  pid: number;
  report: HealthBody;
}

export async function writeHealthSnapshot(path: string, report: HealthBody, now = Date.now()): Promise<void> {
  const snapshot: HealthSnapshot = { writtenAt: now, pid: process.pid, report };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = temporaryNameFor(path);
  await writeFile(tmp, JSON.stringify(snapshot), { mode: 0o600 });
  await rename(tmp, path);
}

export async function readHealthSnapshot(path: string): Promise<HealthSnapshot | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as HealthSnapshot;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

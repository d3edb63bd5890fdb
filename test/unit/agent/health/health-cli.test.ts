import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { healthCommand } from '../../../../agent/health/index.ts';
import type { HealthBody } from '../../../../agent/health/index.ts';
import { writeHealthSnapshot } from '../../../../agent/health/health-snapshot.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const NOW = Date.parse('2026-12-05T12:00:00Z');
const body: HealthBody = {
  status: 'unhealthy',
  reasons: [{ source: 'health', code: 'data-disk-space', status: 'unhealthy', message: 'The data disk has 80 MB free of 30 GB (0.3 %).', action: 'Delete old videos.', since: NOW - 600_000 }],
  version: '1.2.3',
  bootId: 'b',
  uptimeSeconds: 60,
  checks: [{ check: 'data-disk-space', status: 'unhealthy', reason: 'The data disk has 80 MB free of 30 GB (0.3 %).', checkedAt: NOW - 5000, since: NOW - 600_000 }],
};

async function run(args: string[], writtenAt?: number) {
  const dir = await mkdtemp(join(tmpdir(), 'memu-health-cli-'));
  dirs.push(dir);
  const path = join(dir, 'run', 'health.json');
  if (writtenAt !== undefined) await writeHealthSnapshot(path, body, writtenAt);
  const lines: string[] = [];
  const code = await healthCommand(args, path, (l) => lines.push(l), NOW);
  return { code, text: lines.join('\n') };
}

describe('memu-agent health', () => {
  it('prints the status, each reason with since when and what to do, and every check; exits 2 when unhealthy', async () => {
    const { code, text } = await run([], NOW - 5000);
    expect(code).toBe(2);
    expect(text).toContain('Memu 1.2.3: UNHEALTHY (as of 5 s ago)');
    expect(text).toContain('The data disk has 80 MB free of 30 GB (0.3 %). (since 2026-12-05 11:50 UTC)');
    expect(text).toContain('Delete old videos.');
    expect(text).toMatch(/data-disk-space\s+unhealthy\s+The data disk/);
  });

  it('says the agent is not running when the report is old or missing, and exits 3', async () => {
    const stale = await run([], NOW - 10 * 60_000);
    expect(stale.code).toBe(3);
    expect(stale.text).toContain('This report is 600 s old: the agent is not running its checks');
    const none = await run([]);
    expect(none.code).toBe(3);
    expect(none.text).toMatch(/No health report at .*health\.json/);
  });

  it('gives one JSON object with --json', async () => {
    const { code, text } = await run(['--json'], NOW - 5000);
    expect(code).toBe(2);
    expect(JSON.parse(text)).toMatchObject({ stale: false, ageSeconds: 5, report: { status: 'unhealthy' } });
  });
});

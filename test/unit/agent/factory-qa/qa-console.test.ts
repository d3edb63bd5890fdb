import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { banner, consoleText, escapeForIssue, issueFileConsole } from '../../../../agent/factory-qa/qa-console.ts';
import type { QaReport } from '../../../../shared/contracts/qa-report.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const report = (failing: { check: string; reason: string }[]): QaReport => ({
  format: 'memu-qa-report/1',
  serialNumber: 'a1b2c3d4e5f60718',
  macAddresses: [{ interface: 'eth0', address: 'd8:3a:dd:01:02:03' }],
  profile: 'pi5',
  imageVersion: '0.1.0',
  startedAt: '2026-12-06T01:00:00.000Z',
  endedAt: '2026-12-06T01:05:00.000Z',
  checks: [
    { check: 'cpu-cores', verdict: 'pass', measured: 4, unit: 'cores', threshold: { min: 4 }, reason: 'ok', durationMs: 1 },
    ...failing.map((f) => ({ ...f, verdict: 'fail' as const, measured: null, unit: '', durationMs: 1 })),
  ],
  verdict: failing.length ? 'fail' : 'pass',
  failingChecks: failing.map((f) => f.check),
});

describe('the console view', () => {
  it('draws PASS and FAIL in letters ten lines tall and at most 48 columns wide', () => {
    for (const word of ['PASS', 'FAIL'] as const) {
      const lines = banner(word);
      expect(lines).toHaveLength(10);
      expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(48);
    }
    expect(banner('PASS').slice(0, 2)).toEqual(['  ########      ######      ########    ########', '  ########      ######      ########    ########']);
  });

  it('a failed unit: FAIL, then each failing check and its reason, then what to do', () => {
    const text = consoleText({
      status: 'done',
      afterwards: 'staying-on',
      report: report([
        { check: 'nvme-pcie-link', reason: 'The link trained at 2.5 GT/s x1: reseat the drive and the adapter\'s cable.' },
        { check: 'throttling', reason: 'Under-voltage during the load.' },
      ]),
    })!;
    expect(text.split('\n').slice(1, 11)).toEqual(banner('FAIL'));
    expect(text).toContain("  nvme-pcie-link: The link trained at 2.5 GT/s x1: reseat the drive and the adapter's cable.\n  throttling: Under-voltage during the load.\n");
    expect(text).toContain('The unit stays on.');
  });

  it('a family boot shows nothing; a running one names its step', () => {
    expect(consoleText({ status: 'not-requested' })).toBeUndefined();
    expect(consoleText({ status: 'running', step: 'disk-speed', done: [] })).toContain('Factory QA running: disk-speed (0 checks done)');
  });

  it("writes agetty's issue file (backslashes doubled, as agetty reads them as escapes), asks getty to reload, and removes it", async () => {
    const dir = await tempDir('memu-qa-console-');
    const path = join(dir, 'memu/factory-qa.issue');
    let reloads = 0;
    const screen = issueFileConsole(path, async () => void reloads++);
    await screen.show('FAIL C:\\drive');
    expect(await readFile(path, 'utf8')).toBe('FAIL C:\\\\drive');
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    await screen.show(undefined);
    await expect(stat(path)).rejects.toThrow(/ENOENT/);
    expect(reloads).toBe(2);
    expect(escapeForIssue('\\n')).toBe('\\\\n');
  });
});

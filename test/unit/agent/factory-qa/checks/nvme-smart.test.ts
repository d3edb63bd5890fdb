import { describe, expect, it } from 'vitest';
import { evaluateSmart, parseNvmeCliSmartLog, parseSmartctlJson, readSmart } from '../../../../../agent/factory-qa/checks/nvme-smart.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture, recordedRunner, toolOutput } from './qa-fixtures.ts';

const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));
const vmThresholds = qaThresholdsFor(loadProfile('qemu-amd64'));

describe('SMART health', () => {
  it('a new drive passes, from smartctl and from nvme-cli alike', () => {
    const smartctl = parseSmartctlJson('/dev/nvme0', toolOutput('smartctl-7.4-new-drive.json'));
    const nvmeCli = parseNvmeCliSmartLog('/dev/nvme0', toolOutput('nvme-cli-2.x-smart-log.json'));
    expect(smartctl).toMatchObject({ ok: true, facts: { passed: true, criticalWarning: 0, percentUsed: 0, temperatureC: 41 } });
    expect(nvmeCli).toMatchObject({ ok: true, facts: { criticalWarning: 0, availableSparePercent: 100, spareThresholdPercent: 10, temperatureC: 41 } });
    for (const reading of [smartctl, nvmeCli]) expect(evaluateSmart(reading, pi5Thresholds)[0]!.verdict).toBe('pass');
  });

  it("a spare at its threshold passes and one below it fails, as the NVMe specification's warning has it (QEMU's drive reports 0 % against 0 %)", () => {
    const reading = parseNvmeCliSmartLog('/dev/nvme0', toolOutput('nvme-cli-2.x-smart-log.json'));
    if (!reading.ok) throw new Error('the recorded smart-log does not parse');
    const spare = (availableSparePercent: number, spareThresholdPercent: number) => evaluateSmart({ ...reading, facts: { ...reading.facts, availableSparePercent, spareThresholdPercent } }, pi5Thresholds)[0]!.verdict;
    expect(spare(0, 0)).toBe('pass');
    expect(spare(10, 10)).toBe('pass');
    expect(spare(9, 10)).toBe('fail');
  });

  it('a failing drive fails with every finding', () => {
    expect(evaluateSmart(parseSmartctlJson('/dev/nvme0', toolOutput('smartctl-7.4-failing-drive.json')), pi5Thresholds)[0]).toEqual({
      check: 'nvme-smart',
      verdict: 'fail',
      measured: 3,
      unit: '%',
      threshold: { max: 1 },
      reason:
        'The drive /dev/nvme0 is not fit to ship: smartctl rates the drive as failing; it reports critical warning 0x04; it has 12 media errors; its spare is 9 %, below its threshold of 10 %; it has used 3 % of its rated life (a new drive: at most 1 %).',
    });
    const readOnly = parseNvmeCliSmartLog('/dev/nvme0', toolOutput('nvme-cli-2.x-smart-log-human-read-only.json'));
    expect(evaluateSmart(readOnly, pi5Thresholds)[0]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('critical warning 0x08') });
  });

  it('smartctl first, nvme-cli when smartctl is missing; neither fails naming the package', async () => {
    const smartctl = recordedRunner({ smartctl: { code: 1, stdout: toolOutput('smartctl-7.4-no-device.json') } });
    expect(evaluateSmart(await readSmart('/dev', ['nvme0'], smartctl), pi5Thresholds)[0]).toMatchObject({
      verdict: 'fail',
      reason: "The drive's SMART health could not be read: smartctl gave no SMART / Health log for /dev/nvme0: /dev/nvme0: Unable to detect device type.",
    });
    const nvme = recordedRunner({ nvme: { stdout: toolOutput('nvme-cli-2.x-smart-log.json') } });
    expect(evaluateSmart(await readSmart('/dev', ['nvme0'], nvme), pi5Thresholds)[0]!.verdict).toBe('pass');
    expect(nvme.calls).toEqual([['smartctl', '--json=c', '-a', '/dev/nvme0'], ['nvme', 'smart-log', '-o', 'json', '/dev/nvme0']]);
    expect(evaluateSmart(await readSmart('/dev', ['nvme0'], recordedRunner({})), pi5Thresholds)[0]!.reason).toContain('Debian package smartmontools');
    expect(evaluateSmart(await readSmart('/dev', [], recordedRunner({})), vmThresholds)[0]!.verdict).toBe('skipped');
  });
});

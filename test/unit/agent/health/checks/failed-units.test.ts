import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createFailedUnitsCheck,
  evaluateFailedUnits,
  FAILED_UNITS_COMMAND,
  parseFailedUnits,
  readFailedUnits,
} from '../../../../../agent/health/checks/failed-units.ts';
import type { CommandOutcome } from '../../../../../shared/process/run-command.ts';

const fixture = (name: string) => readFileSync(new URL(`../../../../fixtures/health/failed-units/${name}`, import.meta.url), 'utf8');
const outcome = (stdout: string, code: number | null = 0, stderr = '', extra: Partial<CommandOutcome> = {}): CommandOutcome => ({
  code,
  signal: null,
  stdout,
  stdoutBytes: Buffer.from(stdout),
  stderr,
  truncated: false,
  ...extra,
});
/** A fake systemctl that records its calls. */
function systemctl(answer: CommandOutcome) {
  const calls: string[][] = [];
  return {
    calls,
    run: async (cmd: string, args: readonly string[]) => {
      calls.push([cmd, ...args]);
      return answer;
    },
  };
}

const DOCKER = { unit: 'docker.service', load: 'loaded', active: 'failed', sub: 'failed', description: 'Docker Application Container Engine' };
const MOUNT = { unit: 'var-lib-memu.mount', load: 'loaded', active: 'failed', sub: 'failed', description: '/var/lib/memu' };

describe('parseFailedUnits', () => {
  it("reads systemctl's JSON", () => {
    expect(parseFailedUnits(fixture('systemctl-json-two-failed.json'))).toEqual([DOCKER, MOUNT]);
    expect(parseFailedUnits(fixture('systemctl-json-none.json'))).toEqual([]);
  });
  it("reads what trixie's systemctl (257, recorded in the VM) printed for two failed units and for none", () => {
    expect(parseFailedUnits(fixture('systemctl-257-trixie-two-failed.json'))).toEqual([
      { unit: 'memu-fixture-exit3.service', load: 'loaded', active: 'failed', sub: 'failed', description: '[systemd-run] /bin/sh -c "exit 3"' },
      { unit: 'memu-fixture-failing.service', load: 'loaded', active: 'failed', sub: 'failed', description: '[systemd-run] /bin/false' },
    ]);
    expect(parseFailedUnits(fixture('systemctl-257-trixie-none.json'))).toEqual([]);
  });
  it('reads the plain table an older systemctl prints instead, to the same units', () => {
    expect(parseFailedUnits(fixture('systemctl-plain-two-failed.txt'))).toEqual([DOCKER, MOUNT]);
    expect(parseFailedUnits('● docker.service loaded failed failed Docker Application Container Engine\n')).toEqual([DOCKER]);
    expect(parseFailedUnits('')).toEqual([]);
  });
});

describe('evaluateFailedUnits', () => {
  it('no failed unit is ok', () => {
    expect(evaluateFailedUnits({ failed: [] })).toEqual([
      {
        check: 'failed-units',
        status: 'ok',
        reason: 'Every system service is running or finished normally.',
        metrics: [{ name: 'memu_systemd_units_failed', help: expect.any(String), type: 'gauge', value: 0 }],
      },
    ]);
  });

  it('one failed unit is degraded and named', () => {
    expect(evaluateFailedUnits({ failed: [DOCKER] })[0]).toMatchObject({
      status: 'degraded',
      reason: 'A system service failed: docker.service (Docker Application Container Engine).',
      action: 'Restart the box; if it fails again, ask for help and mention its name.',
    });
  });

  it('names every failed unit, with node-exporter style unit-state metrics', () => {
    const [r] = evaluateFailedUnits({ failed: [DOCKER, MOUNT] });
    expect(r).toMatchObject({
      status: 'degraded',
      reason: '2 system services failed: docker.service (Docker Application Container Engine), var-lib-memu.mount (/var/lib/memu).',
      action: 'Restart the box; if they fail again, ask for help and mention their names.',
    });
    expect(r!.metrics).toEqual([
      { name: 'memu_systemd_units_failed', help: expect.any(String), type: 'gauge', value: 2 },
      { name: 'node_systemd_unit_state', help: expect.any(String), type: 'gauge', labels: { name: 'docker.service', state: 'failed', type: 'service' }, value: 1 },
      { name: 'node_systemd_unit_state', help: expect.any(String), type: 'gauge', labels: { name: 'var-lib-memu.mount', state: 'failed', type: 'mount' }, value: 1 },
    ]);
  });

  it('leaves out units it is told to ignore', () => {
    expect(evaluateFailedUnits({ failed: [DOCKER] }, { ignore: ['docker.service'] })[0]!.status).toBe('ok');
  });
});

describe('readFailedUnits and the check', () => {
  it('asks systemctl for failed units as JSON, through the injected runner', async () => {
    const fake = systemctl(outcome(fixture('systemctl-json-two-failed.json')));
    expect(await readFailedUnits(fake.run)).toEqual({ failed: [DOCKER, MOUNT] });
    expect(fake.calls).toEqual([['systemctl', ...FAILED_UNITS_COMMAND]]);
    expect(FAILED_UNITS_COMMAND).toEqual(['list-units', '--state=failed', '--output=json', '--plain', '--no-legend', '--no-pager']);
  });

  it('gives no result where there is no systemd to ask', async () => {
    expect(await readFailedUnits(systemctl(outcome('', null, '', { notInstalled: true, startError: 'spawn systemctl ENOENT' })).run)).toBeUndefined();
    const notInit = outcome('', 1, "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n");
    expect(await createFailedUnitsCheck({ run: systemctl(notInit).run }).run()).toEqual([]);
  });

  it('throws, so the monitor reports the check as broken, when systemctl fails otherwise', async () => {
    await expect(readFailedUnits(systemctl(outcome('', 1, 'Unknown output mode\n')).run)).rejects.toThrow('systemctl list-units failed (exit 1): Unknown output mode');
  });

  it('runs every 15 minutes', async () => {
    const check = createFailedUnitsCheck({ run: systemctl(outcome(fixture('systemctl-json-two-failed.json'))).run });
    expect(check.intervalMs).toBe(900_000);
    expect((await check.run()).map((r) => [r.check, r.status])).toEqual([['failed-units', 'degraded']]);
  });
});

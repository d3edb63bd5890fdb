import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ProvisioningJournal, type ProvisioningStep } from '../../../../agent/provisioning/journal.ts';

const log = pino({ level: 'silent' });

function recordingSteps(names: string[], calls: string[], failOn?: string): ProvisioningStep[] {
  return names.map((name) => ({
    name,
    async run() {
      calls.push(name);
      if (name === failOn) throw new Error(`${name} interrupted`);
    },
  }));
}

describe('provisioning journal', () => {
  it('runs steps in order and records each one durably before the next', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'memu-journal-')), 'agent', 'provisioning.json');
    const calls: string[] = [];
    const state = await new ProvisioningJournal(path, recordingSteps(['a', 'b', 'c'], calls), log).run();
    expect(calls).toEqual(['a', 'b', 'c']);
    expect(state).toEqual({ state: 'done', completed: ['a', 'b', 'c'], ranThisBoot: ['a', 'b', 'c'] });
    const onDisk = JSON.parse(await readFile(path, 'utf8'));
    expect(onDisk.completed.map((c: { step: string }) => c.step)).toEqual(['a', 'b', 'c']);
  });

  it('after an interruption resumes at the unfinished step and never reruns finished ones', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'memu-journal-')), 'provisioning.json');
    const first: string[] = [];
    const failed = await new ProvisioningJournal(path, recordingSteps(['a', 'b', 'c'], first, 'b'), log).run();
    expect(failed).toMatchObject({ state: 'failed', step: 'b', error: 'b interrupted', completed: ['a'] });
    const second: string[] = [];
    const done = await new ProvisioningJournal(path, recordingSteps(['a', 'b', 'c'], second), log).run();
    expect(second).toEqual(['b', 'c']);
    expect(done).toEqual({ state: 'done', completed: ['a', 'b', 'c'], ranThisBoot: ['b', 'c'] });
    const third: string[] = [];
    expect(await new ProvisioningJournal(path, recordingSteps(['a', 'b', 'c'], third), log).run()).toMatchObject({ ranThisBoot: [] });
    expect(third).toEqual([]);
  });

  it('treats an unreadable journal as empty: all (idempotent) steps run again', async () => {
    const path = join(await mkdtemp(join(tmpdir(), 'memu-journal-')), 'provisioning.json');
    await writeFile(path, '{"format": "memu-provisioning-jour');
    const calls: string[] = [];
    await new ProvisioningJournal(path, recordingSteps(['a', 'b'], calls), log).run();
    expect(calls).toEqual(['a', 'b']);
  });
});

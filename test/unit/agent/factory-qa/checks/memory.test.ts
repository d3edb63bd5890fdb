import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateMemory, readMemory } from '../../../../../agent/factory-qa/checks/memory.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture, recordedRunner, toolOutput } from './qa-fixtures.ts';

// Board trees written by hand from what the kernel shows on a Pi 5 (device tree, rpi_volt,
// bcm2835-wdt, macb, brcmfmac, a Hailo-8L and an NVMe drive behind a PCIe switch), the
// same Pi with a badly seated HAT, and the qemu-amd64 VM. See test/fixtures/factory-qa/README.md.
const pi5 = qaFixture('pi5-nvme-hailo');
const vm = qaFixture('qemu-amd64');
const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));

describe('memory: size and memtester', () => {
  it('8 GB Pi 5 with a clean memtester pass', async () => {
    const run = recordedRunner({ memtester: { stdout: toolOutput('memtester-4.6-pass.txt') } });
    const facts = await readMemory(join(pi5, 'proc'), run, 256);
    expect(run.calls).toEqual([['memtester', '256M', '1']]);
    expect(evaluateMemory(facts, pi5Thresholds)).toEqual([
      { check: 'memory-size', verdict: 'pass', measured: 8052, unit: 'MiB', threshold: { min: 7500 }, reason: 'Memory: 8052 MiB, at least 7500 MiB needed.' },
      { check: 'memory-test', verdict: 'pass', measured: 256, unit: 'MiB', threshold: { expected: 'no errors' }, reason: 'memtester tested 256 MiB once without an error.' },
    ]);
  });

  it('a 2 GB board fails the size; a bit flip fails the test naming it', async () => {
    const run = recordedRunner({ memtester: { code: 4, stdout: toolOutput('memtester-4.6-bit-flip.txt') } });
    const facts = await readMemory(join(vm, 'proc'), run, 256);
    expect(evaluateMemory(facts, pi5Thresholds)).toMatchObject([
      { verdict: 'fail', measured: 1967, reason: 'Memory: 1967 MiB, below the 7500 MiB needed.' },
      { verdict: 'fail', reason: 'memtester found memory errors in Bit Flip (exit 4): the memory is faulty.' },
    ]);
  });

  it('memtester missing from the image fails naming the package; no test asked skips', async () => {
    const facts = await readMemory(join(pi5, 'proc'), recordedRunner({}), 256);
    expect(evaluateMemory(facts, pi5Thresholds)[1]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('Debian package memtester') });
    expect(evaluateMemory(await readMemory(join(pi5, 'proc'), recordedRunner({}), 0), { ...pi5Thresholds, memoryTestMiB: 0 })[1]!.verdict).toBe('skipped');
  });
});

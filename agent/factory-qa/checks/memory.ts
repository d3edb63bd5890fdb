import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atLeast, failed, notInstalled, skipped, type QaCheckOutcome, type QaCommandRunner } from './qa-check.ts';

/**
 * Memory: the size Linux sees (MemTotal, which is the installed memory less what the
 * firmware and kernel keep, hence thresholds a little under 8 GiB for an 8 GB board) and
 * one pass of memtester over a slice of it, locked in RAM.
 */
export interface MemoryFacts {
  memTotalKiB: number;
  /** Undefined when no test was asked for. */
  test?: MemoryTestFacts;
}

export interface MemoryTestFacts {
  testedMiB: number;
  /** memtester's exit code; null when it could not start or was killed. */
  exitCode: number | null;
  notInstalled?: boolean;
  /** memtester's test names that printed FAILURE ("Stuck Address", "Bit Flip"). */
  failedTests: string[];
}

/** memtester's exit bits (memtester.h): could not start, the address-line test failed, another test failed. */
const MEMTESTER_EXIT = { nonStarter: 0x01, addressLines: 0x02, otherTest: 0x04 };

export function parseMemTotalKiB(meminfo: string): number {
  const match = /^MemTotal:\s+(\d+)\s+kB$/m.exec(meminfo);
  if (!match) throw new Error('/proc/meminfo has no MemTotal line');
  return Number(match[1]);
}

/** Test names whose line reports a failure, from memtester's output ("  Bit Flip        : testing 184FAILURE: …"). */
export function memtesterFailures(output: string): string[] {
  const names = output
    .split('\n')
    .map((line) => /^\s*([A-Za-z0-9 -]+?)\s*:.*FAILURE/.exec(line)?.[1]?.trim())
    .filter((n): n is string => n !== undefined && n !== 'FAILURE');
  return [...new Set(names)];
}

export function evaluateMemory(facts: MemoryFacts, t: { minMemoryMiB: number; memoryTestMiB: number }): QaCheckOutcome[] {
  const size = atLeast('memory-size', Math.floor(facts.memTotalKiB / 1024), t.minMemoryMiB, 'MiB', 'Memory');
  return [size, evaluateMemoryTest(facts.test, t.memoryTestMiB)];
}

function evaluateMemoryTest(test: MemoryTestFacts | undefined, wantedMiB: number): QaCheckOutcome {
  if (!test || wantedMiB === 0) return skipped('memory-test', 'The profile asks for no memory test.');
  if (test.notInstalled) return failed('memory-test', notInstalled('memtester', 'memtester'));
  const threshold = { expected: 'no errors' };
  const base = { check: 'memory-test', unit: 'MiB', measured: test.testedMiB, threshold };
  if (test.exitCode === 0 && test.failedTests.length === 0) return { ...base, verdict: 'pass', reason: `memtester tested ${test.testedMiB} MiB once without an error.` };
  if (test.exitCode !== null && test.exitCode & MEMTESTER_EXIT.nonStarter && test.failedTests.length === 0) {
    return { ...base, verdict: 'fail', reason: `memtester could not start on ${test.testedMiB} MiB (exit ${test.exitCode}): too little free memory, or not run as root.` };
  }
  const which = test.failedTests.length > 0 ? test.failedTests.join(', ') : test.exitCode !== null && test.exitCode & MEMTESTER_EXIT.addressLines ? 'Stuck Address' : 'a test';
  return { ...base, verdict: 'fail', reason: `memtester found memory errors in ${which} (exit ${test.exitCode ?? 'killed'}): the memory is faulty.` };
}

export async function readMemory(procDir: string, run: QaCommandRunner, testMiB: number): Promise<MemoryFacts> {
  const memTotalKiB = parseMemTotalKiB(await readFile(join(procDir, 'meminfo'), 'utf8'));
  if (testMiB === 0) return { memTotalKiB };
  const r = await run('memtester', [`${testMiB}M`, '1']);
  return { memTotalKiB, test: { testedMiB: testMiB, exitCode: r.code, notInstalled: r.notInstalled, failedTests: memtesterFailures(r.stdout) } };
}

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { QaCommandRunner } from '../../../../../agent/factory-qa/checks/qa-check.ts';

/** test/fixtures/factory-qa/<name>: board trees (sys, proc, dev) and recorded tool outputs (tools/). */
export const qaFixture = (name: string) => fileURLToPath(new URL(`../../../../fixtures/factory-qa/${name}`, import.meta.url));
export const toolOutput = (name: string) => readFileSync(qaFixture(`tools/${name}`), 'utf8');

export interface RecordedRun {
  stdout?: string;
  stderr?: string;
  code?: number | null;
  notInstalled?: boolean;
}

/** A runner answering each program (by name) with recorded output; a program without an answer is "not installed". */
export function recordedRunner(answers: Record<string, RecordedRun>): QaCommandRunner & { calls: string[][] } {
  const calls: string[][] = [];
  const run: QaCommandRunner = async (cmd, args) => {
    calls.push([cmd, ...args]);
    const a = answers[cmd];
    if (!a || a.notInstalled) return { code: null, stdout: '', stderr: '', notInstalled: true, startError: `spawn ${cmd} ENOENT` };
    return { code: a.code === undefined ? 0 : a.code, stdout: a.stdout ?? '', stderr: a.stderr ?? '' };
  };
  return Object.assign(run, { calls });
}

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The restic version whose real output test/fixtures/restic/ holds (record.sh). */
export const RECORDED_RESTIC_VERSION = '0.18.0';

const dir = fileURLToPath(new URL(`../../../fixtures/restic/${RECORDED_RESTIC_VERSION}/`, import.meta.url));

export interface RecordedRun {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** One scenario recorded by test/fixtures/restic/record.sh. */
export function recorded(name: string): RecordedRun {
  return {
    stdout: readFileSync(`${dir}${name}.stdout`, 'utf8'),
    stderr: readFileSync(`${dir}${name}.stderr`, 'utf8'),
    exitCode: Number(readFileSync(`${dir}${name}.exit`, 'utf8').trim()),
  };
}

export const lines = (text: string) => text.split('\n').filter((l) => l.length > 0);

import { rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { atLeast, failed, notInstalled, type QaCheckOutcome, type QaCommandRunner } from './qa-check.ts';

/**
 * Sequential write and read speed of the data drive, measured by fio on a scratch file in
 * the data partition's free space (never on a device node, so no data is touched), with
 * O_DIRECT so the page cache does not flatter the read. The file is removed afterwards.
 */
export interface DiskSpeedFacts {
  /** Bytes per second, from fio's JSON (`jobs[].write.bw_bytes`, `jobs[].read.bw_bytes`). */
  writeBytesPerSecond?: number;
  readBytesPerSecond?: number;
  /** Why there is no measurement: fio missing, failed, or too little free space. */
  problem?: string;
}

export const FIO_WRITE_JOB = 'seq-write';
export const FIO_READ_JOB = 'seq-read';

interface FioJob {
  jobname?: string;
  error?: number;
  read?: { bw_bytes?: number; io_bytes?: number };
  write?: { bw_bytes?: number; io_bytes?: number };
}

/** fio 3.x `--output-format=json`: `jobs[]` with each job's read and write stats (bw_bytes in bytes/s; bw in KiB/s). */
export function parseFioJson(text: string): DiskSpeedFacts {
  let doc: { jobs?: FioJob[] };
  try {
    // fio may print notes before the JSON document ("fio: file … exists").
    doc = JSON.parse(text.slice(Math.max(0, text.indexOf('{')))) as { jobs?: FioJob[] };
  } catch {
    return { problem: `fio's output is not JSON: ${text.trim().split('\n')[0]?.slice(0, 200) ?? ''}` };
  }
  const job = (name: string) => doc.jobs?.find((j) => j.jobname === name);
  const broken = doc.jobs?.find((j) => (j.error ?? 0) !== 0);
  if (broken) return { problem: `fio's ${broken.jobname} job failed with error ${broken.error}` };
  const write = job(FIO_WRITE_JOB)?.write;
  const read = job(FIO_READ_JOB)?.read;
  return {
    writeBytesPerSecond: write?.io_bytes ? write.bw_bytes : undefined,
    readBytesPerSecond: read?.io_bytes ? read.bw_bytes : undefined,
  };
}

export function evaluateDiskSpeed(facts: DiskSpeedFacts, t: { minDiskWriteMBps: number; minDiskReadMBps: number }): QaCheckOutcome[] {
  const speed = (check: string, bytes: number | undefined, min: number, what: string) =>
    bytes === undefined ? failed(check, `${what} was not measured: ${facts.problem ?? 'fio reported no such job'}.`, { min }) : atLeast(check, Math.round(bytes / 100_000) / 10, min, 'MB/s', what);
  return [speed('disk-write-speed', facts.writeBytesPerSecond, t.minDiskWriteMBps, 'Sequential write'), speed('disk-read-speed', facts.readBytesPerSecond, t.minDiskReadMBps, 'Sequential read')];
}

/** fio's arguments: one 1 MiB-block sequential write of `sizeMiB`, fsynced, then a read of the same file. */
export function fioArguments(file: string, sizeMiB: number): string[] {
  return [
    '--output-format=json',
    `--filename=${file}`,
    `--size=${sizeMiB}M`,
    '--bs=1M',
    '--direct=1',
    '--ioengine=psync',
    `--name=${FIO_WRITE_JOB}`,
    '--rw=write',
    '--end_fsync=1',
    `--name=${FIO_READ_JOB}`,
    '--rw=read',
    '--stonewall',
  ];
}

/** Free space the scratch file must leave untouched, so QA cannot fill a drive. */
const RESERVE_BYTES = 1024 ** 3;

/** `sizeMiB`: the profile's `diskTestMiB`. */
export async function readDiskSpeed(dataDir: string, run: QaCommandRunner, sizeMiB: number): Promise<DiskSpeedFacts> {
  const fs = await statfs(dataDir);
  const free = fs.bavail * fs.bsize;
  if (free < sizeMiB * 1024 ** 2 + RESERVE_BYTES) return { problem: `the data partition has ${Math.floor(free / 1024 ** 2)} MiB free, ${sizeMiB + 1024} MiB are needed` };
  const file = join(dataDir, '.memu-qa-fio.tmp');
  try {
    const r = await run('fio', fioArguments(file, sizeMiB));
    if (r.notInstalled) return { problem: notInstalled('fio', 'fio') };
    if (r.code !== 0) return { problem: `fio failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}` };
    return parseFioJson(r.stdout);
  } finally {
    await rm(file, { force: true });
  }
}

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../../../image/host/errors.ts';
import { commandResult, REPO_ROOT, runMemu } from '../../../helpers/memu-build.ts';

/** Runs memu on a pseudo-terminal (util-linux `script`), as a person at a terminal sees it: stdout and stderr together. */
function onTerminal(args: string[]): Promise<{ code: number; output: string }> {
  const command = [process.execPath, join(REPO_ROOT, 'bin/memu.mjs'), ...args].map((a) => `'${a}'`).join(' ');
  return new Promise((resolve) => {
    execFile('script', ['-qec', command, '/dev/null'], { cwd: REPO_ROOT }, (err, stdout) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: stdout.replace(/\r/g, '') });
    });
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-cli-output-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('how every memu command reports (README, "Commands")', () => {
  it('--json ends stdout with exactly one result line, for a success', async () => {
    const r = await runMemu(['--json', 'keygen', '--out', join(dir, 'keys/release')]);
    expect(r.code).toBe(ExitCode.ok);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(commandResult(r)).toMatchObject({ type: 'result', command: 'keygen', ok: true, keyPath: join(dir, 'keys/release.key') });
  });

  it('--json reports a usage error and a refused action as a result line with the exit code, hint and command', async () => {
    const usage = await runMemu(['--json', 'build', '--no-such-option']);
    expect(usage.code).toBe(ExitCode.badInput);
    expect(usage.stdout.trim().split('\n')).toHaveLength(1);
    expect(commandResult(usage)).toMatchObject({ command: 'build', ok: false, exitCode: ExitCode.badInput, error: "unknown option '--no-such-option'" });

    const again = await runMemu(['--json', 'keygen', '--out', join(dir, 'keys/release')]);
    expect(again.code).toBe(ExitCode.badInput);
    expect(commandResult(again)).toMatchObject({ command: 'keygen', ok: false, exitCode: ExitCode.badInput, hint: expect.stringMatching(/choose another --out/) });
  });

  it('without --json, stdout carries the result in words and a failure is logged once as JSON when stderr is no terminal', async () => {
    const ok = await runMemu(['keygen', '--out', join(dir, 'plain/k')]);
    expect(ok.code).toBe(ExitCode.ok);
    expect(ok.stdout).toMatch(/^made signing key .*plain\/k\.key \(key id [0-9a-f]{16}\)/);
    const refused = await runMemu(['keygen', '--out', join(dir, 'plain/k')]);
    expect(refused.code).toBe(ExitCode.badInput);
    expect(refused.stdout).toBe('');
    const errors = refused.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(errors.filter((e) => /refusing to overwrite a key/.test(e.msg))).toHaveLength(1);
  });

  it('on a terminal, an error is printed once, with its hint', async () => {
    await runMemu(['keygen', '--out', join(dir, 'tty/k')]);
    const r = await onTerminal(['keygen', '--out', join(dir, 'tty/k')]);
    expect(r.code).toBe(ExitCode.badInput);
    expect(r.output.match(/refusing to overwrite a key/g)).toHaveLength(1);
    expect(r.output).toMatch(/^error: .*already exist; refusing to overwrite a key\n {2}hint: choose another --out/m);
  });
});

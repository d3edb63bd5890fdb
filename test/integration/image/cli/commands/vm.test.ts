import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../../../helpers/memu-build.ts';

/**
 * `memu vm` as a user runs it (the real entry point): its refusals. The boot itself, through
 * the same startVm with a USB drive, is the end-to-end test's (test/e2e/first-boot.test.ts),
 * which boots two drives; a third boot only for the command would cost CI minutes.
 */
const MEMU = resolve(REPO_ROOT, 'bin/memu.mjs');

function memu(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [MEMU, ...args], { env: { ...process.env, MEMU_LOG_LEVEL: 'info' }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

let dir: string;
let blank: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-vm-cli-'));
  // A drive with nothing bootable on it: the firmware finds no system, so no agent ever answers.
  blank = join(dir, 'blank.img');
  await writeFile(blank, Buffer.alloc(1024 * 1024));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('memu vm', () => {
  it('refuses what it cannot boot, saying what to give instead (exit 2)', async () => {
    const missing = await memu(['vm', join(dir, 'nope.img')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`image ${join(dir, 'nope.img')} is not a file`);
    const hardware = await memu(['vm', blank, '--profile', 'pi5']);
    expect(hardware.code).toBe(2);
    expect(hardware.stderr).toContain('profile pi5 is real hardware, not a virtual machine');
    const reuse = await memu(['vm', blank, '--reuse-disk']);
    expect(reuse.code).toBe(2);
    expect(reuse.stderr).toContain('--reuse-disk needs --work-dir');
    const usb = await memu(['vm', blank, '--usb-drive', join(dir, 'no-drive.img')]);
    expect(usb.code).toBe(2);
    expect(usb.stderr).toContain('mkfs.ext4 -L MEMU-BACKUP');
  });
});

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPreseed } from '../../../../../agent/provisioning/preseed-source.ts';
import { listFatRoot, makeGptDisk, type TestDisk } from '../../../../helpers/fat-disk.ts';
import { REPO_ROOT } from '../../../../helpers/memu-build.ts';

// Runs the real `memu` entry point (needs `registerPreseed` in image/cli/commands/index.ts).
const MEMU = resolve(REPO_ROOT, 'bin/memu.mjs');
const PASSPHRASE = 'Quokka-Zebra-Secret-4711';

function memu(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [MEMU, ...args], { env: { ...process.env, MEMU_LOG_LEVEL: 'info' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

let dir: string;
let disk: TestDisk;
let good: string;
let bad: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-preseed-cli-'));
  disk = await makeGptDisk(dir);
  good = join(dir, 'settings.json');
  await writeFile(good, JSON.stringify({ version: 1, hostname: 'smith-memu', wifi: { ssid: 'Home', passphrase: PASSPHRASE, country: 'GB' } }));
  bad = join(dir, 'bad.json');
  await writeFile(bad, JSON.stringify({ version: 1, hostname: 'smith_memu', timezone: 'Mars/Base', wifi: { ssid: 'Home', passphrase: `${PASSPHRASE}${'!'.repeat(50)}`, country: 'GB' } }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('memu preseed', () => {
  it('--check accepts a valid file and prints the fields as JSON', async () => {
    const result = await memu(['--json', 'preseed', '--check', '--file', good]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ type: 'result', command: 'preseed', ok: true, valid: true, file: good, fields: ['hostname', 'wifi.ssid', 'wifi.passphrase', 'wifi.country'] });
    expect(result.stdout + result.stderr).not.toContain('Quokka');
  });

  it('--check rejects a bad file with exit 2, listing every problem without secret values', async () => {
    const result = await memu(['preseed', '--check', '--file', bad]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('3 problems');
    expect(result.stderr).toMatch(/hostname: contains characters other than/);
    expect(result.stderr).toMatch(/timezone: is not a known IANA time zone/);
    expect(result.stderr).toMatch(/wifi\.passphrase: is longer than 63/);
    expect(result.stderr).toMatch(/"hint":"[^"]*docs\/preseed\.md/);
    expect(result.stdout + result.stderr).not.toContain('Quokka');
  });

  it('--image writes the settings and prints where, as JSON', async () => {
    const result = await memu(['preseed', '--json', '--image', disk.path, '--file', good]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ target: disk.path, partition: 1, offset: disk.offsets[0], file: 'memu-preseed.json' });
    expect(result.stdout + result.stderr).not.toContain('Quokka');
    expect(await readPreseed({ device: disk.path, log: pino({ level: 'silent' }) })).toMatchObject({ state: 'valid', settings: { hostname: 'smith-memu' } });
  });

  it('writes nothing for a bad file', async () => {
    const fresh = await makeGptDisk(dir, undefined, 'fresh.img');
    const result = await memu(['preseed', '--image', fresh.path, '--file', bad]);
    expect(result.code).toBe(2);
    expect(await listFatRoot(fresh.path, fresh.offsets[0]!)).toEqual([]);
  });

  it('needs exactly one of --image and --device, and the right kind of target for each', async () => {
    const neither = await memu(['preseed', '--file', good]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toMatch(/no target given/);
    const both = await memu(['preseed', '--image', disk.path, '--device', '/dev/null', '--file', good]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/only one of --image and --device/);
    const checkWithTarget = await memu(['preseed', '--check', '--image', disk.path, '--file', good]);
    expect(checkWithTarget.code).toBe(2);
    const fileAsDevice = await memu(['preseed', '--device', disk.path, '--file', good]);
    expect(fileAsDevice.code).toBe(2);
    expect(fileAsDevice.stderr).toMatch(/"hint":"use --image for image files","msg":"[^"]*is not a block device"/);
  });
});

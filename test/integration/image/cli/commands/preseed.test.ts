import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPreseed } from '../../../../../agent/provisioning/preseed-source.ts';
import { listFatDirectory, listFatRoot, makeFatDirectory, makeGptDisk, type TestDisk } from '../../../../helpers/fat-disk.ts';
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

  it('reads only a regular file, within the size bound: a directory, a device or a pipe is exit 2', async () => {
    const folder = join(dir, 'settings-folder');
    await mkdir(folder);
    const fifo = join(dir, 'settings.fifo');
    await new Promise<void>((done, fail) => execFile('mkfifo', [fifo], (err) => (err ? fail(err) : done())));
    for (const [file, message] of [
      [folder, /the settings file .*settings-folder is a directory/],
      ['/dev/zero', /the settings file \/dev\/zero is not a regular file \(a device, pipe or socket\)/],
      [fifo, /settings\.fifo is not a regular file/],
    ] as const) {
      const result = await memu(['--json', 'preseed', '--check', '--file', file]);
      expect(result.code, `${file}: ${result.stderr}`).toBe(2);
      expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toMatchObject({ ok: false, exitCode: 2, error: expect.stringMatching(message) });
    }
    const big = join(dir, 'big.json');
    await writeFile(big, `{"version": 1}${' '.repeat(70 * 1024)}`);
    const tooBig = await memu(['preseed', '--check', '--file', big]);
    expect(tooBig.code).toBe(2);
    expect(tooBig.stderr).toMatch(/big\.json is larger than 65536 bytes/);
  });

  it('refuses duplicate keys, naming the field, without quoting the secret', async () => {
    const twice = join(dir, 'twice.json');
    await writeFile(twice, `{"version": 1, "wifi": {"ssid": "Home", "passphrase": "${PASSPHRASE}", "country": "GB"}, "wifi": {"ssid": "Home", "country": "GB"}}`);
    const result = await memu(['preseed', '--check', '--file', twice]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/wifi: appears more than once/);
    expect(result.stdout + result.stderr).not.toContain('Quokka');
  });

  it('refuses, writing nothing, an image whose FAT has a directory named memu-preseed.json', async () => {
    const target = await makeGptDisk(dir, undefined, 'folder.img');
    await makeFatDirectory(target.path, target.offsets[0]!, 'memu-preseed.json');
    const result = await memu(['--json', 'preseed', '--image', target.path, '--file', good]);
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout.trim().split('\n').at(-1)!)).toMatchObject({ ok: false, exitCode: 2, error: expect.stringMatching(/directory named memu-preseed\.json/) });
    expect(await listFatDirectory(target.path, target.offsets[0]!, 'memu-preseed.json')).toEqual([]);
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

import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPreseed } from '../../../../agent/provisioning/preseed-source.ts';
import { makeGptDisk } from '../../../helpers/fat-disk.ts';
import { runMemu } from '../../../helpers/memu-build.ts';

const exec = promisify(execFile);

describe('memu flash --preseed', () => {
  let dir: string;
  let image: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-flash-preseed-'));
    // A small Memu-shaped disk (GPT, ESP, Linux partition) with its bmap, as a build makes.
    image = (await makeGptDisk(dir)).path;
    await exec('bmaptool', ['create', '-o', join(dir, 'disk.bmap'), image]);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes the settings onto the flashed drive, where the agent's own reader finds them", async () => {
    const settings = { version: 1, hostname: 'smith-memu', timezone: 'Europe/London', factoryQa: true };
    await writeFile(join(dir, 'settings.json'), JSON.stringify(settings));
    const target = join(dir, 'target.img');
    const r = await runMemu(['--json', 'flash', image, target, '--bmap', join(dir, 'disk.bmap'), '--preseed', join(dir, 'settings.json')]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ type: 'result', ok: true, verified: true, preseed: { partition: 1 } });
    const log = pino({ level: 'silent' });
    expect(await readPreseed({ device: target, log })).toEqual({ state: 'valid', settings });
  });

  it('refuses invalid settings before touching the target', async () => {
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ version: 1, hostname: 'not a hostname!', timezone: 'Mars/Olympus' }));
    const target = join(dir, 'untouched.img');
    const r = await runMemu(['flash', image, target, '--bmap', join(dir, 'disk.bmap'), '--preseed', join(dir, 'bad.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/hostname/);
    expect(r.stderr).toMatch(/timezone/);
    await expect(access(target)).rejects.toThrow();
  });

  it('refuses a directory given as the settings file before touching the target', async () => {
    const folder = join(dir, 'settings-folder');
    await mkdir(folder);
    const target = join(dir, 'untouched-by-folder.img');
    const r = await runMemu(['flash', image, target, '--bmap', join(dir, 'disk.bmap'), '--preseed', folder]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the settings file .*settings-folder is a directory/);
    await expect(access(target)).rejects.toThrow();
  });
});

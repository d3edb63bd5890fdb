import { cp, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyFactoryFreshPlan, listRootWrittenAtBoot, listTree, planFactoryFreshCleanup } from '../../../../agent/factory-qa/index.ts';
import { openFatVolume } from '../../../../shared/fat/fat-volume.ts';
import { qaFixture } from './checks/qa-fixtures.ts';

// A copy of test/fixtures/factory-qa/after-qa (a unit after its QA boot), cleaned for real;
// the FAT is a mounted directory here, mtools on the device.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-factory-fresh-'));
  await cp(qaFixture('after-qa'), dir, { recursive: true });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('factory-fresh cleanup', () => {
  it('leaves what the image shipped, the report and a preseed with the claim code and no QA flag', async () => {
    const shipped = JSON.parse(await readFile(join(dir, 'shipped.json'), 'utf8')) as { data: string[]; root: string[] };
    const where = { dataDir: join(dir, 'data'), rootDir: join(dir, 'root'), fat: await openFatVolume(join(dir, 'fat')) };
    const plan = async () =>
      planFactoryFreshCleanup({
        shippedData: shipped.data,
        presentData: await listTree(where.dataDir),
        shippedRoot: shipped.root,
        presentRoot: await listRootWrittenAtBoot(where.rootDir),
        presentFat: await where.fat.listRoot(),
      });
    await applyFactoryFreshPlan(await plan(), where);

    expect(await listTree(where.dataDir)).toEqual([...shipped.data, 'factory-qa', 'factory-qa/memu-qa-report.json', 'factory-qa/memu-qa-report.json.sig'].sort());
    expect(await listRootWrittenAtBoot(where.rootDir)).toEqual([...shipped.root].sort());
    expect(await readFile(join(where.rootDir, 'etc/machine-id'), 'utf8')).toBe('');
    expect((await stat(join(where.rootDir, 'etc/machine-id'))).mode & 0o777).toBe(0o444);
    expect((await readdir(join(dir, 'fat'))).sort()).toEqual(['autoboot.txt', 'memu-preseed.json', 'memu-qa-report.json', 'memu-qa-report.json.sig']);
    expect(JSON.parse(await readFile(join(dir, 'fat/memu-preseed.json'), 'utf8'))).toEqual({ version: 1, claimCode: '7K3M-Q9XD-2HFT-B8RW' });

    // Again, as after a power cut mid-way: nothing more to remove, the same result.
    const again = await plan();
    expect(again).toMatchObject({ removeData: [], removeRoot: [], removeFat: [] });
    await applyFactoryFreshPlan(again, where);
    expect(JSON.parse(await readFile(join(dir, 'fat/memu-preseed.json'), 'utf8'))).toEqual({ version: 1, claimCode: '7K3M-Q9XD-2HFT-B8RW' });
  });

  it('refuses a plan whose path leaves its file system', async () => {
    const where = { dataDir: join(dir, 'data'), rootDir: join(dir, 'root'), fat: await openFatVolume(join(dir, 'fat')) };
    const plan = { removeData: [{ path: '../root', why: 'x' }], removeRoot: [], removeFat: [], rewritePreseed: false, emptyMachineId: false, removeDataLast: [], keep: [] };
    await expect(applyFactoryFreshPlan(plan, where)).rejects.toThrow(`refusing to remove ../root: not a path inside ${where.dataDir}`);
    expect(await readdir(join(dir, 'root'))).toContain('etc');
  });
});

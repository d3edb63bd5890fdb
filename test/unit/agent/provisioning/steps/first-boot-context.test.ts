import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { preseedFatDevice } from '../../../../../agent/provisioning/steps/first-boot-context.ts';

/** A fresh directory, removed when the test ends. */
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-dev-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('the preseed FAT partition from the disk layout', () => {
  it('is the lowest-numbered vfat partition, as its real device node', async () => {
    const dev = await tempDir();
    await mkdir(join(dev, 'disk/by-partuuid'), { recursive: true });
    await writeFile(join(dev, 'sda1'), '');
    await symlink('../../sda1', join(dev, 'disk/by-partuuid/11111111-1111-4111-8111-111111111111'));
    const part = (number: number, role: string, filesystem: string, partUuid: string) =>
      ({ number, role, label: role, partUuid, typeGuid: 'x', filesystem, fsUuid: 'x', startBytes: 0, sizeBytes: 1 }) as never;
    const layout = {
      format: 'memu-disk-layout/1',
      profile: 'pi5',
      diskGuid: '00000000-0000-4000-8000-000000000000',
      sectorSize: 512,
      imageSizeBytes: 1,
      partitions: [
        part(2, 'boot-a', 'vfat', '22222222-2222-4222-8222-222222222222'),
        part(1, 'bootconfig', 'vfat', '11111111-1111-4111-8111-111111111111'),
        part(4, 'data', 'ext4', '44444444-4444-4444-8444-444444444444'),
      ],
    } as const;
    expect(await preseedFatDevice(layout as never, dev)).toBe(join(dev, 'sda1'));
    expect(await preseedFatDevice({ ...layout, partitions: [layout.partitions[2]] } as never, dev)).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { loadProfile, profileNames, validateProfile, ProfileError, platformOf } from '../../../hardware/index.ts';
import { qemuAmd64 } from '../../../hardware/profiles/qemu-amd64.ts';

describe('hardware profiles', () => {
  it('ships valid qemu-amd64, nuc and pi5 profiles', () => {
    expect(profileNames()).toEqual(expect.arrayContaining(['nuc', 'pi5', 'qemu-amd64']));
    for (const name of profileNames()) expect(loadProfile(name).name).toBe(name);
    expect(platformOf(loadProfile('nuc'))).toBe('linux/amd64');
    expect(loadProfile('nuc').rootfs.components).toContain('non-free-firmware');
  });

  it('names the known profiles when asked for an unknown one', () => {
    expect(() => loadProfile('pi6')).toThrow(/unknown hardware profile "pi6"; known profiles: .*nuc.*qemu-amd64/);
  });

  it('rejects a profile with a wrong partition order, listing the path of every problem', () => {
    const bad = { ...qemuAmd64, partitions: [qemuAmd64.partitions[1], qemuAmd64.partitions[0], qemuAmd64.partitions[2], qemuAmd64.partitions[3]] };
    expect(() => validateProfile(bad, 'bad')).toThrow(ProfileError);
    expect(() => validateProfile(bad, 'bad')).toThrow(/partitions: a uefi target needs exactly these partitions in this order: esp, root-a, root-b, data/);
  });

  it('rejects typos and wrong types with the field path', () => {
    const typo = { ...qemuAmd64, archh: 'amd64' };
    expect(() => validateProfile(typo, 'typo')).toThrow(/typo is invalid: archh: not a known field/);
    const wrongType = { ...qemuAmd64, partitions: qemuAmd64.partitions.map((p, i) => (i === 0 ? { ...p, sizeMiB: -1 } : p)) };
    expect(() => validateProfile(wrongType, 'neg')).toThrow(/partitions\[0\]\.sizeMiB: Number must be greater than 0/);
    const mismatch = { ...qemuAmd64, arch: 'arm64' };
    expect(() => validateProfile(mismatch, 'arch')).toThrow(/BOOTX64\.EFI does not match arch arm64/);
  });
});

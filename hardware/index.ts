import { validateProfile, ProfileError, type HardwareProfile, type ProfileInput } from './profile.ts';
import { qemuAmd64 } from './profiles/qemu-amd64.ts';
import { nuc } from './profiles/nuc.ts';

export * from './profile.ts';

/** Every target this release knows, by name. `pi5` and `qemu-arm64` join this table. */
const PROFILES: Record<string, ProfileInput> = {
  'qemu-amd64': qemuAmd64,
  nuc,
};

export function profileNames(): string[] {
  return Object.keys(PROFILES).sort();
}

export function loadProfile(name: string): HardwareProfile {
  const data = PROFILES[name];
  if (!data) throw new ProfileError(`unknown hardware profile "${name}"; known profiles: ${profileNames().join(', ')}`);
  return validateProfile(data, name);
}

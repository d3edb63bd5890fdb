import { validateProfile, ProfileError, type HardwareProfile, type ProfileInput } from './profile.ts';
import { qemuAmd64 } from './profiles/qemu-amd64.ts';
import { nuc } from './profiles/nuc.ts';
import { pi5 } from './profiles/pi5.ts';
import { qemuArm64 } from './profiles/qemu-arm64.ts';

export * from './profile.ts';

/** Every target this release knows, by name. */
const PROFILES: Record<string, ProfileInput> = {
  'qemu-amd64': qemuAmd64,
  nuc,
  pi5,
  'qemu-arm64': qemuArm64,
};

export function profileNames(): string[] {
  return Object.keys(PROFILES).sort();
}

export function loadProfile(name: string): HardwareProfile {
  const data = PROFILES[name];
  if (!data) throw new ProfileError(`unknown hardware profile "${name}"; known profiles: ${profileNames().join(', ')}`);
  return validateProfile(data, name);
}

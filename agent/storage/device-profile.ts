import { loadProfile, type HardwareProfile } from '../../hardware/index.ts';
import { loadDiskLayout } from './layout.ts';

/**
 * The hardware profile this device's image was built for, named by its disk layout
 * (`/etc/memu/layout.json`, written by the build into every root filesystem): what the
 * image expects of the board (the bootloader, QA thresholds) comes from there.
 */
export async function loadDeviceProfile(layoutPath: string): Promise<HardwareProfile> {
  return loadProfile((await loadDiskLayout(layoutPath)).profile);
}

import { readFile, realpath } from 'node:fs/promises';

/**
 * Throws unless `device` is what is mounted at `mountPoint`: everything the family keeps
 * lives on the data filesystem, and provisioning must never write it onto a root slot's
 * empty directory instead.
 */
export async function requireMounted(device: string, mountPoint: string): Promise<void> {
  const mounted = await mountedDevice(mountPoint);
  if (mounted !== device) {
    throw new Error(`the data partition ${device} is not mounted at ${mountPoint} (found ${mounted ?? 'nothing'}); check var-lib-memu.mount and /etc/fstab`);
  }
}

/** The device mounted at `mountPoint` according to /proc/self/mountinfo, if any. */
export async function mountedDevice(mountPoint: string, mountinfoPath = '/proc/self/mountinfo'): Promise<string | undefined> {
  const text = await readFile(mountinfoPath, 'utf8');
  let source: string | undefined;
  for (const line of text.split('\n')) {
    // fields: id parent major:minor root mountpoint options ... - fstype source superoptions
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    if (sep < 0 || fields[4] !== mountPoint) continue;
    source = fields[sep + 2]; // the last mount on a path wins, as for the kernel
  }
  if (!source?.startsWith('/dev/')) return source;
  return realpath(source).catch(() => source);
}

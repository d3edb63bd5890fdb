import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { ExitCode, MemuError } from './errors.ts';

/** Host programs the build and VM runner call, with the Debian package that has each. */
export const HOST_TOOLS = {
  mmdebstrap: 'mmdebstrap',
  sfdisk: 'fdisk',
  mke2fs: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  dumpe2fs: 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mmd: 'mtools',
  zstd: 'zstd',
  bmaptool: 'bmap-tools',
  'qemu-img': 'qemu-utils',
  'qemu-system-x86_64': 'qemu-system-x86',
  'qemu-system-aarch64': 'qemu-system-arm',
} as const;
export type HostTool = keyof typeof HOST_TOOLS;

async function onPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      await access(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Fails at once, naming every missing tool and its package, before any work starts. */
export async function requireHostTools(tools: readonly HostTool[]): Promise<void> {
  const missing: HostTool[] = [];
  for (const t of tools) if (!(await onPath(t))) missing.push(t);
  if (missing.length > 0) {
    const list = missing.map((t) => `${t} (Debian package ${HOST_TOOLS[t]})`).join(', ');
    throw new MemuError(`missing host tool${missing.length > 1 ? 's' : ''}: ${list}`, ExitCode.environment, 'run scripts/setup-host to install everything the build needs');
  }
}


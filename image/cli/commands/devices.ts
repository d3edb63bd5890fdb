import type { RegisterCommand } from '../main.ts';
import { ExitCode } from '../../host/errors.ts';
import { formatBytes } from '../../host/progress.ts';
import { listBlockDevices, type BlockDevice } from '../../flash/block-devices.ts';

function row(d: BlockDevice): string[] {
  const mounted = d.partitions.filter((p) => p.mountpoints.length > 0).map((p) => `${p.path}→${p.mountpoints.join(',')}`);
  if (d.mountpoints.length > 0 && mounted.length === 0) mounted.push(d.mountpoints.join(','));
  return [
    d.path,
    formatBytes(d.sizeBytes),
    [d.vendor, d.model].filter(Boolean).join(' ') || '-',
    d.serial ?? '-',
    d.transport ?? '-',
    d.removable ? 'yes' : 'no',
    mounted.join(' ') || '-',
    d.refusal ? `REFUSED: ${d.refusal}${d.refusalClearedByUnmount ? ' (--unmount clears this)' : ''}` : 'can be flashed',
  ];
}

export const registerDevices: RegisterCommand = (program, run) => {
  program
    .command('devices')
    .description('list drives `memu flash` can write, and the ones it refuses with the reason')
    .action(() =>
      run(async (ctx) => {
        const devices = await listBlockDevices();
        if (ctx.json) {
          process.stdout.write(`${JSON.stringify({ devices })}\n`);
          return ExitCode.ok;
        }
        if (devices.length === 0) {
          process.stdout.write('no drives found (plug in the SD card or NVMe adapter, then run again)\n');
          return ExitCode.ok;
        }
        const header = ['PATH', 'SIZE', 'MODEL', 'SERIAL', 'TRAN', 'REMOVABLE', 'MOUNTED', 'STATUS'];
        const rows = [header, ...devices.map(row)];
        const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
        for (const r of rows) process.stdout.write(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
        return ExitCode.ok;
      }),
    );
};

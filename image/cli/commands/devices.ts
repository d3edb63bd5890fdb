import type { RegisterCommand } from '../command.ts';
import { ExitCode } from '../../host/errors.ts';
import { formatBytes } from '../../host/progress.ts';
import { listBlockDevices, type BlockDevice } from '../../flash/index.ts';

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
      run(async () => {
        const devices = await listBlockDevices();
        return { exitCode: ExitCode.ok, result: { devices }, summary: devicesTable(devices) };
      }),
    );
};

function devicesTable(devices: BlockDevice[]): string {
  if (devices.length === 0) return 'no drives found (plug in the SD card or NVMe adapter, then run again)';
  const header = ['PATH', 'SIZE', 'MODEL', 'SERIAL', 'TRAN', 'REMOVABLE', 'MOUNTED', 'STATUS'];
  const rows = [header, ...devices.map(row)];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

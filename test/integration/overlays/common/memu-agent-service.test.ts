/**
 * memu-agent.service runs as root, so its systemd sandbox is what stands between a bug in
 * the agent and the rest of the device. systemd's own rating of the unit file checks that
 * nobody drops the sandbox by accident; that the agent still works inside it is proven by
 * the end-to-end boot (test/e2e), which provisions a VM with this unit.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const UNIT = fileURLToPath(new URL('../../../../overlays/common/etc/systemd/system/memu-agent.service', import.meta.url));

interface Check {
  set: boolean;
  json_field: string;
  exposure: string | null;
}

describe('memu-agent.service sandboxing (systemd-analyze security)', () => {
  it('keeps the exposure systemd rates at 6.0 or less (9.8 unsandboxed), with each chosen protection in effect', async () => {
    const checks = JSON.parse((await run('systemd-analyze', ['security', '--offline=yes', '--json=short', UNIT])).stdout) as Check[];
    const set = new Set(checks.filter((c) => c.set).map((c) => c.json_field));
    for (const field of [
      'NoNewPrivileges',
      'PrivateTmp',
      'ProtectKernelTunables',
      'ProtectKernelModules',
      'ProtectKernelLogs',
      'ProtectControlGroups',
      'RestrictNamespaces_user',
      'RestrictRealtime',
      'RestrictSUIDSGID',
      'LockPersonality',
      'SystemCallArchitectures',
      'RestrictAddressFamilies_AF_PACKET',
      'SystemCallFilter_debug',
      'SystemCallFilter_module',
      'SystemCallFilter_raw_io',
    ]) {
      expect(set, field).toContain(field);
    }
    // --threshold makes the command fail above the given exposure (in tenths).
    await expect(run('systemd-analyze', ['security', '--offline=yes', '--threshold=60', UNIT])).resolves.toBeDefined();
  });

  it('keeps what the agent needs: the disk devices, /etc and /root writable, W+X memory for V8', async () => {
    const text = await readFile(UNIT, 'utf8');
    // systemd rates only `strict` as protecting the system; `yes` still keeps /usr and /boot read-only.
    expect(text).toMatch(/^ProtectSystem=yes$/m);
    for (const forbidden of [/^PrivateDevices=yes/m, /^DevicePolicy=/m, /^ProtectClock=yes/m, /^ProtectSystem=(strict|full)/m, /^ProtectHome=(yes|read-only)/m, /^MemoryDenyWriteExecute=yes/m]) {
      expect(text).not.toMatch(forbidden);
    }
  });
});

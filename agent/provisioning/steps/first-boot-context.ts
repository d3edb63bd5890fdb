import { join } from 'node:path';
import { realpath } from 'node:fs/promises';
import type { DiskLayout } from '../../../shared/contracts/disk-layout.ts';
import type { ProvisioningStep } from '../journal.ts';
import type { StackValuesInput } from '../../config-templates/index.ts';
import type { RootEffects } from '../../device-settings/index.ts';

/**
 * Everything the first-boot steps touch, as data: on the device these are the real
 * paths and effects; tests point them into a temporary directory and run unprivileged
 * with respect to the host (nothing outside `rootDir` and `dataDir` is written).
 * The root effects (rootDir, hostname/time-zone/network hooks) are RootEffects: on the
 * device they call hostnamectl and friends; tests leave them to the file-only defaults.
 */
export interface FirstBootContext extends RootEffects {
  /** Mount point of the ext4 data partition (`/var/lib/memu`). */
  dataDir: string;
  /**
   * Block device (or image, or mounted directory) holding the FAT with memu-preseed.json:
   * the layout's first vfat partition. Undefined when the layout has none (wizard mode).
   */
  fatDevice: string | undefined;
  /** tailscaled's LocalAPI socket (`/var/run/tailscale/tailscaled.sock`). */
  tailscaleSocket: string;
  /** Stack value overrides (ports, front door, postgres sizing); device name/hostname/timezone/paths/secrets are filled in. */
  stackValues?: Partial<Omit<StackValuesInput, 'device' | 'secrets'>>;
  /** compose/ (templates); default: renderStackConfig's own default ($MEMU_COMPOSE_DIR or the repo's). */
  composeDir?: string;
  /** Tailscale join tuning; control URL defaults to Tailscale's (set it for Headscale). */
  tailscale?: { controlUrl?: string; socketWaitMs?: number; joinTimeoutMs?: number; pollIntervalMs?: number };
  /**
   * The stack's own steps (bring-stack-up), run between render-stack-config and
   * tailscale-join: tailscaled runs in the stack (compose service memu_tailscale), so its
   * socket exists only once the stack is up.
   */
  stackSteps?: readonly ProvisioningStep[];
  /**
   * Test hook: called at named points inside steps (`<step>:begin`, `<step>:done`,
   * `device-secrets:after-tmp-write` …) so a crash test can kill the process exactly
   * there. Production leaves it undefined.
   */
  faultInjection?: (point: string) => void | Promise<void>;
}

/** Where first-boot state lives on the data partition (never on a root slot). */
export function firstBootPaths(dataDir: string) {
  const agentDir = join(dataDir, 'agent');
  const secretsDir = join(dataDir, 'secrets');
  return {
    agentDir,
    journal: join(agentDir, 'provisioning.json'),
    /** The ext4 copy of the preseed (or the wizard record): the source of truth after read-preseed. */
    preseedRecord: join(agentDir, 'preseed.json'),
    /** One small JSON per step: what it applied and any warnings (no secret values). */
    outcomesDir: join(agentDir, 'first-boot'),
    /** Directory 0700, files 0600: the device's own secrets and what it keeps of the preseed's. */
    secretsDir,
    /** The preseeded Tailscale auth key, kept only until tailscale-join has used it. */
    tailscaleAuthKey: join(secretsDir, 'tailscale-auth-key'),
    /** SHA-256 (hex) of the preseeded agentApiKey; absent when none was preseeded. */
    agentApiKeyDigest: join(secretsDir, 'agent-api-key.sha256'),
    settingsDir: join(dataDir, 'device-settings'),
    configDir: join(dataDir, 'config'),
  };
}

export async function fault(ctx: FirstBootContext, point: string): Promise<void> {
  if (ctx.faultInjection) await ctx.faultInjection(point);
}

/**
 * The FAT partition holding the preseed: the layout's first vfat partition (the ESP on
 * x86-64, "bootconfig" on a Pi 5), as its real device node. The by-partuuid link is
 * resolved because the mounted-partition checks compare against lsblk's node paths.
 */
export async function preseedFatDevice(layout: DiskLayout, devDir = '/dev'): Promise<string | undefined> {
  const fat = [...layout.partitions].sort((a, b) => a.number - b.number).find((p) => p.filesystem === 'vfat');
  if (!fat) return undefined;
  const link = join(devDir, 'disk', 'by-partuuid', fat.partUuid.toLowerCase());
  return realpath(link).catch(() => link);
}

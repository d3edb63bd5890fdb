import type { ProvisioningStep } from '../journal.ts';
import { fault, firstBootPaths, type FirstBootContext } from './first-boot-context.ts';
import { removeStaleTemporaryFiles } from '../../../shared/files/durable-files.ts';
import { readPreseedStep, scrubPreseedStep } from './preseed-steps.ts';
import { deviceSecretsStep, renderStackConfigStep } from './secrets-steps.ts';
import { deviceSettingsStep, networkStep, sshKeysStep } from './settings-steps.ts';
import { tailscaleJoinStep } from './tailscale-join-step.ts';

export type { FirstBootContext } from './first-boot-context.ts';

/**
 * The first-boot provisioning steps, in order, for ProvisioningJournal. Each one is
 * idempotent and may be cut off at any instant (test/integration/agent/provisioning/first-boot.crash.test.ts).
 * They run after grow-data-partition and grow-data-filesystem (provisioning-module.ts).
 *
 *   read-preseed         FAT preseed → <dataDir>/agent/preseed.json, no secret as given (or wizard mode + reason),
 *                        and the Tailscale key and the API key's digest → <dataDir>/secrets/
 *   scrub-preseed        secrets removed from the FAT copy (only after the step above is journaled)
 *   device-settings      hostname, time zone, locale → <dataDir>/device-settings, applied to the root slot
 *   network              Wi-Fi → systemd-networkd + wpa_supplicant (no-op without Wi-Fi)
 *   ssh-keys             root's authorized_keys (no-op without keys)
 *   device-secrets       <dataDir>/secrets/*, generated once
 *   render-stack-config  <dataDir>/config/* via agent/config-templates
 *   … ctx.stackSteps …   bring-stack-up: tailscaled runs in the stack (memu_tailscale),
 *                        so the join needs the stack up
 *   tailscale-join       LocalAPI login with the preseeded auth key, deleted once used; a failure is recorded, not fatal
 */
export const FIRST_BOOT_STEP_NAMES = [
  'read-preseed',
  'scrub-preseed',
  'device-settings',
  'network',
  'ssh-keys',
  'device-secrets',
  'render-stack-config',
  'tailscale-join',
] as const;

export function createFirstBootSteps(ctx: FirstBootContext): ProvisioningStep[] {
  const step = (name: string, run: (c: FirstBootContext, log: Parameters<ProvisioningStep['run']>[0]) => Promise<void>): ProvisioningStep => ({
    name,
    async run(log) {
      await fault(ctx, `${name}:begin`);
      // The journal's own temporary file, if a power cut hit its write between two steps.
      await removeStaleTemporaryFiles(firstBootPaths(ctx.dataDir).agentDir);
      await run(ctx, log);
      await fault(ctx, `${name}:done`);
    },
  });
  return [
    step('read-preseed', readPreseedStep),
    step('scrub-preseed', scrubPreseedStep),
    step('device-settings', deviceSettingsStep),
    step('network', networkStep),
    step('ssh-keys', sshKeysStep),
    step('device-secrets', deviceSecretsStep),
    step('render-stack-config', renderStackConfigStep),
    ...(ctx.stackSteps ?? []),
    step('tailscale-join', tailscaleJoinStep),
  ];
}

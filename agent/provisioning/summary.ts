import { readStoredSettings } from '../device-settings/index.ts';
import { readPreseedRecord, readStepOutcome } from './steps/preseed-record.ts';
import { readTailscaleRecord } from './steps/tailscale-join-step.ts';
import { FIRST_BOOT_STEP_NAMES } from './steps/first-boot-steps.ts';

/** For /healthz and the wizard: what first boot did. Never holds a secret value. */
export interface ProvisioningSummary {
  /** 'wizard': no usable preseed, the setup wizard asks for the settings (see reason). */
  mode: 'provisioned' | 'wizard' | 'pending';
  reason?: string;
  /** Per-field problems of an invalid preseed file (field names and rules, no values). */
  problems?: string[];
  hostname?: string;
  /** Preseed fields applied to the device (names only, e.g. "wifi.passphrase"). */
  fieldsApplied: string[];
  /** Non-fatal problems (a failed Tailscale join, a FAT that could not be scrubbed). */
  warnings: string[];
  tailscale: 'joined' | 'needs-approval' | 'failed' | 'not-requested' | 'pending';
}

export async function provisioningSummary(dataDir: string): Promise<ProvisioningSummary> {
  const record = await readPreseedRecord(dataDir);
  const settings = await readStoredSettings(dataDir);
  const fieldsApplied = new Set<string>();
  const warnings: string[] = [];
  for (const step of FIRST_BOOT_STEP_NAMES) {
    if (step === 'read-preseed' || step === 'scrub-preseed') continue;
    const outcome = await readStepOutcome(dataDir, step);
    outcome?.fields.forEach((f) => fieldsApplied.add(f));
    if (step !== 'tailscale-join') outcome?.warnings.forEach((w) => warnings.push(w));
  }
  // read-preseed applies the API key itself (it stores the digest the API checks).
  if (record?.mode === 'preseed' && record.fields.includes('agentApiKey')) fieldsApplied.add('agentApiKey');
  const scrub = await readStepOutcome(dataDir, 'scrub-preseed');
  scrub?.warnings.forEach((w) => warnings.push(w));
  const tailscale = await readTailscaleRecord(dataDir);
  if (tailscale?.state === 'failed' && tailscale.reason) warnings.push(`Tailscale: ${tailscale.reason}`);
  const tailscaleState: ProvisioningSummary['tailscale'] = tailscale
    ? tailscale.state
    : record?.mode === 'preseed' && record.fields.includes('tailscaleAuthKey')
      ? 'pending'
      : record
        ? 'not-requested'
        : 'pending';
  return {
    mode: !record ? 'pending' : record.mode === 'wizard' ? 'wizard' : 'provisioned',
    ...(record?.mode === 'wizard' ? { reason: record.reason, problems: record.problems } : {}),
    hostname: settings?.hostname,
    fieldsApplied: [...fieldsApplied].sort(),
    warnings,
    tailscale: tailscaleState,
  };
}

import type { HealthReason, HealthSource } from '../health/index.ts';
import type { ProvisioningState } from './journal.ts';
import { provisioningSummary } from './summary.ts';

/** A failed run degrades the device until a retry succeeds; a run in progress does not. */
export function provisioningHealthReasons(state: ProvisioningState): HealthReason[] {
  if (state.state !== 'failed') return [];
  return [{ source: 'provisioning', code: 'provisioning-failed', message: `provisioning failed at step ${state.step}: ${state.error}` }];
}

/** The health report's `provisioning` (the journal's state) and `device` (what first boot made of it) sections. */
export function provisioningHealth(status: () => ProvisioningState, dataDir: string): HealthSource {
  return {
    name: 'provisioning',
    async report() {
      const state = status();
      const device = await provisioningSummary(dataDir).catch(() => undefined);
      return { sections: { provisioning: state, device }, reasons: provisioningHealthReasons(state), starting: state.state === 'pending' || state.state === 'running' };
    },
  };
}

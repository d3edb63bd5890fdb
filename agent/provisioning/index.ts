/** First-boot provisioning: a journal of idempotent steps, resumed after any power cut. */
export { createProvisioningModule } from './provisioning-module.ts';
export type { PreparedDisk, ProvisioningModule, ProvisioningModuleOptions } from './provisioning-module.ts';
export type { ProvisioningState, ProvisioningStep } from './journal.ts';
export { agentApiKeyDigest } from './steps/preseed-secrets.ts';
export { readDeviceSecrets } from './steps/secrets-steps.ts';
export type { DeviceSecrets } from './steps/secrets-steps.ts';

/** The setup wizard a family meets first: claim the box, create its admin, set it up from a phone. */
export { createSetupWizardModule } from './setup-wizard-module.ts';
export type { SetupWizardModule } from './setup-wizard-module.ts';
export { LANGUAGES, type SetupWizardDeps } from './wizard-routes.ts';
export { readProgress, WIZARD_STEPS, type WizardProgress, type WizardStep } from './wizard-progress.ts';
export type { WifiNetwork } from './wifi-scan.ts';
export type { RestoreStepDeps } from './restore-step.ts';

/** The stack's per-device config files, rendered from compose/templates with the device's values and secrets. */
export { defaultComposeDir, renderStackConfig, SYNAPSE_USER } from './render-stack.ts';
export { generateStackSecrets, generateSynapseSigningKey } from './stack-secrets.ts';
export { stackSecretsSchema } from './stack-values.ts';
export type { StackSecrets, StackValuesInput } from './stack-values.ts';

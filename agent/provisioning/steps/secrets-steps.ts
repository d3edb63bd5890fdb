import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { generateClaimCode, hashClaimCode } from '../../claim-code/index.ts';
import {
  defaultComposeDir,
  generateStackSecrets,
  generateSynapseSigningKey,
  renderStackConfig,
  stackSecretsSchema,
  SYNAPSE_USER,
  type StackSecrets,
  type StackValuesInput,
} from '../../config-templates/index.ts';
import { readStoredSettings } from '../../device-settings/index.ts';
import { fault, firstBootPaths, type FirstBootContext } from './first-boot-context.ts';
import { createFileOnce, ensureDirectory, readTextIfPresent, removeStaleTemporaryFiles } from '../../../shared/files/durable-files.ts';
import { preseedSettings, writeStepOutcome } from './preseed-record.ts';

/**
 * Per-device secrets, generated once on the device and kept in `<dataDir>/secrets/`
 * (directory 0700, files 0600). Each file is created with createFileOnce (temporary
 * file, fsync, link without overwrite), so a crash anywhere never regenerates a secret
 * that was already written, and never leaves a half-written one under its name.
 */
export const DEVICE_SECRET_FILES = {
  /** Database, Redis and Synapse secrets of the stack (generateStackSecrets()). */
  stack: 'stack-secrets.json',
  /** Synapse's server signing key; copied once to <dataDir>/synapse/keys/signing.key. */
  synapseSigningKey: 'synapse-signing.key',
  /**
   * Only when no claim code was preseeded: the code generated here, in plaintext, because
   * the device's console must show it to the person setting it up. A preseeded code is
   * on the label already and is never stored as given.
   */
  claimCode: 'claim-code',
  /** hashClaimCode() of the claim code, preseeded or generated: what a typed code is checked against (verifyClaimCode). */
  claimCodeHash: 'claim-code.scrypt',
} as const;

export interface DeviceSecrets {
  stack: StackSecrets;
  synapseSigningKey: string;
  claimCodeHash: string;
  /** Undefined when the claim code was preseeded. */
  generatedClaimCode?: string;
}

/** Reads the stored secrets; throws naming the file when one is missing or damaged. */
export async function readDeviceSecrets(dataDir: string): Promise<DeviceSecrets> {
  const dir = firstBootPaths(dataDir).secretsDir;
  const read = async (name: string) => {
    const text = await readTextIfPresent(join(dir, name));
    if (text === undefined) throw new Error(`${join(dir, name)} is missing; the device-secrets provisioning step has not run`);
    return text;
  };
  const stack = stackSecretsSchema.safeParse(JSON.parse(await read(DEVICE_SECRET_FILES.stack)));
  if (!stack.success) throw new Error(`${join(dir, DEVICE_SECRET_FILES.stack)} is not a valid set of stack secrets`);
  return {
    stack: stack.data,
    synapseSigningKey: await read(DEVICE_SECRET_FILES.synapseSigningKey),
    claimCodeHash: (await read(DEVICE_SECRET_FILES.claimCodeHash)).trim(),
    generatedClaimCode: (await readTextIfPresent(join(dir, DEVICE_SECRET_FILES.claimCode)))?.trim(),
  };
}

/** device-secrets: every per-device secret, each created once. */
export async function deviceSecretsStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  const dir = firstBootPaths(ctx.dataDir).secretsDir;
  await ensureDirectory(dir, 0o700);
  await removeStaleTemporaryFiles(dir);
  const presetHash = (await preseedSettings(ctx.dataDir)).claimCodeHash;
  const generatedClaimCode = async () => (await readFile(join(dir, DEVICE_SECRET_FILES.claimCode), 'utf8')).trim();
  // In this order: a generated claim code's hash is made from the code as stored.
  const wanted: [string, () => string | Promise<string>][] = [
    [DEVICE_SECRET_FILES.stack, () => `${JSON.stringify(generateStackSecrets(), null, 2)}\n`],
    [DEVICE_SECRET_FILES.synapseSigningKey, generateSynapseSigningKey],
    ...(presetHash ? [] : [[DEVICE_SECRET_FILES.claimCode, () => `${generateClaimCode()}\n`] as [string, () => string]]),
    [DEVICE_SECRET_FILES.claimCodeHash, async () => `${presetHash ?? (await hashClaimCode(await generatedClaimCode()))}\n`],
  ];
  const created: string[] = [];
  for (const [name, generate] of wanted) {
    const result = await createFileOnce(join(dir, name), await generate(), {
      mode: 0o600,
      checkpoint: (point) => fault(ctx, `device-secrets:${name}:${point}`),
    });
    if (result.created) created.push(name);
  }
  log.info({ created, kept: wanted.map(([n]) => n).filter((n) => !created.includes(n)) }, 'per-device secrets ready');
  await writeStepOutcome(ctx.dataDir, {
    step: 'device-secrets',
    fields: presetHash ? ['claimCode'] : [],
    warnings: [],
    claimCodeSource: presetHash ? 'preseed' : 'generated',
  });
}

/** render-stack-config: the stack's config files from the stored settings and secrets (agent/config-templates). */
export async function renderStackConfigStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  const paths = firstBootPaths(ctx.dataDir);
  // Only a stack that ships config templates (the family stack) has config to render.
  const composeDir = ctx.composeDir ?? defaultComposeDir();
  if (!(await access(join(composeDir, 'templates')).then(() => true, () => false))) {
    log.info({ composeDir }, 'the installed stack has no config templates; nothing to render');
    await writeStepOutcome(ctx.dataDir, { step: 'render-stack-config', fields: [], warnings: [] });
    return;
  }
  const settings = await readStoredSettings(ctx.dataDir);
  if (!settings) throw new Error('the device settings are missing; the device-settings provisioning step has not run');
  const secrets = await readDeviceSecrets(ctx.dataDir);
  await removeStaleTemporaryFiles(paths.configDir, { recursive: true });

  // Synapse's signing key is the one generated in device-secrets; renderStackConfig only
  // creates a key when there is none, so placing ours first makes it the server's key.
  const synapseDir = join(ctx.dataDir, 'synapse');
  const keysDir = join(synapseDir, 'keys');
  await ensureDirectory(synapseDir, 0o750, SYNAPSE_USER);
  await ensureDirectory(keysDir, 0o700, SYNAPSE_USER);
  await removeStaleTemporaryFiles(keysDir);
  await createFileOnce(join(keysDir, 'signing.key'), secrets.synapseSigningKey, { mode: 0o600, owner: SYNAPSE_USER });
  await fault(ctx, 'render-stack-config:after-signing-key');

  const values: StackValuesInput = {
    ...ctx.stackValues,
    device: { name: settings.familyName ?? 'Memu', hostname: settings.hostname, timezone: settings.timezone },
    paths: { ...ctx.stackValues?.paths, dataDir: ctx.dataDir },
    secrets: secrets.stack,
  };
  const files = await renderStackConfig(values, paths.configDir, { composeDir, checkpoint: (point) => fault(ctx, `render-stack-config:${point}`) });
  log.info({ files: files.length, changed: files.filter((f) => f.changed).length }, 'stack config rendered');
  await writeStepOutcome(ctx.dataDir, { step: 'render-stack-config', fields: [], warnings: [] });
}

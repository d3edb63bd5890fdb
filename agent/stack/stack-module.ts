import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { imageLockSchema, pinnedReference, type ImageLock, type Platform } from '../../shared/contracts/image-lock.ts';
import { DEVICE_OVERRIDES, STACK_BASE_FILE, STACK_LOCK_FILE } from '../../shared/contracts/stack-files.ts';
import type { AgentModule } from '../module.ts';
import { parseEnvFile } from '../../shared/compose/load.ts';
import { createStackReconciler, type StackReconciler, type StackStatus } from './reconciler.ts';
import type { ServiceStatus } from './service-status.ts';

export interface StackModuleOptions {
  /** Where the image installed the stack (compose files, templates, lock). */
  stackDir: string;
  dataDir: string;
  dockerSocket: string;
  /** Resolves once first-boot provisioning is done; the loop starts only then. */
  provisioned: () => Promise<void>;
}

/** Seconds from the start of the bring-up step: what first boot spends where. */
export interface BringUpTimings {
  dockerReadySeconds: number;
  imagesAvailableSeconds: number;
  stackUpSeconds: number;
}

export type StackModuleStatus = { state: 'none'; reason: string } | ({ state: 'present'; bringUp?: BringUpTimings } & StackStatus);

export interface StackModule extends AgentModule {
  status(): StackModuleStatus;
  /** Provisioning step: reconciles until every service is up (healthy where it has a check). */
  bringUp(log: Logger, timeoutMs?: number): Promise<void>;
}

const exists = (p: string) => access(p).then(() => true, () => false);

export function nodePlatform(arch = process.arch): Platform {
  if (arch === 'x64') return 'linux/amd64';
  if (arch === 'arm64') return 'linux/arm64';
  throw new Error(`Memu runs on amd64 and arm64, not ${arch}`);
}

/** The compose files that apply on this device: the base file, plus overrides whose device exists. */
async function applicableComposeFiles(stackDir: string): Promise<string[]> {
  const files = [join(stackDir, STACK_BASE_FILE)];
  for (const [file, device] of Object.entries(DEVICE_OVERRIDES)) {
    if ((await exists(join(stackDir, file))) && (await exists(device))) files.push(join(stackDir, file));
  }
  return files;
}

/**
 * The family's container stack, run by the reconciler. Compose variables come from the
 * stack env file rendered on the data partition (`config/stack.env`) when there is one,
 * over the data-partition defaults.
 */
export function createStackModule(opts: StackModuleOptions, log: Logger): StackModule {
  let reconciler: StackReconciler | undefined;
  let absentReason: string | undefined;
  let bringUpTimings: BringUpTimings | undefined;
  let stopped = false;

  const variables = async (): Promise<Record<string, string>> => {
    const defaults = { MEMU_DATA_DIR: opts.dataDir, MEMU_CONFIG_DIR: join(opts.dataDir, 'config') };
    const envFile = join(opts.dataDir, 'config', 'stack.env');
    const text = await readFile(envFile, 'utf8').catch(() => undefined);
    return text === undefined ? defaults : { ...defaults, ...parseEnvFile(text, defaults) };
  };

  const ensureReconciler = async (): Promise<StackReconciler | undefined> => {
    if (reconciler || absentReason) return reconciler;
    if (!(await exists(join(opts.stackDir, STACK_BASE_FILE)))) {
      absentReason = `this image carries no container stack (${join(opts.stackDir, STACK_BASE_FILE)} is missing)`;
      log.info({ reason: absentReason }, 'no stack to run');
      return undefined;
    }
    const lockPath = join(opts.stackDir, STACK_LOCK_FILE);
    reconciler = createStackReconciler({
      docker: new Docker({ socketPath: opts.dockerSocket }),
      log,
      composeFiles: await applicableComposeFiles(opts.stackDir),
      variables,
      imageLock: async () => imageLockSchema.parse(JSON.parse(await readFile(lockPath, 'utf8'))),
      platform: nodePlatform(),
    });
    return reconciler;
  };

  return {
    name: 'stack',
    async start() {
      void opts.provisioned().then(async () => {
        const r = await ensureReconciler();
        if (r && !stopped) r.start();
      });
    },
    async stop() {
      stopped = true;
      await reconciler?.stop();
    },
    status() {
      if (absentReason) return { state: 'none', reason: absentReason };
      return { state: 'present', bringUp: bringUpTimings, ...(reconciler?.status() ?? { converged: false, services: {} }) };
    },
    async bringUp(stepLog, timeoutMs = 15 * 60_000) {
      const r = await ensureReconciler();
      if (!r) return;
      const started = Date.now();
      const seconds = () => (Date.now() - started) / 1000;
      const deadline = started + timeoutMs;
      await waitForDocker(opts.dockerSocket, deadline);
      const dockerReadySeconds = seconds();
      const lock = imageLockSchema.parse(JSON.parse(await readFile(join(opts.stackDir, STACK_LOCK_FILE), 'utf8')));
      await requirePreloadedImages(opts.dockerSocket, lock, stepLog);
      const imagesAvailableSeconds = seconds();
      for (;;) {
        const result = await r.reconcileOnce({ timeLimitMs: Math.max(10_000, Math.min(120_000, deadline - Date.now())) });
        // Converged means no steps are left; up also means every healthcheck has passed.
        if (result.converged && Object.values(result.services).every(isServiceUp)) {
          bringUpTimings = { dockerReadySeconds, imagesAvailableSeconds, stackUpSeconds: seconds() };
          stepLog.info({ services: Object.keys(result.services).length, ...bringUpTimings }, 'stack is up');
          return;
        }
        if (Date.now() >= deadline) {
          const notUp = Object.entries(result.services)
            .filter(([, s]) => !isServiceUp(s))
            .map(([name, s]) => `${name}: ${s.state}`);
          throw new Error(`the stack did not come up within ${Math.round(timeoutMs / 1000)} s (${result.error ?? notUp.join(', ')})`);
        }
        if (result.error) stepLog.warn({ error: result.error }, 'stack not up yet');
        await new Promise((res) => setTimeout(res, 2000));
      }
    },
  };
}

/** Up: healthy, or running without a healthcheck, or a one-shot job that finished well. */
export function isServiceUp(s: ServiceStatus): boolean {
  return s.state === 'healthy' || s.state === 'running' || (s.state === 'exited' && s.exitCode === 0);
}

/** Docker starts after the data partition is mounted; wait for its API. */
async function waitForDocker(socketPath: string, deadline: number): Promise<void> {
  const docker = new Docker({ socketPath });
  let last = '';
  while (Date.now() < deadline) {
    try {
      await docker.ping();
      return;
    } catch (err) {
      last = (err as Error).message;
      await new Promise((res) => setTimeout(res, 1000));
    }
  }
  throw new Error(`Docker did not answer on ${socketPath}: ${last}`);
}

/**
 * Checks every locked image for this platform is in Docker (preloaded at build time).
 * Missing ones are only logged: the reconciler reports them per service with the reason.
 */
async function requirePreloadedImages(socketPath: string, lock: ImageLock, log: Logger): Promise<void> {
  const docker = new Docker({ socketPath });
  const platform = nodePlatform();
  const missing: string[] = [];
  for (const reference of Object.keys(lock.images)) {
    const pinned = pinnedReference(lock, reference, platform);
    await docker.getImage(pinned).inspect().catch(() => missing.push(pinned));
  }
  if (missing.length) log.warn({ missing }, 'locked images missing from Docker; the stack cannot start them without a registry');
}

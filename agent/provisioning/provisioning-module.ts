import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.ts';
import { applyStoredDeviceSettings, deviceRootEffects } from '../device-settings/index.ts';
import type { HealthSource } from '../health/index.ts';
import type { AgentModule } from '../module.ts';
import { growDataFilesystem, growDataPartition, layoutPartition, loadDiskLayout, readDataPartition, requireMounted } from '../storage/index.ts';
import { ProvisioningJournal, type ProvisioningState, type ProvisioningStep } from './journal.ts';
import { provisioningHealth } from './provisioning-health.ts';
import { preseedFatDevice } from './steps/first-boot-context.ts';
import { createFirstBootSteps } from './steps/first-boot-steps.ts';

export interface ProvisioningModule extends AgentModule {
  status(): ProvisioningState;
  /** Resolves when the current provisioning run has finished (done or failed). */
  settled(): Promise<ProvisioningState>;
  /** Resolves once provisioning is done (after however many retries). */
  done(): Promise<void>;
  /** Its sections of /healthz (`provisioning`, `device`) and why it degrades the device. */
  health: HealthSource;
}

export interface ProvisioningModuleOptions {
  /** The stack's steps (bring-stack-up); they run once the stack's config is rendered. */
  stackSteps?: readonly ProvisioningStep[];
}

const TAILSCALE_SOCKET = '/var/run/tailscale/tailscaled.sock';

/**
 * First-boot provisioning. The journal lives on the data partition, which systemd mounts
 * before the agent starts; without that mount nothing is provisioned and the reason is
 * reported (a device must never write its state onto a root slot).
 */
export function createProvisioningModule(config: AgentConfig, log: Logger, options: ProvisioningModuleOptions = {}): ProvisioningModule {
  let status: ProvisioningState = { state: 'pending', completed: [] };
  let markDone!: () => void;
  const donePromise = new Promise<void>((res) => (markDone = res));
  let running: Promise<ProvisioningState> = Promise.resolve(status);
  const paths = { sysBlockDir: config.sysBlockDir, devDir: config.devDir };

  const provision = async (): Promise<ProvisioningState> => {
    let steps: ProvisioningStep[];
    try {
      const layout = await loadDiskLayout(config.layoutPath);
      const data = layoutPartition(layout, 'data');
      const geometry = await readDataPartition(data, paths);
      await requireMounted(geometry.device, config.dataDir);
      const firstBoot = createFirstBootSteps({
        ...deviceRootEffects(join(config.sysBlockDir, '..', 'net')),
        dataDir: config.dataDir,
        fatDevice: await preseedFatDevice(layout, config.devDir),
        tailscaleSocket: TAILSCALE_SOCKET,
        composeDir: config.stackDir,
        stackSteps: options.stackSteps ?? [],
      });
      steps = [
        { name: 'grow-data-partition', run: (l) => growDataPartition(data, paths, l) },
        { name: 'grow-data-filesystem', run: (l) => growDataFilesystem(data, paths, config.dataDir, l) },
        ...firstBoot,
      ];
    } catch (err) {
      log.error({ err }, 'cannot provision');
      return { state: 'failed', step: 'prepare', error: (err as Error).message, completed: [] };
    }
    const journal = new ProvisioningJournal(join(config.dataDir, 'agent', 'provisioning.json'), steps, log);
    const poll = setInterval(() => (status = journal.current()), 200);
    try {
      const result = await journal.run();
      // Settings live on the data partition; a freshly updated root slot gets them here.
      if (result.state === 'done') {
        const changed = await applyStoredDeviceSettings(config.dataDir, deviceRootEffects(join(config.sysBlockDir, '..', 'net'))).catch((err: unknown) => {
          log.warn({ err }, 'could not re-apply stored device settings');
          return [];
        });
        if (changed.length) log.info({ changed }, 'stored device settings applied to this root slot');
      }
      return result;
    } finally {
      clearInterval(poll);
    }
  };

  // A failed run is retried with growing pauses (30 s doubling to 10 min): most failures
  // on a fresh device are transient (a slow disk, udev still settling).
  let retryTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  const runWithRetry = (attempt: number): void => {
    status = { state: 'running', step: 'prepare', completed: [] };
    running = provision().then((s) => {
      status = s;
      if (s.state === 'done') markDone();
      if (s.state === 'failed' && !stopped) {
        const delayMs = Math.min(30_000 * 2 ** attempt, 600_000);
        log.warn({ step: s.step, retryInSeconds: delayMs / 1000 }, 'provisioning failed; will retry');
        retryTimer = setTimeout(() => runWithRetry(attempt + 1), delayMs);
      }
      return s;
    });
  };

  return {
    name: 'provisioning',
    async start() {
      runWithRetry(0);
    },
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      await running;
    },
    status: () => status,
    settled: () => running,
    done: () => donePromise,
    health: provisioningHealth(() => status, config.dataDir),
  };
}

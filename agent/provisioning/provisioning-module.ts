import { join } from 'node:path';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.ts';
import { loadProfile } from '../../hardware/index.ts';
import { applyStoredDeviceSettings, deviceRootEffects } from '../device-settings/index.ts';
import { cleanUpAfterQa, readThisBoot, type FactoryQaModule, type ThisBoot } from '../factory-qa/index.ts';
import type { HealthSource } from '../health/index.ts';
import type { AgentModule } from '../module.ts';
import { growDataFilesystem, growDataPartition, layoutPartition, loadDiskLayout, readDataPartition, requireMounted } from '../storage/index.ts';
import { ProvisioningJournal, type ProvisioningState, type ProvisioningStep } from './journal.ts';
import { decideFirstBootMode, factoryQaBootSteps, type FirstBootMode } from './factory-qa-boot.ts';
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
  /**
   * Factory QA for a unit whose preseed says `factoryQa: true` (factory-qa-boot.ts).
   * Without it every boot is the family's, whatever the preseed says.
   */
  factoryQa?: {
    qa: Pick<FactoryQaModule, 'run' | 'resumePassed' | 'notRequested'>;
    /** Switches the unit off once it passed (`systemctl poweroff` on the device), so the operator sees it is done. */
    powerOff: () => Promise<void>;
    /** A warm reboot, for the profile's reboot cycles (`systemctl reboot` on the device). */
    reboot: () => Promise<void>;
    /** Tests: this boot's id and uptime (default: read from /proc). */
    thisBoot?: () => Promise<ThisBoot>;
    /** The root file system the cleanup makes fresh again; default '/'. */
    rootDir?: string;
    /** Tests: named points in a QA boot (`factory-qa-run:done`, `cleanup:after-data-removals`…) to cut it off, as a power cut would. */
    faultInjection?: (point: string) => void | Promise<void>;
  };
  /** Tests: instead of the data partition's checks and growth, which need root and the mounted partition. */
  prepareDisk?: (log: Logger) => Promise<PreparedDisk>;
}

/** What provisioning needs of the disk before its steps: the growth steps, the preseed's FAT partition and the hardware profile the image was built for. */
export interface PreparedDisk {
  growSteps: ProvisioningStep[];
  fatDevice: string | undefined;
  profile: string;
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

  const prepareDisk =
    options.prepareDisk ??
    (async (): Promise<PreparedDisk> => {
      const layout = await loadDiskLayout(config.layoutPath);
      const data = layoutPartition(layout, 'data');
      const geometry = await readDataPartition(data, paths);
      await requireMounted(geometry.device, config.dataDir);
      return {
        growSteps: [
          { name: 'grow-data-partition', run: (l) => growDataPartition(data, paths, l) },
          { name: 'grow-data-filesystem', run: (l) => growDataFilesystem(data, paths, config.dataDir, l) },
        ],
        fatDevice: await preseedFatDevice(layout, config.devDir),
        profile: layout.profile,
      };
    });

  // Set once a QA boot's unit passed and is being switched off: the cleanup runs when the agent stops.
  let qaCleanup: { fatDevice: string } | undefined;
  // Set once a QA boot asked for one of its warm reboots.
  let qaRebooting = false;
  const qaFault = async (point: string) => {
    await options.factoryQa?.faultInjection?.(point);
  };

  const provision = async (): Promise<ProvisioningState & { retry: boolean }> => {
    let steps: ProvisioningStep[];
    let mode: FirstBootMode;
    let fatDevice: string | undefined;
    try {
      const disk = await prepareDisk(log);
      fatDevice = disk.fatDevice;
      mode = options.factoryQa ? await decideFirstBootMode({ dataDir: config.dataDir, fatDevice, log }) : 'family';
      if (mode === 'factory-qa' && options.factoryQa && fatDevice) {
        steps = [
          ...disk.growSteps,
          ...factoryQaBootSteps({
            dataDir: config.dataDir,
            rootDir: options.factoryQa.rootDir ?? '/',
            fatDevice,
            profile: loadProfile(disk.profile),
            qa: options.factoryQa.qa,
            reboot: async () => {
              qaRebooting = true;
              await options.factoryQa!.reboot();
            },
            thisBoot: options.factoryQa.thisBoot ?? (() => readThisBoot()),
            fault: qaFault,
          }),
        ];
      } else {
        options.factoryQa?.qa.notRequested();
        const firstBoot = createFirstBootSteps({
          ...deviceRootEffects(join(config.sysBlockDir, '..', 'net')),
          dataDir: config.dataDir,
          fatDevice,
          tailscaleSocket: TAILSCALE_SOCKET,
          composeDir: config.stackDir,
          stackSteps: options.stackSteps ?? [],
        });
        steps = [...disk.growSteps, ...firstBoot];
      }
    } catch (err) {
      log.error({ err }, 'cannot provision');
      return { state: 'failed', step: 'prepare', error: (err as Error).message, completed: [], retry: true };
    }
    const journal = new ProvisioningJournal(join(config.dataDir, 'agent', 'provisioning.json'), steps, log);
    const poll = setInterval(() => (status = journal.current()), 200);
    try {
      const result = await journal.run();
      if (mode === 'factory-qa') {
        if (result.state === 'done') await switchOffPassedUnit(fatDevice!);
        // A failed unit stays on, showing why; a retry would only load it again. Switching it off and on tests it again.
        // A unit in its reboot cycles is already on its way down.
        return { ...result, retry: !(result.state === 'failed' && (result.step === 'factory-qa-run' || qaRebooting)) };
      }
      // Settings live on the data partition; a freshly updated root slot gets them here.
      if (result.state === 'done') {
        const changed = await applyStoredDeviceSettings(config.dataDir, deviceRootEffects(join(config.sysBlockDir, '..', 'net'))).catch((err: unknown) => {
          log.warn({ err }, 'could not re-apply stored device settings');
          return [];
        });
        if (changed.length) log.info({ changed }, 'stored device settings applied to this root slot');
      }
      return { ...result, retry: true };
    } finally {
      clearInterval(poll);
    }
  };

  /**
   * A unit that passed is switched off; the factory-fresh cleanup runs when the agent is
   * stopped on the way down (stop() below), after every module started after provisioning
   * has stopped, so nothing the agent writes (the health module's record of a clean
   * shutdown, memu.db, the cookie secret) lands after it.
   */
  const switchOffPassedUnit = async (fatDevice: string) => {
    qaCleanup = { fatDevice };
    log.info('the unit passed factory QA: switching it off; it is made factory-fresh on the way down');
    await options.factoryQa!.powerOff().catch((err: unknown) => log.error({ err }, 'cannot switch the unit off: switch it off by hand; the next boot finishes the cleanup'));
  };

  const cleanUpPassedUnit = async () => {
    if (!qaCleanup || !options.factoryQa) return;
    try {
      await cleanUpAfterQa({
        dataDir: config.dataDir,
        rootDir: options.factoryQa.rootDir ?? '/',
        fatDevice: qaCleanup.fatDevice,
        log,
        checkpoint: (point) => qaFault(`cleanup:${point}`),
      });
      log.info('the unit is factory-fresh');
    } catch (err) {
      log.error({ err }, 'the factory-fresh cleanup did not finish; the next boot finishes it');
    }
  };

  // A failed run is retried with growing pauses (30 s doubling to 10 min): most failures
  // on a fresh device are transient (a slow disk, udev still settling).
  let retryTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  const runWithRetry = (attempt: number): void => {
    status = { state: 'running', step: 'prepare', completed: [] };
    running = provision().then(({ retry, ...s }) => {
      status = s;
      // A QA boot never hands over to the stack, backups and repairs: the unit is switched off, or stays on for the operator.
      if (s.state === 'done' && !qaCleanup) markDone();
      if (s.state === 'failed' && !stopped && retry) {
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
      await cleanUpPassedUnit();
    },
    status: () => status,
    settled: () => running,
    done: () => donePromise,
    health: provisioningHealth(() => status, config.dataDir),
  };
}

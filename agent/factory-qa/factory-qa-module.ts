import type { Logger } from 'pino';
import type { HardwareProfile } from '../../hardware/index.ts';
import { parsePreseed, PRESEED_FILE_NAME, PRESEED_MAX_BYTES } from '../../shared/contracts/preseed.ts';
import { parseQaSettings, QA_SETTINGS_FILE_NAME, QA_SETTINGS_MAX_BYTES, type QaCheckResult, type QaReport } from '../../shared/contracts/qa-report.ts';
import { openFatVolume, type FatVolume } from '../../shared/fat/fat-volume.ts';
import type { AgentModule } from '../module.ts';
import { readIdentity } from './checks/identity.ts';
import { runFactoryQa } from './qa-run.ts';
import { factoryQaSteps, type QaStep } from './qa-steps.ts';
import { qaThresholdsFor, type QaThresholds } from './qa-thresholds.ts';

export type FactoryQaState =
  | { status: 'waiting' }
  | { status: 'running'; step: string | undefined; done: QaCheckResult[] }
  | { status: 'done'; report: QaReport; fatProblem?: string }
  /** QA could not run at all (no QA settings, a bad key): nothing was tested. */
  | { status: 'error'; reason: string };

export interface FactoryQaModule extends AgentModule {
  state(): FactoryQaState;
  /** Resolves when the run has ended (done or error); for the provisioning and tests. */
  finished(): Promise<FactoryQaState>;
}

export interface FactoryQaModuleOptions {
  profile: HardwareProfile;
  imageVersion: string;
  dataDir: string;
  /** The first FAT partition (the preseed's): a device, image or mounted directory. */
  fatDevice: string;
  sysDir?: string;
  procDir?: string;
  devDir?: string;
  /** The image carries the Hailo driver (hailo-all on a Pi image), so the NPU check also asks it to answer. */
  imageHasNpuDriver?: boolean;
  /** Instead of the real checks (tests). */
  steps?: (thresholds: QaThresholds) => QaStep[];
  now?: () => number;
}

/**
 * The factory QA run as an agent module. The provisioning starts it instead of the
 * first-boot steps when the preseed says `factoryQa: true`; it reads the station's QA
 * settings (the unit's signing key, where to leave the report) from the FAT, runs the
 * checks once in the background and keeps the state for the console and the API.
 */
export function createFactoryQaModule(o: FactoryQaModuleOptions, log: Logger): FactoryQaModule {
  let state: FactoryQaState = { status: 'waiting' };
  let running: Promise<FactoryQaState> | undefined;
  const thresholds = qaThresholdsFor(o.profile);

  async function run(): Promise<FactoryQaState> {
    let fat: FatVolume;
    try {
      fat = await openFatVolume(o.fatDevice);
    } catch (err) {
      return { status: 'error', reason: `cannot open the FAT partition ${o.fatDevice}: ${(err as Error).message}` };
    }
    const read = async (name: string, max: number) => {
      if (!(await fat.listRoot()).some((n) => n.toLowerCase() === name.toLowerCase())) return undefined;
      const data = await fat.readFile(name, max);
      return data === 'too-large' ? 'too-large' : data.toString('utf8');
    };
    const settingsText = await read(QA_SETTINGS_FILE_NAME, QA_SETTINGS_MAX_BYTES);
    if (settingsText === undefined) return { status: 'error', reason: `${QA_SETTINGS_FILE_NAME} is missing from the FAT partition: the station must write it when it flashes the drive` };
    if (settingsText === 'too-large') return { status: 'error', reason: `${QA_SETTINGS_FILE_NAME} is over ${QA_SETTINGS_MAX_BYTES} bytes` };
    const settings = parseQaSettings(settingsText);
    if (!settings.ok) return { status: 'error', reason: settings.problems.join('; ') };
    const preseedText = await read(PRESEED_FILE_NAME, PRESEED_MAX_BYTES);
    const preseed = typeof preseedText === 'string' && preseedText !== 'too-large' ? parsePreseed(preseedText) : undefined;
    const claimCode = preseed?.ok ? preseed.settings.claimCode : undefined;
    const steps = o.steps?.(thresholds) ?? factoryQaSteps({
        profile: o.profile,
        thresholds,
        dataDir: o.dataDir,
        sysDir: o.sysDir,
        procDir: o.procDir,
        devDir: o.devDir,
        imageHasNpuDriver: o.imageHasNpuDriver,
      });
    state = { status: 'running', step: 'identity', done: [] };
    const result = await runFactoryQa({
      profile: o.profile.name,
      imageVersion: o.imageVersion,
      claimCode,
      readIdentity: () => readIdentity(o.sysDir ?? '/sys'),
      boardModelPattern: thresholds.boardModelPattern,
      steps,
      signingKey: settings.signingKey,
      dataDir: o.dataDir,
      fat: settings.settings.reportToFat ? fat : undefined,
      log,
      now: o.now,
      onProgress: (done, next) => {
        state = { status: 'running', step: next, done: [...done] };
      },
    });
    return { status: 'done', report: result.report, ...(result.fatProblem ? { fatProblem: result.fatProblem } : {}) };
  }

  return {
    name: 'factory-qa',
    async start() {
      running ??= run().then(
        (s) => (state = s),
        (err: Error) => (state = { status: 'error', reason: err.message }),
      );
      // Errors are kept in the state; the run goes on after start() returns.
      void running.then((s) => (s.status === 'error' ? log.error({ reason: s.reason }, 'factory QA could not run') : undefined));
    },
    async stop() {
      // Not awaited: a run takes minutes and is not resumable; systemd ends its tools with
      // the agent's cgroup, and the station, seeing no report, tests the unit again.
    },
    state: () => state,
    finished: () => running ?? Promise.resolve(state),
  };
}

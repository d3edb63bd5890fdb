import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { HardwareProfile } from '../../hardware/index.ts';
import { parsePreseed, PRESEED_FILE_NAME, PRESEED_MAX_BYTES } from '../../shared/contracts/preseed.ts';
import {
  parseQaReport,
  parseQaSettings,
  QA_REPORT_FILE_NAME,
  QA_REPORT_SIGNATURE_FILE_NAME,
  QA_SETTINGS_FILE_NAME,
  QA_SETTINGS_MAX_BYTES,
  type QaReport,
} from '../../shared/contracts/qa-report.ts';
import { openFatVolume, type FatVolume } from '../../shared/fat/fat-volume.ts';
import { ignoreNotFound } from '../../shared/errors.ts';
import type { AgentModule } from '../module.ts';
import { readIdentity } from './checks/identity.ts';
import type { QaCommandRunner } from './checks/qa-check.ts';
import type { FactoryQaState } from './factory-qa-state.ts';
import { factoryQaRoutes } from './factory-qa-routes.ts';
import { consoleText, issueFileConsole, type QaConsole } from './qa-console.ts';
import { factoryQaPaths, runFactoryQa } from './qa-run.ts';
import { factoryQaSteps, type QaStep, type QaStepOptions } from './qa-steps.ts';
import { qaThresholdsFor, type QaThresholds } from './qa-thresholds.ts';
import { createStationLink, type StationLink, type StationLinkOptions } from './station-link.ts';

export type { FactoryQaState } from './factory-qa-state.ts';

/** The unit under test, as provisioning finds it: its profile (from the disk layout) and the first FAT partition. */
export interface QaUnit {
  profile: HardwareProfile;
  /** The first FAT partition (the preseed's): a device, image or mounted directory. */
  fatDevice: string;
}

export interface FactoryQaModule extends AgentModule {
  state(): FactoryQaState;
  /** Runs the checks once and writes the signed report (data partition, and the FAT when the station asked); the state says how it ended. */
  run(unit: QaUnit): Promise<FactoryQaState>;
  /**
   * A report this unit already passed with (a power cut after the run, during the
   * cleanup): shown again, and put on the FAT if the station asked and it is not there.
   * Undefined when there is none or it did not pass: then the unit is tested (again).
   */
  resumePassed(unit: QaUnit): Promise<QaReport | undefined>;
  /** Provisioning found this is not a QA boot. */
  notRequested(): void;
}

export interface FactoryQaModuleOptions {
  imageVersion: string;
  dataDir: string;
  sysDir?: string;
  procDir?: string;
  devDir?: string;
  /** The image carries the Hailo driver, so the NPU check also asks it to answer; default: the profile installs hailo-all. */
  imageHasNpuDriver?: boolean;
  /** Runs the tools (memtester, fio, stress, smartctl, iw); tests answer from recorded outputs. */
  runTool?: QaCommandRunner;
  /** Tests: a smaller fio file, faster sampling during the CPU load. */
  tuning?: Pick<QaStepOptions, 'fioSizeMiB' | 'thermalSampleMs'>;
  /** Instead of the real checks (tests). */
  steps?: (thresholds: QaThresholds) => QaStep[];
  /** Where the operator sees the result: the HDMI console's issue file by default. */
  console?: QaConsole;
  now?: () => number;
  /** Tests: named points inside the run (`after-data-report`) to cut it off, as a power cut would. */
  checkpoint?: (point: string) => void | Promise<void>;
  /** Tests: shorter bounds for telling the station (memu-qa.json's stationUrl) how the run goes. */
  stationLink?: Pick<StationLinkOptions, 'requestTimeoutMs' | 'finalDeliveryMs' | 'retryDelayMs'>;
}

/**
 * The factory QA run as an agent module: provisioning runs it instead of the family's
 * first-boot steps when the preseed says `factoryQa: true`. It reads the station's QA
 * settings (the unit's signing key, where to leave the report) from the FAT, runs the
 * checks, and keeps the state for the console (qa-console.ts) and the API
 * (`GET /api/factory-qa`). When the settings name a station on the bench LAN
 * (`stationUrl`), it also tells the station how the run goes and sends it the signed
 * report (station-link.ts); the run returns once that is delivered or its bound passed.
 */
export function createFactoryQaModule(o: FactoryQaModuleOptions, log: Logger): FactoryQaModule {
  let state: FactoryQaState = { status: 'waiting' };
  const screen = o.console ?? issueFileConsole();
  // Console writes are chained so an older state never lands after a newer one.
  let shown: Promise<void> = Promise.resolve();
  let lastText: string | undefined;
  const setState = (next: FactoryQaState) => {
    state = next;
    const text = consoleText(next);
    // A family boot never touches the console: nothing was shown, nothing to take away.
    if (text === lastText) return;
    lastText = text;
    shown = shown.then(() => screen.show(text)).catch((err: unknown) => log.warn({ err }, 'cannot show the QA result on the console'));
  };
  const done = (report: QaReport, fatProblem?: string): FactoryQaState => ({
    status: 'done',
    report,
    ...(fatProblem ? { fatProblem } : {}),
    afterwards: report.verdict === 'pass' ? 'powering-off' : 'staying-on',
  });

  async function readSettings(fat: FatVolume) {
    const read = async (name: string, max: number) => {
      if (!(await fat.listRoot()).some((n) => n.toLowerCase() === name.toLowerCase())) return undefined;
      const data = await fat.readFile(name, max);
      return data === 'too-large' ? 'too-large' : data.toString('utf8');
    };
    const settingsText = await read(QA_SETTINGS_FILE_NAME, QA_SETTINGS_MAX_BYTES);
    const preseedText = await read(PRESEED_FILE_NAME, PRESEED_MAX_BYTES);
    const preseed = typeof preseedText === 'string' && preseedText !== 'too-large' ? parsePreseed(preseedText) : undefined;
    const claimCode = preseed?.ok ? preseed.settings.claimCode : undefined;
    if (settingsText === undefined) return { ok: false, problem: `${QA_SETTINGS_FILE_NAME} is missing from the FAT partition: the station must write it when it flashes the drive` } as const;
    if (settingsText === 'too-large') return { ok: false, problem: `${QA_SETTINGS_FILE_NAME} is over ${QA_SETTINGS_MAX_BYTES} bytes` } as const;
    const parsed = parseQaSettings(settingsText);
    if (!parsed.ok) return { ok: false, problem: parsed.problems.join('; ') } as const;
    return { ok: true, settings: parsed.settings, signingKey: parsed.signingKey, claimCode } as const;
  }

  // The station on the bench LAN, when memu-qa.json names one; stopped with the module.
  let link: StationLink | undefined;
  const linkFor = (stationUrl: string | undefined, claimCode: string | undefined): StationLink | undefined => {
    if (!stationUrl) return undefined;
    // The station knows a unit by its claim code; without one the FAT copy is all it gets.
    if (!claimCode) {
      log.warn('memu-qa.json names a QA station, but the preseed has no claim code to report under: the report is left on the FAT only');
      return undefined;
    }
    link?.stop();
    link = createStationLink({ stationUrl, claimCode, log, ...o.stationLink });
    return link;
  };

  /**
   * The last state for the station, waited for within the link's bound: a passed unit is
   * switched off when the run returns, and the station should have its report by then. The
   * report and signature are read back from the data partition: exactly the bytes the FAT got.
   */
  async function tellStationTheEnd(to: StationLink | undefined, ended: FactoryQaState): Promise<void> {
    if (!to) return;
    let update: Parameters<StationLink['finish']>[0];
    if (ended.status === 'done') {
      const paths = factoryQaPaths(o.dataDir);
      const [report, signature] = await Promise.all([readFile(paths.report), readFile(paths.signature)]).catch(() => [undefined, undefined]);
      if (!report || !signature) return;
      update = {
        state: 'done',
        serialNumber: ended.report.serialNumber,
        checksDone: ended.report.checks.length,
        checksTotal: ended.report.checks.length,
        report: report.toString('base64'),
        signature: signature.toString('base64'),
      };
    } else if (ended.status === 'error') {
      update = { state: 'error', reason: ended.reason.slice(0, 2000) };
    } else return;
    const delivery = await to.finish(update);
    if (delivery.delivered) log.info({ answer: delivery.answer }, `the QA station has this unit's ${update.state} state`);
    else log.warn(`the QA station did not get this unit's ${update.state} state (${delivery.reason}); ${update.state === 'done' ? 'the report is on the FAT partition for it' : 'the console shows why'}`);
  }

  async function runOnce(unit: QaUnit, onLink: (l: StationLink) => void): Promise<FactoryQaState> {
    let fat: FatVolume;
    try {
      fat = await openFatVolume(unit.fatDevice);
    } catch (err) {
      return { status: 'error', reason: `cannot open the FAT partition ${unit.fatDevice}: ${(err as Error).message}` };
    }
    const read = await readSettings(fat);
    if (!read.ok) return { status: 'error', reason: read.problem };
    const station = linkFor(read.settings.stationUrl, read.claimCode);
    if (station) onLink(station);
    const thresholds = qaThresholdsFor(unit.profile);
    const steps =
      o.steps?.(thresholds) ??
      factoryQaSteps({
        profile: unit.profile,
        thresholds,
        dataDir: o.dataDir,
        sysDir: o.sysDir,
        procDir: o.procDir,
        devDir: o.devDir,
        run: o.runTool,
        imageHasNpuDriver: o.imageHasNpuDriver ?? unit.profile.rootfs.packages.includes('hailo-all'),
        ...o.tuning,
      });
    setState({ status: 'running', step: 'identity', done: [] });
    // runFactoryQa reads the unit's identity as a step of its own before these.
    const stepsTotal = steps.length + 1;
    let stepsDone = 0;
    station?.update({ state: 'testing', step: 'identity', checksDone: 0, stepsDone, stepsTotal });
    const result = await runFactoryQa({
      profile: unit.profile.name,
      imageVersion: o.imageVersion,
      claimCode: read.claimCode,
      readIdentity: () => readIdentity(o.sysDir ?? '/sys'),
      boardModelPattern: thresholds.boardModelPattern,
      steps,
      signingKey: read.signingKey,
      dataDir: o.dataDir,
      fat: read.settings.reportToFat ? fat : undefined,
      log,
      now: o.now,
      checkpoint: o.checkpoint,
      onProgress: (checks, next) => {
        setState({ status: 'running', step: next, done: [...checks] });
        stepsDone++;
        const serial = checks.find((c) => c.check === 'serial-number' && c.verdict === 'pass')?.measured;
        station?.update({
          state: 'testing',
          ...(typeof serial === 'string' ? { serialNumber: serial.slice(0, 128) } : {}),
          ...(next ? { step: next } : {}),
          checksDone: checks.length,
          stepsDone,
          stepsTotal,
        });
      },
    });
    return done(result.report, result.fatProblem);
  }

  return {
    name: 'factory-qa',
    async start() {},
    async stop() {
      // A run is not awaited: it takes minutes and is not resumable; systemd ends its tools
      // with the agent's cgroup, and the next boot tests the unit again.
      link?.stop();
      await shown;
    },
    routes: factoryQaRoutes(() => state),
    state: () => state,
    async run(unit) {
      let station: StationLink | undefined;
      const ended = await runOnce(unit, (l) => (station = l)).catch((err: Error): FactoryQaState => ({ status: 'error', reason: err.message }));
      if (ended.status === 'error') log.error({ reason: ended.reason }, 'factory QA could not run');
      // The console first: the operator sees PASS or FAIL while the station is still being told.
      setState(ended);
      await tellStationTheEnd(station, ended);
      return ended;
    },
    async resumePassed(unit) {
      const paths = factoryQaPaths(o.dataDir);
      const text = await readFile(paths.report, 'utf8').catch(ignoreNotFound);
      const signature = await readFile(paths.signature).catch(ignoreNotFound);
      const parsed = text === undefined ? undefined : parseQaReport(text);
      if (!parsed?.ok || parsed.report.verdict !== 'pass' || !signature) return undefined;
      let fatProblem: string | undefined;
      let station: StationLink | undefined;
      try {
        const fat = await openFatVolume(unit.fatDevice);
        const read = await readSettings(fat);
        // A power cut may also have come before the station got the report: it is sent again (the station keeps one copy of the same bytes).
        if (read.ok) station = linkFor(read.settings.stationUrl, read.claimCode);
        // The report went to the data partition first; a power cut may have come before its copy on the FAT.
        if (read.ok && read.settings.reportToFat) {
          const names = (await fat.listRoot()).map((n) => n.toLowerCase());
          if (!names.includes(QA_REPORT_FILE_NAME) || !names.includes(QA_REPORT_SIGNATURE_FILE_NAME)) {
            await fat.writeFileAtomic(QA_REPORT_FILE_NAME, 'memu-qa-report.tmp', Buffer.from(text!));
            await fat.writeFileAtomic(QA_REPORT_SIGNATURE_FILE_NAME, 'memu-qa-report.sig.tmp', signature);
          }
        }
      } catch (err) {
        fatProblem = (err as Error).message;
        log.warn({ err: fatProblem }, 'the QA report could not be left on the FAT partition for the station');
      }
      log.info({ report: paths.report }, 'this unit already passed factory QA; finishing');
      const resumed = done(parsed.report, fatProblem);
      setState(resumed);
      await tellStationTheEnd(station, resumed);
      return parsed.report;
    },
    notRequested() {
      if (state.status === 'waiting') setState({ status: 'not-requested' });
    },
  };
}

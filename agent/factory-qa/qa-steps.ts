import type { HardwareProfile } from '../../hardware/index.ts';
import { runCommandOutcome } from '../../shared/process/run-command.ts';
import { evaluateCpu, readCpu } from './checks/cpu.ts';
import { evaluateDiskSpeed, readDiskSpeed } from './checks/disk-speed.ts';
import { evaluateMemory, readMemory } from './checks/memory.ts';
import { evaluateNpu, readNpu } from './checks/npu.ts';
import { evaluateNvme, readNvmeControllers } from './checks/nvme-link.ts';
import { evaluateSmart, readSmart } from './checks/nvme-smart.ts';
import { evaluateEthernet, evaluateWifi, readEthernet, readWifi } from './checks/network.ts';
import { readBootloaderFacts, type BootloaderFacts } from '../health/index.ts';
import { evaluatePiBootloader } from './checks/pi-bootloader.ts';
import type { QaCheckOutcome, QaCommandRunner } from './checks/qa-check.ts';
import { evaluateThermal, readThermal } from './checks/thermal.ts';
import { evaluateWatchdog, readWatchdog } from './checks/watchdog.ts';
import { evaluateRebootCycles, readRebootRecord } from './checks/reboot-cycles.ts';
import type { QaThresholds } from './qa-thresholds.ts';

/** One step of the QA run: a reader and its evaluator, bounded by a timeout. */
export interface QaStep {
  /** The check named in the report when the step fails as a whole (times out or throws). */
  name: string;
  timeoutMs: number;
  run(): Promise<QaCheckOutcome[]>;
}

export interface QaStepOptions {
  profile: Pick<HardwareProfile, 'features'>;
  thresholds: QaThresholds;
  sysDir?: string;
  procDir?: string;
  devDir?: string;
  /** The data partition's mount point: fio's scratch file goes into its free space. */
  dataDir: string;
  run?: QaCommandRunner;
  /** The Pi's bootloader facts (default: read from the device tree under sysDir). */
  piBootloader?: () => Promise<BootloaderFacts | undefined>;
  /** The image has the Hailo driver (a Pi image with hailo-all). */
  imageHasNpuDriver?: boolean;
  /** Tests only: a smaller scratch file than the profile's `diskTestMiB`. */
  fioSizeMiB?: number;
  /** Cores the load runs on (default: every core this process may use). */
  cpuCores?: number;
  /** How often the Pi's power and throttling state is sampled during the load (tests make it short). */
  thermalSampleMs?: number;
}

/**
 * The checks after the unit's identity (which the run reads itself, for the report), in
 * their fixed order: cheap facts first, then the ones
 * that load it (memory test, disk, CPU stress) so the heat of one does not skew the next
 * cheap reading, then the network and the bootloader. Timeouts are the tool's own bound
 * plus a margin: a step that passes its timeout fails the unit, naming the check.
 */
export function factoryQaSteps(o: QaStepOptions): QaStep[] {
  const sys = o.sysDir ?? '/sys';
  const proc = o.procDir ?? '/proc';
  const dev = o.devDir ?? '/dev';
  const run = o.run ?? runCommandOutcome;
  const t = o.thresholds;
  return [
    { name: 'cpu', timeoutMs: 5_000, run: async () => evaluateCpu(await readCpu(proc), t) },
    // memtester's speed is a few hundred MB/s on a Pi 5 for one pass of its 17 patterns.
    { name: 'memory', timeoutMs: 60_000 + t.memoryTestMiB * 2_000, run: async () => evaluateMemory(await readMemory(proc, run, t.memoryTestMiB), t) },
    { name: 'nvme', timeoutMs: 5_000, run: async () => evaluateNvme(await readNvmeControllers(sys), t) },
    {
      name: 'nvme-smart',
      timeoutMs: 30_000,
      run: async () => evaluateSmart(await readSmart(dev, (await readNvmeControllers(sys)).map((c) => c.name), run), t),
    },
    { name: 'disk-speed', timeoutMs: fioTimeoutMs(o.fioSizeMiB ?? t.diskTestMiB, t), run: async () => evaluateDiskSpeed(await readDiskSpeed(o.dataDir, run, o.fioSizeMiB ?? t.diskTestMiB), t) },
    { name: 'thermal', timeoutMs: (t.stressSeconds + 30) * 1000, run: async () => evaluateThermal(await readThermal(sys, run, t.stressSeconds, o.thermalSampleMs, o.cpuCores), t) },
    { name: 'npu', timeoutMs: 5_000, run: async () => evaluateNpu(await readNpu(sys, dev, o.imageHasNpuDriver ?? false), t, o.profile.features.npu) },
    { name: 'ethernet', timeoutMs: 5_000, run: async () => evaluateEthernet(await readEthernet(sys), t) },
    { name: 'wifi', timeoutMs: 30_000, run: async () => evaluateWifi(t.wifiRequired ? await readWifi(sys, run) : undefined, t) },
    { name: 'watchdog', timeoutMs: 5_000, run: async () => evaluateWatchdog(await readWatchdog(sys, dev), t) },
    // The reboots themselves happen before the run (the QA boot's factory-qa-reboots step); this reads their record.
    { name: 'reboot-cycles', timeoutMs: 5_000, run: async () => evaluateRebootCycles(await readRebootRecord(o.dataDir), t) },
    { name: 'pi-bootloader', timeoutMs: 15_000, run: async () => evaluatePiBootloader(t.bootloader ? await (o.piBootloader ?? (() => readBootloaderFacts(sys)))() : undefined, t) },
  ];
}

/** Writing and reading the file at the slowest speeds that still pass, half as long again, plus fio's start: slower fails anyway. */
function fioTimeoutMs(sizeMiB: number, t: Pick<QaThresholds, 'minDiskWriteMBps' | 'minDiskReadMBps'>): number {
  const megabytes = (sizeMiB * 1024 * 1024) / 1e6;
  return Math.round((megabytes / t.minDiskWriteMBps + megabytes / t.minDiskReadMBps) * 1.5 * 1000) + 30_000;
}

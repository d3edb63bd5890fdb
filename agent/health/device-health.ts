import { statSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { loadDeviceProfile } from '../storage/index.ts';
import { createBootloaderCheck } from './checks/bootloader.ts';
import type { HealthCheck } from './checks/check.ts';
import { createClockCheck } from './checks/clock-sync.ts';
import { createDiskSpaceCheck } from './checks/disk-space.ts';
import { createDockerResponsiveCheck } from './checks/docker-responsive.ts';
import { createFailedUnitsCheck } from './checks/failed-units.ts';
import { createFilesystemErrorsCheck } from './checks/filesystem-errors.ts';
import { createMemoryCheck } from './checks/memory-pressure.ts';
import { createNvmeSmartCheck } from './checks/nvme-smart.ts';
import { createPowerSupplyCheck } from './checks/power-supply.ts';
import { createBootRecord, createPreviousBootCheck, type BootRecord } from './checks/previous-boot.ts';
import { createTemperatureCheck } from './checks/temperature.ts';
import { deviceRepairs, type Repair } from './repairs/index.ts';

export interface DeviceHealthOptions {
  dataDir: string;
  dockerSocket: string;
  /** The disk layout, which names the image's hardware profile (what the bootloader check expects). */
  layoutPath: string;
  log: Logger;
  /** The stack, whose containers the disk repair never prunes and which it holds still while pruning. */
  stack: {
    currentStackLabel(): string | undefined;
    runExclusive<T>(reason: string, fn: () => Promise<T>): Promise<T>;
  };
}

export interface DeviceHealth {
  checks: HealthCheck[];
  repairs: Repair[];
  bootRecord: BootRecord;
  historyPath: string;
}

/** The checks a Memu box runs on itself, what it repairs on its own, and where it remembers both. */
export function deviceHealth(opts: DeviceHealthOptions): DeviceHealth {
  const bootRecord = createBootRecord({ dataDir: opts.dataDir, log: opts.log });
  const { repairs } = deviceRepairs({
    dataDir: opts.dataDir,
    dockerSocket: opts.dockerSocket,
    docker: new Docker({ socketPath: opts.dockerSocket }),
    currentStackLabel: () => opts.stack.currentStackLabel(),
    holdStack: (reason, fn) => opts.stack.runExclusive(reason, fn),
  });
  return {
    bootRecord,
    repairs,
    historyPath: join(opts.dataDir, 'agent', 'health-history.json'),
    checks: [
      createDockerResponsiveCheck({ socketPath: opts.dockerSocket }),
      createDiskSpaceCheck({ dataDir: opts.dataDir }),
      createMemoryCheck(),
      createFilesystemErrorsCheck({ dataDir: opts.dataDir }),
      createTemperatureCheck(),
      createPowerSupplyCheck(),
      createNvmeSmartCheck(),
      createClockCheck({ notBefore: buildEpochSeconds() }),
      createFailedUnitsCheck(),
      createPreviousBootCheck({ bootRecord }),
      createBootloaderCheck({
        requirements: async () => {
          const profile = await loadDeviceProfile(opts.layoutPath).catch((err: unknown) => {
            opts.log.warn({ err }, 'the image\'s hardware profile is unknown: the bootloader is reported without requirements');
            return undefined;
          });
          return profile?.firmware.kind === 'raspberrypi' ? profile.firmware.eeprom : undefined;
        },
      }),
    ],
  };
}

/**
 * When this system was made: the agent bundle's modification time, which the image build
 * clamps to SOURCE_DATE_EPOCH. A clock earlier than that is certainly wrong.
 */
function buildEpochSeconds(): number | undefined {
  try {
    return Math.floor(statSync(process.argv[1] ?? '').mtimeMs / 1000);
  } catch {
    return undefined;
  }
}

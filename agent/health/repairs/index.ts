/** What the box repairs on its own, each with a loop breaker kept in the health history. */
import type Docker from 'dockerode';
import type { CheckResult } from '../checks/check.ts';
import { DEFAULT_DISK_SPACE_THRESHOLDS } from '../checks/disk-space.ts';
import { freeDiskSpaceRepair, type FreeDiskSpaceOptions } from './free-disk-space.ts';
import { rebootRepair } from './reboot.ts';
import type { Repair } from './repair.ts';
import { restartDockerRepair } from './restart-docker.ts';
import { createSpaceReserve, type SpaceReserve } from './space-reserve.ts';

export { createRepairer, historyView, limitDecision, planRepairs } from './repairer.ts';
export type { Repairer, RepairerOptions, RepairDecision, RepairRun, RoundReport } from './repairer.ts';
export type { Repair, RepairLimits, RepairOutcome, RepairView, RepairWindow } from './repair.ts';
export { freeDiskSpaceRepair, isEnough, FREE_DISK_SPACE_LIMITS, FREE_DISK_SPACE_REPAIR } from './free-disk-space.ts';
export { createSpaceReserve, DEFAULT_RESERVE, RELEASE_RESERVE_REPAIR, RESTORE_RESERVE_REPAIR } from './space-reserve.ts';
export type { SpaceReserve, SpaceReserveState } from './space-reserve.ts';
export { restartDockerRepair, RESTART_DOCKER_LIMITS, RESTART_DOCKER_REPAIR, systemctlRestartDocker } from './restart-docker.ts';
export { rebootRepair, REBOOT_LIMITS, REBOOT_REPAIR, systemctlReboot } from './reboot.ts';

export interface DeviceRepairsOptions {
  dataDir: string;
  dockerSocket: string;
  docker: Docker;
  currentStackLabel: FreeDiskSpaceOptions['currentStackLabel'];
  holdStack?: FreeDiskSpaceOptions['holdStack'];
  /** Injectable for tests; the device uses systemctl. */
  restartDocker?: () => Promise<void>;
  reboot?: () => Promise<void>;
  rebootAlsoWhen?: (results: readonly CheckResult[]) => boolean;
}

/**
 * The device's repairs in the order a round tries them: Docker's restart first (the
 * prunes need Docker), then disk space (prunes, then the reserve as the last disk
 * repair, and its restoring once there is room), and the reboot last.
 */
export function deviceRepairs(opts: DeviceRepairsOptions): { repairs: Repair[]; reserve: SpaceReserve } {
  const { data, root } = DEFAULT_DISK_SPACE_THRESHOLDS;
  const reserve = createSpaceReserve({ dataDir: opts.dataDir, keepFree: data.degraded });
  const repairs = [
    restartDockerRepair({ socketPath: opts.dockerSocket, restart: opts.restartDocker }),
    freeDiskSpaceRepair({
      docker: opts.docker,
      filesystems: [
        { check: 'data-disk-space', path: opts.dataDir, enough: data.degraded, enoughInodesShare: data.inodesDegradedShare },
        { check: 'root-disk-space', path: '/', enough: root.degraded, enoughInodesShare: root.inodesDegradedShare },
      ],
      currentStackLabel: opts.currentStackLabel,
      holdStack: opts.holdStack,
    }),
    reserve.repairs.release,
    reserve.repairs.restore,
    rebootRepair({ reboot: opts.reboot, alsoWhen: opts.rebootAlsoWhen }),
  ];
  return { repairs, reserve };
}

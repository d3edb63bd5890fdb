import type { QaCheckResult, QaReport } from '../../shared/contracts/qa-report.ts';

/** What a factory QA boot is doing, for the console, the API and provisioning. */
export type FactoryQaState =
  /** Provisioning has not decided yet whether this boot is a QA boot. */
  | { status: 'waiting' }
  /** This boot is not a QA boot (no `factoryQa: true` in the preseed, or a box already set up). */
  | { status: 'not-requested' }
  | { status: 'running'; step: string | undefined; done: QaCheckResult[] }
  /** A passed unit is cleaned and switches itself off; a failed one stays on, showing why. */
  | { status: 'done'; report: QaReport; fatProblem?: string; afterwards: 'powering-off' | 'staying-on' }
  /** QA could not run at all (no QA settings, a bad key): nothing was tested. */
  | { status: 'error'; reason: string };

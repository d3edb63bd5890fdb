import { recordAudit } from '../audit-log/index.ts';
import type { FamilyDb } from '../family-db/index.ts';

/**
 * The wizard's steps in order, and how far this box got: memu.db's one-row `wizard` table,
 * written in the same transaction as each step's effect, so a reload or a power cut
 * resumes at the first step not done and nothing is asked twice.
 */
export const WIZARD_STEPS = ['claim', 'admin', 'network', 'region', 'remote', 'members', 'done'] as const;
export type WizardStep = (typeof WIZARD_STEPS)[number];

export const STEP_TITLES: Record<WizardStep, string> = {
  claim: 'Claim this Memu',
  admin: 'Your family and you',
  network: 'Network',
  region: 'Time zone and language',
  remote: 'Reach Memu from anywhere',
  members: 'Family members',
  done: 'All set',
};

export interface WizardProgress {
  completed: WizardStep[];
  /** The first step not done; `done` once the wizard is finished (then `finished` is true). */
  current: WizardStep;
  finished: boolean;
}

export function readProgress(db: FamilyDb): WizardProgress {
  const row = db.get<{ completed_steps: string }>('SELECT completed_steps FROM wizard WHERE id = 1');
  const completed = row ? (JSON.parse(row.completed_steps) as string[]).filter((s): s is WizardStep => (WIZARD_STEPS as readonly string[]).includes(s)) : [];
  const current = WIZARD_STEPS.find((s) => !completed.includes(s)) ?? 'done';
  return { completed, current, finished: completed.includes('done') };
}

/** Marks `step` done; call inside the transaction that makes the step's effect. */
export function completeStep(db: FamilyDb, step: WizardStep, actor: string, detail: Record<string, unknown> = {}, at = Date.now()): void {
  const progress = readProgress(db);
  if (progress.completed.includes(step)) return;
  const completed = [...progress.completed, step];
  const current = WIZARD_STEPS.find((s) => !completed.includes(s)) ?? 'done';
  db.run(
    `INSERT INTO wizard (id, completed_steps, current_step, updated_at) VALUES (1, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET completed_steps = excluded.completed_steps, current_step = excluded.current_step, updated_at = excluded.updated_at`,
    [JSON.stringify(completed), current, at],
  );
  recordAudit(db, actor, `setup.${step}`, detail, at);
}

export const stepPath = (step: WizardStep) => `/admin/setup/${step}`;

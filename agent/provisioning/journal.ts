import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';

/**
 * First-boot provisioning as a journal of named, idempotent steps. Each finished step is
 * recorded durably (temporary file, fsync, rename, fsync directory) before the next one
 * starts, so a power cut at any instant resumes at the first unfinished step; because
 * every step is idempotent, redoing a half-done step converges to the same end state.
 */
export interface ProvisioningStep {
  readonly name: string;
  /** Must be safe to run again after being interrupted at any point. */
  run(log: Logger): Promise<void>;
}

const journalSchema = z.object({
  format: z.literal('memu-provisioning-journal/1'),
  completed: z.array(z.object({ step: z.string(), at: z.string() })),
});
type JournalFile = z.infer<typeof journalSchema>;

export type ProvisioningState =
  | { state: 'pending'; completed: string[] }
  | { state: 'running'; step: string; completed: string[] }
  | { state: 'done'; completed: string[]; ranThisBoot: string[] }
  | { state: 'failed'; step: string; error: string; completed: string[] };

export async function readJournal(path: string): Promise<JournalFile> {
  try {
    return journalSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch {
    // A missing journal, or one we cannot read, is treated as empty: every step is
    // idempotent, so running them all again is safe, while trusting garbage would not be.
    return { format: 'memu-provisioning-journal/1', completed: [] };
  }
}

export class ProvisioningJournal {
  private status: ProvisioningState = { state: 'pending', completed: [] };

  constructor(
    private readonly path: string,
    private readonly steps: readonly ProvisioningStep[],
    private readonly log: Logger,
  ) {}

  current(): ProvisioningState {
    return this.status;
  }

  /** Runs every step not yet recorded, in order; stops at the first failure. */
  async run(): Promise<ProvisioningState> {
    await mkdir(dirname(this.path), { recursive: true });
    const journal = await readJournal(this.path);
    const done = new Set(journal.completed.map((c) => c.step));
    const ranThisBoot: string[] = [];
    for (const step of this.steps) {
      const completed = journal.completed.map((c) => c.step);
      if (done.has(step.name)) continue;
      this.status = { state: 'running', step: step.name, completed };
      const stepLog = this.log.child({ step: step.name });
      stepLog.info('provisioning step started');
      const started = Date.now();
      try {
        await step.run(stepLog);
      } catch (err) {
        const error = (err as Error).message;
        stepLog.error({ err }, 'provisioning step failed');
        this.status = { state: 'failed', step: step.name, error, completed };
        return this.status;
      }
      journal.completed.push({ step: step.name, at: new Date().toISOString() });
      await writeFileAtomic(this.path, `${JSON.stringify(journal, null, 2)}\n`);
      done.add(step.name);
      ranThisBoot.push(step.name);
      stepLog.info({ ms: Date.now() - started }, 'provisioning step done');
    }
    this.status = { state: 'done', completed: journal.completed.map((c) => c.step), ranThisBoot };
    return this.status;
  }
}

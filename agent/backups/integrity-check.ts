import { join } from 'node:path';
import { z } from 'zod';
import { readJsonIfPresent, writeJsonDurably } from '../../shared/files/durable-files.ts';
import { RepositoryDamagedError } from './backup-errors.ts';
import type { CheckError, CheckSummary } from './restic-messages.ts';
import { failureOf, runRestic, type ResticAccess, type ResticRun } from './restic-process.ts';

/**
 * The repository's integrity check: restic verifies its structure (index, snapshots,
 * trees) every time and reads one part of the data, `--read-data-subset=N/M`, a different
 * N each time, so M checks together read every pack once. Which N comes next is kept per
 * repository id on the data partition; a check that found damage does not move on, so
 * the next check reads the damaged part again after a repair.
 */
export interface IntegrityCheckResult {
  /** `N/M`: the part of the data read this time. */
  subset: string;
  durationMs: number;
  /** restic suggests a prune (unused data, e.g. left by a run that was stopped). */
  suggestPrune: boolean;
}

const checkStateSchema = z.object({ subsets: z.number().int().positive(), next: z.number().int().positive(), lastCheckedAt: z.string().optional() });

function statePath(stateDir: string, repositoryId: string): string {
  return join(stateDir, `check-${repositoryId.slice(0, 16)}.json`);
}

/** The subset to read now: 1 on a first check, or after the number of subsets changed. */
export async function nextSubset(stateDir: string, repositoryId: string, subsets: number): Promise<number> {
  const parsed = checkStateSchema.safeParse(await readJsonIfPresent(statePath(stateDir, repositoryId)).catch(() => undefined));
  if (!parsed.success || parsed.data.subsets !== subsets || parsed.data.next > subsets) return 1;
  return parsed.data.next;
}

export async function checkRepository(access: ResticAccess, opts: { repositoryId: string; stateDir: string; subsets: number }): Promise<IntegrityCheckResult> {
  if (!Number.isInteger(opts.subsets) || opts.subsets < 1) throw new Error(`the integrity check's number of subsets must be a positive integer, not ${opts.subsets}`);
  const n = await nextSubset(opts.stateDir, opts.repositoryId, opts.subsets);
  const started = Date.now();
  const run: ResticRun = {
    parse: 'check',
    args: ['check', `--read-data-subset=${n}/${opts.subsets}`],
    operation: 'check',
    consequence: 'The check changes nothing.',
    // restic exits 1 both for damage and for any other fatal error: the summary tells them apart.
    acceptExitCodes: [1],
  };
  const result = await runRestic(access, run);
  const summary = result.messages.find((m): m is CheckSummary => m.type === 'check-summary');
  if (result.exitCode !== 0) {
    if (summary && (summary.numErrors > 0 || summary.brokenPacks.length > 0)) {
      const errors = problems(result.messages.filter((m): m is CheckError => m.type === 'check-error'));
      throw new RepositoryDamagedError(access.displayLocation, summary.brokenPacks, errors);
    }
    throw failureOf(access, run, result);
  }
  await writeJsonDurably(statePath(opts.stateDir, opts.repositoryId), { subsets: opts.subsets, next: (n % opts.subsets) + 1, lastCheckedAt: new Date().toISOString() }, 0o600);
  return { subset: `${n}/${opts.subsets}`, durationMs: Date.now() - started, suggestPrune: summary?.suggestPrune ?? false };
}

/**
 * check's error lines as problems: restic splits one problem over several lines and
 * follows them with advice (the troubleshooting guide, repair commands) that the typed
 * error gives in its own words.
 */
function problems(lines: readonly CheckError[]): string[] {
  const text = lines.map((l) => l.message).join('');
  return text
    .split(/\n(?=\S)/)
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter((p) => p.length > 0 && !/troubleshooting|repair packs|repair snapshots|open an issue|must be (repaired|removed)/i.test(p));
}

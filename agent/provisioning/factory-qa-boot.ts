import type { Logger } from 'pino';
import type { HardwareProfile } from '../../hardware/index.ts';
import { apiKeyDigest } from '../../shared/contracts/agent-api.ts';
import { createFileOnce, readTextIfPresent } from '../../shared/files/durable-files.ts';
import { recordBoot, recordShippedListing, type FactoryQaModule, type ThisBoot } from '../factory-qa/index.ts';
import { readJournal, type ProvisioningStep } from './journal.ts';
import { readPreseed } from './preseed-source.ts';
import { firstBootPaths } from './steps/first-boot-context.ts';

/**
 * A boot is the family's first boot, or a factory QA boot: the unit is tested, its signed
 * report written, and (when it passed) it is made factory-fresh and switched off, without
 * the family's steps (no stack, no secrets, the preseed left as the station wrote it but
 * for the flag). Decided again at every boot, from what is on the disks:
 *
 * - a box that has begun its family first boot (read-preseed journaled, or its preseed
 *   record on the data partition) stays a family box, whatever its FAT says: the QA
 *   cleanup removes everything the image did not ship, and must never meet a family's data;
 * - else the FAT preseed decides: `factoryQa: true` is a QA boot. The factory-fresh cleanup
 *   rewrites the preseed without the flag as its very last write, so every boot before
 *   that is a QA boot again and resumes; every boot after it is the family's first.
 */
export type FirstBootMode = 'family' | 'factory-qa';

export async function decideFirstBootMode(o: { dataDir: string; fatDevice: string | undefined; log: Logger }): Promise<FirstBootMode> {
  const paths = firstBootPaths(o.dataDir);
  const journal = await readJournal(paths.journal);
  const familyBegun = journal.completed.some((c) => c.step === 'read-preseed') || (await readTextIfPresent(paths.preseedRecord).catch(() => 'unreadable')) !== undefined;
  if (familyBegun || !o.fatDevice) return 'family';
  // Quietly: the family's read-preseed step reads and reports the same file next.
  const preseed = await readPreseed({ device: o.fatDevice, log: o.log.child({}, { level: 'silent' }) });
  if (preseed.state !== 'valid' || preseed.settings.factoryQa !== true) return 'family';
  o.log.info('the preseed asks for factory QA: this boot tests the unit instead of setting it up for a family');
  return 'factory-qa';
}

export interface FactoryQaBootContext {
  dataDir: string;
  rootDir: string;
  fatDevice: string;
  profile: HardwareProfile;
  qa: Pick<FactoryQaModule, 'run' | 'resumePassed'>;
  /** Asks for a warm reboot (`systemctl --no-block reboot` on the device). */
  reboot: () => Promise<void>;
  thisBoot: () => Promise<ThisBoot>;
  fault: (point: string) => Promise<void>;
}

/**
 * The journaled steps of a QA boot, after the data partition is grown (fio's scratch file
 * needs its free space):
 *
 *   factory-qa-listing   what the data partition and the root directories a boot writes hold
 *                        now, before QA writes anything: the cleanup's "shipped" side
 *   factory-qa-api-key   the station's agentApiKey, as its digest, so it can ask GET /api/factory-qa
 *   factory-qa-reboots   the profile's warm reboots, each boot recorded with its time; until the
 *                        last one the step asks for a reboot and ends unfinished, so the next
 *                        boot comes back to it
 *   factory-qa-run       the checks and the signed report; done only when the unit passed (a
 *                        passing report already there is resumed, not run again). A failed unit's
 *                        step fails: it stays on, and switching it off and on tests it again.
 *
 * The cleanup and the power-off come after the journal (provisioning-module.ts): the
 * cleanup removes the journal itself.
 */
export function factoryQaBootSteps(ctx: FactoryQaBootContext): ProvisioningStep[] {
  const step = (name: string, run: (log: Logger) => Promise<void>): ProvisioningStep => ({
    name,
    async run(log) {
      await ctx.fault(`${name}:begin`);
      await run(log);
      await ctx.fault(`${name}:done`);
    },
  });
  const unit = { profile: ctx.profile, fatDevice: ctx.fatDevice };
  return [
    step('factory-qa-listing', async (log) => {
      const { created } = await recordShippedListing({ dataDir: ctx.dataDir, rootDir: ctx.rootDir });
      log.info({ created }, 'what the unit holds before QA is recorded');
    }),
    step('factory-qa-api-key', async (log) => {
      const preseed = await readPreseed({ device: ctx.fatDevice, log });
      const key = preseed.state === 'valid' ? preseed.settings.agentApiKey : undefined;
      if (key) await createFileOnce(firstBootPaths(ctx.dataDir).agentApiKeyDigest, `${apiKeyDigest(key)}\n`, { mode: 0o600 });
    }),
    step('factory-qa-reboots', async (log) => {
      const cycles = ctx.profile.qa.rebootCycles;
      if (cycles === 0) return;
      const { record, rebootsLeft } = await recordBoot(ctx.dataDir, await ctx.thisBoot(), cycles);
      if (rebootsLeft === 0) return log.info({ boots: record.boots }, 'every warm reboot of factory QA is done');
      const next = cycles - rebootsLeft + 1;
      await ctx.reboot();
      // Unfinished on purpose: the next boot resumes here.
      throw new Error(`rebooting: factory QA's warm reboot ${next} of ${cycles}`);
    }),
    step('factory-qa-run', async () => {
      if (await ctx.qa.resumePassed(unit)) return;
      const ended = await ctx.qa.run(unit);
      if (ended.status === 'done' && ended.report.verdict === 'pass') return;
      throw new Error(
        ended.status === 'done' ? `the unit failed factory QA: ${ended.report.failingChecks.join(', ')}` : `factory QA could not run: ${ended.status === 'error' ? ended.reason : ended.status}`,
      );
    }),
  ];
}

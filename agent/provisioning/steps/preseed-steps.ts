import type { Logger } from 'pino';
import { PRESEED_FILE_NAME, preseedSecretFields } from '../../../shared/contracts/preseed.ts';
import { readPreseed, scrubPreseedSecrets } from '../preseed-source.ts';
import { fault, firstBootPaths, type FirstBootContext } from './first-boot-context.ts';
import { removeStaleTemporaryFiles } from '../../../shared/files/durable-files.ts';
import { wipeFatFreeSpace } from './fat-wipe.ts';
import { PRESEED_RECORD_FORMAT, preseedRecordFrom, readPreseedRecord, writePreseedRecord, writeStepOutcome, type PreseedRecord } from './preseed-record.ts';
import { storePreseedSecrets } from './preseed-secrets.ts';

/**
 * read-preseed: keep what the later steps need of the validated preseed on the ext4 data
 * partition (the record, and the secrets kept in secrets/: preseed-secrets.ts), or record
 * wizard mode with the reason. No secret reaches ext4 as given except the Tailscale auth
 * key, which tailscaled needs as it is. Once a record exists the FAT is never read again:
 * it may already be scrubbed, and the ext4 record is the source of truth.
 */
export async function readPreseedStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  const paths = firstBootPaths(ctx.dataDir);
  await removeStaleTemporaryFiles(paths.agentDir);
  const existing = await readPreseedRecord(ctx.dataDir);
  if (existing) {
    log.info({ mode: existing.mode }, 'first-boot settings already stored on the data partition');
    await recordOutcome(ctx, existing);
    return;
  }
  let record: PreseedRecord;
  if (!ctx.fatDevice) {
    record = wizard('the disk layout names no FAT partition, so there is no preseed file to read', []);
  } else {
    const result = await readPreseed({ device: ctx.fatDevice, log });
    switch (result.state) {
      case 'valid':
        await storePreseedSecrets(ctx, result.settings);
        record = await preseedRecordFrom(ctx.fatDevice, result.settings);
        break;
      case 'absent':
        record = wizard(`no ${PRESEED_FILE_NAME} on the FAT partition`, []);
        break;
      case 'invalid':
        // The problems name fields and rules, never values (shared/contracts/preseed.ts).
        record = wizard(`${PRESEED_FILE_NAME} is invalid and was ignored as a whole: ${result.problems.join('; ')}`, result.problems);
        break;
      case 'unreadable':
        record = wizard(`the FAT partition could not be read: ${result.reason}`, []);
        break;
    }
  }
  await fault(ctx, 'read-preseed:before-record');
  await writePreseedRecord(ctx.dataDir, record);
  if (record.mode === 'wizard') log.warn({ reason: record.reason }, 'no usable first-boot settings: the setup wizard will ask for them');
  else log.info({ fields: record.fields }, 'first-boot settings stored on the data partition');
  await recordOutcome(ctx, record);
}

function wizard(reason: string, problems: string[]): PreseedRecord {
  return { format: PRESEED_RECORD_FORMAT, mode: 'wizard', reason, problems };
}

async function recordOutcome(ctx: FirstBootContext, record: PreseedRecord): Promise<void> {
  await writeStepOutcome(ctx.dataDir, {
    step: 'read-preseed',
    fields: record.mode === 'preseed' ? record.fields : [],
    warnings: record.mode === 'wizard' ? [record.reason] : [],
  });
}

/**
 * scrub-preseed: remove the secrets from the FAT copy. Runs only after read-preseed is recorded in
 * the journal, i.e. after what the device keeps of the secrets is durably on ext4. Also scrubs an invalid but
 * parseable file (it may hold a good passphrase): the wizard asks for those again.
 * A failed write is retried (the journal step fails); a file that cannot be parsed is
 * left alone with a warning (there is nothing we can find in it).
 */
export async function scrubPreseedStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  if (!ctx.fatDevice) {
    await writeStepOutcome(ctx.dataDir, { step: 'scrub-preseed', fields: [], warnings: [], result: 'no-fat-partition' });
    return;
  }
  const result = await scrubPreseedSecrets({ device: ctx.fatDevice, log });
  if (result.state === 'failed') throw new Error(`scrubbing the preseed secrets from the FAT partition failed: ${result.reason}`);
  await fault(ctx, 'scrub-preseed:after-scrub');
  const warnings = result.state === 'unreadable' ? [`preseed secrets not scrubbed: ${result.reason}`] : [];
  // Described from the ext4 record, not from this call's result: a rerun after a crash
  // finds the file already clean, and must record the same outcome (and still wipe).
  const record = await readPreseedRecord(ctx.dataDir);
  const stored = record?.mode === 'preseed' ? record.fields : [];
  const hadSecrets = result.state === 'scrubbed' || preseedSecretFields().some((f) => stored.includes(f));
  if (result.state !== 'unreadable' && hadSecrets) {
    // The deleted file's clusters still hold the secrets until overwritten. Without
    // secrets there is nothing to hide, and no reason to write the whole partition.
    const wiped = await wipeFatFreeSpace(ctx.fatDevice, log, (point) => fault(ctx, `scrub-preseed:${point}`));
    if (wiped === 'skipped') warnings.push('the FAT partition is mounted, so the free space that held the preseed secrets was not overwritten');
  }
  await writeStepOutcome(ctx.dataDir, {
    step: 'scrub-preseed',
    fields: preseedSecretFields().filter((f) => stored.includes(f)),
    warnings,
    result: result.state === 'unreadable' ? 'unreadable' : 'done',
  });
}

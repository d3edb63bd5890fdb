import type { Logger } from 'pino';
import {
  PRESEED_FILE_NAME,
  PRESEED_MAX_BYTES,
  PRESEED_TEMP_FILE_NAME,
  parsePreseed,
  presentPreseedFields,
  withoutPreseedSecrets,
  type Preseed,
  type PreseedSecretField,
} from '../../shared/contracts/preseed.ts';
import { FatAccessError, openFatVolume, type FatVolume } from '../../shared/fat/fat-volume.ts';

/**
 * Reads the first-boot settings from the first FAT partition and, once provisioning
 * has stored the secrets, scrubs them from the FAT copy.
 *
 * Intended order (the provisioning journal owns it):
 *   1. readPreseed();
 *   2. store the secrets on the ext4 data partition (mode 0600, fsync file and directory)
 *      and record that in the journal;
 *   3. scrubPreseedSecrets().
 * A power cut between 2 and 3 only repeats the scrub on the next boot, which is
 * idempotent. A power cut inside 3 leaves the old or the new file (see docs/preseed.md).
 *
 * Nothing here throws for bad input, and no log record carries a secret value: logs
 * name fields, never their values.
 */

export type PreseedReadResult =
  | { state: 'absent' }
  | { state: 'invalid'; problems: string[] }
  | { state: 'unreadable'; reason: string }
  | { state: 'valid'; settings: Preseed };

export type PreseedScrubResult =
  /** Secrets were removed now (fields listed). */
  | { state: 'scrubbed'; removed: PreseedSecretField[] }
  /** The file holds no secrets (already scrubbed, or never had any). */
  | { state: 'clean' }
  | { state: 'absent' }
  /** The file system or file cannot be read, or is not a JSON object; nothing was changed. */
  | { state: 'unreadable'; reason: string }
  /** Writing the scrubbed file failed; the old file is still in place. Retry later. */
  | { state: 'failed'; reason: string };

export interface PreseedSourceOptions {
  /** A disk (image or block device) with a FAT partition, a FAT partition itself, or a directory where the FAT is mounted. */
  device: string;
  log: Logger;
}

export async function readPreseed(opts: PreseedSourceOptions): Promise<PreseedReadResult> {
  const { log } = opts;
  let volume: FatVolume;
  let found: FoundFile | undefined;
  try {
    volume = await openFatVolume(opts.device);
    found = await findPreseedFile(volume, log);
  } catch (err) {
    const reason = describeError(err);
    log.warn({ device: opts.device, reason }, 'cannot read the preseed partition; the setup wizard will ask for the settings');
    return { state: 'unreadable', reason };
  }
  if (!found) {
    log.info({ source: volume.description }, 'no preseed file; the setup wizard will ask for the settings');
    return { state: 'absent' };
  }
  if (found.result.ok) {
    const settings = found.result.settings;
    log.info(
      { source: volume.description, file: found.name, fields: presentPreseedFields(settings) },
      'preseed settings found',
    );
    return { state: 'valid', settings };
  }
  log.warn(
    { source: volume.description, file: found.name, problems: found.result.problems },
    'preseed file is invalid; the setup wizard will ask for the settings',
  );
  return { state: 'invalid', problems: found.result.problems };
}

/**
 * Rewrites the preseed file without its secret fields (adding them to `scrubbedSecrets`)
 * with the same temporary-name-then-rename write as the host, and deletes any leftover
 * temporary file (which may hold secrets). Idempotent: a clean file is not rewritten.
 */
export async function scrubPreseedSecrets(opts: PreseedSourceOptions): Promise<PreseedScrubResult> {
  const { log } = opts;
  let volume: FatVolume;
  let names: string[];
  try {
    volume = await openFatVolume(opts.device);
    names = await volume.listRoot();
  } catch (err) {
    const reason = describeError(err);
    log.warn({ device: opts.device, reason }, 'cannot scrub preseed secrets: partition unreadable');
    return { state: 'unreadable', reason };
  }
  const finalName = findName(names, PRESEED_FILE_NAME);
  const tempName = findName(names, PRESEED_TEMP_FILE_NAME);

  let source: { name: string; value: Record<string, unknown> } | undefined;
  let unparseable: string | undefined;
  try {
    for (const name of [finalName, tempName]) {
      if (!name) continue;
      const value = await readJsonObject(volume, name);
      if (value) {
        source = { name, value };
        break;
      }
      // The final file is authoritative even when broken; a temp file only stands in for a missing one.
      if (name === finalName) {
        unparseable = name;
        break;
      }
    }
  } catch (err) {
    const reason = describeError(err);
    log.warn({ source: volume.description, reason }, 'cannot scrub preseed secrets: file unreadable');
    return { state: 'unreadable', reason };
  }

  try {
    let result: PreseedScrubResult;
    if (source) {
      const { value, removed } = withoutPreseedSecrets(source.value);
      if (removed.length > 0 || source.name !== finalName) {
        await volume.writeFileAtomic(PRESEED_FILE_NAME, PRESEED_TEMP_FILE_NAME, Buffer.from(`${JSON.stringify(value, null, 2)}\n`));
      }
      result = removed.length > 0 ? { state: 'scrubbed', removed } : { state: 'clean' };
    } else if (unparseable) {
      result = { state: 'unreadable', reason: `${unparseable} is not a JSON object of at most 64 KiB, so its secret fields cannot be found; it was left unchanged` };
    } else {
      result = { state: 'absent' };
    }
    // Whatever is left under the temporary name is an interrupted write: it may hold secrets.
    const leftover = findName(await volume.listRoot(), PRESEED_TEMP_FILE_NAME);
    if (leftover) await volume.removeFile(leftover);

    if (result.state === 'scrubbed') log.info({ source: volume.description, removed: result.removed }, 'preseed secrets scrubbed');
    else if (result.state === 'unreadable') log.warn({ source: volume.description, reason: result.reason }, 'preseed secrets not scrubbed');
    else log.debug({ source: volume.description, state: result.state }, 'preseed holds no secrets');
    return result;
  } catch (err) {
    const reason = describeError(err);
    log.error({ source: volume.description, reason }, 'scrubbing preseed secrets failed; will retry');
    return { state: 'failed', reason };
  }
}

interface FoundFile {
  name: string;
  result: ReturnType<typeof parsePreseed>;
}

/**
 * The file to use: `memu-preseed.json`; or, when only the temporary name exists, the
 * temporary file if it is complete and valid (a power cut hit the host's final rename).
 */
async function findPreseedFile(volume: FatVolume, log: Logger): Promise<FoundFile | undefined> {
  const names = await volume.listRoot();
  const finalName = findName(names, PRESEED_FILE_NAME);
  if (finalName) return { name: finalName, result: await readAndParse(volume, finalName) };

  const tempName = findName(names, PRESEED_TEMP_FILE_NAME);
  if (tempName) {
    const result = await readAndParse(volume, tempName);
    if (result.ok) {
      log.warn({ file: tempName }, 'using the preseed file of an interrupted write (it is complete and valid)');
      return { name: tempName, result };
    }
    log.warn({ file: tempName }, 'ignoring an incomplete preseed file left by an interrupted write');
  }
  // Windows hides extensions, so "memu-preseed.json" often becomes "memu-preseed.json.txt".
  const lookalikes = names.filter((n) => /^memu[-_ ]?preseed/i.test(n) && n.toLowerCase() !== PRESEED_TEMP_FILE_NAME);
  if (lookalikes.length > 0) {
    log.warn({ found: lookalikes, expected: PRESEED_FILE_NAME }, `found a similarly named file; rename it to ${PRESEED_FILE_NAME} to use it`);
  }
  return undefined;
}

async function readAndParse(volume: FatVolume, name: string): Promise<ReturnType<typeof parsePreseed>> {
  const data = await volume.readFile(name, PRESEED_MAX_BYTES);
  if (data === 'too-large') {
    return { ok: false, problems: [`${PRESEED_FILE_NAME}: is larger than 64 KiB; expected at most ${PRESEED_MAX_BYTES} bytes`] };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    return { ok: false, problems: [`${PRESEED_FILE_NAME}: is not UTF-8 text; expected a JSON document saved as UTF-8`] };
  }
  return parsePreseed(text);
}

async function readJsonObject(volume: FatVolume, name: string): Promise<Record<string, unknown> | undefined> {
  const data = await volume.readFile(name, PRESEED_MAX_BYTES);
  if (data === 'too-large') return undefined;
  try {
    const text = data.toString('utf8').replace(/^\uFEFF/, '');
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** FAT names are case-insensitive. */
function findName(names: string[], wanted: string): string | undefined {
  return names.find((n) => n.toLowerCase() === wanted.toLowerCase());
}

function describeError(err: unknown): string {
  if (err instanceof FatAccessError) return err.message;
  return `unexpected error: ${(err as Error)?.message ?? String(err)}`;
}

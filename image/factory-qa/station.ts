import { randomBytes } from 'node:crypto';
import { mkdir, realpath, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { normalizeClaimCode, type Preseed } from '../../shared/contracts/preseed.ts';
import { QA_SETTINGS_FILE_NAME, QA_SETTINGS_MAX_BYTES, QA_SETTINGS_TEMP_FILE_NAME, stationUrlProblem } from '../../shared/contracts/qa-report.ts';
import { randomCrockfordCode } from '../../shared/crockford-code.ts';
import { describeInvalid, ignoreNotFound, isNotFound } from '../../shared/errors.ts';
import { readTextIfPresent, writeJsonDurably } from '../../shared/files/durable-files.ts';
import { openFatVolume } from '../../shared/fat/fat-volume.ts';
import { flashImage, type FlashOptions } from '../flash/index.ts';
import { inspectImage } from '../flash/image-source.ts';
import { admitTarget } from '../flash/target-admission.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import type { Progress } from '../host/progress.ts';
import { hashFile } from '../pipeline/file-hash.ts';
import { MANIFEST_NAME, readImageManifest } from '../release/image-manifest.ts';
import { writePreseed } from '../preseed/write.ts';
import { advanceSlot, waitingSlot, type SlotEvent, type SlotState } from './station-slots.ts';
import type { StationView } from './station-view.ts';
import { createUnitQaSettings } from './unit-qa-key.ts';

/**
 * The QA station's flashing side (`memu qa station flash`): N drives at once, each through
 * the flasher's own admission, write and read-back (image/flash), then given its own unit:
 * a fresh claim code, its own QA key pair (unit-qa-key.ts) and a preseed with `factoryQa`.
 * Every slot is recorded in the station file as it finishes, ready or failed.
 */

/** The station's record of every drive it flashed, in the keys directory or a bench directory. */
export const STATION_FILE_NAME = 'qa-station.json';
const STATION_FORMAT = 'memu-qa-station/1';

const stationUnitSchema = z
  .object({
    slot: z.number().int().positive(),
    target: z.string(),
    result: z.enum(['ready', 'failed']),
    claimCode: z.string().optional(),
    keyId: z.string().optional(),
    reason: z.string().optional(),
    image: z.object({ path: z.string(), version: z.string(), sha256: z.string() }).strict(),
    flashedAt: z.string(),
    /** The `station flash` run that flashed it (files from before batches were named have none). */
    batch: z.string().optional(),
  })
  .strict();
export type StationUnit = z.infer<typeof stationUnitSchema>;
const stationFileSchema = z.object({ format: z.literal(STATION_FORMAT), units: z.array(stationUnitSchema) }).strict();

export interface ImageIdentity {
  path: string;
  version: string;
  sha256: string;
}

export interface StationFlashOptions {
  image: string;
  bmap?: string;
  targets: readonly string[];
  /** Where the units' public keys go (`<claim code>.pub`), and the station file unless `benchDir`. */
  keysDir: string;
  benchDir?: string;
  /** Settings every unit of the batch gets besides its own claim code and the QA flag. */
  baseSettings?: Preseed;
  /** The station's address on the bench LAN (`memu qa station watch`), for each unit's memu-qa.json: http://HOST:PORT. */
  stationUrl?: string;
  /** Drives are written only with this (the station has no one to ask per drive). */
  yes: boolean;
  unmount: boolean;
  verify?: boolean;
  log: Logger;
  /** The logger the flasher itself writes to (quieter under a redrawn table). */
  flashLog?: Logger;
  view: StationView;
  /** The live slots, updated in place, for the view to read. */
  slots?: SlotState[];
  signal?: AbortSignal;
  testHooks?: FlashOptions['testHooks'];
}

export interface StationFlashResult {
  slots: SlotState[];
  stationFile: string;
  image: ImageIdentity;
  exitCode: ExitCode;
}

/**
 * inspect the image -> refuse a target given twice -> admit every target (the flasher's
 * rules) -> flash all slots at once, each on its own -> per slot: key, QA settings,
 * preseed, station record.
 */
export async function flashStation(opts: StationFlashOptions): Promise<StationFlashResult> {
  if (opts.targets.length === 0) throw new MemuError('no targets given', ExitCode.badInput, 'name one or more drives (see `memu devices`) or image files');
  checkBaseSettings(opts.baseSettings);
  const urlProblem = opts.stationUrl === undefined ? undefined : stationUrlProblem(opts.stationUrl);
  if (urlProblem) throw new MemuError(`--station-url ${opts.stationUrl} ${urlProblem}`, ExitCode.badInput, 'the address `memu qa station watch --listen` serves on, as the units reach it, e.g. --station-url http://192.168.50.1:8470');
  await refuseTargetGivenTwice(opts.targets);
  await admitAll(opts);
  // A keys directory that cannot be made fails now, not after every drive was written.
  await mkdir(resolve(opts.keysDir), { recursive: true, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot make the keys directory ${opts.keysDir}: ${err.code ?? err.message}`, ExitCode.environment, 'pass --keys a directory the station may write');
  });
  const stationFile = join(resolve(opts.benchDir ?? opts.keysDir), STATION_FILE_NAME);
  const station = await readStationFile(stationFile);
  const image = await identifyImage(opts.image);
  opts.log.info({ image: image.path, version: image.version, sha256: image.sha256, targets: opts.targets.length }, `flashing ${image.path} to ${opts.targets.length} slot${opts.targets.length === 1 ? '' : 's'}`);

  const batch = `${new Date().toISOString()}-${randomBytes(3).toString('hex')}`;
  const slots = opts.slots ?? [];
  slots.splice(0, slots.length, ...opts.targets.map((t, i) => waitingSlot(i + 1, t, performance.now())));
  let records = Promise.resolve();
  const record = (unit: StationUnit): Promise<void> => {
    station.units.push(unit);
    const snapshot = { format: STATION_FORMAT, units: [...station.units] };
    records = records.then(() =>
      writeJsonDurably(stationFile, snapshot).catch((err: NodeJS.ErrnoException) => {
        throw new MemuError(`cannot write the station file ${stationFile}: ${err.code ?? err.message}`, ExitCode.environment, 'check that the keys (or --bench) directory is writable; the drives flashed so far hold their units, but flash them again to have them recorded');
      }),
    );
    return records;
  };
  await Promise.all(slots.map((_, i) => flashSlot(opts, slots, i, image, (unit) => record({ ...unit, batch }))));
  const failed = slots.find((s) => s.stage === 'failed');
  return { slots, stationFile, image, exitCode: failed ? ((failed.exitCode ?? ExitCode.failure) as ExitCode) : ExitCode.ok };
}

function checkBaseSettings(settings: Preseed | undefined): void {
  if (settings?.claimCode !== undefined) throw new MemuError('the batch settings carry a claim code, but every unit gets its own', ExitCode.badInput, 'remove claimCode from the --preseed file');
  if (settings?.factoryQa === false) throw new MemuError('the batch settings say "factoryQa": false, but the station flashes drives for QA', ExitCode.badInput, 'remove factoryQa from the --preseed file');
}

/** What a target is, by device or file identity, so two names of one drive or file are caught. */
async function targetIdentity(given: string): Promise<string> {
  const path = resolve(given);
  try {
    const st = await stat(await realpath(path));
    return st.isBlockDevice() ? `block ${st.rdev}` : `inode ${st.dev}:${st.ino}`;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    // A file target that does not exist yet is known by its path (through its directory's real path).
    const dir = await realpath(dirname(path)).catch(() => dirname(path));
    return `new ${join(dir, basename(path))}`;
  }
}

/** Two slots writing one drive would each destroy the other's image: refused before anything is written. */
export async function refuseTargetGivenTwice(targets: readonly string[]): Promise<void> {
  const seen = new Map<string, string>();
  for (const target of targets) {
    const id = await targetIdentity(target);
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      throw new MemuError(
        `${earlier === target ? `${target} is given twice` : `${earlier} and ${target} are the same ${id.startsWith('block') ? 'drive' : 'file'}`}: each slot needs a drive of its own`,
        ExitCode.badInput,
        'name every drive once (see `memu devices`)',
      );
    }
    seen.set(id, target);
  }
}

/** Every target through the flasher's own admission first, so a wrong name stops the batch before any drive is written. */
async function admitAll(opts: StationFlashOptions): Promise<void> {
  const image = await inspectImage(opts.image, { ...(opts.bmap ? { bmap: opts.bmap } : {}), log: opts.log });
  const refusals: string[] = [];
  let exitCode: ExitCode = ExitCode.targetRefused;
  for (const target of opts.targets) {
    try {
      const admitted = await admitTarget(target, image, { unmount: opts.unmount, log: opts.log, ...(opts.signal ? { signal: opts.signal } : {}) });
      if (admitted.kind === 'block' && !opts.yes) refusals.push(`${target}: a drive is written only with --yes (check with \`memu devices\` that it is the right one)`);
    } catch (err) {
      if (!(err instanceof MemuError)) throw err;
      if (err.exitCode !== ExitCode.targetRefused) exitCode = err.exitCode;
      refusals.push(`${err.message}${err.hint ? ` (${err.hint})` : ''}`);
    }
  }
  if (refusals.length > 0) {
    throw new MemuError(`nothing was flashed: ${refusals.length === 1 ? 'a target was' : `${refusals.length} targets were`} refused:\n${refusals.map((r) => `  - ${r}`).join('\n')}`, exitCode, 'fix or remove the refused targets and run the batch again');
  }
}

export async function readStationFile(path: string): Promise<{ units: StationUnit[] }> {
  const text = await readTextIfPresent(path);
  if (text === undefined) return { units: [] };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new MemuError(`${path} is not JSON`, ExitCode.badInput, `move it aside: it should be the station file this command writes (${STATION_FILE_NAME})`);
  }
  const parsed = stationFileSchema.safeParse(data);
  if (!parsed.success) throw new MemuError(describeInvalid(`station file ${path}`, parsed.error.issues), ExitCode.badInput, `move it aside: it should be the station file this command writes (${STATION_FILE_NAME})`);
  return { units: parsed.data.units };
}

/** The image's sha256 and version: from the build's manifest.json beside it when that lists this file, else from its name. */
export async function identifyImage(image: string): Promise<ImageIdentity> {
  const path = resolve(image);
  const { sha256 } = await hashFile(path);
  const manifestPath = join(dirname(path), MANIFEST_NAME);
  const manifest = (await stat(manifestPath).catch(ignoreNotFound)) ? await readImageManifest(manifestPath).catch(() => undefined) : undefined;
  const listed = manifest?.manifest.artifacts.find((a) => a.name === basename(path) && a.sha256 === sha256);
  const fromName = /^memu-.+-(\d+\.\d+\.\d+[^/]*?)\.img(?:\.zst|\.xz|\.gz)?$/.exec(basename(path))?.[1];
  return { path, version: listed ? manifest!.manifest.version : (fromName ?? 'unknown'), sha256 };
}

/** The flasher's progress, turned into the slot's stages and bytes (and passed on to the view's own progress). */
function slotProgress(update: (event: SlotEvent) => void, inner: Progress | undefined): Progress {
  return {
    stage(name, totalBytes) {
      const stage = name === 'verify' ? 'verifying' : 'flashing';
      update({ kind: 'stage', stage, ...(totalBytes !== undefined ? { totalBytes } : {}), at: performance.now() });
      inner?.stage(name, totalBytes);
    },
    bytes(done, total) {
      update({ kind: 'bytes', bytes: done, at: performance.now() });
      inner?.bytes(done, total);
    },
    done(summary) {
      inner?.done(summary);
    },
  };
}

async function flashSlot(opts: StationFlashOptions, slots: SlotState[], i: number, image: ImageIdentity, record: (unit: StationUnit) => Promise<void>): Promise<void> {
  const update = (event: SlotEvent): void => {
    const before = slots[i]!;
    slots[i] = advanceSlot(before, event);
    opts.view.changed(slots[i]!, event.kind === 'unit' ? 'unit' : slots[i]!.stage !== before.stage ? 'stage' : 'bytes');
  };
  const target = opts.targets[i]!;
  const log = (opts.flashLog ?? opts.log).child({ slot: i + 1 });
  let publicKeyPath: string | undefined;
  try {
    const flashed = await flashImage({
      image: opts.image,
      target,
      ...(opts.bmap ? { bmap: opts.bmap } : {}),
      ...(opts.verify !== undefined ? { verify: opts.verify } : {}),
      log,
      progress: slotProgress(update, opts.view.flashProgress(slots[i]!)),
      yes: opts.yes,
      unmount: opts.unmount,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.testHooks ? { testHooks: opts.testHooks } : {}),
    });
    update({ kind: 'stage', stage: 'preseeding', at: performance.now() });
    // 80 random bits: a repeat is not expected, and unit-qa-key.ts refuses one all the same.
    const claimCode = randomCrockfordCode(4, 4);
    if (normalizeClaimCode(claimCode) !== claimCode) throw new Error(`generated claim code ${claimCode} is not canonical`);
    const unit = await createUnitQaSettings(resolve(opts.keysDir), claimCode, true, opts.stationUrl);
    publicKeyPath = unit.publicKeyPath;
    update({ kind: 'unit', claimCode, keyId: unit.keyId, at: performance.now() });
    // The unit's key before the flag: a drive that says factoryQa always has the key to sign with.
    await writeQaSettings(flashed.target, unit.settingsText);
    await writePreseed({ target: flashed.target, settings: { ...opts.baseSettings, version: 1, factoryQa: true, claimCode }, log });
    update({ kind: 'stage', stage: 'ready', at: performance.now() });
  } catch (err) {
    const failure = slotFailure(err, target, slots[i]!.stage);
    // A key whose drive never got its settings would trust reports of a unit that does not exist.
    if (publicKeyPath) await unlink(publicKeyPath).catch(ignoreNotFound);
    update({ kind: 'failed', ...failure, at: performance.now() });
    if (failure.exitCode === ExitCode.failure) log.debug({ err }, 'internal error in a station slot');
  }
  const s = slots[i]!;
  await record({
    slot: s.slot,
    target: s.target,
    result: s.stage === 'ready' ? 'ready' : 'failed',
    ...(s.stage === 'ready' ? { claimCode: s.claimCode, keyId: s.keyId } : {}),
    ...(s.reason ? { reason: s.reason } : {}),
    image,
    flashedAt: new Date().toISOString(),
  });
}

/**
 * Why a slot failed, in words for the bench. A system call failing on the target (the
 * file gone, the drive unplugged: ENOENT, ENXIO, EIO, ENODEV...) is the drive's fault,
 * not a bug, whichever step of the flasher met it.
 */
function slotFailure(err: unknown, target: string, stage: string): { reason: string; exitCode: ExitCode } {
  if (err instanceof MemuError) return { reason: err.message, exitCode: err.exitCode };
  const code = (err as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
    const message = (err as Error).message;
    return { reason: `${target} went away or failed while ${stage} (${message.startsWith(code) ? message : `${code}: ${message}`}): check the drive and its cable, then flash it again`, exitCode: ExitCode.writeError };
  }
  return { reason: `internal error: ${(err as Error)?.message ?? String(err)}`, exitCode: ExitCode.failure };
}

/** The unit's QA settings (its signing key) onto the drive's first FAT partition, replaced atomically and read back. */
async function writeQaSettings(target: string, text: string): Promise<void> {
  const data = Buffer.from(text);
  try {
    const volume = await openFatVolume(target);
    await volume.writeFileAtomic(QA_SETTINGS_FILE_NAME, QA_SETTINGS_TEMP_FILE_NAME, data);
    const back = await volume.readFile(QA_SETTINGS_FILE_NAME, QA_SETTINGS_MAX_BYTES);
    if (back === 'too-large' || !back.equals(data)) throw new MemuError(`${QA_SETTINGS_FILE_NAME} read back from ${target} differs from what was written`, ExitCode.verifyFailed, 'the drive may be failing; flash it again or use another drive');
  } catch (err) {
    if (err instanceof MemuError) throw err;
    throw new MemuError(`cannot write ${QA_SETTINGS_FILE_NAME} to ${target}: ${(err as Error).message}`, ExitCode.writeError, 'flash the drive again, or use another drive');
  }
}


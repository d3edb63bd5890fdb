import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Logger } from '../host/log.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import {
  PRESEED_FILE_NAME,
  PRESEED_MAX_BYTES,
  PRESEED_TEMP_FILE_NAME,
  parsePreseed,
  presentPreseedFields,
  serializePreseed,
  validatePreseed,
  type Preseed,
} from '../../shared/contracts/preseed.ts';
import { FatAccessError, mountedNodes, openFatVolume, type FatErrorKind } from '../../shared/fat/fat-volume.ts';

export interface WritePreseedOptions {
  /** A Memu disk image file or a block device holding a flashed Memu disk. */
  target: string;
  /** The settings, or `settingsFile` with them as JSON: exactly one of the two. */
  settings?: Preseed;
  settingsFile?: string;
  log: Logger;
}

export interface WritePreseedResult {
  /** Number of the FAT partition written (1-based), as in the partition table. */
  partition: number;
  /** Byte offset of that partition inside the target. */
  offset: number;
}

const DOCS_HINT = 'fix the fields listed; docs/preseed.md describes every field with an example';

/**
 * Loads settings from an object or a file and validates them with the device's schema.
 * Throws a badInput MemuError that lists every problem (no value is quoted).
 */
export async function loadPreseedSettings(opts: { settings?: Preseed; settingsFile?: string }): Promise<Preseed> {
  if ((opts.settings === undefined) === (opts.settingsFile === undefined)) {
    throw new MemuError('give the preseed settings either as an object or as a file, not both or neither', ExitCode.badInput);
  }
  let result: ReturnType<typeof parsePreseed>;
  if (opts.settingsFile !== undefined) {
    const file = opts.settingsFile;
    const data = await readSettingsFile(file);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch {
      throw new MemuError(`${file} is not UTF-8 text`, ExitCode.badInput, 'save the file as UTF-8');
    }
    result = parsePreseed(text);
  } else {
    result = validatePreseed(opts.settings);
  }
  if (!result.ok) {
    const source = opts.settingsFile ?? 'the preseed settings';
    throw new MemuError(
      `${source} ${result.problems.length === 1 ? 'has a problem' : `has ${result.problems.length} problems`}:\n${result.problems.map((p) => `  - ${p}`).join('\n')}`,
      ExitCode.badInput,
      DOCS_HINT,
    );
  }
  return result.settings;
}

/**
 * Reads a settings file of at most PRESEED_MAX_BYTES: only a regular file, and never
 * more than one byte past the limit, so a directory, a device such as /dev/zero or a pipe
 * is refused instead of crashing or reading forever.
 */
async function readSettingsFile(file: string): Promise<Buffer> {
  const cannotRead = (err: NodeJS.ErrnoException) =>
    new MemuError(`cannot read the settings file ${file}: ${describeFsError(err)}`, ExitCode.badInput, 'check the settings file path');
  // O_NONBLOCK: opening a FIFO must not wait for a writer before it can be refused.
  const handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
    throw cannotRead(err);
  });
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new MemuError(
        `the settings file ${file} is ${info.isDirectory() ? 'a directory' : 'not a regular file (a device, pipe or socket)'}`,
        ExitCode.badInput,
        'pass the path of a JSON file such as settings.json',
      );
    }
    const buffer = Buffer.alloc(PRESEED_MAX_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length).catch((err: NodeJS.ErrnoException) => {
        throw cannotRead(err);
      });
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > PRESEED_MAX_BYTES) {
      throw new MemuError(`${file} is larger than ${PRESEED_MAX_BYTES} bytes; a preseed file may be at most 64 KiB`, ExitCode.badInput, DOCS_HINT);
    }
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/**
 * Validates the settings, then writes them as `memu-preseed.json` to the first FAT
 * partition of a disk image or block device, without mounting it: mtools writes a
 * temporary file, syncs, renames it over the final name and syncs again, then the file
 * is read back and compared. Invalid settings write nothing.
 */
export async function writePreseed(opts: WritePreseedOptions): Promise<WritePreseedResult> {
  const { log, target } = opts;
  const settings = await loadPreseedSettings(opts);
  const data = Buffer.from(serializePreseed(settings));

  const info = await stat(target).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot open ${target}: ${describeFsError(err)}`, ExitCode.badInput, 'check the image path or device name');
  });
  if (!info.isFile() && !info.isBlockDevice()) {
    throw new MemuError(`${target} is neither a disk image file nor a block device`, ExitCode.badInput, 'pass a Memu .img file or a drive such as /dev/sdb');
  }
  if (info.isBlockDevice()) {
    // A mounted partition means the kernel caches that FAT (or the drive is in use): refuse.
    const mounted = await mountedNodes(target).catch(rethrowFatError(target));
    if (mounted.length > 0) {
      const list = mounted.map((m) => `${m.path} on ${m.mountpoints.join(', ')}`).join('; ');
      throw new MemuError(`${target} has mounted partitions (${list})`, ExitCode.targetRefused, `unmount them first (umount ${mounted[0]!.path}); never preseed the drive the host runs from`);
    }
  }

  try {
    const volume = await openFatVolume(target);
    const location = volume.location!;
    if (location.partition === null) {
      throw new FatAccessError('no-fat-partition', `${target} has no partition table`);
    }
    // A damaged file system is the target's fault, not a write error: find out before writing.
    await volume.listRoot();
    log.debug({ target, partition: location.partition, offset: location.offset }, 'writing preseed');
    await volume.writeFileAtomic(PRESEED_FILE_NAME, PRESEED_TEMP_FILE_NAME, data);
    const readBack = await volume.readFile(PRESEED_FILE_NAME, PRESEED_MAX_BYTES);
    if (readBack === 'too-large' || !readBack.equals(data)) {
      throw new MemuError(`${PRESEED_FILE_NAME} read back from ${volume.description} differs from what was written`, ExitCode.verifyFailed, 'the drive may be failing; try again or use another drive');
    }
    log.info(
      { target, partition: location.partition, offset: location.offset, file: PRESEED_FILE_NAME, fields: presentPreseedFields(settings) },
      'preseed written',
    );
    return { partition: location.partition, offset: location.offset };
  } catch (err) {
    return rethrowFatError(target)(err);
  }
}

function rethrowFatError(target: string): (err: unknown) => never {
  return (err) => {
    if (!(err instanceof FatAccessError)) throw err;
    const mapping: Record<FatErrorKind, [ExitCode, string]> = {
      'tool-missing': [ExitCode.environment, 'run scripts/setup-host to install the host tools'],
      'no-fat-partition': [ExitCode.badInput, 'pass a Memu disk image or drive: its partition table has an EFI system or FAT "bootconfig" partition'],
      unreadable: [ExitCode.badInput, `check that ${target} is a Memu disk and that you may read it (block devices need root); re-flash it if its FAT partition is damaged`],
      'write-failed': [ExitCode.writeError, `check that ${target} is writable (block devices need root) and not write-protected`],
      mounted: [ExitCode.targetRefused, 'unmount it first'],
      'not-a-file': [ExitCode.badInput, `remove or rename that directory on the FAT partition (e.g. with mdeltree), then run memu preseed again`],
      full: [ExitCode.writeError, 'delete files you added to that FAT partition (the existing settings were kept), or flash the image again'],
      'read-back-differs': [ExitCode.verifyFailed, 'the drive may be failing (the existing settings were kept); try again or use another drive'],
    };
    const [exitCode, hint] = mapping[err.kind];
    throw new MemuError(err.message, exitCode, hint);
  };
}

function describeFsError(err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return 'no such file';
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission denied';
  return err.code ?? err.message;
}

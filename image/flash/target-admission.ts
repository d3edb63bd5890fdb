import { lstat, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isNotFound } from '../../shared/errors.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { describeTarget, majMinOf, refusalFor, type BlockDevice, type LoopBacking, type TargetDescription } from './block-devices.ts';
import { measureDecompressedSize, type FileIdentity, type ImageSource } from './image-source.ts';

/** A target that passed every rule: a regular file (created or overwritten), or a drive or partition. */
export type AdmittedTarget = { kind: 'file'; path: string } | { kind: 'block'; path: string; device: BlockDevice; partitionOf?: BlockDevice };

export interface AdmissionOptions {
  allowPartition?: boolean;
  unmount?: boolean;
  /** Mount points whose drives count as the running system (default: / and the boot and /usr mounts). */
  systemMountpoints?: readonly string[];
  log: Logger;
  signal?: AbortSignal;
}

function refused(message: string, hint: string): MemuError {
  return new MemuError(message, ExitCode.targetRefused, hint);
}

/** The files flashing reads, which the target must not be. */
function sourcesOf(image: ImageSource): Array<{ what: string; path: string; identity: FileIdentity }> {
  return [{ what: 'the image', path: image.path, identity: image.identity }, ...(image.bmap ? [{ what: 'its bmap', path: image.bmap.path, identity: image.bmap.identity }] : [])];
}

/** How `given` reaches the file it resolves to, for the message. */
async function howItReaches(given: string, sourcePath: string): Promise<string> {
  if (resolve(given) === sourcePath) return 'is';
  const link = await lstat(given).catch(() => undefined);
  if (link?.isSymbolicLink()) return 'is a symlink to';
  return 'is a hard link to (or another path of)';
}

function sameLoopBacking(backing: LoopBacking, identity: FileIdentity): boolean {
  return backing.inode === identity.ino && backing.majMin === majMinOf(identity.dev);
}

/**
 * Writing the image onto itself destroys it halfway through: refuse a target that is
 * the image or its bmap under any name (the same path, a symlink, a hard link) or a
 * loop device reading it, by device and inode rather than by path.
 */
async function refuseTheSourceItself(given: string, target: TargetDescription, image: ImageSource): Promise<void> {
  const hint = 'write to another file or a drive';
  for (const source of sourcesOf(image)) {
    if (target.kind === 'file' && target.exists) {
      const st = await stat(target.path);
      if (st.dev === source.identity.dev && st.ino === source.identity.ino) {
        throw refused(`the target ${given} ${await howItReaches(given, source.path)} ${source.what} ${source.path}: flashing would destroy it`, hint);
      }
    }
    if (target.kind === 'block' && target.loopBacking && sameLoopBacking(target.loopBacking, source.identity)) {
      const where = target.device.type === 'part' ? `a partition of ${target.partitionOf?.path ?? 'a loop device'}, which reads` : 'a loop device reading';
      throw refused(`the target ${given} is ${where} ${source.what} ${source.path}: flashing would destroy it`, `${hint} (detach it first: losetup -d)`);
    }
  }
}

/** A file target is created or overwritten, in a directory that exists; a missing name under /dev is a drive that is not there. */
async function admitFile(given: string, path: string, exists: boolean): Promise<AdmittedTarget> {
  const full = resolve(path);
  if (exists) return { kind: 'file', path: full };
  if (full.startsWith('/dev/')) throw refused(`there is no drive ${given}`, 'check the name with `memu devices` (is the card inserted?)');
  const dir = dirname(full);
  const st = await stat(dir).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  if (!st) throw new MemuError(`the directory ${dir} does not exist, so the target file ${given} cannot be created there`, ExitCode.badInput, `create it first (mkdir -p ${dir}) or give another path`);
  if (!st.isDirectory()) throw new MemuError(`${dir} is not a directory, so the target file ${given} cannot be created there`, ExitCode.badInput, 'give a path in an existing directory');
  return { kind: 'file', path: full };
}

/** A drive or partition is admitted only when no refusal rule applies for an image of this size. */
async function admitBlock(target: Extract<TargetDescription, { kind: 'block' }>, image: ImageSource, opts: AdmissionOptions): Promise<AdmittedTarget> {
  if (image.imageSize === undefined) {
    opts.log.info({ image: image.path }, `${image.compression} does not record the image size: decompressing once to measure it (a .bmap beside the image avoids this)`);
    image.imageSize = await measureDecompressedSize(image, opts.signal);
  }
  const refusal = refusalFor(target, { imageSize: image.imageSize, allowPartition: opts.allowPartition, unmount: opts.unmount });
  if (refusal) throw refused(`refusing to write ${target.path}: ${refusal.reason}`, refusal.hint);
  return { kind: 'block', path: target.path, device: target.device, ...(target.partitionOf ? { partitionOf: target.partitionOf } : {}) };
}

/** Admit: what the target is, and every rule that keeps the wrong disk (or the image itself) from being written. */
export async function admitTarget(given: string, image: ImageSource, opts: AdmissionOptions): Promise<AdmittedTarget> {
  const target = await describeTarget(given, opts.systemMountpoints ? { systemMountpoints: opts.systemMountpoints } : {});
  if (target.kind === 'other') throw refused(`the target ${target.path} is ${target.what}`, 'give a whole drive (see `memu devices`) or a file path');
  await refuseTheSourceItself(given, target, image);
  return target.kind === 'file' ? admitFile(given, target.path, target.exists) : admitBlock(target, image, opts);
}

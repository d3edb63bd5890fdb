import { readdir, rm } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { parsePreseed, PRESEED_FILE_NAME, PRESEED_MAX_BYTES, PRESEED_TEMP_FILE_NAME, serializePreseed } from '../../shared/contracts/preseed.ts';
import type { FatVolume } from '../../shared/fat/fat-volume.ts';
import { fsyncDirectory, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { ignoreNotFound } from '../../shared/errors.ts';
import { ROOT_DIRS_WRITTEN_AT_BOOT, type FactoryFreshPlan } from './factory-fresh-plan.ts';

/** Every file and directory below `dir` ('/'-separated, relative to it); nothing when it does not exist. */
export async function listTree(dir: string, under: readonly string[] = ['']): Promise<string[]> {
  const found: string[] = [];
  for (const top of under) {
    const start = join(dir, top);
    const entries = await readdir(start, { recursive: true, withFileTypes: true }).catch(ignoreNotFound);
    if (!entries) continue;
    if (top) found.push(top);
    for (const e of entries) found.push(relative(dir, join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
  }
  return [...new Set(found)].sort();
}

/** The root file system's listing the plan compares: only below the directories a boot writes. */
export const listRootWrittenAtBoot = (rootDir: string) => listTree(rootDir, ROOT_DIRS_WRITTEN_AT_BOOT);

/**
 * Carries out a factory-fresh plan: removes what it lists, empties /etc/machine-id and
 * rewrites the preseed without `factoryQa`. Every step can run again after a power cut:
 * a removed path is simply absent, and the preseed rewrite is the FAT's atomic replace.
 */
export async function applyFactoryFreshPlan(plan: FactoryFreshPlan, where: { dataDir: string; rootDir: string; fat: FatVolume }): Promise<void> {
  for (const [base, removals] of [
    [where.dataDir, plan.removeData],
    [where.rootDir, plan.removeRoot],
  ] as const) {
    for (const { path } of removals) {
      // A plan is made from listings of `base`; a path that leaves it is a bug, never a thing to delete.
      if (isAbsolute(path) || path.split('/').includes('..')) throw new Error(`refusing to remove ${path}: not a path inside ${base}`);
      await rm(join(base, path), { recursive: true, force: true });
    }
    if (removals.length > 0) await fsyncDirectory(base);
  }
  if (plan.emptyMachineId) await writeFileAtomic(join(where.rootDir, 'etc/machine-id'), '', { mode: 0o444 });
  for (const { path } of plan.removeFat) await where.fat.removeFile(path);
  if (plan.rewritePreseed) {
    const text = await where.fat.readFile(PRESEED_FILE_NAME, PRESEED_MAX_BYTES);
    const parsed = text === 'too-large' ? undefined : parsePreseed(text.toString('utf8'));
    if (!parsed?.ok) throw new Error(`${PRESEED_FILE_NAME} on ${where.fat.description} is not a valid preseed; the station must flash this drive again`);
    const { factoryQa: _qa, ...family } = parsed.settings;
    await where.fat.writeFileAtomic(PRESEED_FILE_NAME, PRESEED_TEMP_FILE_NAME, Buffer.from(serializePreseed(family)));
  }
}

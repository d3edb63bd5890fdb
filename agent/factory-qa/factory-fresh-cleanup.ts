import { mkdir, readdir, rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { parsePreseed, PRESEED_FILE_NAME, PRESEED_MAX_BYTES, PRESEED_TEMP_FILE_NAME, serializePreseed } from '../../shared/contracts/preseed.ts';
import { openFatVolume, type FatVolume } from '../../shared/fat/fat-volume.ts';
import { ignoreNotFound } from '../../shared/errors.ts';
import { createFileOnce, fsyncDirectory, readTextIfPresent, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { planFactoryFreshCleanup, ROOT_DIRS_WRITTEN_AT_BOOT, shippedFromBootListing, SHIPPED_LISTING_PATH, type FactoryFreshPlan } from './factory-fresh-plan.ts';

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
 * Carries out a factory-fresh plan: removes what it lists, empties /etc/machine-id,
 * removes QA's listing and, last, rewrites the preseed without `factoryQa`: until that
 * rewrite the next boot is a QA boot again and finishes the cleanup. Every step can run
 * again after a power cut: a removed path is simply absent, and the preseed rewrite is
 * the FAT's atomic replace.
 */
export async function applyFactoryFreshPlan(
  plan: FactoryFreshPlan,
  where: { dataDir: string; rootDir: string; fat: FatVolume; /** Tests: named points to cut the cleanup off, as a power cut would. */ checkpoint?: (point: string) => void | Promise<void> },
): Promise<void> {
  const removeDataLast = plan.removeDataLast;
  for (const [base, removals] of [
    [where.dataDir, plan.removeData],
    [where.rootDir, plan.removeRoot],
    [where.dataDir, removeDataLast],
  ] as const) {
    // A plan is made from listings of `base`; a path that leaves it is a bug, never a thing to delete.
    for (const { path } of removals) if (isAbsolute(path) || path.split('/').includes('..')) throw new Error(`refusing to remove ${path}: not a path inside ${base}`);
  }
  for (const [base, removals] of [
    [where.dataDir, plan.removeData],
    [where.rootDir, plan.removeRoot],
  ] as const) {
    for (const { path } of removals) await rm(join(base, path), { recursive: true, force: true });
    if (removals.length > 0) await fsyncDirectory(base);
    await where.checkpoint?.(base === where.dataDir ? 'after-data-removals' : 'after-root-removals');
  }
  if (plan.emptyMachineId) await writeFileAtomic(join(where.rootDir, 'etc/machine-id'), '', { mode: 0o444 });
  for (const { path } of plan.removeFat) await where.fat.removeFile(path);
  await where.checkpoint?.('after-fat-removals');
  for (const { path } of removeDataLast) {
    await rm(join(where.dataDir, path), { force: true });
    await fsyncDirectory(dirname(join(where.dataDir, path)));
  }
  await where.checkpoint?.('before-preseed-rewrite');
  if (plan.rewritePreseed) {
    const text = await where.fat.readFile(PRESEED_FILE_NAME, PRESEED_MAX_BYTES);
    const parsed = text === 'too-large' ? undefined : parsePreseed(text.toString('utf8'));
    if (!parsed?.ok) throw new Error(`${PRESEED_FILE_NAME} on ${where.fat.description} is not a valid preseed; the station must flash this drive again`);
    const { factoryQa: _qa, ...family } = parsed.settings;
    await where.fat.writeFileAtomic(PRESEED_FILE_NAME, PRESEED_TEMP_FILE_NAME, Buffer.from(serializePreseed(family)));
  }
}

const shippedListingSchema = z.object({
  format: z.literal('memu-shipped-listing/1'),
  takenAt: z.string(),
  data: z.array(z.string()),
  root: z.array(z.string()),
});

/**
 * Records, once, what the data partition and the root directories a boot writes hold at
 * the start of a QA boot: the plan's "shipped" side (shippedFromBootListing leaves out what
 * the agent and every boot write). A listing already there is kept: after a power cut the
 * first one still describes the unit before QA.
 */
export async function recordShippedListing(where: { dataDir: string; rootDir: string }, now = Date.now): Promise<{ created: boolean }> {
  const path = join(where.dataDir, SHIPPED_LISTING_PATH);
  if ((await readTextIfPresent(path)) !== undefined) return { created: false };
  const listing = {
    format: 'memu-shipped-listing/1',
    takenAt: new Date(now()).toISOString(),
    data: await listTree(where.dataDir),
    root: await listRootWrittenAtBoot(where.rootDir),
  };
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const { created } = await createFileOnce(path, `${JSON.stringify(listing)}\n`, { mode: 0o600 });
  return { created };
}

/**
 * The factory-fresh cleanup of a unit that passed QA: plans from the listing taken at QA
 * start and what is there now, and carries the plan out (applyFactoryFreshPlan). Refuses
 * without a listing: planning against nothing would remove the preloaded stack.
 */
export async function cleanUpAfterQa(
  where: { dataDir: string; rootDir: string; fatDevice: string; log: Pick<Logger, 'info'>; checkpoint?: (point: string) => void | Promise<void> },
): Promise<FactoryFreshPlan> {
  const path = join(where.dataDir, SHIPPED_LISTING_PATH);
  const text = await readTextIfPresent(path);
  if (text === undefined) throw new Error(`${path} is missing, so what the unit held before QA is unknown and nothing was cleaned; flash the drive again`);
  let listing: z.infer<typeof shippedListingSchema>;
  try {
    listing = shippedListingSchema.parse(JSON.parse(text));
  } catch (err) {
    throw new Error(`${path} is not a listing this agent wrote (${(err as Error).message.split('\n')[0]}); nothing was cleaned; flash the drive again`);
  }
  const shipped = shippedFromBootListing(listing);
  const fat = await openFatVolume(where.fatDevice);
  const plan = planFactoryFreshCleanup({
    shippedData: shipped.data,
    presentData: await listTree(where.dataDir),
    shippedRoot: shipped.root,
    presentRoot: await listRootWrittenAtBoot(where.rootDir),
    presentFat: await fat.listRoot(),
  });
  where.log.info(
    { removeData: plan.removeData.map((r) => r.path), removeRoot: plan.removeRoot.map((r) => r.path), removeFat: plan.removeFat.map((r) => r.path), keep: plan.keep },
    'factory-fresh cleanup',
  );
  await applyFactoryFreshPlan(plan, { dataDir: where.dataDir, rootDir: where.rootDir, fat, checkpoint: where.checkpoint });
  return plan;
}

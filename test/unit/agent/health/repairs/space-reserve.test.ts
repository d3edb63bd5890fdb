import { readdir, stat } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { CheckResult, CheckStatus } from '../../../../../agent/health/checks/check.ts';
import { DEFAULT_RESERVE, createSpaceReserve } from '../../../../../agent/health/repairs/space-reserve.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

const disk = (status: CheckStatus): CheckResult[] => [{ check: 'data-disk-space', status, reason: 'data disk', metrics: [] }];

/** Tiny numbers so the test allocates a few megabytes, not 1 GiB of this machine's disk. */
const SMALL = { ...DEFAULT_RESERVE, fraction: 1e-5 };
const NOTHING = { share: 0, bytes: 0 };

describe('the space reserve', () => {
  it(`holds ${DEFAULT_RESERVE.fraction * 100} % of the partition, at most 1 GiB`, async () => {
    const dir = await tempDir('memu-reserve-');
    const reserve = createSpaceReserve({ dataDir: dir, keepFree: NOTHING });
    const s = await reserve.state();
    expect(s.wantedBytes).toBe(Math.min(Math.floor((s.sizeBytes * 0.01) / 4096) * 4096, 2 ** 30));
    expect(s.heldBytes).toBe(0);
  });

  it('is restored when the disk is ok and room stays free after it, as one whole allocated file', async () => {
    const dir = await tempDir('memu-reserve-');
    const reserve = createSpaceReserve({ dataDir: dir, numbers: SMALL, keepFree: NOTHING });
    const { restore, release } = reserve.repairs;
    expect(restore.answers(disk('ok'), {} as never)).toBe(true);
    expect(restore.answers(disk('degraded'), {} as never)).toBe(false);
    expect(release.answers(disk('ok'), {} as never)).toBe(false);
    expect(await restore.needed!(disk('ok'))).toBe(true);
    const outcome = await restore.run(disk('ok'));
    const s = await reserve.state();
    expect(outcome).toEqual({ ok: true, message: expect.stringMatching(/^The box set \d.* of the data disk aside \(.*\/\.reserve\) to give back if the disk fills up\.$/) });
    expect(s.heldBytes).toBeGreaterThanOrEqual(s.wantedBytes);
    expect((await stat(reserve.path)).size).toBe(s.wantedBytes);
    expect(await readdir(dir)).toEqual(['.reserve']);
    expect(await restore.needed!(disk('ok'))).toBe(false);
  });

  it('is not restored when doing so would leave less than the disk repair\'s target free', async () => {
    const dir = await tempDir('memu-reserve-');
    const reserve = createSpaceReserve({ dataDir: dir, numbers: SMALL, keepFree: { share: 1, bytes: Number.MAX_SAFE_INTEGER } });
    expect(await reserve.repairs.restore.needed!(disk('ok'))).toBe(false);
  });

  it('is released when the data disk is low and nearly full, and only then', async () => {
    const dir = await tempDir('memu-reserve-');
    const notFull = createSpaceReserve({ dataDir: dir, numbers: SMALL, keepFree: NOTHING });
    await notFull.create();
    expect(notFull.repairs.release.answers(disk('unhealthy'), {} as never)).toBe(true);
    // This machine's disk is far from full.
    expect(await notFull.repairs.release.needed!(disk('unhealthy'))).toBe(false);

    // The same file, judged with "nearly full" set above any free space.
    const full = createSpaceReserve({ dataDir: dir, numbers: { ...SMALL, nearlyFullFraction: 1, nearlyFullMaxBytes: Number.MAX_SAFE_INTEGER }, keepFree: NOTHING });
    expect(await full.repairs.release.needed!(disk('unhealthy'))).toBe(true);
    const held = (await full.state()).heldBytes;
    const outcome = await full.repairs.release.run(disk('unhealthy'));
    expect(outcome).toMatchObject({ ok: true, freedBytes: held });
    expect(outcome.message).toMatch(/^The data disk was nearly full, so the box gave back its .* reserve: .* free now, for the box's own records while the family makes room\.$/);
    expect(await readdir(dir)).toEqual([]);
    expect(await full.repairs.release.needed!(disk('unhealthy'))).toBe(false);
  });
});

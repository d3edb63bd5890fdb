import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, mkdir, mkdtemp, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { flashImage, type FlashResult } from '../../../../image/flash/index.ts';
import {
  attachLoop,
  compressImage,
  createBmap,
  detachLoop,
  fillWithPattern,
  kernelHasLoopDevices,
  makeSparseImage,
  readRange,
  sha256OfRange,
  type SparseImage,
} from '../../../helpers/flash-fixtures.ts';
import { commandResult, runMemu } from '../../../helpers/memu-build.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';

const execFileAsync = promisify(execFile);
const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;
const hasLoop = prerequisite('loop devices (losetup -f)', kernelHasLoopDevices());

let dir: string;
let image: SparseImage; // 256 MiB, ~15 % mapped in scattered extents, with bmap and .zst/.xz/.gz beside it
let imageSha: string;
let noBmapDir: string; // the same images without a bmap beside them
const loops: string[] = [];

async function sha256File(path: string, length?: number): Promise<string> {
  return sha256OfRange(path, 0, length ?? (await stat(path)).size);
}

/** Rejects with the MemuError flashImage throws, so tests can check its exit code and message. */
async function flashError(opts: Parameters<typeof flashImage>[0]): Promise<MemuError> {
  const err = await flashImage(opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'flashImage should have failed').toBeInstanceOf(MemuError);
  return err as MemuError;
}

async function expectMappedRangesEqual(target: string, img: SparseImage): Promise<void> {
  for (const x of img.extents) {
    expect(await sha256OfRange(target, x.start, x.length), `extent at byte ${x.start}`).toBe(await sha256OfRange(img.path, x.start, x.length));
  }
}

beforeAll(async () => {
  dir = await mkdtemp('/var/tmp/memu-flash-test-');
  image = await makeSparseImage(join(dir, 'memu.img'), { sizeBytes: 256 * MiB, mappedFraction: 0.15, seed: 42 });
  imageSha = await sha256File(image.path);
  await createBmap(image.path);
  await Promise.all((['zstd', 'xz', 'gzip'] as const).map((t) => compressImage(image.path, t)));
  noBmapDir = join(dir, 'no-bmap');
  await mkdir(noBmapDir);
  for (const name of ['memu.img', 'memu.img.zst', 'memu.img.xz', 'memu.img.gz']) await link(join(dir, name), join(noBmapDir, name));
}, 180_000);

afterAll(async () => {
  for (const l of loops) await detachLoop(l);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('flashing to a regular file', () => {
  for (const suffix of ['', '.zst', '.xz', '.gz']) {
    it(`writes ${suffix || 'a raw image'} by its bmap: the file equals the image and only mapped blocks were written`, async () => {
      const target = join(dir, `out-bmap${suffix || '.raw'}.img`);
      const result = await flashImage({ image: `${image.path}${suffix}`, target, log });
      expect(result).toMatchObject({ ok: true, verified: true, targetKind: 'file', bmap: `${image.path}.bmap`, mappedBytes: image.mappedBytes, bytesWritten: image.mappedBytes, imageSize: 256 * MiB });
      expect(await sha256File(target)).toBe(imageSha);
      // Holes were skipped, not written as zeros: the file stays sparse.
      const st = await stat(target);
      expect(st.size).toBe(256 * MiB);
      expect(st.blocks * 512).toBeLessThan(image.mappedBytes + 4 * MiB);
      await rm(target);
    });
  }

  for (const suffix of ['', '.zst', '.gz']) {
    it(`without a bmap writes every non-zero block of ${suffix || 'a raw image'} and verifies against the image`, async () => {
      const target = join(dir, `out-nobmap${suffix || '.raw'}.img`);
      const result = await flashImage({ image: join(noBmapDir, `memu.img${suffix}`), target, log });
      expect(result.bmap).toBeUndefined();
      expect(result.verified).toBe(true);
      expect(result.bytesWritten).toBe(image.mappedBytes);
      expect(await sha256File(target)).toBe(imageSha);
      expect((await stat(target)).blocks * 512).toBeLessThan(image.mappedBytes + 4 * MiB);
      await rm(target);
    });
  }

  it('takes the bmap from --bmap when it is not beside the image', async () => {
    const target = join(dir, 'out-explicit.img');
    const result = await flashImage({ image: join(noBmapDir, 'memu.img.zst'), bmap: `${image.path}.bmap`, target, log });
    expect(result.bytesWritten).toBe(image.mappedBytes);
    expect(await sha256File(target)).toBe(imageSha);
    await rm(target);
  });
  it('finds the bmap `memu build` writes beside its images (memu-<profile>-<version>.bmap)', async () => {
    const out = join(dir, 'build-out');
    await mkdir(out);
    await link(`${image.path}.zst`, join(out, 'memu-qemu-amd64-1.0.img.zst'));
    await link(`${image.path}.bmap`, join(out, 'memu-qemu-amd64-1.0.bmap'));
    const target = join(dir, 'out-build-names.img');
    const result = await flashImage({ image: join(out, 'memu-qemu-amd64-1.0.img.zst'), target, log });
    expect(result.bmap).toBe(join(out, 'memu-qemu-amd64-1.0.bmap'));
    expect(result.bytesWritten).toBe(image.mappedBytes);
    expect(await sha256File(target)).toBe(imageSha);
    await rm(target);
  });
});

describe('verification past the page cache', () => {
  // A compressed image is checked by digest, a raw one byte for byte against the image.
  for (const source of ['.zst', ''] as const) {
    it(`fails naming the byte offset when the target was changed after writing (${source ? 'compressed: by digest' : 'raw: against the image'})`, async () => {
      const target = join(dir, `out-corrupt${source}.img`);
      const badOffset = image.extents[3]!.start + 12345;
      const err = await flashError({
        image: `${image.path}${source}`,
        target,
        log,
        testHooks: {
          afterWrite: async (path) => {
            const fh = await open(path, 'r+');
            const byte = Buffer.alloc(1);
            await fh.read(byte, 0, 1, badOffset);
            byte[0] = byte[0]! ^ 0xff;
            await fh.write(byte, 0, 1, badOffset);
            await fh.close();
          },
        },
      });
      expect(err.exitCode).toBe(ExitCode.verifyFailed);
      expect(err.message).toContain(`at byte ${badOffset}`);
    });
  }

  it('with --no-verify reports success but says it did not verify (the same corruption goes unnoticed)', async () => {
    const target = join(dir, 'out-noverify.img');
    const badOffset = image.extents[3]!.start + 12345;
    const result = await flashImage({
      image: image.path,
      target,
      verify: false,
      log,
      testHooks: {
        afterWrite: async (path) => {
          const fh = await open(path, 'r+');
          await fh.write(Buffer.from([0x5a]), 0, 1, badOffset);
          await fh.close();
        },
      },
    });
    expect(result.verified).toBe(false);
    expect(result.verifySeconds).toBe(0);
    await rm(target);
  });
});

describe.skipIf(!hasLoop)('flashing to a loop block device', () => {
  let backing: string;
  let device: string;

  beforeAll(async () => {
    backing = join(dir, 'loop-backing.img');
    await writeFile(backing, '');
    await truncate(backing, 300 * MiB);
    device = await attachLoop(backing);
    loops.push(device);
  });

  for (const suffix of ['', '.zst', '.xz']) {
    it(`writes only the mapped ranges of ${suffix || 'a raw image'}: the unmapped bytes keep their old content`, async () => {
      await fillWithPattern(backing, 300 * MiB);
      const result: FlashResult = await flashImage({ image: `${image.path}${suffix}`, target: device, yes: true, log });
      expect(result).toMatchObject({ ok: true, targetKind: 'block', verified: true, bytesWritten: image.mappedBytes });
      expect(result.direct).toBe(true);
      expect(result.verifiedDirect).toBe(true);
      await expectMappedRangesEqual(device, image);
      // A gap between two mapped extents still holds the pattern: holes were not written.
      const gapStart = image.extents[5]!.start + image.extents[5]!.length;
      const gap = await readRange(device, gapStart, 64);
      expect(gap.toString()).toMatch(/MEMU-UNTOUCHED-/);
      // Past the image's end the device is untouched too.
      expect((await readRange(device, 256 * MiB + 4096, 64)).toString()).toMatch(/MEMU-UNTOUCHED-/);
    });
  }

  it('without a bmap skips the zero blocks of a .gz image', async () => {
    await fillWithPattern(backing, 300 * MiB);
    const result = await flashImage({ image: join(noBmapDir, 'memu.img.gz'), target: device, yes: true, log });
    expect(result.bytesWritten).toBe(image.mappedBytes);
    await expectMappedRangesEqual(device, image);
    const gapStart = image.extents[5]!.start + image.extents[5]!.length;
    expect((await readRange(device, gapStart, 64)).toString()).toMatch(/MEMU-UNTOUCHED-/);
  });

  for (const direct of [true, false]) {
    it(`catches a change the page cache hides (${direct ? 'O_DIRECT read-back' : '--no-direct: buffered read-back after dropping the cache'})`, async () => {
      const badOffset = image.extents[2]!.start + 4096 * 3 + 7;
      let cachedLooksRight = false;
      // Held open through verification: the kernel drops a block device's cache on its last close.
      let holder: Awaited<ReturnType<typeof open>> | undefined;
      try {
        const err = await flashError({
          image: image.path,
          target: device,
          yes: true,
          direct,
          log,
          testHooks: {
            afterWrite: async (path) => {
              holder = await open(path, 'r');
              // Fill the device's page cache with the correct bytes...
              const before = Buffer.alloc(4096);
              await holder.read(before, 0, 4096, badOffset - 7);
              // ...then change the medium behind it (the loop device's backing file).
              const fh = await open(backing, 'r+');
              await fh.write(Buffer.from([before[7]! ^ 0xff]), 0, 1, badOffset);
              await fh.sync();
              await fh.close();
              // A naive read-back through the cache still sees the image's data.
              const again = Buffer.alloc(4096);
              await holder.read(again, 0, 4096, badOffset - 7);
              cachedLooksRight = again.equals(before);
            },
          },
        });
        expect(cachedLooksRight).toBe(true);
        expect(err.exitCode).toBe(ExitCode.verifyFailed);
        expect(err.message).toContain(`at byte ${badOffset}`);
      } finally {
        await holder?.close();
      }
    });
  }
});

describe('bad input is refused with a clear error and exit code 2', () => {
  let small: SparseImage;
  let other: SparseImage;
  let target: string;

  beforeAll(async () => {
    const d = join(dir, 'bad');
    await mkdir(d);
    small = await makeSparseImage(join(d, 'small.img'), { sizeBytes: 16 * MiB, mappedFraction: 0.5, seed: 7 });
    other = await makeSparseImage(join(d, 'other.img'), { sizeBytes: 16 * MiB, mappedFraction: 0.5, seed: 7 });
    // Same layout (same seed), different random data: its bmap has the same ranges, other checksums.
    await createBmap(small.path);
    await createBmap(other.path);
    await compressImage(small.path, 'zstd');
    await compressImage(small.path, 'xz');
    await compressImage(small.path, 'gzip');
    target = join(d, 'target.img');
  });

  it('a truncated .zst', async () => {
    const zst = await readFile(`${small.path}.zst`);
    const cut = join(dir, 'bad', 'cut.img.zst');
    await writeFile(cut, zst.subarray(0, Math.floor(zst.length / 2)));
    const err = await flashError({ image: cut, bmap: `${small.path}.bmap`, target, log });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/truncated or corrupt/);
  });

  it('a truncated .xz without a bmap', async () => {
    const xz = await readFile(`${small.path}.xz`);
    const cut = join(dir, 'bad', 'cut.img.xz');
    await writeFile(cut, xz.subarray(0, Math.floor(xz.length * 0.7)));
    const err = await flashError({ image: cut, target, log });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/truncated or corrupt/);
  });

  it('a corrupt .gz (bytes flipped in the middle)', async () => {
    const gz = Buffer.from(await readFile(`${small.path}.gz`));
    for (let i = 0; i < 64; i++) gz.writeUInt8(gz.readUInt8(Math.floor(gz.length / 2) + i) ^ 0x55, Math.floor(gz.length / 2) + i);
    const bad = join(dir, 'bad', 'flipped.img.gz');
    await writeFile(bad, gz);
    const err = await flashError({ image: bad, bmap: `${small.path}.bmap`, target, log });
    expect(err.exitCode).toBe(ExitCode.badInput);
  });

  it('a bmap from another image (checksums differ), naming the range', async () => {
    const err = await flashError({ image: small.path, bmap: `${other.path}.bmap`, target, log });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/does not match the image: blocks \d+-\d+ \(bytes \d+-\d+\) hash to/);
  });

  it('a bmap for an image of another size (raw and compressed)', async () => {
    const big = await makeSparseImage(join(dir, 'bad', 'big.img'), { sizeBytes: 20 * MiB, mappedFraction: 0.2, seed: 9 });
    await createBmap(big.path);
    const raw = await flashError({ image: small.path, bmap: `${big.path}.bmap`, target, log });
    expect(raw.exitCode).toBe(ExitCode.badInput);
    expect(raw.message).toMatch(/the image is 16777216 bytes, the bmap says 20971520/);
    const zst = await flashError({ image: `${small.path}.zst`, bmap: `${big.path}.bmap`, target, log });
    expect(zst.exitCode).toBe(ExitCode.badInput);
    expect(zst.message).toMatch(/does not match the image/);
  });

  it('a bmap edited after bmaptool wrote it', async () => {
    const text = await readFile(`${small.path}.bmap`, 'utf8');
    const edited = join(dir, 'bad', 'edited.bmap');
    await writeFile(edited, text.replace(/<Range chksum="([0-9a-f]+)">/, (_m, hex: string) => `<Range chksum="${createHash('sha256').update(hex).digest('hex')}">`));
    const err = await flashError({ image: small.path, bmap: edited, target, log });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/own checksum does not match/);
  });

  it('a bmap for another size is caught before writing when the .zst declares its size (zstd FILE), after writing when it does not (zstd < FILE)', async () => {
    const big = await makeSparseImage(join(dir, 'bad', 'big2.img'), { sizeBytes: 20 * MiB, mappedFraction: 0.2, seed: 9 });
    await createBmap(big.path);
    const declared = join(dir, 'bad', 'declared.img.zst');
    const undeclared = join(dir, 'bad', 'undeclared.img.zst');
    await execFileAsync('zstd', ['-q', '-f', small.path, '-o', declared]);
    await execFileAsync('sh', ['-c', `zstd -q -c < '${small.path}' > '${undeclared}'`]);

    const early = join(dir, 'bad', 'not-written.img');
    const before = await flashError({ image: declared, bmap: `${big.path}.bmap`, target: early, log });
    expect(before.exitCode).toBe(ExitCode.badInput);
    expect(before.message).toBe(`the bmap ${big.path}.bmap does not match the image: the image's zstd header says it decompresses to ${16 * MiB} bytes, the bmap says ${20 * MiB}`);
    expect(existsSync(early), 'nothing may be written before the sizes agree').toBe(false);

    const late = join(dir, 'bad', 'written-then-caught.img');
    const after = await flashError({ image: undeclared, bmap: `${big.path}.bmap`, target: late, log });
    expect(after.exitCode).toBe(ExitCode.badInput);
    expect(after.message).toMatch(/^the bmap .* does not match the image: /);
    expect(existsSync(late)).toBe(true);
  });

  it('a raw image named .zst, and a missing image', async () => {
    const fake = join(dir, 'bad', 'fake.img.zst');
    await link(small.path, fake);
    expect((await flashError({ image: fake, target, log })).message).toMatch(/named like a zstd file/);
    const missing = await flashError({ image: join(dir, 'nope.img'), target, log });
    expect(missing.exitCode).toBe(ExitCode.badInput);
    expect(missing.message).toBe(`there is no image ${join(dir, 'nope.img')}`);
  });

  it('an empty image: a 0-byte file (also one named .zst, as a failed download leaves it), or a .zst of nothing; the target is not created', async () => {
    const empty = join(dir, 'bad', 'empty.img');
    await writeFile(empty, '');
    const emptyTarget = join(dir, 'bad', 'from-empty.img');
    const raw = await flashError({ image: empty, target: emptyTarget, log });
    expect(raw.exitCode).toBe(ExitCode.badInput);
    expect(raw.message).toBe(`the image ${empty} is empty: it holds 0 bytes of disk image`);
    const download = join(dir, 'bad', 'download.img.zst');
    await writeFile(download, '');
    expect((await flashError({ image: download, target: emptyTarget, log })).message).toBe(`the image ${download} is empty: it holds 0 bytes of disk image`);
    await execFileAsync('zstd', ['-q', '-f', empty, '-o', `${empty}.zst`]);
    const zst = await flashError({ image: `${empty}.zst`, target: emptyTarget, log });
    expect(zst.exitCode).toBe(ExitCode.badInput);
    expect(zst.message).toBe(`the image ${empty}.zst is empty: it holds 0 bytes of disk image`);
    expect(existsSync(emptyTarget)).toBe(false);
  });

  it('an image that is a directory (naming the images inside), a pipe or a device', async () => {
    const outDir = join(dir, 'bad', 'out-dir');
    await mkdir(outDir);
    await link(small.path, join(outDir, 'memu-qemu-amd64-1.0.img'));
    const directory = await flashError({ image: outDir, target, log });
    expect(directory.exitCode).toBe(ExitCode.badInput);
    expect(directory.message).toBe(`the image ${outDir} is a directory, not an image file`);
    expect(directory.hint).toContain(join(outDir, 'memu-qemu-amd64-1.0.img'));
    const fifo = join(dir, 'bad', 'stream.img');
    await execFileAsync('mkfifo', [fifo]);
    const pipe = await flashError({ image: fifo, target, log });
    expect(pipe.exitCode).toBe(ExitCode.badInput);
    expect(pipe.message).toBe(`the image ${fifo} is a pipe, not an image file`);
    expect((await flashError({ image: '/dev/null', target, log })).message).toMatch(/is a character device, not an image file/);
  });

  it('a target in a directory that does not exist: exit 2 naming the directory, nothing created', async () => {
    const missingDir = join(dir, 'bad', 'no-such-dir', 'deeper');
    const err = await flashError({ image: small.path, target: join(missingDir, 'out.img'), log });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toBe(`the directory ${missingDir} does not exist, so the target file ${join(missingDir, 'out.img')} cannot be created there`);
    expect(err.hint).toContain(`mkdir -p ${missingDir}`);
    expect(existsSync(join(dir, 'bad', 'no-such-dir'))).toBe(false);
    const run = await runMemu(['--json', 'flash', small.path, join(missingDir, 'out.img')]);
    expect(run.code).toBe(ExitCode.badInput);
    expect(commandResult(run)).toMatchObject({ command: 'flash', ok: false, exitCode: ExitCode.badInput, error: err.message });
  });
});

describe('write errors', () => {
  it('a full filesystem is a write error naming the offset, not a success', async () => {
    const mnt = await mkdtemp('/var/tmp/memu-flash-full-');
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    try {
      const img = await makeSparseImage(join(dir, 'tenmeg.img'), { sizeBytes: 16 * MiB, mappedFraction: 0.6, seed: 3 });
      const err = await flashError({ image: img.path, target: join(mnt, 'out.img'), log });
      expect(err.exitCode).toBe(ExitCode.writeError);
      expect(err.message).toMatch(/writing .* failed at byte \d+/);
      expect(err.hint).toMatch(/free space/);
    } finally {
      await execFileAsync('umount', [mnt]).catch(() => {});
      await rm(mnt, { recursive: true, force: true });
    }
  });
});

import { read, write } from 'node:fs';
import { promisify } from 'node:util';

const preadAsync = promisify(read);
const pwriteAsync = promisify(write);

/**
 * O_DIRECT needs buffers whose memory address is aligned to the device's
 * logical block size. Node cannot allocate aligned memory or show an address,
 * so one slab holding every buffer is over-allocated and the aligned window
 * inside it is found by probing: a small O_DIRECT read fails with EINVAL until
 * the window starts on an aligned address. The buffers are then cut from the
 * window at multiples of the alignment, so one probe (at most 256 cheap failing
 * syscalls) serves them all.
 */
export const directAlignment = 4096;

export interface IoBuffer {
  /** `size` bytes, usable for O_DIRECT on the fd it was probed with when `direct`. */
  view: Buffer;
  direct: boolean;
}

/**
 * How to probe: block devices check alignment on every direct read, but a
 * filesystem may answer a read of a hole without looking at the buffer, so
 * regular files are probed by writing zeros to their first block (the file is
 * the flash target, freshly truncated, so that block already reads as zeros).
 */
export type ProbeMode = 'read' | 'write-zeros';

/** Finds the aligned window of `raw` for O_DIRECT on `directFd`; undefined if none works. */
async function probeAlignedOffset(raw: Buffer, directFd: number, mode: ProbeMode, position: number): Promise<number | undefined> {
  raw.fill(0, 0, 2 * directAlignment);
  // glibc hands out 16-byte-aligned memory, so aligned windows are 16 bytes apart.
  for (let offset = 0; offset < directAlignment; offset += 16) {
    try {
      if (mode === 'read') await preadAsync(directFd, raw, offset, directAlignment, position);
      else await pwriteAsync(directFd, raw, offset, directAlignment, 0);
      return offset;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return undefined;
    }
  }
  return undefined;
}

/**
 * Allocates `count` buffers of `size` bytes (a multiple of the alignment). With
 * `direct` each buffer is aligned for O_DIRECT on it; if alignment cannot be found
 * the buffers are plain and `direct` is false (callers then use buffered I/O).
 */
export async function allocateIoBuffers(count: number, size: number, direct?: { fd: number; probe: ProbeMode; position?: number }): Promise<IoBuffer[]> {
  if (size % directAlignment !== 0) throw new Error(`I/O buffers must be a multiple of ${directAlignment} bytes, not ${size}`);
  // Shared memory, so the background hasher can read the buffers without a copy.
  const slab = Buffer.from(new SharedArrayBuffer(count * size + directAlignment));
  const offset = direct === undefined ? undefined : await probeAlignedOffset(slab, direct.fd, direct.probe, direct.position ?? 0);
  return Array.from({ length: count }, (_, i) => {
    const start = (offset ?? 0) + i * size;
    return { view: slab.subarray(start, start + size), direct: offset !== undefined };
  });
}

/** A fixed set of buffers handed out in turn; waiting callers resume as buffers come back. */
export class BufferPool {
  private readonly free: IoBuffer[];
  private readonly waiting: Array<(b: IoBuffer) => void> = [];

  constructor(buffers: IoBuffer[]) {
    this.free = [...buffers];
  }

  acquire(): Promise<IoBuffer> {
    const b = this.free.pop();
    if (b) return Promise.resolve(b);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(b: IoBuffer): void {
    const next = this.waiting.shift();
    if (next) next(b);
    else this.free.push(b);
  }
}

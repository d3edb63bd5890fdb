/**
 * A half-written drive must never pass for a good one. Before any of the image is
 * written, the target's partition tables are zeroed and synced: the protective MBR and
 * primary GPT in its first MiB, the backup GPT in its last MiB, and the place the
 * image's own backup GPT goes. The image's partition-table regions are held back and
 * written only once everything else is on the medium (after a sync). A flash stopped
 * at any point (Ctrl-C, a crash, kill -9, a pulled cable) leaves a drive with no
 * partition table: firmware does not boot it and tools show it as empty.
 *
 * 1 MiB covers every layout: GPT with 4 KiB sectors and a large entry array needs
 * under 100 KiB, and partitions start at 1 MiB (README, "Layout"), so the first MiB
 * holds nothing else.
 */
export const partitionTableRegionBytes = 1 << 20;

export interface ByteRange {
  start: number;
  length: number;
}

/** A write of `length` bytes from `bufferOffset` of a buffer to `position` on the target. */
export interface WritePiece {
  bufferOffset: number;
  length: number;
  position: number;
}

function merged(ranges: ByteRange[]): ByteRange[] {
  const sorted = ranges.filter((r) => r.length > 0).sort((a, b) => a.start - b.start);
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && r.start <= last.start + last.length) last.length = Math.max(last.length, r.start + r.length - last.start);
    else out.push({ ...r });
  }
  return out;
}

/** The image's ranges written last: its first MiB and, when its size is known, its last MiB. */
export function heldBackRanges(imageSize: number | undefined): ByteRange[] {
  if (imageSize === undefined) return [{ start: 0, length: partitionTableRegionBytes }];
  const head = Math.min(partitionTableRegionBytes, imageSize);
  const tailStart = Math.max(head, imageSize - partitionTableRegionBytes);
  return merged([
    { start: 0, length: head },
    { start: tailStart, length: imageSize - tailStart },
  ]);
}

/** The target's ranges zeroed before writing: its first and last MiB, and the image's last MiB. */
export function rangesToClear(targetSize: number, imageSize: number | undefined): ByteRange[] {
  const region = (start: number): ByteRange => {
    const from = Math.max(0, Math.min(start, targetSize));
    return { start: from, length: Math.min(partitionTableRegionBytes, targetSize - from) };
  };
  return merged([region(0), region(targetSize - partitionTableRegionBytes), ...(imageSize !== undefined ? [region(imageSize - partitionTableRegionBytes)] : [])]);
}

/**
 * Keeps the bytes meant for the held-back ranges aside while the rest is written,
 * so they can be written last. Holds at most the ranges' size in memory (2 MiB).
 */
export class HeldBackWrites {
  private readonly held: Array<{ range: ByteRange; data: Buffer; written: ByteRange[] }>;

  constructor(ranges: ByteRange[]) {
    this.held = ranges.map((range) => ({ range, data: Buffer.alloc(0), written: [] }));
  }

  /** The parts of `pieces` outside the held-back ranges; the parts inside are copied aside. */
  divert(view: Buffer, pieces: WritePiece[]): WritePiece[] {
    let out = pieces;
    for (const h of this.held) {
      const { start, length } = h.range;
      const end = start + length;
      if (!out.some((p) => p.position < end && p.position + p.length > start)) continue;
      const next: WritePiece[] = [];
      for (const p of out) {
        const pEnd = p.position + p.length;
        if (p.position >= end || pEnd <= start) {
          next.push(p);
          continue;
        }
        const from = Math.max(p.position, start);
        const to = Math.min(pEnd, end);
        if (h.data.length === 0) h.data = Buffer.alloc(length);
        view.copy(h.data, from - start, p.bufferOffset + (from - p.position), p.bufferOffset + (to - p.position));
        h.written.push({ start: from, length: to - from });
        if (p.position < from) next.push({ bufferOffset: p.bufferOffset, length: from - p.position, position: p.position });
        if (to < pEnd) next.push({ bufferOffset: p.bufferOffset + (to - p.position), length: pEnd - to, position: to });
      }
      out = next;
    }
    return out;
  }

  /** What was held back, as buffers to write at their positions. */
  takeHeld(): Array<{ data: Buffer; position: number }> {
    const out = this.held.flatMap((h) => merged(h.written).map((w) => ({ data: h.data.subarray(w.start - h.range.start, w.start - h.range.start + w.length), position: w.start })));
    for (const h of this.held) h.written = [];
    return out;
  }
}

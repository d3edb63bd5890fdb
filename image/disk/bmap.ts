import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/**
 * Reader for the block map files written by `bmaptool create` (format 1.2–2.0):
 * which blocks of an image hold data, with a checksum per range, so a flasher
 * writes only those and can prove it wrote them right.
 */

export type BmapChecksumType = 'sha256' | 'sha1';

/** One mapped range: blocks `firstBlock..lastBlock` inclusive, as in the file. */
export interface BmapRange {
  firstBlock: number;
  lastBlock: number;
  /** Byte offset of the range in the image. */
  start: number;
  /** Length in bytes (the image's last block may be partial). */
  length: number;
  /** Hex digest of the range's bytes, when the bmap carries one. */
  checksum?: string;
}

export interface Bmap {
  version: string;
  imageSize: number;
  blockSize: number;
  blocksCount: number;
  mappedBlocksCount: number;
  /** Sum of the ranges' byte lengths. */
  mappedBytes: number;
  checksumType?: BmapChecksumType;
  ranges: BmapRange[];
}

/** A bmap file that cannot be used; the message says what is wrong with it. */
export class BmapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BmapError';
  }
}

function textOf(xml: string, tag: string, required: true): string;
function textOf(xml: string, tag: string, required: false): string | undefined;
function textOf(xml: string, tag: string, required: boolean): string | undefined {
  const matches = [...xml.matchAll(new RegExp(`<${tag}\\s*>([^<]*)</${tag}\\s*>`, 'g'))];
  if (matches.length > 1) throw new BmapError(`<${tag}> appears ${matches.length} times`);
  const value = matches[0]?.[1]?.trim();
  if (value === undefined && required) throw new BmapError(`<${tag}> is missing`);
  return value;
}

function integerOf(xml: string, tag: string): number {
  const text = textOf(xml, tag, true);
  if (!/^\d+$/.test(text)) throw new BmapError(`<${tag}> is not a whole number: "${text}"`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new BmapError(`<${tag}> is too large: ${text}`);
  return n;
}

/**
 * Checks the file's own checksum: the digest of the file with the checksum's
 * value replaced by ASCII zeros, which is how bmaptool computes it.
 */
function checkFileChecksum(xml: string, tag: string, algorithm: BmapChecksumType): void {
  const declared = textOf(xml, tag, false);
  if (declared === undefined) return;
  const zeroed = xml.replace(new RegExp(`(<${tag}\\s*>\\s*)([0-9a-fA-F]+)`), (_m, open: string, hex: string) => open + '0'.repeat(hex.length));
  const actual = createHash(algorithm).update(zeroed).digest('hex');
  if (actual !== declared.toLowerCase()) {
    throw new BmapError(`its own checksum does not match (${tag} says ${declared}, content hashes to ${actual}): the file was altered or damaged`);
  }
}

/** Parses and validates a bmap document. Throws BmapError naming the problem. */
export function parseBmap(xml: string): Bmap {
  const body = xml.replace(/<!--[\s\S]*?-->/g, '');
  const root = /<bmap\s+version\s*=\s*"([^"]+)"\s*>/.exec(body);
  if (!root?.[1]) throw new BmapError('no <bmap version="..."> element: this is not a bmap file');
  const version = root[1];
  const major = Number(version.split('.')[0]);
  const minor = Number(version.split('.')[1] ?? 0);
  if (!(major === 1 || major === 2)) throw new BmapError(`format version ${version} is not supported (1.x and 2.x are)`);

  const imageSize = integerOf(body, 'ImageSize');
  const blockSize = integerOf(body, 'BlockSize');
  const blocksCount = integerOf(body, 'BlocksCount');
  const mappedBlocksCount = integerOf(body, 'MappedBlocksCount');
  if (blockSize === 0) throw new BmapError('<BlockSize> is 0');
  if (blocksCount !== Math.ceil(imageSize / blockSize)) {
    throw new BmapError(`<BlocksCount> ${blocksCount} does not fit <ImageSize> ${imageSize} with <BlockSize> ${blockSize}`);
  }

  // Formats before 1.4 always used SHA-1 (attribute "sha1" in 1.2, "chksum" in 1.3).
  let checksumType: BmapChecksumType | undefined;
  const declaredType = textOf(body, 'ChecksumType', false);
  if (declaredType !== undefined) {
    if (declaredType !== 'sha256' && declaredType !== 'sha1') throw new BmapError(`<ChecksumType> ${declaredType} is not supported (sha256 and sha1 are)`);
    checksumType = declaredType;
  } else if (major === 1 && minor < 4) {
    checksumType = 'sha1';
  }
  if (checksumType) {
    // The self-checksum covers the original text, comments included.
    checkFileChecksum(xml, 'BmapFileChecksum', checksumType);
    if (major === 1 && minor === 3) checkFileChecksum(xml, 'BmapFileSHA1', 'sha1');
  }

  const blockMap = /<BlockMap\s*>([\s\S]*?)<\/BlockMap\s*>/.exec(body);
  if (!blockMap) throw new BmapError('<BlockMap> is missing');
  const ranges: BmapRange[] = [];
  const leftover = blockMap[1]!.replace(/<Range\b([^>]*)>([^<]*)<\/Range\s*>/g, (_m, attrs: string, text: string) => {
    const span = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
    if (!span) throw new BmapError(`a <Range> is not "first-last" or "block": "${text.trim()}"`);
    const firstBlock = Number(span[1]);
    const lastBlock = span[2] === undefined ? firstBlock : Number(span[2]);
    const digest = /\b(?:chksum|sha1)\s*=\s*"([0-9a-fA-F]*)"/.exec(attrs)?.[1]?.toLowerCase();
    if (lastBlock < firstBlock) throw new BmapError(`range ${firstBlock}-${lastBlock} ends before it starts`);
    if (lastBlock >= blocksCount) throw new BmapError(`range ${firstBlock}-${lastBlock} lies beyond the image's ${blocksCount} blocks`);
    const previous = ranges.at(-1);
    if (previous && firstBlock <= previous.lastBlock) {
      throw new BmapError(`range ${firstBlock}-${lastBlock} overlaps or precedes range ${previous.firstBlock}-${previous.lastBlock}`);
    }
    if (checksumType && digest !== undefined) {
      const expectedLength = checksumType === 'sha256' ? 64 : 40;
      if (digest.length !== expectedLength) throw new BmapError(`range ${firstBlock}-${lastBlock} has a ${digest.length}-digit checksum; ${checksumType} needs ${expectedLength}`);
    }
    const start = firstBlock * blockSize;
    const end = Math.min((lastBlock + 1) * blockSize, imageSize);
    ranges.push({ firstBlock, lastBlock, start, length: end - start, ...(digest ? { checksum: digest } : {}) });
    return '';
  });
  if (leftover.trim() !== '') throw new BmapError(`<BlockMap> holds something other than <Range> elements: "${leftover.trim().slice(0, 60)}"`);

  const counted = ranges.reduce((n, r) => n + (r.lastBlock - r.firstBlock + 1), 0);
  if (counted !== mappedBlocksCount) {
    throw new BmapError(`<MappedBlocksCount> says ${mappedBlocksCount} blocks but the ranges hold ${counted}`);
  }
  return {
    version,
    imageSize,
    blockSize,
    blocksCount,
    mappedBlocksCount,
    mappedBytes: ranges.reduce((n, r) => n + r.length, 0),
    ...(checksumType ? { checksumType } : {}),
    ranges,
  };
}

/** Reads and parses a bmap file; errors name the file. */
export async function readBmapFile(path: string): Promise<Bmap> {
  let xml: string;
  try {
    xml = await readFile(path, 'utf8');
  } catch (err) {
    throw new BmapError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    return parseBmap(xml);
  } catch (err) {
    if (err instanceof BmapError) throw new BmapError(`${path}: ${err.message}`);
    throw err;
  }
}

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SYSTEMD_BOOT_FILES, isBootSlot, type BootSlot } from '../../shared/contracts/boot-slots.ts';
import { ignoreNotFound } from '../../shared/errors.ts';

/**
 * Memu's Boot Loader Specification entries on the ESP, and the order systemd-boot puts
 * them in, for the entries Memu writes: entries with no tries left last, then entries
 * with a `sort-key` before those without, by sort-key (ascending), version and file name
 * (both descending, newest first), more tries left first. The `default` pattern of
 * loader.conf picks the first entry in that order that it matches.
 */
export interface LoaderEntry {
  /** The file name as it is on the ESP. */
  fileName: string;
  /** systemd-boot's id of the entry: the file name, lower case, counter included. */
  id: string;
  slot: BootSlot;
  /** The boot counter: tries left and tries done; absent when the entry is not counted (good). */
  counter?: { left: number; done: number };
  sortKey?: string;
  version?: string;
}

const ENTRY_NAME = /^memu-([a-z])(?:\+(\d+)(?:-(\d+))?)?\.conf$/i;

export async function readLoaderEntries(espDir: string): Promise<LoaderEntry[]> {
  const dir = join(espDir, SYSTEMD_BOOT_FILES.entriesDir);
  const names = (await readdir(dir).catch(ignoreNotFound)) ?? [];
  const entries: LoaderEntry[] = [];
  for (const fileName of names.sort()) {
    const m = ENTRY_NAME.exec(fileName);
    const slot = m?.[1]?.toLowerCase();
    if (!m || !slot || !isBootSlot(slot)) continue;
    const text = await readFile(join(dir, fileName), 'utf8');
    entries.push({
      fileName,
      id: fileName.toLowerCase(),
      slot,
      ...(m[2] !== undefined ? { counter: { left: Number(m[2]), done: Number(m[3] ?? 0) } } : {}),
      ...entryFields(text),
    });
  }
  return entries;
}

function entryFields(text: string): { sortKey?: string; version?: string } {
  const fields: { sortKey?: string; version?: string } = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(sort-key|version)\s+(.+?)\s*$/.exec(line);
    if (m?.[1] === 'sort-key') fields.sortKey = m[2];
    if (m?.[1] === 'version') fields.version = m[2];
  }
  return fields;
}

const versionOrder = (a: string | undefined, b: string | undefined) => (a ?? '').localeCompare(b ?? '', 'en', { numeric: true });

/** Negative when `a` boots before `b`. */
export function compareBootOrder(a: LoaderEntry, b: LoaderEntry): number {
  const bad = (e: LoaderEntry) => (e.counter?.left === 0 ? 1 : 0);
  if (bad(a) !== bad(b)) return bad(a) - bad(b);
  if (!a.sortKey !== !b.sortKey) return a.sortKey ? -1 : 1;
  if (a.sortKey && b.sortKey) {
    if (a.sortKey !== b.sortKey) return a.sortKey < b.sortKey ? -1 : 1;
    const byVersion = -versionOrder(a.version, b.version);
    if (byVersion !== 0) return byVersion;
  }
  const byId = -versionOrder(a.id, b.id);
  if (byId !== 0 || !a.counter || !b.counter) return byId;
  if (a.counter.left !== b.counter.left) return b.counter.left - a.counter.left;
  return a.counter.done - b.counter.done;
}

/** loader.conf's `default` pattern (lower case, as systemd-boot compares it), if it has one. */
export function defaultPattern(loaderConf: string): string | undefined {
  let pattern: string | undefined;
  for (const line of loaderConf.split('\n')) {
    const m = /^\s*default\s+(\S+)\s*$/.exec(line);
    if (m) pattern = m[1]!.toLowerCase();
  }
  return pattern;
}

/** A glob with `*` and `?`, matched against the whole id. */
export function globMatches(pattern: string, id: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*').replaceAll('?', '.')}$`);
  return re.test(id);
}

/** The entry systemd-boot starts next: the first in boot order that the default pattern matches (the first of all without one). */
export function nextBootEntry(entries: LoaderEntry[], pattern: string | undefined): LoaderEntry | undefined {
  const ordered = [...entries].sort(compareBootOrder);
  if (pattern) {
    const matched = ordered.find((e) => globMatches(pattern, e.id));
    if (matched) return matched;
  }
  return ordered[0];
}

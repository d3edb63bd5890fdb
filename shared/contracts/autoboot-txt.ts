/**
 * `autoboot.txt` on the Raspberry Pi's bootconfig partition, kept line by line so that a
 * rewrite changes only the settings Memu sets: other keys, comments, sections Memu does
 * not know and CRLF line breaks stay as written. Sections are the firmware's conditional
 * filters (`[all]`, `[tryboot]`, `[none]`); lines before the first header count as `[all]`.
 *
 * Both programs use it: `memu build` writes the file the image ships, the agent's tryboot
 * slots (agent/boot-slots/) read and rewrite it on the device.
 */
export type AutobootLine =
  | { kind: 'header'; text: string; filter: string }
  | { kind: 'setting'; text: string; key: string; value: string }
  | { kind: 'comment' | 'blank'; text: string };

/** autoboot.txt is malformed, or says something whose effect the firmware does not document. */
export class AutobootTxtError extends Error {
  override name = 'AutobootTxtError';
}

export interface AutobootTxt {
  lines: readonly AutobootLine[];
  lineBreak: '\n' | '\r\n';
  endsWithLineBreak: boolean;
}

/** The firmware reads no more of autoboot.txt than this. */
export const AUTOBOOT_TXT_MAX_BYTES = 512;
/** The filters Raspberry Pi documents for autoboot.txt; what another one does there is not documented. */
const DOCUMENTED_FILTERS = ['all', 'none', 'tryboot'];

export function parseAutobootTxt(text: string): AutobootTxt {
  const rows = text.split(/\r?\n/);
  const endsWithLineBreak = text === '' || /\n$/.test(text);
  if (endsWithLineBreak) rows.pop();
  const lines = rows.map((row, i): AutobootLine => {
    const trimmed = row.trim();
    if (trimmed === '') return { kind: 'blank', text: row };
    if (trimmed.startsWith('#')) return { kind: 'comment', text: row };
    const header = /^\[([^\][\s]+)\]$/.exec(trimmed);
    if (header) return { kind: 'header', text: row, filter: header[1]! };
    const setting = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(trimmed);
    if (setting) return { kind: 'setting', text: row, key: setting[1]!, value: setting[2]! };
    throw new AutobootTxtError(`autoboot.txt line ${i + 1}: "${trimmed}" is neither a [section], a key=value setting nor a # comment`);
  });
  return { lines, lineBreak: text.includes('\r\n') ? '\r\n' : '\n', endsWithLineBreak };
}

export function renderAutobootTxt(doc: AutobootTxt): string {
  if (doc.lines.length === 0) return '';
  return doc.lines.map((l) => l.text).join(doc.lineBreak) + (doc.endsWithLineBreak ? doc.lineBreak : '');
}

/** The filter each line is under (a header is under its own). */
function filtersOf(doc: AutobootTxt): string[] {
  let filter = 'all';
  return doc.lines.map((l) => (l.kind === 'header' ? (filter = l.filter) : filter));
}

export interface FoundSetting {
  value: string;
  /** 1-based, in the text `renderAutobootTxt` gives for this document. */
  line: number;
}

/** The value a section sets for `key` (the last one wins, as in config.txt), wherever the section's lines are. */
export function sectionSetting(doc: AutobootTxt, section: string, key: string): FoundSetting | undefined {
  const filters = filtersOf(doc);
  let found: FoundSetting | undefined;
  doc.lines.forEach((l, i) => {
    if (l.kind === 'setting' && l.key === key && filters[i] === section) found = { value: l.value, line: i + 1 };
  });
  return found;
}

/**
 * The value of `key` the firmware applies: settings before any header and under `[all]`
 * always, under `[tryboot]` only with the tryboot flag, under `[none]` never; a later one
 * overrides an earlier one. A setting under another filter makes the answer unknown.
 */
export function appliedSetting(doc: AutobootTxt, key: string, opts: { tryboot: boolean }): FoundSetting | undefined {
  const filters = filtersOf(doc);
  let found: FoundSetting | undefined;
  doc.lines.forEach((l, i) => {
    if (l.kind !== 'setting' || l.key !== key) return;
    const filter = filters[i]!;
    if (!DOCUMENTED_FILTERS.includes(filter)) {
      throw new AutobootTxtError(`autoboot.txt line ${i + 1}: ${key} is set under [${filter}], a filter autoboot.txt does not document ([all], [none], [tryboot]), so what the firmware applies is unknown`);
    }
    if (filter === 'all' || (filter === 'tryboot' && opts.tryboot)) found = { value: l.value, line: i + 1 };
  });
  return found;
}

/**
 * Sets `key=value` in a section: replaces the setting that wins there, else adds one to the
 * section's last block, else adds the section (`all` at the top, where no filter is
 * active yet; any other at the end).
 */
export function setSectionSetting(doc: AutobootTxt, section: string, key: string, value: string): AutobootTxt {
  const lines = [...doc.lines];
  const setting: AutobootLine = { kind: 'setting', text: `${key}=${value}`, key, value };
  const existing = sectionSetting(doc, section, key);
  if (existing) {
    lines[existing.line - 1] = setting;
    return { ...doc, lines };
  }
  const filters = filtersOf(doc);
  const lastOfSection = filters.lastIndexOf(section);
  if (lastOfSection >= 0) {
    // After the block's last setting (or its header), before comments that may introduce the next block.
    let at = lastOfSection;
    while (at > 0 && filters[at - 1] === section && lines[at]!.kind !== 'setting' && lines[at]!.kind !== 'header') at--;
    lines.splice(at + 1, 0, setting);
  } else if (section === 'all') {
    lines.unshift(setting);
  } else {
    lines.push({ kind: 'header', text: `[${section}]`, filter: section }, setting);
  }
  return { ...doc, lines, endsWithLineBreak: doc.endsWithLineBreak || doc.lines.length === 0 };
}

/** A partition number as autoboot.txt writes it (decimal; 0 means the first bootable partition). */
export function partitionNumber(found: FoundSetting | undefined): number | undefined {
  if (!found) return undefined;
  if (!/^\d+$/.test(found.value)) throw new AutobootTxtError(`autoboot.txt line ${found.line}: boot_partition=${found.value} is not a partition number`);
  return Number(found.value);
}

/** `boot_partition` of a section, if it sets one. */
export function bootPartitionOf(doc: AutobootTxt, section: string): number | undefined {
  return partitionNumber(sectionSetting(doc, section, 'boot_partition'));
}

export function setBootPartition(doc: AutobootTxt, section: string, partition: number): AutobootTxt {
  return setSectionSetting(doc, section, 'boot_partition', String(partition));
}

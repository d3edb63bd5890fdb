/**
 * Debian's version ordering and package relations (Debian Policy 5.6.12 and 7.1), what the
 * resolver needs to check a dependency's version constraint without asking dpkg.
 */

/** dpkg's character order inside a non-digit run: ~ sorts before everything, even the end. */
function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';

/** dpkg's verrevcmp: alternating non-digit and digit runs. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(isDigit(a[i]) ? undefined : a[i]);
      const bc = order(isDigit(b[j]) ? undefined : b[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    let firstDiff = 0;
    while (isDigit(a[i]) && isDigit(b[j])) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (isDigit(a[i])) return 1;
    if (isDigit(b[j])) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

function parseVersion(v: string): { epoch: number; upstream: string; revision: string } {
  const colon = v.indexOf(':');
  const epoch = colon > 0 ? Number(v.slice(0, colon)) : 0;
  const rest = colon > 0 ? v.slice(colon + 1) : v;
  const dash = rest.lastIndexOf('-');
  return { epoch, upstream: dash >= 0 ? rest.slice(0, dash) : rest, revision: dash >= 0 ? rest.slice(dash + 1) : '' };
}

/** Negative, zero or positive as `a` sorts before, with or after `b` (dpkg --compare-versions). */
export function compareDebianVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (x.epoch !== y.epoch) return x.epoch - y.epoch;
  return compareFragment(x.upstream, y.upstream) || compareFragment(x.revision, y.revision);
}

export type Relation = '<<' | '<=' | '=' | '>=' | '>>';

/** One alternative of a dependency: `libc6 (>= 2.34)`. */
export interface PackageRelation {
  name: string;
  constraint?: { relation: Relation; version: string };
}

/** A dependency: one or more alternatives (`debconf (>= 0.5) | debconf-2.0`). */
export type DependencyGroup = PackageRelation[];

/**
 * Parses a Depends/Pre-Depends/Provides field. Architecture qualifiers (`:any`) are
 * dropped: an image has one architecture.
 */
export function parseRelations(field: string | undefined): DependencyGroup[] {
  if (!field || !field.trim()) return [];
  return field.split(',').map((group) =>
    group.split('|').map((alternative) => {
      const m = /^\s*([a-z0-9][a-z0-9+.-]+)(?::[a-z0-9-]+)?\s*(?:\(\s*(<<|<=|=|>=|>>|<|>)\s*([^)\s]+)\s*\))?\s*$/.exec(alternative);
      if (!m) throw new Error(`cannot read the package relation "${alternative.trim()}"`);
      const relation = m[2] === '<' ? '<=' : m[2] === '>' ? '>=' : (m[2] as Relation | undefined);
      return relation ? { name: m[1]!, constraint: { relation, version: m[3]! } } : { name: m[1]! };
    }),
  );
}

/** Whether `version` meets `constraint` (none: any version does). */
export function satisfies(version: string, constraint: PackageRelation['constraint']): boolean {
  if (!constraint) return true;
  const c = compareDebianVersions(version, constraint.version);
  switch (constraint.relation) {
    case '<<':
      return c < 0;
    case '<=':
      return c <= 0;
    case '=':
      return c === 0;
    case '>=':
      return c >= 0;
    case '>>':
      return c > 0;
  }
}

export function formatRelation(r: PackageRelation): string {
  return r.constraint ? `${r.name} (${r.constraint.relation} ${r.constraint.version})` : r.name;
}

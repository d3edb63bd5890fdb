import { QA_REPORT_FILE_NAME, QA_REPORT_SIGNATURE_FILE_NAME, QA_SETTINGS_FILE_NAME, QA_SETTINGS_TEMP_FILE_NAME } from '../../shared/contracts/qa-report.ts';
import { PRESEED_FILE_NAME } from '../../shared/contracts/preseed.ts';

/**
 * After QA the unit must look never booted, so the family's first boot is a true first
 * boot: everything QA's boot created goes (the provisioning journal, secrets, logs and the
 * journal, SSH host keys, the random seed, the QA settings with the unit's key), the
 * machine id is emptied again as the image ships it, and the preseed loses its
 * `factoryQa` flag but keeps the claim code printed on the label. Kept: the signed report
 * (on the data partition for the box to show, and on the FAT until the station has read
 * it back).
 *
 * A pure plan over path listings ('/'-separated, relative to each file system's root):
 * what the image shipped (listed at build time or at QA start, before anything ran) and
 * what is there now. A path that is new and not kept is removed; only the topmost such
 * path is listed, to be removed with everything below it.
 */
export interface FactoryFreshInput {
  shippedData: readonly string[];
  presentData: readonly string[];
  /** Below the root directories a boot writes to (ROOT_DIRS_WRITTEN_AT_BOOT). */
  shippedRoot: readonly string[];
  presentRoot: readonly string[];
  /** The files in the first FAT partition's root now. */
  presentFat: readonly string[];
}

export interface Removal {
  path: string;
  why: string;
}

export interface FactoryFreshPlan {
  removeData: Removal[];
  removeRoot: Removal[];
  removeFat: Removal[];
  /** Rewrite memu-preseed.json without `factoryQa` (claim code and the station's other settings stay). */
  rewritePreseed: boolean;
  /** Empty /etc/machine-id again, as the image ships it: systemd then treats the next boot as the first. */
  emptyMachineId: boolean;
  /**
   * QA's own bookkeeping on the data partition (the listing this plan was made from),
   * removed after everything else and before the preseed's rewrite: until then a power cut
   * finds the listing and plans again from it.
   */
  removeDataLast: Removal[];
  keep: string[];
}

/** Where a boot writes on the root file system: what the plan compares there. */
export const ROOT_DIRS_WRITTEN_AT_BOOT = ['var/log', 'var/lib/systemd', 'var/lib/dhcp', 'var/tmp', 'etc/ssh', 'root'] as const;

const KEEP_DATA = ['factory-qa', `factory-qa/${QA_REPORT_FILE_NAME}`, `factory-qa/${QA_REPORT_SIGNATURE_FILE_NAME}`];
/** What the data partition and the root file system held when the QA boot began, before QA wrote anything (shipped-listing.ts). */
export const SHIPPED_LISTING_PATH = 'factory-qa/shipped-listing.json';

/**
 * Folders of the data partition that only the agent writes, on the device: an image never
 * ships them, so a listing taken during a boot leaves them out and the plan removes them.
 */
export const DATA_DIRS_NEVER_SHIPPED = ['agent', 'secrets', 'factory-qa', 'device-settings', 'config', 'cache'] as const;

/**
 * What every boot writes below ROOT_DIRS_WRITTEN_AT_BOOT before the agent starts (the SSH
 * host keys from memu-ssh-hostkeys.service, the journal, the random seed, timer stamps,
 * DHCP leases, temporary files): a listing taken at QA start finds them already there,
 * so they never count as shipped.
 */
const MADE_BY_EVERY_BOOT: RegExp[] = [
  /^etc\/ssh\/ssh_host_/,
  /^var\/log\/journal\/./,
  /^var\/lib\/systemd\/(random-seed|timers\/.|timesync\/.|catalog\/.|linger\/.|coredump\/.|backlight\/.|rfkill\/.|pstore\/.)/,
  /^var\/lib\/dhcp\/./,
  /^var\/tmp\/./,
  /^root\/\.(bash_history|lesshst|viminfo)$/,
];

/**
 * The "shipped" side of a plan from listings taken at the start of a QA boot: the agent's
 * own data folders and what every boot writes are left out, so the plan removes them.
 */
export function shippedFromBootListing(listing: { data: readonly string[]; root: readonly string[] }): { data: string[]; root: string[] } {
  const neverShipped = (p: string) => DATA_DIRS_NEVER_SHIPPED.some((d) => p === d || p.startsWith(`${d}/`));
  return {
    data: listing.data.map(normalise).filter((p) => !neverShipped(p)),
    root: listing.root.map(normalise).filter((p) => !MADE_BY_EVERY_BOOT.some((pattern) => pattern.test(p))),
  };
}
const KEEP_FAT = [PRESEED_FILE_NAME, QA_REPORT_FILE_NAME, QA_REPORT_SIGNATURE_FILE_NAME];

/** The reason a path goes, for the log and the test: the first rule that names it. */
const DATA_REASONS: [RegExp, string][] = [
  [/^agent\/provisioning\.json$/, 'the provisioning journal'],
  [/^agent(\/|$)/, "the agent's state (journal, preseed record, database, boot and health records)"],
  [/^secrets(\/|$)/, 'per-device secrets'],
  [/^(device-settings|config)(\/|$)/, 'settings and rendered configuration'],
];
const ROOT_REASONS: [RegExp, string][] = [
  [/^var\/log\/journal(\/|$)/, 'the systemd journal'],
  [/^var\/log(\/|$)/, 'logs'],
  [/^etc\/ssh\/ssh_host_/, 'SSH host keys (each unit makes its own on its first real boot)'],
  [/^var\/lib\/systemd\/random-seed$/, 'the random seed'],
];

export function planFactoryFreshCleanup(input: FactoryFreshInput): FactoryFreshPlan {
  const bookkeeping = input.presentData.map(normalise).filter((p) => p === SHIPPED_LISTING_PATH);
  const data = newPaths(input.shippedData, input.presentData, [...KEEP_DATA, ...bookkeeping]).map((path) => ({ path, why: reasonFor(path, DATA_REASONS, 'created during QA') }));
  const root = newPaths(input.shippedRoot, input.presentRoot.filter((p) => ROOT_DIRS_WRITTEN_AT_BOOT.some((d) => p === d || p.startsWith(`${d}/`))), []).map((path) => ({
    path,
    why: reasonFor(path, ROOT_REASONS, 'created during QA'),
  }));
  const fat = input.presentFat
    .filter((name) => [QA_SETTINGS_FILE_NAME, QA_SETTINGS_TEMP_FILE_NAME].some((n) => n.toLowerCase() === name.toLowerCase()))
    .map((path) => ({ path, why: "the station's QA settings with this unit's signing key" }));
  const hasPreseed = input.presentFat.some((n) => n.toLowerCase() === PRESEED_FILE_NAME);
  const keep = [...input.presentData.filter((p) => KEEP_DATA.includes(p)), ...input.presentFat.filter((n) => KEEP_FAT.includes(n.toLowerCase())).map((n) => `fat:${n}`)];
  const removeDataLast = bookkeeping.map((path) => ({ path, why: "QA's listing of what the unit held before QA" }));
  return { removeData: data, removeRoot: root, removeFat: fat, rewritePreseed: hasPreseed, emptyMachineId: true, removeDataLast, keep };
}

/** Present paths that were not shipped and are not kept, topmost only. */
function newPaths(shipped: readonly string[], present: readonly string[], keep: readonly string[]): string[] {
  const was = new Set(shipped.map(normalise));
  const kept = new Set(keep);
  // A directory that holds something kept cannot go as a whole; its other contents are judged one by one.
  const holdsKept = (p: string) => keep.some((k) => k.startsWith(`${p}/`));
  const candidates = present.map(normalise).filter((p) => !was.has(p) && !kept.has(p) && !holdsKept(p));
  const set = new Set(candidates);
  const parentListed = (p: string) => {
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) if (set.has(p.slice(0, i))) return true;
    return false;
  };
  return [...set].filter((p) => !parentListed(p)).sort();
}

const normalise = (p: string) => p.replace(/^\/+|\/+$/g, '');

function reasonFor(path: string, reasons: readonly [RegExp, string][], fallback: string): string {
  return reasons.find(([pattern]) => pattern.test(path))?.[1] ?? fallback;
}

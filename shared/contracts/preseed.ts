import { z } from 'zod';

/**
 * First-boot settings ("preseed"): one JSON file at the root of the first FAT partition
 * of a Memu disk (the ESP on x86-64, the "bootconfig" partition on a Pi 5).
 *
 * The device is the authority on this format: the agent reads it, `memu preseed` on the
 * host imports this module to validate before writing. Every field except `version` is
 * optional; whatever is missing or bad is asked for by the setup wizard instead.
 * docs/preseed.md documents every field for users.
 *
 * Problems are reported one per field as `path: what is wrong; expected what`, and never
 * quote a value, so a secret typed into the wrong field cannot leak into a log.
 */
export const PRESEED_FILE_NAME = 'memu-preseed.json';
/** Name the writer uses on the FAT before renaming over PRESEED_FILE_NAME (see docs/preseed.md). */
export const PRESEED_TEMP_FILE_NAME = 'memu-preseed.tmp';
export const PRESEED_MAX_BYTES = 64 * 1024;
export const PRESEED_VERSION = 1;

/** Fields whose values are secrets: never logged, scrubbed from the FAT once consumed. */
const SECRET_FIELDS = ['wifi.passphrase', 'tailscaleAuthKey', 'claimCode', 'agentApiKey'] as const;
export type PreseedSecretField = (typeof SECRET_FIELDS)[number];

export function preseedSecretFields(): readonly PreseedSecretField[] {
  return SECRET_FIELDS;
}

// ISO 3166-1 alpha-2, from Debian's iso-codes 4.15 (249 codes).
const ISO_3166_ALPHA2 = new Set(
  (
    'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ ' +
    'CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR ' +
    'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO ' +
    'JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR ' +
    'MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO ' +
    'RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV ' +
    'TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW'
  ).split(' '),
);

/** Supported public key types, with the number of wire-format strings in each key blob (type name included). */
const SSH_KEY_FIELD_COUNT: Record<string, number> = {
  'ssh-ed25519': 2,
  'ecdsa-sha2-nistp256': 3,
  'ecdsa-sha2-nistp384': 3,
  'ecdsa-sha2-nistp521': 3,
  'sk-ssh-ed25519@openssh.com': 3,
  'sk-ecdsa-sha2-nistp256@openssh.com': 4,
  'ssh-rsa': 3,
};
const SSH_KEY_TYPES = Object.keys(SSH_KEY_FIELD_COUNT);
const MIN_RSA_BITS = 2048;
const MAX_SSH_KEYS = 32;

/** Crockford base32 without the excluded letters I, L, O, U. */
const CROCKFORD_GROUP = '[0-9A-HJKMNP-TV-Z]{4}';
const CLAIM_CODE_PATTERN = new RegExp(`^${CROCKFORD_GROUP}(-${CROCKFORD_GROUP}){3}$`);

/** The API key's length and alphabet: base64, base64url and hex keys fit, and none needs quoting in a header. */
const AGENT_API_KEY_MIN = 32;
const AGENT_API_KEY_MAX = 128;
const AGENT_API_KEY_ALPHABET = /^[A-Za-z0-9._~+/=-]*$/;

/** What each field must look like; the second half of every problem message. */
const EXPECTED: Record<string, string> = {
  '': 'a JSON object with "version": 1 and any of the fields in docs/preseed.md',
  version: `the number ${PRESEED_VERSION}`,
  familyName: 'a non-blank name of at most 64 characters without control characters',
  hostname: 'a hostname label: 1–63 letters, digits or hyphens, not starting or ending with a hyphen (e.g. "smith-memu")',
  timezone: 'an IANA time zone name such as "Europe/London" (names are case-sensitive)',
  locale: 'a locale such as "en_GB.UTF-8" or "de_DE" (language_TERRITORY, optionally .UTF-8)',
  wifi: 'an object with "ssid", "country" and optionally "passphrase"',
  'wifi.ssid': 'a network name of 1–32 bytes',
  'wifi.passphrase': 'a WPA passphrase of 8–63 printable ASCII characters, or a 64-digit hexadecimal key',
  'wifi.country': 'an ISO 3166 two-letter country code in capitals, such as "GB" or "US"',
  sshAuthorizedKeys: `a list of at most ${MAX_SSH_KEYS} public keys`,
  'sshAuthorizedKeys[]': `one public key line "TYPE BASE64 [comment]" where TYPE is one of ${SSH_KEY_TYPES.join(', ')}`,
  tailscaleAuthKey: 'a Tailscale auth key starting with "tskey-" (from the Tailscale admin console, Settings → Keys)',
  updateChannel: 'one of "stable", "beta", "dev"',
  factoryQa: 'true or false',
  scrubbedSecrets: `a list of secret field names (${SECRET_FIELDS.join(', ')}); the device writes it, leave it out`,
  'scrubbedSecrets[]': `one of ${SECRET_FIELDS.join(', ')}`,
  claimCode: 'the claim code from the device label: 4 groups of 4 Crockford base32 characters in capitals, e.g. "7K3M-Q9XD-2HFT-B8RW"',
  agentApiKey: `a key of ${AGENT_API_KEY_MIN}–${AGENT_API_KEY_MAX} characters from A–Z, a–z, 0–9 and . _ ~ + / = - (e.g. the output of "openssl rand -base64 32")`,
};

// The `message` of each custom issue is the "what is wrong" half of a problem.
type Check = (value: string) => string | undefined;

function checkedString(check: Check) {
  return z.string().superRefine((value, ctx) => {
    const wrong = check(value);
    if (wrong) ctx.addIssue({ code: z.ZodIssueCode.custom, message: wrong });
  });
}

const checkFamilyName: Check = (v) => {
  if (v.trim() === '') return 'is blank';
  if ([...v].length > 64) return 'is longer than 64 characters';
  if (/\p{Cc}/u.test(v)) return 'contains control characters (such as a line break or tab)';
  return undefined;
};

const checkHostname: Check = (v) => {
  if (v === '') return 'is empty';
  if (v.length > 63) return 'is longer than 63 characters';
  if (!/^[A-Za-z0-9-]+$/.test(v)) return 'contains characters other than letters, digits and hyphens';
  if (v.startsWith('-') || v.endsWith('-')) return 'starts or ends with a hyphen';
  return undefined;
};

let knownTimeZones: Set<string> | undefined;
const checkTimezone: Check = (v) => {
  knownTimeZones ??= new Set(Intl.supportedValuesOf('timeZone'));
  if (knownTimeZones.has(v)) return undefined;
  // Intl lists only canonical names; it still accepts aliases such as "UTC" or
  // "Asia/Kolkata", but it also accepts any letter case, which the device's tzdata does not.
  const looksCanonicallyCased = /^[A-Z][A-Za-z0-9_+-]*(\/[A-Z][A-Za-z0-9_+-]*)*$/.test(v);
  if (looksCanonicallyCased) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: v });
      return undefined;
    } catch {
      // fall through
    }
  }
  return 'is not a known IANA time zone';
};

const checkLocale: Check = (v) => {
  const m = /^([a-z]{2,3})_([A-Z]{2})(\.(UTF-8|utf8))?(@[a-z]+)?$/.exec(v);
  if (!m) return 'is not in the form language_TERRITORY[.UTF-8]';
  if (!ISO_3166_ALPHA2.has(m[2]!)) return 'names an unknown territory';
  return undefined;
};

const checkSsid: Check = (v) => {
  const bytes = Buffer.byteLength(v, 'utf8');
  if (bytes === 0) return 'is empty';
  if (bytes > 32) return 'is longer than 32 bytes';
  return undefined;
};

// Never describe the value itself beyond the rule it breaks: this is a secret.
const checkPassphrase: Check = (v) => {
  if (/^[0-9a-fA-F]{64}$/.test(v)) return undefined;
  if (v.length < 8) return 'is shorter than 8 characters';
  if (v.length > 63) return 'is longer than 63 characters and not a 64-digit hexadecimal key';
  if (!/^[\x20-\x7e]+$/.test(v)) return 'contains characters that are not printable ASCII';
  return undefined;
};

const checkCountry: Check = (v) => {
  if (!/^[A-Z]{2}$/.test(v)) return 'is not two capital letters';
  if (!ISO_3166_ALPHA2.has(v)) return 'is not an ISO 3166 country code';
  return undefined;
};

const checkSshKey: Check = (v) => {
  if (/[\r\n]/.test(v)) return 'contains a line break (give each key as its own list entry)';
  const [type, blob] = v.trim().split(/\s+/);
  if (!type || !SSH_KEY_TYPES.includes(type)) {
    if (type && /^(ssh-|ecdsa-|sk-)/.test(type)) return 'has an unsupported key type';
    return 'does not start with a supported key type (authorized_keys options are not supported)';
  }
  if (!blob) return 'has no key data after the key type';
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return 'has key data that is not base64';
  const fields = readSshStrings(Buffer.from(blob, 'base64'));
  if (!fields) return 'has truncated key data (was it copied completely?)';
  if (fields[0]?.toString('latin1') !== type || fields.length !== SSH_KEY_FIELD_COUNT[type]) {
    return 'has key data that does not match its key type (truncated or mixed up?)';
  }
  if (type === 'ssh-rsa' && rsaModulusBits(fields[2]!) < MIN_RSA_BITS) return `is an RSA key shorter than ${MIN_RSA_BITS} bits`;
  return undefined;
};

/** Splits a public key blob into its SSH wire-format strings; undefined when truncated. */
function readSshStrings(buf: Buffer): Buffer[] | undefined {
  const fields: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const field = readSshString(buf, at);
    if (!field) return undefined;
    fields.push(field.bytes);
    at = field.next;
  }
  return fields;
}

/** Reads one SSH wire-format string (uint32 length + bytes). */
function readSshString(buf: Buffer, at: number): { bytes: Buffer; next: number } | undefined {
  if (at + 4 > buf.length) return undefined;
  const len = buf.readUInt32BE(at);
  if (at + 4 + len > buf.length) return undefined;
  return { bytes: buf.subarray(at + 4, at + 4 + len), next: at + 4 + len };
}

function rsaModulusBits(mpint: Buffer): number {
  let i = 0;
  while (i < mpint.length && mpint[i] === 0) i++;
  if (i === mpint.length) return 0;
  return (mpint.length - i - 1) * 8 + (32 - Math.clz32(mpint[i]!));
}

const checkTailscaleAuthKey: Check = (v) => {
  if (!v.startsWith('tskey-')) return 'does not start with "tskey-"';
  if (!/^tskey-[A-Za-z0-9-]+$/.test(v) || v.length > 256) return 'contains characters other than letters, digits and hyphens';
  return undefined;
};

const checkClaimCode: Check = (v) => (CLAIM_CODE_PATTERN.test(v) ? undefined : 'is not 4 groups of 4 Crockford base32 characters');

const checkAgentApiKey: Check = (v) => {
  if (v.length < AGENT_API_KEY_MIN) return `is shorter than ${AGENT_API_KEY_MIN} characters`;
  if (v.length > AGENT_API_KEY_MAX) return `is longer than ${AGENT_API_KEY_MAX} characters`;
  if (!AGENT_API_KEY_ALPHABET.test(v)) return 'contains characters other than letters, digits and . _ ~ + / = -';
  return undefined;
};

export const preseedSchema = z
  .object({
    version: z.literal(PRESEED_VERSION),
    familyName: checkedString(checkFamilyName).optional(),
    hostname: checkedString(checkHostname).optional(),
    timezone: checkedString(checkTimezone).optional(),
    locale: checkedString(checkLocale).optional(),
    wifi: z
      .object({
        ssid: checkedString(checkSsid),
        /** Absent for an open network. */
        passphrase: checkedString(checkPassphrase).optional(),
        country: checkedString(checkCountry),
      })
      .strict()
      .optional(),
    sshAuthorizedKeys: z.array(checkedString(checkSshKey)).max(MAX_SSH_KEYS).optional(),
    tailscaleAuthKey: checkedString(checkTailscaleAuthKey).optional(),
    updateChannel: z.enum(['stable', 'beta', 'dev']).optional(),
    /**
     * true: the first boot tests the unit's hardware (factory QA) instead of setting it up,
     * and, when it passed, removes this flag itself (agent/provisioning/factory-qa-boot.ts).
     */
    factoryQa: z.boolean().optional(),
    claimCode: checkedString(checkClaimCode).optional(),
    /** What machine clients (fleet tools, the factory station) present as `Authorization: Bearer <key>` to the agent's API. */
    agentApiKey: checkedString(checkAgentApiKey).optional(),
    /**
     * Written by the device when it scrubs the file: the secret fields it has stored and
     * removed. Lets a reader tell "consumed" from "never given" (e.g. an open network).
     */
    scrubbedSecrets: z.array(z.enum(SECRET_FIELDS)).optional(),
  })
  .strict();

export type Preseed = z.infer<typeof preseedSchema>;

export type PreseedParseResult = { ok: true; settings: Preseed } | { ok: false; problems: string[] };

/**
 * Parses and validates the text of a preseed file. Never throws; every problem names
 * its field, what is wrong and what is expected, and quotes no value.
 */
export function parsePreseed(text: string): PreseedParseResult {
  if (typeof text !== 'string') return { ok: false, problems: [`${PRESEED_FILE_NAME}: is not text; expected a JSON document`] };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > PRESEED_MAX_BYTES) {
    return { ok: false, problems: [`${PRESEED_FILE_NAME}: is ${bytes} bytes; expected at most ${PRESEED_MAX_BYTES} bytes (64 KiB)`] };
  }
  // Windows editors like to start UTF-8 files with a byte order mark.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    return { ok: false, problems: [describeJsonError(body, err as Error)] };
  }
  // JSON.parse keeps the last of two equal keys: a second "wifi" would silently drop the
  // first one's passphrase. Which copy was meant is for the person to say.
  const duplicates = duplicateJsonKeys(body);
  const validated = validatePreseed(value);
  if (duplicates.length === 0) return validated;
  const underDuplicate = (line: string) => duplicates.some((d) => line.startsWith(`${d}:`) || line.startsWith(`${d}.`) || line.startsWith(`${d}[`));
  return {
    ok: false,
    problems: [
      ...duplicates.map((path) => problem(path, 'appears more than once', 'each field once (remove all but one copy)')),
      ...(validated.ok ? [] : validated.problems.filter((line) => !underDuplicate(line))),
    ],
  };
}

/** Validates an already-parsed value (e.g. settings built in code) with the same messages. */
export function validatePreseed(value: unknown): PreseedParseResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, problems: [problem('', `is ${describeType(value)}`)] };
  }
  // A different version may mean different fields: report only that.
  const version = (value as Record<string, unknown>).version;
  if (version !== PRESEED_VERSION) {
    const wrong =
      version === undefined
        ? 'is missing'
        : typeof version === 'number'
          ? `${version} is not supported by this device (too new or not yet released)`
          : `is ${describeType(version)}`;
    return { ok: false, problems: [problem('version', wrong)] };
  }
  const result = preseedSchema.safeParse(value);
  if (result.success) {
    // The host writes, and the device's scrub rewrites, the canonical form: it must fit too.
    const written = Buffer.byteLength(serializePreseed(result.data), 'utf8');
    if (written > PRESEED_MAX_BYTES) {
      return {
        ok: false,
        problems: [problem('', `takes ${written} bytes once written out (indented, one field per line)`, `at most ${PRESEED_MAX_BYTES} bytes (64 KiB) in that form; remove some SSH keys or shorten long values`)],
      };
    }
    return { ok: true, settings: result.data };
  }
  const seen = new Set<string>();
  const problems: string[] = [];
  for (const issue of result.error.issues) {
    for (const [path, wrong, expected] of describeIssue(issue)) {
      if (seen.has(path)) continue; // one message per field
      seen.add(path);
      problems.push(problem(path, wrong, expected));
    }
  }
  return { ok: false, problems };
}

/** Canonical file text for settings: what the host writes and the scrubber rewrites. */
export function serializePreseed(settings: Preseed): string {
  return `${JSON.stringify(settings, null, 2)}\n`;
}

/**
 * Removes the secret fields from a parsed preseed object, valid or not (a file with a
 * bad hostname may still hold a good passphrase), and records them in `scrubbedSecrets`.
 * Returns a copy and the fields removed now; removing nothing returns an equal copy.
 */
export function withoutPreseedSecrets<T>(value: T): { value: T; removed: PreseedSecretField[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { value, removed: [] };
  const copy = structuredClone(value) as Record<string, unknown>;
  const removed: PreseedSecretField[] = [];
  for (const field of SECRET_FIELDS) {
    const parts = field.split('.');
    let holder: unknown = copy;
    for (const part of parts.slice(0, -1)) {
      holder = typeof holder === 'object' && holder !== null ? (holder as Record<string, unknown>)[part] : undefined;
    }
    const last = parts[parts.length - 1]!;
    if (typeof holder === 'object' && holder !== null && !Array.isArray(holder) && last in holder) {
      delete (holder as Record<string, unknown>)[last];
      removed.push(field);
    }
  }
  if (removed.length > 0) {
    const before = Array.isArray(copy.scrubbedSecrets) ? (copy.scrubbedSecrets as unknown[]) : [];
    copy.scrubbedSecrets = SECRET_FIELDS.filter((f) => before.includes(f) || removed.includes(f));
  }
  return { value: copy as T, removed };
}

/** Dotted names of the fields present in settings (secrets included by name only): safe to log. */
export function presentPreseedFields(settings: Preseed): string[] {
  const fields: string[] = [];
  for (const [key, v] of Object.entries(settings)) {
    if (key === 'version') continue;
    if (key === 'wifi' && v && typeof v === 'object') fields.push(...Object.keys(v).map((k) => `wifi.${k}`));
    else fields.push(key);
  }
  return fields;
}

/**
 * Turns what a person typed from a label into the canonical claim code, following
 * Crockford's decoding rules (case-insensitive, I/L read as 1, O as 0, hyphens and
 * spaces ignored). Returns undefined when it cannot be a claim code.
 */
export function normalizeClaimCode(input: string): string | undefined {
  const symbols = input
    .toUpperCase()
    .replace(/[\s-]/g, '')
    .replace(/[IL]/g, '1')
    .replace(/O/g, '0');
  if (!/^[0-9A-HJKMNP-TV-Z]{16}$/.test(symbols)) return undefined;
  return symbols.match(/.{4}/g)!.join('-');
}

function problem(path: string, wrong: string, expectedHere?: string): string {
  const expected = expectedHere ?? EXPECTED[path.replace(/\[\d+\]/g, '[]')] ?? 'a field described in docs/preseed.md';
  return `${path || PRESEED_FILE_NAME}: ${wrong}; expected ${expected}`;
}

function pathOf(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** [path, what is wrong, what is expected (when not the field's usual description)] */
type Described = [string, string, string?];

function describeIssue(issue: z.ZodIssue): Described[] {
  const path = pathOf(issue.path);
  switch (issue.code) {
    case z.ZodIssueCode.unrecognized_keys: {
      const known = Object.keys(shapeAt(issue.path));
      const expected = known.length ? `one of the fields ${known.join(', ')}` : undefined;
      return issue.keys.map((key) => [path ? `${path}.${key}` : key, 'is not a known field', expected] as Described);
    }
    case z.ZodIssueCode.invalid_type:
      return [[path, issue.received === 'undefined' ? 'is missing' : `is ${article(issue.received)}`]];
    case z.ZodIssueCode.invalid_enum_value:
      return [[path, 'is not one of the allowed values']];
    case z.ZodIssueCode.too_big:
      return [[path, `has more than ${String(issue.maximum)} entries`]];
    case z.ZodIssueCode.custom:
      return [[path, issue.message]];
    default:
      return [[path, 'is not valid']];
  }
}

function shapeAt(path: (string | number)[]): Record<string, unknown> {
  if (path.length === 0) return preseedSchema.shape;
  if (path.length === 1 && path[0] === 'wifi') return preseedSchema.shape.wifi.unwrap().shape;
  return {};
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return article(typeof value);
}

function article(type: string): string {
  if (type === 'null') return 'null';
  if (type === 'array') return 'a list';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** Where the JSON broke, without V8's excerpt of the text (which could hold a secret). */
function describeJsonError(text: string, err: Error): string {
  const expected = 'a JSON document (check for missing commas, quotes or braces)';
  if (text.trim() === '') return `${PRESEED_FILE_NAME}: is empty; expected ${expected}`;
  if (/end of JSON input/.test(err.message)) return `${PRESEED_FILE_NAME}: is not valid JSON (it ends too early); expected ${expected}`;
  const position = /at position (\d+)/.exec(err.message);
  if (!position) return `${PRESEED_FILE_NAME}: is not valid JSON; expected ${expected}`;
  if (Number(position[1]) >= text.length) return `${PRESEED_FILE_NAME}: is not valid JSON (it ends too early); expected ${expected}`;
  const before = text.slice(0, Number(position[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${PRESEED_FILE_NAME}: is not valid JSON at line ${line}, column ${column}; expected ${expected}`;
}

/**
 * Dotted paths (`wifi`, `sshAuthorizedKeys[0].x`) of object keys that appear more than
 * once in the same object, in a text JSON.parse has accepted. Iterative, so a deeply
 * nested file cannot overflow the stack.
 */
export function duplicateJsonKeys(text: string): string[] {
  type Frame = { kind: 'object'; path: string; seen: Set<string>; key?: string; expectingKey: boolean } | { kind: 'array'; path: string; index: number };
  const stack: Frame[] = [];
  const found = new Set<string>();
  const childPath = (parent: Frame | undefined): string => {
    if (!parent) return '';
    if (parent.kind === 'array') return `${parent.path}[${parent.index}]`;
    return parent.path ? `${parent.path}.${parent.key}` : parent.key!;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const top = stack.at(-1);
    if (c === '{' || c === '[') {
      const path = childPath(top);
      stack.push(c === '{' ? { kind: 'object', path, seen: new Set(), expectingKey: true } : { kind: 'array', path, index: 0 });
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      i++;
    } else if (c === ',') {
      if (top?.kind === 'object') top.expectingKey = true;
      else if (top?.kind === 'array') top.index++;
      i++;
    } else if (c === ':') {
      if (top?.kind === 'object') top.expectingKey = false;
      i++;
    } else if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      end++;
      if (top?.kind === 'object' && top.expectingKey) {
        // Decoded, so "\u0061" and "a" count as the same key, as JSON.parse sees them.
        const key = JSON.parse(text.slice(i, end)) as string;
        const path = top.path ? `${top.path}.${key}` : key;
        if (top.seen.has(key)) found.add(path);
        top.seen.add(key);
        top.key = key;
      }
      i = end;
    } else {
      i++;
    }
  }
  return [...found];
}

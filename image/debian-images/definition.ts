import { posix } from 'node:path';
import { z } from 'zod';
import { describeInvalid } from '../../shared/errors.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * An image definition: an OCI image made of Debian packages, as typed data. The packages
 * are unpacked, never installed: no maintainer script runs, so whatever those scripts
 * would have made that the program needs (its user and group, directories with their
 * owners, a configuration) is written out here, and every dependency left out is named
 * with the reason (a dependency that only a maintainer script uses).
 */

const packageName = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, 'a Debian package name (lower-case letters, digits, + . -)');
const accountName = z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'a user or group name (lower-case, at most 32 characters)');
const id = z.number().int().min(0).max(65534);
const mode = z.number().int().min(0).max(0o7777);
const absolutePath = z
  .string()
  .refine((p) => p.startsWith('/') && p !== '/' && posix.normalize(p) === p && !p.endsWith('/'), 'an absolute, normalized path below / (no trailing slash, no . or ..)');
/** `user:group`, both declared in the definition's users and groups. */
const owner = z.string().regex(/^[a-z_][a-z0-9_-]*:[a-z_][a-z0-9_-]*$/, 'user:group');

const fileSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('file'), path: absolutePath, content: z.string(), mode: mode.default(0o644), owner: owner.default('root:root') }).strict(),
  z.object({ kind: z.literal('directory'), path: absolutePath, mode: mode.default(0o755), owner: owner.default('root:root') }).strict(),
  z.object({ kind: z.literal('symlink'), path: absolutePath, target: z.string().min(1) }).strict(),
]);
export type DefinitionFile = z.infer<typeof fileSchema>;

const seconds = z.number().positive().max(3600);

export const imageDefinitionSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and -'),
    description: z.string().min(1),
    /** The Debian archive the packages come from: the one the device's root filesystem uses. */
    archive: z.object({ uri: z.string().url(), suite: z.string().min(1), components: z.array(z.string()).min(1) }).strict(),
    /** Packages asked for by name; their dependencies come along unless skipped. */
    packages: z.array(packageName).min(1),
    /** Dependencies left out, each with why the image does not need it. */
    skipDependencies: z.array(z.object({ package: packageName, reason: z.string().min(1) }).strict()).default([]),
    /** Become /etc/passwd and /etc/group (what adduser or base-passwd would have written). */
    users: z.array(z.object({ name: accountName, uid: id, gid: id, home: z.string().startsWith('/'), shell: z.string().startsWith('/') }).strict()).min(1),
    groups: z.array(z.object({ name: accountName, gid: id }).strict()).min(1),
    /** Packaged paths the image leaves out (`*` matches within one path component), each with why. */
    removePaths: z
      .array(z.object({ path: z.string().regex(/^(\/[^/]+)+$/, 'an absolute path, * for any name in a component'), reason: z.string().min(1) }).strict())
      .default([]),
    /** Files, directories and links the image adds over the packages (config, what maintainer scripts make). */
    files: z.array(fileSchema).default([]),
    config: z
      .object({
        /** A user of `users`: the program runs as it. */
        user: accountName,
        entrypoint: z.array(z.string().min(1)).min(1),
        cmd: z.array(z.string()).default([]),
        env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
        workingDir: z.string().startsWith('/').default('/'),
        /** `80/tcp` */
        exposedPorts: z.array(z.string().regex(/^\d{1,5}\/(tcp|udp)$/, 'PORT/tcp or PORT/udp')).default([]),
        stopSignal: z.string().regex(/^SIG[A-Z0-9]+$/).optional(),
        healthcheck: z
          .object({
            /** Docker's form: `["CMD", program, ...args]`. */
            test: z.tuple([z.literal('CMD'), z.string().min(1)]).rest(z.string()),
            intervalSeconds: seconds.default(30),
            timeoutSeconds: seconds.default(5),
            startPeriodSeconds: seconds.default(5),
            retries: z.number().int().min(1).max(100).default(3),
          })
          .strict()
          .optional(),
      })
      .strict(),
  })
  .strict()
  .superRefine((d, ctx) => {
    const users = new Map(d.users.map((u) => [u.name, u]));
    const groups = new Map(d.groups.map((g) => [g.name, g]));
    const gids = new Set(d.groups.map((g) => g.gid));
    const duplicates = (values: (string | number)[]) => [...new Set(values.filter((v, i) => values.indexOf(v) !== i))];
    for (const name of duplicates(d.users.map((u) => u.name))) ctx.addIssue({ code: 'custom', path: ['users'], message: `user ${name} is declared twice` });
    for (const uid of duplicates(d.users.map((u) => u.uid))) ctx.addIssue({ code: 'custom', path: ['users'], message: `uid ${uid} is used twice` });
    for (const name of duplicates(d.groups.map((g) => g.name))) ctx.addIssue({ code: 'custom', path: ['groups'], message: `group ${name} is declared twice` });
    for (const gid of duplicates(d.groups.map((g) => g.gid))) ctx.addIssue({ code: 'custom', path: ['groups'], message: `gid ${gid} is used twice` });
    d.users.forEach((u, i) => {
      if (!gids.has(u.gid)) ctx.addIssue({ code: 'custom', path: ['users', i, 'gid'], message: `no group has gid ${u.gid}` });
    });
    if (users.get('root')?.uid !== 0) ctx.addIssue({ code: 'custom', path: ['users'], message: 'declare root with uid 0 (files are owned by it)' });
    if (groups.get('root')?.gid !== 0) ctx.addIssue({ code: 'custom', path: ['groups'], message: 'declare root with gid 0 (files are owned by it)' });
    for (const name of duplicates(d.packages)) ctx.addIssue({ code: 'custom', path: ['packages'], message: `${name} is listed twice` });
    d.skipDependencies.forEach((s, i) => {
      if (d.packages.includes(s.package)) ctx.addIssue({ code: 'custom', path: ['skipDependencies', i, 'package'], message: `${s.package} is asked for in packages, so it cannot be skipped` });
    });
    for (const path of duplicates(d.files.map((f) => f.path))) ctx.addIssue({ code: 'custom', path: ['files'], message: `${path} is declared twice` });
    d.files.forEach((f, i) => {
      if (GENERATED_PATHS.includes(f.path)) ctx.addIssue({ code: 'custom', path: ['files', i, 'path'], message: `${f.path} is written from users, groups and the resolved packages; do not declare it` });
      if (f.kind === 'symlink') return;
      const [user, group] = f.owner.split(':') as [string, string];
      if (!users.has(user)) ctx.addIssue({ code: 'custom', path: ['files', i, 'owner'], message: `user ${user} is not declared in users` });
      if (!groups.has(group)) ctx.addIssue({ code: 'custom', path: ['files', i, 'owner'], message: `group ${group} is not declared in groups` });
    });
    if (!users.has(d.config.user)) ctx.addIssue({ code: 'custom', path: ['config', 'user'], message: `user ${d.config.user} is not declared in users` });
  });

export type ImageDefinition = z.infer<typeof imageDefinitionSchema>;
export type ImageDefinitionInput = z.input<typeof imageDefinitionSchema>;

/** Where the image records the package versions it was made of: `name version arch` per line. */
export const PACKAGES_LIST_PATH = '/usr/share/memu/packages.list';
/** Written by the builder, never declared. */
export const GENERATED_PATHS: readonly string[] = ['/etc/passwd', '/etc/group', PACKAGES_LIST_PATH];

/** Validates definition data; the error lists every problem with its path (exit 2). */
export function validateDefinition(data: unknown, source: string): ImageDefinition {
  const result = imageDefinitionSchema.safeParse(data);
  if (result.success) return result.data;
  throw new MemuError(describeInvalid(`image definition ${source}`, result.error.issues), ExitCode.badInput, 'fix the definition in image/debian-images/definitions/');
}

/** Numeric owner of a file entry (`www-data:www-data` → 33, 33). */
export function ownerIds(definition: ImageDefinition, owner: string): { uid: number; gid: number } {
  const [user, group] = owner.split(':');
  const u = definition.users.find((x) => x.name === user);
  const g = definition.groups.find((x) => x.name === group);
  if (!u || !g) throw new Error(`owner ${owner} is not declared in the definition ${definition.name}`);
  return { uid: u.uid, gid: g.gid };
}

/** /etc/passwd as the definition's users make it, in declared order. */
export function passwdFile(definition: ImageDefinition): string {
  return definition.users.map((u) => `${u.name}:x:${u.uid}:${u.gid}:${u.name}:${u.home}:${u.shell}\n`).join('');
}

/** /etc/group: members are not listed (each user's primary group is in passwd). */
export function groupFile(definition: ImageDefinition): string {
  return definition.groups.map((g) => `${g.name}:x:${g.gid}:\n`).join('');
}

import { loadProfile } from '../../../hardware/index.ts';
import type { ImageDefinitionInput } from '../definition.ts';

/**
 * The Debian archive and suite the device's root filesystem is built from (the product
 * profiles', trixie), so an image's libraries are the versions the device itself ships.
 * Only `main`: no image here needs firmware or non-free packages.
 */
export function deviceArchive(): ImageDefinitionInput['archive'] {
  const { mirror, suite } = loadProfile('nuc').rootfs;
  return { uri: mirror, suite, components: ['main'] };
}

/**
 * Every image starts from Debian's base-files (the merged-/usr links for its
 * architecture, /tmp, /etc/os-release). Its pre-dependency on awk serves only its
 * maintainer scripts.
 */
export const BASE_PACKAGES = ['base-files'] as const;
export const BASE_SKIPPED = [{ package: 'awk', reason: "base-files' maintainer scripts only" }] as const;

/** Name lookups from files first: /etc/hosts holds what compose's extra_hosts adds. */
export const NSSWITCH: NonNullable<ImageDefinitionInput['files']> = [
  { kind: 'file', path: '/etc/nsswitch.conf', content: 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n' },
];

/** glibc's iconv converters for other character sets (7–10 MiB): none of these programs calls iconv. */
export const WITHOUT_GCONV = [{ path: '/usr/lib/*/gconv', reason: "glibc's iconv modules for legacy character sets; the program never calls iconv" }];

/**
 * root and the one account a service runs as, with its group of the same name and id:
 * what `adduser --system --group` in a postinst (or base-passwd, for www-data) makes.
 */
export function rootAnd(account: { name: string; id: number; home: string }): Pick<ImageDefinitionInput, 'users' | 'groups'> {
  return {
    users: [
      { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh' },
      { name: account.name, uid: account.id, gid: account.id, home: account.home, shell: '/usr/sbin/nologin' },
    ],
    groups: [
      { name: 'root', gid: 0 },
      { name: account.name, gid: account.id },
    ],
  };
}

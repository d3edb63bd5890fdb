import type { ImageDefinitionInput } from '../definition.ts';
import { BASE_PACKAGES, BASE_SKIPPED, deviceArchive, NSSWITCH, rootAnd, WITHOUT_GCONV } from './debian-base.ts';

/**
 * A cache, not a store: nothing is saved to disk, the oldest keys go when memory is full
 * (as the family stack's Redis is set up). Listens on every address of the container:
 * the stack's private network is the boundary, so protected mode (which refuses every
 * other address when no password is set) is off; a stack that wants a password passes
 * `--requirepass` in its command.
 */
export const VALKEY_CONF = `# Image definition "valkey" (image/debian-images/definitions/valkey.ts).
bind * -::*
protected-mode no
port 6379
daemonize no
logfile ""
dir /var/lib/valkey
save ""
appendonly no
maxmemory 96mb
maxmemory-policy allkeys-lru
`;

/** Debian's valkey-server (trixie has Valkey 8.1), as a cache for the stack. */
export const valkey: ImageDefinitionInput = {
  name: 'valkey',
  description: "A cache for the stack: Debian's valkey-server, nothing persisted",
  archive: deviceArchive(),
  packages: [...BASE_PACKAGES, 'valkey-server'],
  skipDependencies: [
    ...BASE_SKIPPED,
    { package: 'init-system-helpers', reason: "valkey-server's maintainer scripts only (update-rc.d, deb-systemd-helper)" },
    { package: 'adduser', reason: "valkey-tools' postinst only: it makes the valkey user, declared here" },
  ],
  removePaths: WITHOUT_GCONV,
  // As valkey-tools' postinst makes it (adduser --system --group), with a fixed id.
  ...rootAnd({ name: 'valkey', id: 999, home: '/var/lib/valkey' }),
  files: [
    ...NSSWITCH,
    // Owners and modes as the postinsts set them (Setup_dir, dpkg-statoverride).
    { kind: 'directory', path: '/var/lib/valkey', mode: 0o750, owner: 'valkey:valkey' },
    { kind: 'directory', path: '/etc/valkey', mode: 0o2770, owner: 'valkey:valkey' },
    { kind: 'file', path: '/etc/valkey/valkey.conf', content: VALKEY_CONF, mode: 0o640, owner: 'valkey:valkey' },
  ],
  config: {
    user: 'valkey',
    entrypoint: ['/usr/bin/valkey-server', '/etc/valkey/valkey.conf'],
    workingDir: '/var/lib/valkey',
    exposedPorts: ['6379/tcp'],
    healthcheck: { test: ['CMD', 'valkey-cli', 'ping'], intervalSeconds: 10, timeoutSeconds: 3, retries: 3 },
  },
};

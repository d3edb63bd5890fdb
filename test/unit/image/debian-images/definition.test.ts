import { describe, expect, it } from 'vitest';
import { loadProfile } from '../../../../hardware/index.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { groupFile, ownerIds, passwdFile, validateDefinition, type ImageDefinitionInput } from '../../../../image/debian-images/definition.ts';
import { definitionNames, loadDefinition } from '../../../../image/debian-images/definitions/index.ts';
import { front } from '../../../../image/debian-images/definitions/front.ts';

const refusal = (data: unknown): MemuError => {
  try {
    validateDefinition(data, 'test');
  } catch (err) {
    return err as MemuError;
  }
  throw new Error('expected the definition to be refused');
};

describe('image definitions', () => {
  it('ships front and valkey, each valid and from the suite the device runs', () => {
    expect(definitionNames()).toEqual(['front', 'valkey']);
    for (const name of definitionNames()) {
      const d = loadDefinition(name);
      expect(d.name).toBe(name);
      for (const profile of ['nuc', 'qemu-amd64']) expect(d.archive.suite).toBe(loadProfile(profile).rootfs.suite);
      expect(d.packages).toContain('base-files');
    }
    expect(loadDefinition('valkey').packages).toContain('valkey-server');
    expect(loadDefinition('front').packages).toContain('nginx');
  });

  it('names the known definitions when asked for another (exit 2)', () => {
    let err: MemuError | undefined;
    try {
      loadDefinition('redis');
    } catch (e) {
      err = e as MemuError;
    }
    expect(err).toBeInstanceOf(MemuError);
    expect(err!.exitCode).toBe(ExitCode.badInput);
    expect(err!.message).toBe('unknown image definition "redis"');
    expect(err!.hint).toBe('choose one of: front, valkey');
  });

  it('runs the front door as www-data with its directories, and valkey as valkey, as the packages\' maintainer scripts would have made them', () => {
    const f = loadDefinition('front');
    expect(f.config.user).toBe('www-data');
    expect(ownerIds(f, 'www-data:www-data')).toEqual({ uid: 33, gid: 33 });
    expect(f.files.filter((x) => x.kind === 'directory').map((x) => x.path)).toEqual(['/run/nginx', '/var/lib/nginx']);
    const v = loadDefinition('valkey');
    expect(passwdFile(v)).toBe('root:x:0:0:root:/root:/bin/sh\nvalkey:x:999:999:valkey:/var/lib/valkey:/usr/sbin/nologin\n');
    expect(groupFile(v)).toBe('root:x:0:\nvalkey:x:999:\n');
    expect(v.files.find((x) => x.path === '/etc/valkey/valkey.conf')).toMatchObject({ mode: 0o640, owner: 'valkey:valkey' });
  });

  it('lists every problem of a bad definition, each with its path', () => {
    const bad: ImageDefinitionInput = {
      ...front,
      name: 'Front',
      packages: ['nginx', 'nginx', 'Bad_Name'],
      skipDependencies: [{ package: 'nginx', reason: 'no' }],
      users: [{ name: 'www-data', uid: 33, gid: 33, home: '/var/www', shell: '/usr/sbin/nologin' }, { name: 'again', uid: 33, gid: 7, home: '/', shell: '/bin/sh' }],
      files: [
        { kind: 'file', path: 'etc/relative', content: '' },
        { kind: 'file', path: '/etc/x/../y', content: '' },
        { kind: 'directory', path: '/run/nginx', owner: 'nobody:www-data' },
        { kind: 'directory', path: '/run/nginx', owner: 'www-data:staff' },
        { kind: 'file', path: '/etc/passwd', content: 'root::0:0::/:/bin/sh\n' },
      ],
      config: { ...front.config, user: 'nginx' },
    };
    const err = refusal(bad);
    expect(err.exitCode).toBe(ExitCode.badInput);
    for (const line of [
      'name: lower-case letters, digits and -',
      'packages[2]: a Debian package name',
      'files[0].path: an absolute, normalized path',
      'files[1].path: an absolute, normalized path',
      'uid 33 is used twice',
      'users[1].gid: no group has gid 7',
      'users: declare root with uid 0',
      'packages: nginx is listed twice',
      'skipDependencies[0].package: nginx is asked for in packages, so it cannot be skipped',
      'files: /run/nginx is declared twice',
      'files[4].path: /etc/passwd is written from users, groups and the resolved packages; do not declare it',
      'files[2].owner: user nobody is not declared in users',
      'files[3].owner: group staff is not declared in groups',
      'config.user: user nginx is not declared in users',
    ]) {
      expect(err.message).toContain(line);
    }
  });

  it('refuses unknown fields and a healthcheck not in Docker\'s CMD form', () => {
    expect(refusal({ ...front, extra: 1 }).message).toContain('extra: not a known field');
    expect(refusal({ ...front, config: { ...front.config, healthcheck: { test: ['CMD-SHELL', 'wget ...'] } } }).message).toContain('config.healthcheck.test[0]');
    expect(refusal({ ...front, config: { ...front.config, exposedPorts: ['80'] } }).message).toContain('PORT/tcp or PORT/udp');
  });
});

import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_LOCK_FORMAT, type ImageLock } from '../../../../shared/contracts/image-lock.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { createProgress } from '../../../../image/host/progress.ts';
import { checkStackForBuild, prepareStack } from '../../../../image/pipeline/stack.ts';
import { commandResult, runMemu } from '../../../helpers/memu-build.ts';

/**
 * What the device refuses at first boot is refused on the host, by `memu stack lock --check`
 * and by `memu build --stack`'s stack stage, before anything is preloaded.
 */
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const lock: ImageLock = {
  format: IMAGE_LOCK_FORMAT,
  images: { 'registry.test/app:1': { index: digest('a'), platforms: { 'linux/amd64': digest('b'), 'linux/arm64': digest('c') } } },
};
const log = createHostLogger({ json: true, level: 'silent' });

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'memu-stack-device-check-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

let caseNumber = 0;
async function stackDir(stackYml: string): Promise<string> {
  const dir = join(root, `case-${++caseNumber}`);
  await mkdir(dir);
  await writeFile(join(dir, 'stack.yml'), stackYml);
  await writeFile(join(dir, 'images.lock.json'), JSON.stringify(lock));
  return dir;
}

const app = (extra = '') => `services:\n  app:\n    image: registry.test/app:1\n${extra}`;

const refused: [string, string, RegExp][] = [
  ['profiles', app('    profiles: [debug]\n'), /service "app": key "profiles" is not supported/],
  ['extends', app('    extends: {service: base}\n'), /service "app": key "extends" is not supported/],
  ['deploy', app('    deploy: {replicas: 2}\n'), /service "app": key "deploy" is not supported/],
  ['an undefined ${VAR}', app('    environment: {PASSWORD: "${DB_PASSWORD}"}\n'), /service "app": key "environment\.PASSWORD": variable DB_PASSWORD is not set/],
  ['a dependency cycle', `${app('    depends_on: [db]\n')}  db:\n    image: registry.test/app:1\n    depends_on: [app]\n`, /depends_on cycle: app -> db -> app/],
  ['an undefined dependency', app('    depends_on: [db]\n'), /service "app" depends on undefined service "db"/],
  ['an anonymous volume', app('    volumes: ["/data"]\n'), /service "app": key "volumes": "\/data": anonymous volumes are not supported/],
  ['an empty stack.yml', '\n', /stack\.yml: is empty/],
  ['names differing only in case', `${app()}  App:\n    image: registry.test/app:1\n`, /services "app" \(.*\) and "App" \(.*\) differ only in letter case/],
];

describe('memu stack lock --check', () => {
  it.each(refused)('refuses %s with exit 2', async (_, yaml, message) => {
    const dir = await stackDir(yaml);
    const r = await runMemu(['--json', 'stack', 'lock', '--check', '--compose', join(dir, 'stack.yml'), '--lock', join(dir, 'images.lock.json')]);
    expect(r.code, r.stderr.slice(-2000)).toBe(ExitCode.badInput);
    expect(commandResult(r)).toMatchObject({ ok: false, exitCode: ExitCode.badInput, error: expect.stringMatching(message) });
  });

  it('accepts an image given through a YAML merge key', async () => {
    const dir = await stackDir('x-base: &base\n  image: registry.test/app:1\nservices:\n  app:\n    <<: *base\n');
    const r = await runMemu(['--json', 'stack', 'lock', '--check', '--compose', join(dir, 'stack.yml'), '--lock', join(dir, 'images.lock.json')]);
    expect(r.code, r.stderr.slice(-2000)).toBe(ExitCode.ok);
    expect(commandResult(r)).toMatchObject({ ok: true, locked: 1 });
  });
});

describe("memu build --stack's stack stage", () => {
  it.each(refused)('refuses %s with exit 2 before preloading anything', async (_, yaml, message) => {
    const dir = await stackDir(yaml);
    const workDir = join(dir, 'work');
    const err = await prepareStack({
      stackDir: dir,
      tree: join(dir, 'tree'),
      workDir,
      platform: 'linux/amd64',
      blobCacheDir: join(dir, 'blobs'),
      registryMirrors: {},
      log,
      progress: createProgress(log, { tty: false }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MemuError);
    expect(err).toMatchObject({ exitCode: ExitCode.badInput, message: expect.stringMatching(message) });
    await expect(access(workDir)).rejects.toThrow(/ENOENT/);
  });

  it('takes an image given through a YAML merge key, pinned for the platform', async () => {
    const dir = await stackDir('x-base: &base\n  image: registry.test/app:1\nservices:\n  app:\n    <<: *base\n');
    expect(await checkStackForBuild(dir, 'linux/arm64')).toEqual([{ service: 'app', reference: 'registry.test/app:1', digest: digest('c'), indexDigest: digest('a') }]);
  });
});

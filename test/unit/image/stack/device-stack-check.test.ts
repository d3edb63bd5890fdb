import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { checkStackAsDevice, findStackFiles, stackFilesFromList } from '../../../../image/stack/device-stack-check.ts';
import { REPO_ROOT } from '../../../helpers/memu-build.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-stack-check-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const APP = 'services:\n  app:\n    image: registry.test/app:1\n';

async function stackDir(files: Record<string, string>): Promise<string> {
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

async function refusal(files: Record<string, string>): Promise<MemuError> {
  const err = await findStackFiles(await stackDir(files))
    .then(checkStackAsDevice)
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(MemuError);
  expect((err as MemuError).exitCode).toBe(ExitCode.badInput);
  return err as MemuError;
}

const productEnvTemplate = () => readFile(join(REPO_ROOT, 'compose/templates/env/stack.env.tmpl'), 'utf8');

describe('findStackFiles', () => {
  it('takes stack.yml, then the device overrides beside it', async () => {
    const files = await findStackFiles(await stackDir({ 'stack.yml': APP, 'hailo.yml': 'services: {}\n' }));
    expect(files).toEqual({ stackDir: dir, base: join(dir, 'stack.yml'), overrides: [join(dir, 'hailo.yml')] });
  });

  it('refuses a compose file the device would never load, and a directory without stack.yml', async () => {
    await writeFile(join(dir, 'stack.yml'), APP);
    await writeFile(join(dir, 'extra.yaml'), APP);
    await expect(findStackFiles(dir)).rejects.toThrow(/has extra\.yaml, which the device never loads/);
    await rm(join(dir, 'stack.yml'));
    await expect(findStackFiles(dir)).rejects.toThrow(/has no stack\.yml/);
  });
});

describe('checkStackAsDevice', () => {
  it('returns every image a device may run, the overrides included', async () => {
    const files = await findStackFiles(await stackDir({ 'stack.yml': APP, 'hailo.yml': 'services:\n  npu:\n    image: registry.test/npu:2\n' }));
    expect(await checkStackAsDevice(files)).toEqual([
      { service: 'app', reference: 'registry.test/app:1' },
      { service: 'npu', reference: 'registry.test/npu:2' },
    ]);
  });

  it('takes an image given through a YAML merge key, and refuses one that depends on a variable', async () => {
    const merged = await findStackFiles(await stackDir({ 'stack.yml': 'x-base: &base\n  image: registry.test/app:1\nservices:\n  app:\n    <<: *base\n' }));
    expect(await checkStackAsDevice(merged)).toEqual([{ service: 'app', reference: 'registry.test/app:1' }]);
    const err = await refusal({ 'stack.yml': 'services:\n  app:\n    image: registry.test/app:${TAG:-1}\n' });
    expect(err.message).toMatch(/stack\.yml: service "app": image "registry\.test\/app:\$\{TAG:-1\}" uses variable interpolation/);
  });

  it('checks each override on top of the base, as on the hardware that applies it', async () => {
    const err = await refusal({ 'stack.yml': APP, 'hailo.yml': 'services:\n  app:\n    depends_on: [npu]\n' });
    expect(err.message).toBe(`${join(dir, 'hailo.yml')}: service "app" depends on undefined service "npu" (with hailo.yml applied, as on hardware that has /dev/hailo0)`);
  });

  it('defines only the data-directory variables for a stack without config templates', async () => {
    const uses = (value: string) => `services:\n  app:\n    image: registry.test/app:1\n    ports: ["${value}:80"]\n    volumes: ["\${MEMU_DATA_DIR}/app:/data"]\n`;
    const err = await refusal({ 'stack.yml': uses('${MEMU_HTTP_PORT}') });
    expect(err.message).toMatch(/service "app": key "ports\.0": variable MEMU_HTTP_PORT is not set/);
    await writeFile(join(dir, 'stack.yml'), uses('${MEMU_HTTP_PORT:-80}'));
    expect(await checkStackAsDevice(await findStackFiles(dir))).toHaveLength(1);
  });

  it('defines the stack env file variables when the stack carries the template, which must define exactly those', async () => {
    const stack = 'services:\n  app:\n    image: registry.test/app:1\n    ports: ["${MEMU_HTTP_PORT}:80"]\n    environment: {TZ: "${MEMU_TIMEZONE}"}\n';
    await stackDir({ 'stack.yml': stack, 'templates/env/stack.env.tmpl': await productEnvTemplate() });
    expect(await checkStackAsDevice(await findStackFiles(dir))).toHaveLength(1);

    await writeFile(join(dir, 'templates/env/stack.env.tmpl'), `${await productEnvTemplate()}MEMU_EXTRA={{ device.hostname }}\n`);
    expect((await refusal({})).message).toMatch(/stack\.env\.tmpl defines MEMU_EXTRA, which the device contract does not list/);
    await writeFile(join(dir, 'templates/env/stack.env.tmpl'), (await productEnvTemplate()).replace(/^MEMU_TIMEZONE=.*$/m, ''));
    expect((await refusal({})).message).toMatch(/stack\.env\.tmpl lacks MEMU_TIMEZONE/);
    await rm(join(dir, 'templates/env'), { recursive: true });
    expect((await refusal({})).message).toMatch(/templates has no env\/stack\.env\.tmpl/);
  });

  it('reads env files inside the stack as the device will, and takes files the device renders as present', async () => {
    const stack = 'services:\n  app:\n    image: registry.test/app:1\n    env_file: ["./app.env", "${MEMU_CONFIG_DIR}/env/app.env"]\n';
    const err = await refusal({ 'stack.yml': stack });
    expect(err.message).toMatch(/key "env_file": cannot read \/usr\/lib\/memu\/stack\/app\.env/);
    await writeFile(join(dir, 'app.env'), 'A=1\n');
    expect(await checkStackAsDevice(await findStackFiles(dir))).toHaveLength(1);
    await writeFile(join(dir, 'app.env'), 'A=${UNDEFINED_HERE}\n');
    expect((await refusal({})).message).toMatch(/app\.env: variable UNDEFINED_HERE is not set/);
  });

  it('treats the files of a command line as the base and its overrides', async () => {
    await stackDir({ 'a.yml': APP, 'b.yml': 'services:\n  app:\n    profiles: [x]\n' });
    const files = stackFilesFromList([join(dir, 'a.yml'), join(dir, 'b.yml')]);
    expect(files).toEqual({ stackDir: dir, base: join(dir, 'a.yml'), overrides: [join(dir, 'b.yml')] });
    await expect(checkStackAsDevice(files)).rejects.toThrow(/b\.yml: service "app": key "profiles" is not supported.*\(with b\.yml applied/);
    await expect(checkStackAsDevice(stackFilesFromList([join(dir, 'missing.yml')]))).rejects.toThrow(/cannot read compose file .*missing\.yml: ENOENT/);
    await expect(checkStackAsDevice(stackFilesFromList([dir]))).rejects.toThrow(/is not a regular file/);
  });
});

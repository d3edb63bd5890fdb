import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { evaluateMemory } from '../../../../agent/factory-qa/checks/memory.ts';
import { createFactoryQaModule } from '../../../../agent/factory-qa/index.ts';
import { loadProfile } from '../../../../hardware/index.ts';
import { verifyQaReport } from '../../../../shared/contracts/qa-report.ts';
import { keyIdOf } from '../../../../shared/contracts/signature.ts';
import { qaFixture } from './checks/qa-fixtures.ts';

// The FAT is a mounted directory here (shared/fat's DirectoryFatVolume); on the device it is
// the first partition, read through mtools.
let dir: string;
let fat: string;
let dataDir: string;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const station = [{ publicKey, keyId: keyIdOf(publicKey), claimCode: '7K3M-Q9XD-2HFT-B8RW', source: 'test' }];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-qa-module-'));
  fat = join(dir, 'fat');
  dataDir = join(dir, 'data');
  await mkdir(fat);
  await mkdir(dataDir);
  await writeFile(join(fat, 'memu-preseed.json'), JSON.stringify({ version: 1, factoryQa: true, claimCode: '7K3M-Q9XD-2HFT-B8RW' }));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function qaModule() {
  return createFactoryQaModule(
    {
      profile: loadProfile('pi5'),
      imageVersion: '0.1.0',
      dataDir,
      fatDevice: fat,
      sysDir: join(qaFixture('pi5-nvme-hailo'), 'sys'),
      steps: (t) => [{ name: 'memory', timeoutMs: 1000, run: async () => evaluateMemory({ memTotalKiB: 8_245_520 }, { ...t, memoryTestMiB: 0 }) }],
    },
    pino({ level: 'silent' }),
  );
}

describe('the factory QA module', () => {
  it("runs with the station's settings, names the preseeded claim code and leaves the signed report on the FAT", async () => {
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: pem, reportToFat: true }));
    const qa = qaModule();
    expect(qa.state()).toEqual({ status: 'waiting' });
    await qa.start();
    const state = await qa.finished();
    expect(state).toMatchObject({ status: 'done', report: { verdict: 'pass', serialNumber: 'a1b2c3d4e5f60718', claimCode: '7K3M-Q9XD-2HFT-B8RW' } });
    expect(qa.state()).toEqual(state);
    const bytes = await readFile(join(fat, 'memu-qa-report.json'));
    expect(verifyQaReport(bytes, await readFile(join(fat, 'memu-qa-report.json.sig'), 'utf8'), station).ok).toBe(true);
    await qa.stop();
  });

  it('without the QA settings nothing is tested and the state says why', async () => {
    const qa = qaModule();
    await qa.start();
    expect(await qa.finished()).toEqual({ status: 'error', reason: 'memu-qa.json is missing from the FAT partition: the station must write it when it flashes the drive' });
    expect(await readdir(dataDir)).toEqual([]);
  });

  it('a settings file with a broken key is an error naming the field, never the key', async () => {
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', reportToFat: false }));
    const qa = qaModule();
    await qa.start();
    expect(await qa.finished()).toEqual({ status: 'error', reason: 'memu-qa.json: signingKey is not a PEM private key' });
  });
});

import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { evaluateMemory } from '../../../../agent/factory-qa/checks/memory.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFactoryQaModule, type FactoryQaModuleOptions, type QaConsole } from '../../../../agent/factory-qa/index.ts';
import { loadProfile } from '../../../../hardware/index.ts';
import { parseQaUnitState, verifyQaReport, type QaUnitState } from '../../../../shared/contracts/qa-report.ts';
import { keyIdOf } from '../../../../shared/contracts/signature.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';
import { qaFixture } from './checks/qa-fixtures.ts';

// The FAT is a mounted directory here (shared/fat's DirectoryFatVolume); on the device it is
// the first partition, read through mtools (test/integration/agent/factory-qa/).
let fat: string;
let dataDir: string;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const station = [{ publicKey, keyId: keyIdOf(publicKey), claimCode: '7K3M-Q9XD-2HFT-B8RW', source: 'test' }];
const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const unit = () => ({ profile: loadProfile('pi5'), fatDevice: fat });

beforeEach(async () => {
  const dir = await tempDir('memu-qa-module-');
  fat = join(dir, 'fat');
  dataDir = join(dir, 'data');
  await mkdir(fat);
  await mkdir(dataDir);
  await writeFile(join(fat, 'memu-preseed.json'), JSON.stringify({ version: 1, factoryQa: true, claimCode: '7K3M-Q9XD-2HFT-B8RW' }));
});

/** What the HDMI console would show, in order. */
function recordingConsole(): QaConsole & { shown: (string | undefined)[] } {
  const shown: (string | undefined)[] = [];
  return { shown, show: async (text) => void shown.push(text) };
}

function qaModule(memTotalKiB = 8_245_520, screen = recordingConsole(), extra: Partial<FactoryQaModuleOptions> = {}) {
  const qa = createFactoryQaModule(
    {
      ...extra,
      imageVersion: '0.1.0',
      dataDir,
      sysDir: join(qaFixture('pi5-nvme-hailo'), 'sys'),
      steps: (t) => [{ name: 'memory', timeoutMs: 1000, run: async () => evaluateMemory({ memTotalKiB }, { ...t, memoryTestMiB: 0 }) }],
      console: screen,
    },
    pino({ level: 'silent' }),
  );
  return Object.assign(qa, { screen });
}

describe('the factory QA module', () => {
  it("runs with the station's settings, names the preseeded claim code, leaves the signed report on the FAT and shows PASS", async () => {
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: pem, reportToFat: true }));
    const qa = qaModule();
    expect(qa.state()).toEqual({ status: 'waiting' });
    const state = await qa.run(unit());
    expect(state).toMatchObject({ status: 'done', afterwards: 'powering-off', report: { verdict: 'pass', serialNumber: 'a1b2c3d4e5f60718', claimCode: '7K3M-Q9XD-2HFT-B8RW' } });
    expect(qa.state()).toEqual(state);
    const bytes = await readFile(join(fat, 'memu-qa-report.json'));
    expect(verifyQaReport(bytes, await readFile(join(fat, 'memu-qa-report.json.sig'), 'utf8'), station).ok).toBe(true);
    await qa.stop();
    expect(qa.screen.shown[0]).toMatch(/Factory QA running: identity/);
    expect(qa.screen.shown.at(-1)).toContain('Factory QA passed: S/N a1b2c3d4e5f60718, pi5, image 0.1.0.');
    expect(qa.screen.shown.at(-1)).toContain('  ########      ######      ########    ########');
  });

  it('a unit that fails stays on and the console names each failing check with its reason', async () => {
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: pem, reportToFat: false }));
    const qa = qaModule(1_000_000);
    const state = await qa.run(unit());
    expect(state).toMatchObject({ status: 'done', afterwards: 'staying-on', report: { verdict: 'fail', failingChecks: ['memory-size'] } });
    await qa.stop();
    const text = qa.screen.shown.at(-1)!;
    expect(text).toContain('  ##########    ######    ##########  ##');
    expect(text).toMatch(/\n {2}memory-size: .*below/);
    expect(text).toContain('The unit stays on.');
  });

  it('without the QA settings nothing is tested, the state says why and the console shows it', async () => {
    const qa = qaModule();
    expect(await qa.run(unit())).toEqual({ status: 'error', reason: 'memu-qa.json is missing from the FAT partition: the station must write it when it flashes the drive' });
    expect(await readdir(dataDir)).toEqual([]);
    await qa.stop();
    expect(qa.screen.shown).toHaveLength(1);
    expect(qa.screen.shown[0]).toContain('Factory QA could not run:\n  memu-qa.json is missing');
  });

  it('a settings file with a broken key is an error naming the field, never the key', async () => {
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', reportToFat: false }));
    expect(await qaModule().run(unit())).toEqual({ status: 'error', reason: 'memu-qa.json: signingKey is not a PEM private key' });
  });

  it('resumes a passing report (the copy the station reads put back on the FAT), and tests again after a failing one', async () => {
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: pem, reportToFat: true }));
    expect(await qaModule().resumePassed(unit())).toBeUndefined();
    await qaModule().run(unit());
    // A power cut between the report on the data partition and its copy on the FAT.
    await rm(join(fat, 'memu-qa-report.json.sig'));
    const qa = qaModule();
    const resumed = await qa.resumePassed(unit());
    expect(resumed).toMatchObject({ verdict: 'pass' });
    expect(qa.state()).toMatchObject({ status: 'done', afterwards: 'powering-off' });
    const bytes = await readFile(join(fat, 'memu-qa-report.json'));
    expect(bytes.equals(await readFile(join(dataDir, 'factory-qa/memu-qa-report.json')))).toBe(true);
    expect(verifyQaReport(bytes, await readFile(join(fat, 'memu-qa-report.json.sig'), 'utf8'), station).ok).toBe(true);

    await qaModule(1_000_000).run(unit());
    expect(await qaModule().resumePassed(unit())).toBeUndefined();
  });

  it('a family boot leaves the console alone; GET /api/factory-qa answers the state', async () => {
    const qa = qaModule();
    const app = Fastify();
    await app.register(qa.routes!, { prefix: '/admin' });
    expect((await app.inject({ method: 'GET', url: '/admin/api/factory-qa' })).json()).toEqual({ status: 'waiting' });
    qa.notRequested();
    expect((await app.inject({ method: 'GET', url: '/admin/api/factory-qa' })).json()).toEqual({ status: 'not-requested' });
    await qa.stop();
    expect(qa.screen.shown).toEqual([]);
    await app.close();
  });

  it("tells the station named in memu-qa.json how the run goes, then sends exactly the report and signature left on the FAT", async () => {
    const received: { path: string; state: QaUnitState }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const parsed = parseQaUnitState(Buffer.concat(chunks));
        if (parsed.ok) received.push({ path: req.url!, state: parsed.state });
        res.writeHead(parsed.ok ? 200 : 400).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const stationUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: pem, reportToFat: true, stationUrl }));
    const state = await qaModule().run(unit());
    server.close();
    expect(state).toMatchObject({ status: 'done', report: { verdict: 'pass' } });
    expect(new Set(received.map((r) => r.path))).toEqual(new Set(['/qa/units/7K3M-Q9XD-2HFT-B8RW']));
    const last = received.at(-1)!.state;
    expect(last).toMatchObject({ state: 'done', claimCode: '7K3M-Q9XD-2HFT-B8RW', serialNumber: 'a1b2c3d4e5f60718' });
    expect(Buffer.from(last.report!, 'base64').equals(await readFile(join(fat, 'memu-qa-report.json')))).toBe(true);
    expect(Buffer.from(last.signature!, 'base64').equals(await readFile(join(fat, 'memu-qa-report.json.sig')))).toBe(true);
    // Progress came before: the latest progress state may replace earlier ones, but never follows the report.
    expect(received.slice(0, -1).every((r) => r.state.state === 'testing')).toBe(true);
    expect(received[0]!.state).toMatchObject({ state: 'testing', stepsTotal: 2 });
  });

  it('a station that is gone holds the end of the run only for the bound, and the report is on the FAT all the same', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    await writeFile(join(fat, 'memu-qa.json'), JSON.stringify({ version: 1, signingKey: pem, reportToFat: true, stationUrl: `http://127.0.0.1:${port}` }));
    const qa = qaModule(undefined, undefined, { stationLink: { finalDeliveryMs: 300, retryDelayMs: () => 50 } });
    const began = Date.now();
    const state = await qa.run(unit());
    expect(Date.now() - began).toBeLessThan(2000);
    expect(state).toMatchObject({ status: 'done', afterwards: 'powering-off' });
    // The console showed PASS before the wait for the station ended.
    expect(qa.screen.shown.at(-1)).toContain('Factory QA passed');
    expect(verifyQaReport(await readFile(join(fat, 'memu-qa-report.json')), await readFile(join(fat, 'memu-qa-report.json.sig'), 'utf8'), station).ok).toBe(true);
  });
});

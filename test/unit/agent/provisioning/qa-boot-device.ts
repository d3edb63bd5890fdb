import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pino from 'pino';
import { loadAgentConfig } from '../../../../agent/config.ts';
import { createFactoryQaModule, listTree, type FactoryQaModuleOptions, type QaConsole } from '../../../../agent/factory-qa/index.ts';
import { createHttpModule } from '../../../../agent/http/index.ts';
import { agentApiKeyDigest, createProvisioningModule, type ProvisioningModuleOptions, type ProvisioningState } from '../../../../agent/provisioning/index.ts';
import { keyIdOf } from '../../../../shared/contracts/signature.ts';

/**
 * A unit on the QA bench, in a temporary directory: a data partition and a root file
 * system as the image ships them, and a FAT (a directory here, a real FAT image in the
 * integration test) with the station's preseed and QA settings. `boot()` runs the real
 * provisioning module over it with the real factory QA module, as agent.ts wires them,
 * and stops it as systemd does when the unit switches off. The data partition's checks
 * and growth are left out (they need root and a mounted partition: the end-to-end test's).
 */
export const CLAIM_CODE = '7K3M-Q9XD-2HFT-B8RW';
export const STATION_API_KEY = 'station-api-key-0123456789-abcdefghijklmnop';

/** What the image ships below the data partition and the root directories a boot writes. */
export const SHIPPED_DATA = ['docker/image/overlay2/repositories.json', 'stack/compose.yml'];
export const SHIPPED_ROOT = ['etc/ssh/sshd_config', 'var/log/apt/history.log', 'var/lib/systemd/deb-systemd-helper-enabled/ssh.service.dsh-also'];

export interface QaBench {
  dataDir: string;
  rootDir: string;
  /** The FAT: a directory, or a disk image (give `fatDevice` and write the files yourself). */
  fatDevice: string;
  station: { publicKey: ReturnType<typeof generateKeyPairSync>['publicKey']; keyId: string; claimCode: string; source: string }[];
}

export interface BootResult {
  /** The last boot's: a unit in its reboot cycles is booted again until it asks for no more reboots. */
  state: ProvisioningState;
  /** Boots, and the counts below, summed over those boots. */
  boots: number;
  reboots: number;
  powerOffs: number;
  qaRuns: number;
  stackRuns: number;
  console: (string | undefined)[];
  logs: string[];
}

/** The station's files for this unit's FAT: the preseed asking for QA, and the QA settings with the unit's key. */
export type QaFatFiles = Record<'memu-preseed.json' | 'memu-qa.json', string>;

/** A bench unit; with a directory for the FAT (no `fatDevice`), the station's files are put there. */
export async function makeQaBench(dir: string, opts: { fatDevice?: string; preseed?: Record<string, unknown> } = {}): Promise<QaBench & { qaFiles: QaFatFiles }> {
  const dataDir = join(dir, 'data');
  const rootDir = join(dir, 'root');
  for (const path of SHIPPED_DATA) await put(join(dataDir, path), 'shipped\n');
  for (const path of SHIPPED_ROOT) await put(join(rootDir, path), 'shipped\n');
  await put(join(rootDir, 'etc/machine-id'), '');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const fatDevice = opts.fatDevice ?? join(dir, 'fat');
  const qaFiles: QaFatFiles = {
    'memu-preseed.json': JSON.stringify(opts.preseed ?? { version: 1, factoryQa: true, claimCode: CLAIM_CODE, agentApiKey: STATION_API_KEY, hostname: 'family-box' }),
    'memu-qa.json': JSON.stringify({ version: 1, signingKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), reportToFat: true }),
  };
  if (!opts.fatDevice) for (const [name, text] of Object.entries(qaFiles)) await put(join(fatDevice, name), text);
  return { dataDir, rootDir, fatDevice, station: [{ publicKey, keyId: keyIdOf(publicKey), claimCode: CLAIM_CODE, source: 'test' }], qaFiles };
}

async function put(path: string, data: string) {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, data);
}

/** What systemd and friends write at every boot before the agent starts. */
export async function bootWrites(rootDir: string, boot: number): Promise<void> {
  const id = `${String(boot).padStart(2, '0')}${'ab'.repeat(15)}`;
  if ((await readFile(join(rootDir, 'etc/machine-id'), 'utf8')) === '') await writeFile(join(rootDir, 'etc/machine-id'), `${id}\n`);
  await put(join(rootDir, 'etc/ssh/ssh_host_ed25519_key'), `host key ${boot}\n`);
  await put(join(rootDir, `var/log/journal/${id}/system.journal`), 'journal\n');
  await put(join(rootDir, 'var/lib/systemd/random-seed'), 'seed\n');
}

let boots = 0;

/**
 * One boot of the unit: the real provisioning and factory QA modules, the checks given by
 * `steps` (or the real ones through `qa`), a power-off that records the call, and, when the
 * unit is switched off, what the other modules write on the way down (the health module's
 * clean-shutdown record, memu.db) before provisioning stops last.
 */
export async function bootUnit(
  bench: QaBench,
  opts: {
    profile?: string;
    qa?: Partial<FactoryQaModuleOptions>;
    cutAt?: string;
    withoutFactoryQa?: boolean;
    growSteps?: ProvisioningModuleOptions['stackSteps'];
    /** Serve the agent's HTTP API (loopback, a free port) with the QA routes, as agent.ts does. */
    withHttp?: boolean;
    /** Called once provisioning has settled, before the unit is stopped. */
    whileOn?: (on: { baseUrl: string | undefined }) => Promise<void>;
  } = {},
): Promise<BootResult> {
  const total: BootResult = { state: { state: 'pending', completed: [] }, boots: 0, reboots: 0, powerOffs: 0, qaRuns: 0, stackRuns: 0, console: [], logs: [] };
  // The warm reboots of the profile's QA cycles (20 on a Pi 5): each one a new boot, as on the bench.
  for (let rebootAsked = true; rebootAsked; ) {
    const one = await bootOnce(bench, opts);
    rebootAsked = one.reboots > 0;
    Object.assign(total, { state: one.state, boots: total.boots + 1, console: [...total.console, ...one.console], logs: [...total.logs, ...one.logs] });
    for (const count of ['reboots', 'powerOffs', 'qaRuns', 'stackRuns'] as const) total[count] += one[count];
  }
  return total;
}

async function bootOnce(bench: QaBench, opts: Parameters<typeof bootUnit>[1] = {}): Promise<BootResult> {
  const bootNumber = ++boots;
  await bootWrites(bench.rootDir, bootNumber);
  const logs: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  const shown: (string | undefined)[] = [];
  const screen: QaConsole = { show: async (text) => void shown.push(text) };
  const cut = async (point: string) => {
    if (point === opts.cutAt) throw new Error(`power cut at ${point}`);
  };
  let powerOffs = 0;
  let reboots = 0;
  let stackRuns = 0;
  const qa = createFactoryQaModule(
    {
      imageVersion: '0.1.0',
      dataDir: bench.dataDir,
      console: screen,
      checkpoint: cut,
      ...opts.qa,
    },
    log.child({ module: 'factory-qa' }),
  );
  const config = loadAgentConfig({ MEMU_DATA_DIR: bench.dataDir, MEMU_STACK_DIR: join(bench.dataDir, 'stack') });
  const provisioning = createProvisioningModule(config, log.child({ module: 'provisioning' }), {
    stackSteps: [{ name: 'bring-stack-up', run: async () => void stackRuns++ }],
    ...(opts.withoutFactoryQa
      ? {}
      : {
          factoryQa: {
            qa,
            powerOff: async () => void powerOffs++,
            reboot: async () => void reboots++,
            thisBoot: async () => ({ bootId: `boot-${bootNumber}`, upSeconds: 30 + (bootNumber % 7) }),
            rootDir: bench.rootDir,
            faultInjection: cut,
          },
        }),
    prepareDisk: async () => ({ growSteps: [...(opts.growSteps ?? [])], fatDevice: bench.fatDevice, profile: opts.profile ?? 'pi5' }),
  });
  const http = opts.withHttp
    ? createHttpModule(
        { listenHosts: ['127.0.0.1'], port: 0, routes: [qa.routes!], apiKeyDigest: () => agentApiKeyDigest(bench.dataDir), cookieSecretPath: join(bench.dataDir, 'agent', 'cookie-secret') },
        log.child({ module: 'http' }),
      )
    : undefined;
  // In agent.ts's order: started in this order, stopped in reverse, so provisioning stops after the HTTP server.
  await qa.start();
  await provisioning.start();
  await http?.start();
  const state = await provisioning.settled();
  const address = http?.addresses()[0];
  await opts.whileOn?.({ baseUrl: address && `http://${address.host}:${address.port}` });
  await http?.stop();
  if (powerOffs > 0) {
    await put(join(bench.dataDir, 'agent/boot-record.json'), '{"ending":"clean"}\n');
    await put(join(bench.dataDir, 'agent/memu.db'), 'sqlite\n');
  }
  await provisioning.stop();
  await qa.stop();
  // runFactoryQa logs its verdict once per run.
  const qaRuns = logs.filter((l) => /"msg":"factory QA (PASSED|FAILED)"/.test(l)).length;
  return { state, boots: 1, reboots, powerOffs, qaRuns, stackRuns, console: shown, logs };
}

/** The unit as the next boot (or the family) finds it. */
export async function snapshot(bench: QaBench, readFat: (name: string) => Promise<string | undefined>, fatNames: () => Promise<string[]>) {
  return {
    data: await listTree(bench.dataDir),
    root: await listTree(bench.rootDir),
    machineId: await readFile(join(bench.rootDir, 'etc/machine-id'), 'utf8'),
    fat: (await fatNames()).sort(),
    preseed: JSON.parse((await readFat('memu-preseed.json')) ?? 'null'),
  };
}

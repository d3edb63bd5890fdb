import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createAdminAuthModule } from '../../agent/admin-auth/index.ts';
import { hashClaimCode } from '../../agent/claim-code/index.ts';
import { DEVICE_SETTINGS_FORMAT, writeStoredSettings } from '../../agent/device-settings/index.ts';
import { createFamilyDbModule, type FamilyDb, type FamilyDbModule } from '../../agent/family-db/index.ts';
import { createFamilyMembersModule } from '../../agent/family-members/index.ts';
import { createHttpModule } from '../../agent/http/index.ts';
import type { AgentModule } from '../../agent/module.ts';
import { createDashboardModule, localApiTailnet } from '../../agent/dashboard/index.ts';
import { createHealthModule } from '../../agent/health/index.ts';
import { createSetupWizardModule, type RestoreStepDeps, type WifiNetwork } from '../../agent/setup-wizard/index.ts';
import type { StackModule } from '../../agent/stack/index.ts';
import { tailscaleControl } from '../../agent/tailscale/index.ts';
import { webAssetRoutes } from '../../agent/web-pages/index.ts';
import { FakeImmich } from './fake-immich.ts';
import { FakeSynapse } from './fake-synapse.ts';
import { FakeTailscaled } from './fake-tailscaled.ts';

/**
 * The agent's web side as agent.ts wires it (memu.db, admin sign-in, members, setup
 * wizard, the http module with its access rules) in a temporary directory, with the FAKE
 * Synapse, Immich and tailscaled of test/helpers in place of the stack's services, and a
 * sysfs with one wired port. For the wizard's and dashboard's HTTP and browser tests.
 */
export const TEST_CLAIM_CODE = '7K3M-Q9XD-2HFT-B8RW';
const SECRET = 'registration-shared-secret-for-tests';

export interface WebAgent {
  /** `http://127.0.0.1:PORT`; changes after restart(). */
  base: string;
  dir: string;
  dataDir: string;
  db(): FamilyDb;
  synapse: FakeSynapse;
  immich: FakeImmich;
  tailscaled: FakeTailscaled;
  /** Stops and starts the agent's modules on the same data directory, as a restart of the agent. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A FAKE stack module for the dashboard: a few services in the states a family may meet. */
export function fakeStackForDashboard(): Pick<StackModule, 'status' | 'restartService'> {
  return {
    status: () => ({
      state: 'present',
      loop: 'running',
      converged: true,
      project: 'memu',
      services: {
        memu_proxy: { state: 'healthy', containerId: 'c1', summary: 'memu_proxy is healthy' },
        synapse: { state: 'healthy', containerId: 'c2', summary: 'synapse is healthy' },
        immich_server: { state: 'unhealthy', containerId: 'c3', restarts: 1, loopBreaker: false, nextRetryAt: Date.now() + 20_000, summary: 'immich_server is unhealthy; restarting in 20 s' },
      },
    }),
    restartService: async () => undefined,
  };
}

/** A box with no backup drive and no restore run: the wizard's restore page shows only its form. */
const NO_BACKUP_TO_RESTORE: RestoreStepDeps['restore'] = {
  driveAttached: async () => false,
  begin: async () => {
    throw new Error('No backup drive is plugged in: plug in the drive labelled MEMU-BACKUP and try again.');
  },
  state: async () => ({ state: 'idle' }),
};

export interface WebAgentOptions {
  dashboard?: boolean;
  wifi?: WifiNetwork[];
  /** The wizard's restore onto this box, made with the agent's memu.db and data directory. */
  restore?: (agent: { familyDb: FamilyDbModule; dataDir: string }) => RestoreStepDeps['restore'];
}

export async function startWebAgent(opts: WebAgentOptions = {}): Promise<WebAgent> {
  const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
  const dir = await mkdtemp(join(tmpdir(), 'memu-web-'));
  const dataDir = join(dir, 'data');
  await mkdir(join(dir, 'root', 'etc'), { recursive: true });
  const eth0 = join(dir, 'sys-class-net', 'eth0');
  await mkdir(join(dir, 'devices', 'eth0'), { recursive: true });
  await mkdir(eth0, { recursive: true });
  await symlink(join(dir, 'devices', 'eth0'), join(eth0, 'device'));
  await writeFile(join(eth0, 'operstate'), 'up\n');
  if (opts.wifi) {
    // A Wi-Fi adapter, not yet associated; its scan is the FAKE list given.
    const wlan0 = join(dir, 'sys-class-net', 'wlan0');
    await mkdir(join(dir, 'devices', 'wlan0'), { recursive: true });
    await mkdir(join(wlan0, 'wireless'), { recursive: true });
    await symlink(join(dir, 'devices', 'wlan0'), join(wlan0, 'device'));
    await writeFile(join(wlan0, 'operstate'), 'down\n');
  }
  await writeStoredSettings(dataDir, { format: DEVICE_SETTINGS_FORMAT, hostname: 'memu-hub', hostnameSource: 'default', timezone: 'UTC', updateChannel: 'stable', factoryQa: false });
  const synapse = new FakeSynapse({ sharedSecret: SECRET, serverName: 'memu-hub.home.arpa' });
  const immich = new FakeImmich();
  const tailscaled = new FakeTailscaled({ socketPath: join(dir, 'tailscaled.sock'), tailnet: 'smiths.ts.net' });
  await Promise.all([synapse.start(), immich.start(), tailscaled.start()]);
  const hash = await hashClaimCode(TEST_CLAIM_CODE);

  let modules: AgentModule[] = [];
  let familyDbModule: ReturnType<typeof createFamilyDbModule> | undefined;
  const agent: WebAgent = {
    base: '',
    dir,
    dataDir,
    db: () => familyDbModule!.db,
    synapse,
    immich,
    tailscaled,
    async restart() {
      for (const m of [...modules].reverse()) await m.stop();
      await start();
    },
    async stop() {
      for (const m of [...modules].reverse()) await m.stop();
      await Promise.all([synapse.stop(), immich.stop(), tailscaled.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };

  async function start(): Promise<void> {
    const familyDb = createFamilyDbModule({ dataDir }, log);
    familyDbModule = familyDb;
    const db = () => familyDb.db;
    const adminAuth = createAdminAuthModule({ db }, log);
    const members = createFamilyMembersModule(
      { db, dataDir, endpoints: async () => ({ synapse: { url: synapse.url, sharedSecret: SECRET }, immich: { url: immich.url, hostname: 'memu-hub' } }) },
      log,
    );
    const wizard = createSetupWizardModule(
      {
        db,
        dataDir,
        adminAuth,
        members,
        claimCodeHash: async () => hash,
        tailscale: () => tailscaleControl({ socketPath: join(dir, 'tailscaled.sock'), hostname: async () => 'memu-hub', log }),
        rootEffects: { rootDir: join(dir, 'root'), sysClassNetDir: join(dir, 'sys-class-net') },
        sysClassNetDir: join(dir, 'sys-class-net'),
        scanWifi: async () => opts.wifi ?? [],
        restore: opts.restore?.({ familyDb, dataDir }) ?? NO_BACKUP_TO_RESTORE,
      },
      log,
    );
    const extra: AgentModule[] = [];
    if (opts.dashboard) {
      const health = createHealthModule({ version: '1.0.0-test', dataDir, sources: [] }, log);
      extra.push(
        health,
        createDashboardModule(
          {
            db,
            dataDir,
            sessions: adminAuth.sessions,
            limiter: adminAuth.limiter,
            members,
            stack: fakeStackForDashboard(),
            health,
            tailnet: localApiTailnet({ socketPath: join(dir, 'tailscaled.sock'), hostname: async () => 'memu-hub', log }),
            // A FAKE power control: the machine running the tests is never restarted.
            power: { reboot: async () => undefined, powerOff: async () => undefined },
          },
          log,
        ),
      );
    }
    const http = createHttpModule(
      {
        listenHosts: ['127.0.0.1'],
        port: 0,
        routes: [webAssetRoutes, adminAuth.routes, wizard.routes, ...extra.flatMap((m) => (m.routes ? [m.routes] : []))],
        apiKeyDigest: async () => undefined,
        sessions: adminAuth.sessionResolver,
        pageGate: (request) => wizard.pageGate(request),
        cookieSecretPath: join(dataDir, 'agent', 'cookie-secret'),
      },
      log,
    );
    modules = [familyDb, adminAuth, members, wizard, ...extra, http];
    for (const m of modules) await m.start();
    agent.base = `http://127.0.0.1:${http.addresses()[0]!.port}`;
  }

  await start();
  return agent;
}

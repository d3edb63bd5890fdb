import { join } from 'node:path';
import type { Logger } from 'pino';
import { createAdminAuthModule, type AdminAuthModule } from './admin-auth/index.ts';
import { createBackupService, createBoxRestoreService, dockerThrowawayPostgres, postgresContainerDumps, postgresContainerRestores, waitForDatabaseServices, type BackupService, type BoxRestoreService } from './backups/index.ts';
import type { AgentConfig } from './config.ts';
import { createDashboardModule, localApiTailnet, systemctlPower, type DashboardModule } from './dashboard/index.ts';
import { deviceRootEffects, readStoredSettings } from './device-settings/index.ts';
import { createFactoryQaModule, type FactoryQaModule } from './factory-qa/index.ts';
import { createFamilyDbModule, type FamilyDbModule } from './family-db/index.ts';
import { createFamilyMembersModule, type AccountServiceEndpoints, type FamilyMembersModule } from './family-members/index.ts';
import { createHealthModule, deviceHealth, type HealthCheck, type HealthModule } from './health/index.ts';
import { createHttpModule, type HttpModule } from './http/index.ts';
import { createMaintenanceLock, type MaintenanceLock } from './maintenance/index.ts';
import type { AgentModule } from './module.ts';
import { agentApiKeyDigest, createProvisioningModule, readDeviceSecrets, type ProvisioningModule } from './provisioning/index.ts';
import { createSetupWizardModule, readProgress, type SetupWizardModule } from './setup-wizard/index.ts';
import { containerName, createStackModule, type StackModule, type StackModuleOptions } from './stack/index.ts';
import { tailscaleControl } from './tailscale/index.ts';
import { createWatchdogModule, systemdWatchdogUsec, type WatchdogModule } from './watchdog/index.ts';
import { webAssetRoutes } from './web-pages/index.ts';
import { runCommand } from '../shared/process/run-command.ts';

export interface Agent {
  start(): Promise<void>;
  stop(): Promise<void>;
  factoryQa: FactoryQaModule;
  stack: StackModule;
  provisioning: ProvisioningModule;
  familyDb: FamilyDbModule;
  adminAuth: AdminAuthModule;
  members: FamilyMembersModule;
  wizard: SetupWizardModule;
  /** Backups, restores and (later) updates take it, so they never run at once. */
  maintenance: MaintenanceLock;
  backups: BackupService;
  boxRestore: BoxRestoreService;
  health: HealthModule;
  dashboard: DashboardModule;
  http: HttpModule;
  watchdog: WatchdogModule;
}

/** Where tailscaled's LocalAPI socket is (the memu_tailscale container shares it with the host). */
const TAILSCALE_SOCKET = '/var/run/tailscale/tailscaled.sock';
/** Synapse's client listener as compose/stack.yml publishes it, on loopback only. */
const SYNAPSE_URL = 'http://127.0.0.1:8008';

/**
 * Builds the agent's modules in dependency order, each handed the interfaces it needs,
 * and starts them in that order (stopped in reverse):
 *
 *   factory-qa      the state of a factory QA boot, for the HDMI console and GET /api/factory-qa
 *   stack           finds the installed stack; idle until provisioning is done
 *   provisioning    first boot, with the stack's bring-up as one of its steps; or, when the
 *                   preseed says factoryQa: true, the QA run, the power-off and (as it stops,
 *                   after every module after it) the factory-fresh cleanup
 *   family-db       memu.db: the family, its admin and members, sessions, audit log
 *   admin-auth      the admin's sessions, sign-in pages, rate limits on secrets
 *   family-members  members and their accounts on the stack's services
 *   setup-wizard    claim, admin, network, region, remote access, members, done
 *   backups         the family's backup targets, the daily backup (stack held still only while
 *                   the databases are dumped), the weekly check and restore drill, "back up now",
 *                   single-item restores; under the maintenance lock that updates will share
 *   box-restore     the wizard's restore onto a new box: files, databases before the apps, memu.db;
 *                   at start, finishes one a power cut stopped after memu.db was in
 *   health          the device's checks on their schedules, repairs with loop breakers, and the
 *                   liveness answer, report and metrics from them and from every module
 *   dashboard       the admin's pages: services, storage, members, Tailscale, account, power, audit
 *   http            serves every module's routes behind the access rules, on loopback, and
 *                   on the Docker bridge (where the front door reaches it) once Docker answers
 *   watchdog        pings systemd's watchdog while the event loop and the modules above are alive
 */
export function createAgent(
  config: AgentConfig,
  log: Logger,
  tuning: { stack?: StackModuleOptions['tuning']; /** Instead of the device's own checks. */ healthChecks?: HealthCheck[] } = {},
): Agent {
  const child = (module: string) => log.child({ module });
  const stack = createStackModule({ stackDir: config.stackDir, dataDir: config.dataDir, dockerSocket: config.dockerSocket, tuning: tuning.stack }, child('stack'));
  const factoryQa = createFactoryQaModule({ imageVersion: config.version, dataDir: config.dataDir }, child('factory-qa'));
  const provisioning = createProvisioningModule(config, child('provisioning'), {
    stackSteps: [{ name: 'bring-stack-up', run: (stepLog) => stack.bringUp(stepLog) }],
    // --no-block: systemctl returns at once instead of being ended with the agent's cgroup on the way down.
    factoryQa: {
      qa: factoryQa,
      powerOff: async () => void (await runCommand('systemctl', ['--no-block', 'poweroff'])),
      reboot: async () => void (await runCommand('systemctl', ['--no-block', 'reboot'])),
    },
  });
  const familyDb = createFamilyDbModule({ dataDir: config.dataDir }, child('family-db'));
  const db = () => familyDb.db;
  const adminAuth = createAdminAuthModule({ db }, child('admin-auth'));
  const hostname = async () => (await readStoredSettings(config.dataDir))?.hostname ?? 'memu';
  const members = createFamilyMembersModule({ db, dataDir: config.dataDir, endpoints: () => accountEndpoints(config, stack, hostname) }, child('family-members'));
  const wizard = createSetupWizardModule(
    {
      db,
      dataDir: config.dataDir,
      adminAuth,
      members,
      claimCodeHash: () => readDeviceSecrets(config.dataDir).then((s) => s.claimCodeHash, () => undefined),
      tailscale: () => tailscaleControl({ socketPath: TAILSCALE_SOCKET, hostname, log: child('tailscale') }),
      rootEffects: deviceRootEffects(join(config.sysBlockDir, '..', 'net')),
      sysClassNetDir: join(config.sysBlockDir, '..', 'net'),
      // The box-restore service is made below, with the backups it reads.
      restore: { driveAttached: () => boxRestore.driveAttached(), begin: (input, password) => boxRestore.begin(input, password), state: () => boxRestore.state() },
    },
    child('setup-wizard'),
  );
  const maintenance = createMaintenanceLock();
  const openFamilyDb = () => {
    try {
      return familyDb.db;
    } catch {
      return undefined;
    }
  };
  const backups = createBackupService(
    {
      dataDir: config.dataDir,
      lock: maintenance,
      stack,
      databases: () => stackDatabases(config, stack),
      familyDb: openFamilyDb,
      host: hostname,
      stackVersions: () => ({ memuOs: config.version }),
      scheduleFrom: provisioning.done(),
      throwawayDatabase: dockerThrowawayPostgres({ image: () => stackPostgresImage(stack), log: child('backups') }),
    },
    child('backups'),
  );
  const boxRestore = createBoxRestoreService(
    {
      dataDir: config.dataDir,
      engine: backups.engine,
      lock: maintenance,
      stack,
      familyDb,
      databases: async () => stackDatabaseForRestore(config, stack),
      setupFinished: () => {
        const open = openFamilyDb();
        return open ? readProgress(open).finished : false;
      },
      // The old box's targets and schedule came back with its secrets.
      restored: () => backups.reload(),
    },
    child('box-restore'),
  );
  const device = tuning.healthChecks
    ? { checks: tuning.healthChecks }
    : deviceHealth({ dataDir: config.dataDir, dockerSocket: config.dockerSocket, layoutPath: config.layoutPath, log: child('health'), stack });
  const health = createHealthModule(
    {
      version: config.version,
      dataDir: config.dataDir,
      sources: [provisioning.health, stack.health, backups.health],
      ...device,
      // A first boot's slow Docker start is not a hung Docker: repairs wait for provisioning.
      repairsFrom: provisioning.done(),
      snapshotPath: config.healthSnapshotPath,
    },
    child('health'),
  );
  const dashboard = createDashboardModule(
    {
      db,
      dataDir: config.dataDir,
      sessions: adminAuth.sessions,
      limiter: adminAuth.limiter,
      members,
      stack,
      health,
      tailnet: localApiTailnet({ socketPath: TAILSCALE_SOCKET, hostname, log: child('tailscale') }),
      power: systemctlPower(),
      backups,
    },
    child('dashboard'),
  );
  // Provisioning stays before every module that writes to the data partition: it stops after them, and a passed QA unit is cleaned then.
  const beforeHttp: AgentModule[] = [factoryQa, stack, provisioning, familyDb, adminAuth, members, wizard, backups, boxRestore, health, dashboard];
  const http = createHttpModule(
    {
      listenHosts: config.listenHosts,
      port: config.port,
      routes: [webAssetRoutes, ...beforeHttp.flatMap((m) => (m.routes ? [m.routes] : []))],
      apiKeyDigest: () => agentApiKeyDigest(config.dataDir),
      sessions: adminAuth.sessionResolver,
      pageGate: (request) => wizard.pageGate(request),
      cookieSecretPath: join(config.dataDir, 'agent', 'cookie-secret'),
    },
    child('http'),
  );
  const watchdog = createWatchdogModule({ watchdogUsec: systemdWatchdogUsec(), probes: [health.liveness, http.liveness] }, child('watchdog'));
  const modules: AgentModule[] = [...beforeHttp, http, watchdog];
  const started: AgentModule[] = [];
  let stopping = false;
  return {
    factoryQa,
    stack,
    provisioning,
    familyDb,
    adminAuth,
    members,
    wizard,
    maintenance,
    backups,
    boxRestore,
    health,
    dashboard,
    http,
    watchdog,
    async start() {
      // How long each module took to start: what an operator asks when the agent is slow to answer after boot.
      const startMs: Record<string, number> = {};
      for (const m of modules) {
        log.debug({ module: m.name }, 'starting module');
        const began = performance.now();
        await m.start();
        startMs[m.name] = Math.round(performance.now() - began);
        started.push(m);
      }
      log.info({ startMs }, 'modules started');
      // The loop keeps the stack the way first boot brought it up, so it starts only then.
      void provisioning.done().then(() => stack.startLoop());
      if (config.listenOnDockerBridge) {
        void stack
          .dockerBridgeGateway()
          .then((gateway) => http.listenAlso(gateway))
          .catch((err: unknown) => {
            if (!stopping) log.error({ err }, 'cannot listen on the Docker bridge: the front door cannot reach the agent');
          });
      }
    },
    async stop() {
      stopping = true;
      for (const m of started.reverse()) {
        await m.stop().catch((err: unknown) => log.error({ err, module: m.name }, 'module failed to stop'));
      }
    },
  };
}

/** The stack's account services as the agent reaches them; a service the installed stack lacks is left out. */
async function accountEndpoints(config: AgentConfig, stack: StackModule, hostname: () => Promise<string>): Promise<AccountServiceEndpoints> {
  const status = stack.status();
  const services = status.state === 'present' ? Object.keys(status.services) : [];
  const endpoints: AccountServiceEndpoints = {};
  if (services.includes('synapse')) endpoints.synapse = { url: SYNAPSE_URL, sharedSecret: (await readDeviceSecrets(config.dataDir)).stack.synapseRegistrationSharedSecret };
  if (services.includes('immich_server')) endpoints.immich = { url: `http://127.0.0.1:${config.photosPort}`, hostname: await hostname() };
  return endpoints;
}

/** Every database in the stack's PostgreSQL, dumped inside its container; none when the installed stack has no memu_postgres (the demo's). */
async function stackDatabases(config: AgentConfig, stack: StackModule) {
  const status = stack.status();
  if (status.state !== 'present' || !status.project || !Object.hasOwn(status.services, 'memu_postgres')) return [];
  return postgresContainerDumps({
    container: containerName(status.project, 'memu_postgres'),
    user: 'postgres',
    password: async () => (await readDeviceSecrets(config.dataDir)).stack.postgresPassword,
  });
}

/** The stack's PostgreSQL for a whole-box restore; undefined when the installed stack has none (the demo's). */
function stackDatabaseForRestore(config: AgentConfig, stack: StackModule) {
  const status = stack.status();
  if (status.state !== 'present' || !status.project || !Object.hasOwn(status.services, 'memu_postgres')) return undefined;
  return postgresContainerRestores(
    { container: containerName(status.project, 'memu_postgres'), user: 'postgres', password: async () => (await readDeviceSecrets(config.dataDir)).stack.postgresPassword },
    () =>
      waitForDatabaseServices(() => {
        const now = stack.status();
        return now.state === 'present' ? now.services : {};
      }),
  );
}

/** The image memu_postgres runs (by digest, as the lock pinned it): the restore drill's throwaway database runs the same. */
async function stackPostgresImage(stack: StackModule): Promise<string> {
  const status = stack.status();
  if (status.state !== 'present' || !status.project) throw new Error('the stack is not known yet, so its postgres image is not either');
  const r = await runCommand('docker', ['inspect', '--format', '{{.Config.Image}}', containerName(status.project, 'memu_postgres')]);
  return r.stdout.trim();
}

/**
 * The whole box under QEMU (TCG), offline, on an 8 GiB drive: the qemu-amd64 image with
 * a preloaded stack (test/helpers/test-stack.ts, whose front door is a real nginx) and a
 * preseed carrying the API key and the claim code. It begins on the factory's bench: the QA
 * station flashes three drives at once, each boots in its own VM (two pass, one with too
 * little memory fails), the station collects the signed reports and prints labels. Then two
 * drives share the build: the first is a drive that passed QA, booting as a new box
 * (growth, stack, who may reach the agent, the setup wizard in Chromium with a hard reset
 * half-way, which is also the drive's second boot, and a backup onto a virtual USB drive),
 * and a second whose first boot is hard-reset in the middle of bringing the stack up, which
 * goes through the health checks and ends as a new box restored from that USB drive.
 * (`memu vm`, the command around the same boot, is tested for its arguments in
 * test/integration/image/cli/commands/vm.test.ts.)
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../hardware/index.ts';
import type { ImageManifest } from '../../image/release/image-manifest.ts';
import { createHostLogger } from '../../image/host/log.ts';
import { startVm, waitForAgent, type RunningVm } from '../../image/vm/run-vm.ts';
import { AGENT_HEALTH_PATH, AGENT_LIVENESS_PATH, AGENT_METRICS_PATH } from '../../shared/contracts/agent-api.ts';
import { buildQemuImage, runMemu, type BuildOutput } from '../helpers/memu-build.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/oci-registry.ts';
import { isStackUp, writeTestStack, type StackHealthz } from '../helpers/test-stack.ts';
import { runCommand } from '../../shared/process/run-command.ts';
import { PRESEED_FILE_NAME } from '../../shared/contracts/preseed.ts';
import { QA_SETTINGS_FILE_NAME } from '../../shared/contracts/qa-report.ts';
import type { QaRecord } from '../../image/factory-qa/qa-records.ts';
import { commandResult } from '../helpers/memu-build.ts';
import { listFatRoot, readFatFile } from '../helpers/fat-disk.ts';
import { launchChromium, VIEWPORTS } from '../helpers/browser.ts';

const GiB = 1024 ** 3;
const HTTP_PORT = 18483;
const AGENT_PORT = 18482;
const REGISTRY_PORT = 18350;
/** `memu qa station watch` on the host; the QA units reach it as 10.0.2.2, QEMU's address for the host. */
const STATION_PORT = 18470;
const API_KEY = 'e2e-fleet-key-0123456789-abcdefghijklmnopq';
const CLAIM_CODE = 'M3MA-E2E0-7K3M-Q9XD';

interface Report extends StackHealthz {
  version: string;
  bootId: string;
}

interface HealthReport extends Report {
  reasons: { source: string; code: string; message: string; status?: string; action?: string; since?: number }[];
  checks: { check: string; status: string; reason: string; since: number }[];
  history?: unknown[];
}

describe('the qemu-amd64 box with a preloaded stack (QEMU, no network, 8 GiB drive)', () => {
  let work: string;
  let registry: TestRegistry;
  let registryHost: string;
  let build: BuildOutput;
  let manifest: ImageManifest;
  let vm: RunningVm | undefined;
  let first: Report | undefined;
  /** The family's backup drive: a raw ext4 image labelled MEMU-BACKUP, plugged into the first box and into the box restored from it. */
  let usbDrive: string;
  /** What the first box backed up, and the recovery kit's password. */
  let backedUp: { photoSha256: string; password: string } | undefined;
  /** The build's image with the preseed (API key, claim code): the second box's drive. */
  let preseededImage: string;
  /** The first box's drive: one that passed factory QA on the station's bench, and its claim code from the station. */
  let qaPassedDrive: { image: string; claimCode: string } | undefined;
  const log = createHostLogger({ json: true, level: 'warn' });
  const boot = (workDir: string, extra: { agentPort?: number; image?: string } = {}) =>
    startVm({ image: preseededImage, profile: loadProfile('qemu-amd64'), workDir, diskSizeBytes: 8 * GiB, noNetwork: true, httpPort: HTTP_PORT, usbDrive, log, ...extra });
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${HTTP_PORT}/admin/api${path}`, { ...init, headers: { authorization: `Bearer ${API_KEY}`, ...(init.body ? { 'content-type': 'application/json' } : {}) }, signal: AbortSignal.timeout(30_000) });
  // A box that never comes up says why on its serial console: the failure carries its last lines.
  const withConsole = async <T>(wait: Promise<T>): Promise<T> =>
    wait.catch(async (err: Error) => {
      const tail = vm ? (await readFile(vm.serialLog, 'latin1').catch(() => '')).split('\n').slice(-60).join('\n') : '';
      throw new Error(`${err.message}\n--- the VM's serial console, last lines ---\n${tail}`, { cause: err });
    });
  const report = async () => (await withConsole(waitForAgent({ httpPort: HTTP_PORT, apiKey: API_KEY, timeoutMs: 15 * 60_000, isReady: (a) => isStackUp(a.report!) }))).report as unknown as Report;

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-e2e-');
    usbDrive = join(work, 'usb-backup-drive.img');
    await runCommand('truncate', ['-s', '1G', usbDrive]);
    await runCommand('mkfs.ext4', ['-q', '-F', '-L', 'MEMU-BACKUP', usbDrive]);
    registry = await startTestRegistry({ port: REGISTRY_PORT });
    registryHost = registry.host;
    const stackDir = await writeTestStack(registry, join(work, 'stack'), { canary: true });
    build = await buildQemuImage(join(work, 'out'), ['--stack', stackDir]);
    manifest = JSON.parse(await readFile(build.manifest, 'utf8')) as ImageManifest;
    // From here on nothing may need the registry: the first boot is offline.
    await registry.stop();
    const settings = join(work, 'settings.json');
    await writeFile(settings, JSON.stringify({ version: 1, hostname: 'memu-e2e', agentApiKey: API_KEY, claimCode: CLAIM_CODE }));
    // A copy: the station flashes the build's own image, which must still match its block map.
    preseededImage = join(work, 'preseeded.img');
    await runCommand('cp', ['--sparse=always', build.image, preseededImage]);
    const preseed = await runMemu(['--json', 'preseed', '--image', preseededImage, '--file', settings]);
    if (preseed.code !== 0) throw new Error(`memu preseed failed (exit ${preseed.code}):\n${preseed.stderr.slice(-2000)}`);
  });
  afterAll(async () => {
    await vm?.stop(10_000);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('records the preloaded images in the manifest, pinned by digest', () => {
    // One entry per image: store, api and web share the busybox image.
    expect(manifest.containerImages.map((i) => i.reference).sort()).toEqual([`${registryHost}/memu-test/busybox:1`, `${registryHost}/memu-test/front:1`]);
    for (const image of manifest.containerImages) expect(image.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('factory QA: the station flashes three drives at once; each unit tests itself, a passed one switches off factory-fresh; the station collects the signed reports and prints labels', async () => {
    const started = Date.now();
    const keys = join(work, 'qa-keys');
    const bench = join(work, 'qa-bench');
    const drives = [1, 2, 3].map((n) => join(work, `qa-drive-${n}.img`));
    // The batch's settings are the company's: what every shipped unit keeps (the fleet's key, the hostname).
    const batch = join(work, 'qa-batch.json');
    await writeFile(batch, JSON.stringify({ version: 1, hostname: 'memu-e2e', agentApiKey: API_KEY }));
    const flashed = await runMemu(['--json', 'qa', 'station', 'flash', build.image, ...drives, '--keys', keys, '--preseed', batch, '--station-url', `http://10.0.2.2:${STATION_PORT}`, '--yes']);
    expect(flashed.code, `${flashed.stdout.split('\n').filter((l) => !l.includes('"progress"')).slice(-4).join('\n')}\n${flashed.stderr.slice(-2000)}`).toBe(0);
    const slots = commandResult<{ slots: { target: string; claimCode: string }[] }>(flashed).slots;
    const claimCodes = drives.map((drive) => slots.find((s) => s.target === drive)!.claimCode);
    expect(new Set(claimCodes).size).toBe(3);
    // The flasher makes a file target the image's size; a real drive is bigger, which the QA boot's growth and fio need.
    for (const drive of drives) await runCommand('truncate', ['-s', String(8 * GiB), drive]);

    // The bench's live view: each unit tells the station how its run goes and sends its signed report.
    const watching = runMemu(['--json', 'qa', 'station', 'watch', '--keys', keys, '--out', bench, '--listen', `127.0.0.1:${STATION_PORT}`, '--until-done', '--timeout', '25']);
    // Three units on the bench at once, each on an emulated NVMe drive with the i6300esb
    // watchdog; the third has 768 MiB of memory, below the profile's 1024. Their network
    // reaches the host (the station) and nothing else is asked of it.
    const units = drives.map((drive, i) =>
      startVm({
        image: drive,
        driveInPlace: true,
        diskInterface: 'nvme',
        serialNumber: `MEMU-E2E-QA-${i + 1}`,
        memoryMiB: i === 2 ? 768 : 2048,
        cpus: 1,
        profile: loadProfile('qemu-amd64'),
        workDir: join(work, `qa-unit-${i + 1}`),
        httpPort: HTTP_PORT + 1 + i,
        log,
      }),
    );
    const running = await Promise.all(units);
    const failedUnit = running[2]!;
    try {
      // A unit that passed switches itself off; the one that failed stays on, FAIL on its console.
      const within = (what: string, ms: number) => new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms).unref());
      const offCodes = await Promise.race([Promise.all([running[0]!.exited, running[1]!.exited]), within('the passed units did not switch off', 20 * 60_000)]);
      expect(offCodes).toEqual([0, 0]);
      const deadline = Date.now() + 10 * 60_000;
      while (!(await readFile(failedUnit.serialLog, 'latin1')).includes('Factory QA failed')) {
        if (Date.now() > deadline) throw new Error('the unit with too little memory never showed FAIL on its console');
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
      const screen = await readFile(failedUnit.serialLog, 'latin1');
      expect(screen).toMatch(/memory-size: Memory: \d+ MiB, below the 1024 MiB needed/);
    } finally {
      await Promise.all(running.map((unit) => unit.stop(30_000)));
    }
    console.log(`factory QA of three units at once: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The watch saw every unit through to a verified report, and recorded them.
    const watched = await watching;
    expect(watched.code, watched.stderr.slice(-2000)).toBe(0);
    const seen = watched.stdout.split('\n').filter((l) => l.startsWith('{"type":"unit"')).map((l) => JSON.parse(l) as { claimCode?: string; stage: string });
    const stagesOf = (code: string) => seen.filter((u) => u.claimCode === code).map((u) => u.stage);
    for (const [i, code] of claimCodes.entries()) {
      expect(stagesOf(code), `unit ${i + 1} while it tested`).toContain('testing');
      expect(stagesOf(code).at(-1), `unit ${i + 1} at the end`).toBe(i === 2 ? 'failed' : 'passed');
    }
    // The same reports read back from the drives are the same copies: still one record each.
    const collected = await runMemu(['--json', 'qa', 'station', 'collect', ...drives, '--keys', keys, '--out', bench]);
    expect(collected.code, collected.stderr.slice(-2000)).toBe(0);
    const records = JSON.parse(await readFile(join(bench, 'qa-records.json'), 'utf8')) as { records: QaRecord[] };
    const byClaim = new Map(records.records.map((r) => [r.claimCode, r]));
    expect(byClaim.get(claimCodes[0]!)).toMatchObject({ verdict: 'pass', serialNumber: 'MEMU-E2E-QA-1' });
    expect(byClaim.get(claimCodes[1]!)).toMatchObject({ verdict: 'pass', serialNumber: 'MEMU-E2E-QA-2' });
    expect(byClaim.get(claimCodes[2]!)).toMatchObject({ verdict: 'fail', serialNumber: 'MEMU-E2E-QA-3', failingChecks: ['memory-size'] });
    const labels = join(bench, 'labels.pdf');
    const printed = await runMemu(['qa', 'labels', join(bench, 'qa-records.json'), '--out', labels]);
    expect(printed.code, printed.stderr.slice(-2000)).toBe(0);
    // One label per unit that passed.
    expect((await readFile(labels, 'latin1')).match(/\/Type \/Page\b/g)).toHaveLength(2);

    // A passed drive is factory-fresh: the unit's key gone, the preseed without the QA flag,
    // the claim code and the batch's settings kept, the signed report left for the station.
    const fat = manifest.layout.partitions.find((p) => p.filesystem === 'vfat')!.startBytes;
    const onFat = await listFatRoot(drives[0]!, fat);
    expect(onFat).not.toContain(QA_SETTINGS_FILE_NAME);
    expect(onFat).toEqual(expect.arrayContaining(['memu-qa-report.json', 'memu-qa-report.json.sig']));
    expect(JSON.parse(await readFatFile(drives[0]!, fat, PRESEED_FILE_NAME))).toEqual({ version: 1, hostname: 'memu-e2e', agentApiKey: API_KEY, claimCode: claimCodes[0] });
    qaPassedDrive = { image: drives[0]!, claimCode: claimCodes[0]! };
  });

  it('first boot: grows the data partition to fill the drive and brings every service up healthy, in dependency order, with no network', async () => {
    expect(qaPassedDrive, 'the first box is a drive that passed factory QA').toBeDefined();
    const started = Date.now();
    vm = await boot(join(work, 'vm1'), { agentPort: AGENT_PORT, image: qaPassedDrive!.image });
    const body = await report();
    first = body;
    console.log(`boot to all healthy: ${((Date.now() - started) / 1000).toFixed(1)} s; bring-up ${JSON.stringify(body.stack.bringUp)}`);
    expect(body.status).toBe('ok');
    expect(body.version).toBe(manifest.version);
    expect(body.provisioning.ranThisBoot!.slice(0, 2)).toEqual(['grow-data-partition', 'grow-data-filesystem']);
    expect(body.provisioning.ranThisBoot).toEqual(expect.arrayContaining(['read-preseed', 'scrub-preseed', 'device-secrets', 'bring-stack-up']));
    expect(Object.fromEntries(Object.entries(body.stack.services!).map(([k, v]) => [k, v.state]))).toEqual({ store: 'healthy', api: 'healthy', web: 'healthy', canary: 'healthy', front: 'healthy' });
    expect(body.device).toMatchObject({ mode: 'provisioned', hostname: 'memu-e2e' });
    const data = manifest.layout.partitions.find((p) => p.role === 'data')!;
    const fullPartition = 8 * GiB - data.startBytes - 1024 * 1024;
    // ext4 keeps a few percent for its own metadata; the rest of the drive is the family's.
    expect(body.data!.sizeBytes).toBeGreaterThan(fullPartition * 0.95);
    expect(body.data!.sizeBytes).toBeLessThanOrEqual(fullPartition);
    const page = await fetch(`http://127.0.0.1:${HTTP_PORT}/`, { signal: AbortSignal.timeout(30_000) });
    expect((await page.text()).trim()).toBe('memu test stack');
  });

  it('reaches the agent only through the front door: the liveness word for anyone, the report only with the key, nothing on its own port from the LAN', async () => {
    expect(vm, 'the first boot must be running').toBeDefined();
    const live = await fetch(`http://127.0.0.1:${HTTP_PORT}${AGENT_LIVENESS_PATH}`);
    expect(await live.json()).toEqual({ status: 'ok' });
    // The front door is a container on the stack's network, reaching the agent on the Docker bridge.
    const without = await fetch(`http://127.0.0.1:${HTTP_PORT}${AGENT_HEALTH_PATH}`);
    expect(without.status).toBe(401);
    const wrong = await fetch(`http://127.0.0.1:${HTTP_PORT}${AGENT_HEALTH_PATH}`, { headers: { authorization: `Bearer ${API_KEY.replace('e2e', 'xyz')}` } });
    expect(wrong.status).toBe(401);
    // The guest's LAN address, port 8080: QEMU accepts on the host side, the guest refuses.
    await expect(fetch(`http://127.0.0.1:${AGENT_PORT}${AGENT_LIVENESS_PATH}`, { signal: AbortSignal.timeout(10_000) })).rejects.toThrow();
  });

  it('sets the box up in a browser through the front door, resuming after a hard reset half-way', async () => {
    expect(vm, 'the first boot must be running').toBeDefined();
    const front = `http://127.0.0.1:${HTTP_PORT}`;
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext({ viewport: VIEWPORTS.phone })).newPage();
      // Until setup is finished the front door's front page is the wizard.
      await page.goto(`${front}/`);
      expect(new URL(page.url()).pathname).toBe('/admin/setup/claim');
      await page.getByLabel('Claim code').fill('WRNG-CODE-0000-0000');
      await page.getByRole('button', { name: 'Claim' }).click();
      expect(await page.getByRole('alert').textContent()).toMatch(/not the claim code of this Memu/);
      // A request without this device's CSRF token changes nothing.
      expect((await fetch(`${front}/admin/setup/claim`, { method: 'POST', body: new URLSearchParams({ code: qaPassedDrive!.claimCode }), redirect: 'manual' })).status).toBe(403);
      await page.getByLabel('Claim code').fill(qaPassedDrive!.claimCode);
      await page.getByRole('button', { name: 'Claim' }).click();
      await page.getByLabel('Family name').fill('The Okafors');
      await page.getByLabel('Your name').fill('Adaeze Okafor');
      await page.getByLabel('Username').fill('ada');
      await page.getByLabel('Password').fill('purple kettles hum at dawn');
      await page.getByRole('button', { name: 'Create the admin' }).click();
      expect(new URL(page.url()).pathname).toBe('/admin/setup/network');

      // Power cut half-way through the wizard: the drive's second boot. No provisioning step
      // runs again, the data partition keeps its size.
      await vm!.reset();
      const again = await report();
      expect(again.bootId).not.toBe(first!.bootId);
      expect(again.provisioning).toMatchObject({ state: 'done', ranThisBoot: [] });
      expect(again.data!.sizeBytes).toBe(first!.data!.sizeBytes);
      await page.goto(`${front}/admin/setup`);
      expect(new URL(page.url()).pathname).toBe('/admin/setup/network');
      // Another browser without the admin's session is sent to sign in.
      expect((await fetch(`${front}/admin/setup/network`, { headers: { accept: 'text/html' }, redirect: 'manual' })).headers.get('location')).toBe('/admin/login?next=%2Fadmin%2Fsetup%2Fnetwork');

      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByLabel('Time zone').selectOption('Africa/Lagos');
      await page.getByRole('button', { name: 'Save and continue' }).click();
      // The test stack runs no tailscaled: the step says so and moves on.
      expect(await page.getByText('Tailscale is not running on this Memu').isVisible()).toBe(true);
      await page.getByRole('button', { name: 'Skip for now' }).click();
      await page.getByLabel('Name', { exact: true }).fill('Chidi Okafor');
      await page.getByLabel('Username').fill('chidi');
      await page.getByRole('button', { name: 'Add' }).click();
      // Neither Synapse nor Immich is in the test stack: said per service, not a failure.
      expect(await page.getByText('is not part of the installed stack').count()).toBe(2);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Go to the dashboard' }).click();
      expect(new URL(page.url()).pathname).toBe('/admin/');
      // The dashboard shows the services the reconciler runs on this box.
      const overview = (await page.textContent('main')) ?? '';
      for (const service of ['store', 'api', 'web', 'canary', 'front']) expect(overview).toMatch(new RegExp(`\\b${service}\\b`));
      expect((await fetch(`${front}/admin/setup/state`)).status).toBe(204);

      // A photo, backed up onto the USB drive ("back up now" through the agent's API), and
      // the recovery kit's password as the admin prints it.
      const photo = '/var/lib/memu/photos/library/2026/IMG_0001.jpg';
      const photoSha256 = (await vm!.guest.shell(`mkdir -p ${photo.replace(/\/[^/]+$/, '')} && head -c 3145728 /dev/urandom > ${photo} && sha256sum ${photo}`)).split(' ')[0]!;
      expect((await api('/backups/targets', { method: 'POST', body: JSON.stringify({ kind: 'usb-drive' }) })).status).toBe(201);
      const run = await api('/backups/run', { method: 'POST' });
      expect(run.status, await run.text()).toBe(202);
      let backups: { targets: { lastSuccess?: { filesProcessed: number }; lastFailure?: unknown }[]; running?: unknown } | undefined;
      for (const deadline = Date.now() + 10 * 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 3000))) {
        backups = (await (await api('/backups')).json()) as typeof backups;
        if (!backups!.running && (backups!.targets[0]?.lastSuccess || backups!.targets[0]?.lastFailure)) break;
      }
      expect(backups!.targets[0], JSON.stringify(backups)).toMatchObject({ lastSuccess: { filesProcessed: expect.any(Number) } });
      await page.goto(`${front}/admin/backups/recovery-kit`);
      backedUp = { photoSha256, password: ((await page.locator('.secret code').textContent()) ?? '').trim() };
      expect(backedUp.password).toMatch(/^[0-9A-Z]{5}(-[0-9A-Z]{5}){5}$/);
    } finally {
      await browser.close();
    }
    await vm!.stop(60_000);
    vm = undefined;
  });

  it('converges after a hard reset in the middle of bringing the stack up', async () => {
    vm = await boot(join(work, 'vm2'));
    // The front door is part of the stack, so the agent answers from outside only once
    // bring-stack-up has started it, until the front door's first healthcheck (5 s) passes.
    const during = (
      await waitForAgent({
        httpPort: HTTP_PORT,
        apiKey: API_KEY,
        timeoutMs: 15 * 60_000,
        pollMs: 250,
        isReady: (a) => (a.report as unknown as Report).provisioning.state !== 'pending',
      })
    ).report as unknown as Report;
    expect(during.provisioning).toMatchObject({ state: 'running', step: 'bring-stack-up' });
    await vm.reset();
    const body = await report();
    const before = during.provisioning.completed ?? [];
    expect(before).toEqual(expect.arrayContaining(['grow-data-partition', 'read-preseed', 'device-secrets']));
    // No step journaled before the reset runs again after it; the interrupted one resumes.
    expect(body.provisioning.ranThisBoot!.filter((step) => before.includes(step))).toEqual([]);
    expect(Object.values(body.stack.services!).map((s) => s.state)).toEqual(['healthy', 'healthy', 'healthy', 'healthy', 'healthy']);
    expect((await (await fetch(`http://127.0.0.1:${HTTP_PORT}/`, { signal: AbortSignal.timeout(30_000) })).text()).trim()).toBe('memu test stack');
  });

  // Health supervision, on the same running box (vm2). Commands inside it go through the
  // QEMU guest agent, which only test images carry.
  const healthReport = async () => (await waitForAgent({ httpPort: HTTP_PORT, apiKey: API_KEY, timeoutMs: 5 * 60_000 })).report as unknown as HealthReport;
  const waitForReport = async (what: string, accept: (r: HealthReport) => boolean, timeoutMs = 5 * 60_000) => {
    let last: HealthReport | undefined;
    try {
      return (await waitForAgent({ httpPort: HTTP_PORT, apiKey: API_KEY, timeoutMs, pollMs: 3000, isReady: (a) => accept((last = a.report as unknown as HealthReport)) })).report as unknown as HealthReport;
    } catch (err) {
      throw new Error(`${what}: not seen within ${timeoutMs / 1000} s; last report: ${JSON.stringify(last ? { status: last.status, reasons: last.reasons, history: last.history?.slice(0, 5) } : undefined)}`, { cause: err });
    }
  };
  const metrics = async () => (await fetch(`http://127.0.0.1:${HTTP_PORT}${AGENT_METRICS_PATH}`, { headers: { authorization: `Bearer ${API_KEY}` } })).text();

  it('a service that keeps crashing shows on the health report and in the metrics, and recovers when it stops', async () => {
    expect(vm, 'the box must be running').toBeDefined();
    await vm!.guest.shell('mkdir -p /var/lib/memu/test-flags && touch /var/lib/memu/test-flags/crash && docker kill $(docker ps -q --filter label=org.memu.service=canary)');
    const crashing = await waitForReport('canary keeps exiting', (r) => r.reasons.some((x) => x.code === 'service-restarting' && x.message.includes('canary')));
    expect(crashing.status).toBe('degraded');
    expect((await (await fetch(`http://127.0.0.1:${HTTP_PORT}${AGENT_LIVENESS_PATH}`)).json())).toEqual({ status: 'degraded' });
    const text = await metrics();
    expect(text).toContain('memu_service_state{service="canary",state="backing-off"} 1');
    expect(Number(/memu_service_restarts\{service="canary"\} (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(3);
    expect(text).toContain('memu_health_status{status="degraded"} 1');
    await vm!.guest.shell('rm /var/lib/memu/test-flags/crash');
    await waitForReport('canary healthy again', (r) => r.stack.services?.canary?.state === 'healthy');
  });

  it('a full data disk is unhealthy with the reason, and the box frees what it safely can; the family\'s files are untouched', async () => {
    expect(vm, 'the box must be running').toBeDefined();
    // Something the repair may remove: a 200 MB image nothing uses (a dangling one).
    await vm!.guest.shell(
      [
        'c=$(docker ps -q --filter label=org.memu.service=store)',
        // The test image is a bare static busybox: its applets are run through it.
        'docker exec $c busybox dd if=/dev/zero of=/ballast bs=1M count=200 2>/dev/null',
        'docker commit $c >/dev/null',
        'docker exec $c busybox rm /ballast',
      ].join(' && '),
      { timeoutMs: 5 * 60_000 },
    );
    expect((await vm!.guest.shell('docker images -q --filter dangling=true')).trim()).not.toBe('');
    // The family's photos, then the rest of the disk.
    await vm!.guest.shell('mkdir -p /var/lib/memu/photos && head -c 1048576 /dev/urandom > /var/lib/memu/photos/family.jpg && sha256sum /var/lib/memu/photos/family.jpg > /var/lib/memu/family.sha256');
    await vm!.guest.shell('fallocate -l $(( $(df -B1 --output=avail /var/lib/memu | tail -1) - 20 * 1024 * 1024 )) /var/lib/memu/photos/videos.mp4');
    const full = await waitForReport('the full disk reported', (r) => r.reasons.some((x) => x.code === 'data-disk-space' && x.status === 'unhealthy'));
    const reason = full.reasons.find((x) => x.code === 'data-disk-space')!;
    expect(reason.message).toMatch(/data disk/i);
    expect(reason.action).toBeTruthy();
    expect(full.status).toBe('unhealthy');
    const repaired = await waitForReport('the disk repair recorded', (r) => (r.history ?? []).some((e) => JSON.stringify(e).includes('free-disk-space')));
    console.log(`disk repair: ${JSON.stringify((repaired.history ?? []).filter((e) => JSON.stringify(e).includes('free-disk-space')).slice(0, 2))}`);
    expect((await vm!.guest.shell('docker images -q --filter dangling=true')).trim()).toBe('');
    await vm!.guest.shell('sha256sum -c /var/lib/memu/family.sha256 && test -f /var/lib/memu/photos/videos.mp4');
    // Every service still runs (named volumes and containers of the stack are never pruned).
    expect(Object.values(repaired.stack.services!).every((x) => x.state === 'healthy')).toBe(true);
    await vm!.guest.shell('rm /var/lib/memu/photos/videos.mp4');
    await waitForReport('the disk ok again', (r) => r.checks.some((c) => c.check === 'data-disk-space' && c.status === 'ok'));
  });

  it('an agent that stops answering is restarted by systemd\'s watchdog', async () => {
    expect(vm, 'the box must be running').toBeDefined();
    const pid = (await vm!.guest.shell('systemctl show -p MainPID --value memu-agent')).trim();
    expect(Number(pid)).toBeGreaterThan(0);
    const stopped = Date.now();
    await vm!.guest.shell(`kill -STOP ${pid}`);
    let now = pid;
    while (now === pid || now === '0') {
      if (Date.now() - stopped > 3 * 60_000) throw new Error('systemd did not restart the stopped agent within 3 minutes');
      await new Promise((r) => setTimeout(r, 2000));
      now = (await vm!.guest.shell('systemctl show -p MainPID --value memu-agent')).trim();
    }
    console.log(`stopped agent replaced after ${((Date.now() - stopped) / 1000).toFixed(1)} s (WatchdogSec=30s)`);
    expect(await vm!.guest.shell('journalctl -u memu-agent --no-pager -o cat')).toMatch(/[Ww]atchdog timeout/);
    await waitForReport('the restarted agent answers', (r) => r.status !== 'starting');
  });

  it('a hung kernel is reset by the hardware watchdog, and the next boot says so', async () => {
    expect(vm, 'the box must be running').toBeDefined();
    expect((await vm!.guest.shell('cat /sys/class/watchdog/watchdog0/identity')).trim()).toBe('i6300ESB timer');
    const before = await healthReport();
    // No panic reboot: only the watchdog can bring this kernel back.
    await vm!.guest.exec(['/bin/sh', '-c', 'sysctl -qw kernel.panic=0 && echo c > /proc/sysrq-trigger'], { timeoutMs: 5000 }).catch(() => undefined);
    const after = await waitForReport('the box back after the watchdog reset', (r) => r.bootId !== before.bootId && r.status !== 'starting', 15 * 60_000);
    const previous = after.checks.find((c) => c.check === 'previous-boot');
    expect(previous, JSON.stringify(after.checks)).toBeDefined();
    // OVMF keeps the panic in an EFI pstore record; the watchdog's boot status says it reset the machine.
    expect(previous!.reason).toMatch(/kernel panic .*watchdog0 then reset the machine|watchdog0 reports that it reset the machine/);
    expect(previous!.status).toBe('degraded');
    expect((await vm!.guest.shell('cat /sys/class/watchdog/watchdog0/bootstatus')).trim()).toBe('32');
  });

  it('a new box is brought back from the USB drive in the wizard: the admin signs in with the old password, the photo and the member are back', async () => {
    expect(vm, 'the box must be running').toBeDefined();
    expect(backedUp, 'the first box must have backed up').toBeDefined();
    const front = `http://127.0.0.1:${HTTP_PORT}`;
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext({ viewport: VIEWPORTS.phone })).newPage();
      await page.goto(`${front}/`);
      await page.getByLabel('Claim code').fill(CLAIM_CODE);
      await page.getByRole('button', { name: 'Claim' }).click();
      await page.getByRole('link', { name: 'Restore it from its backup' }).click();
      // The drive is found by its label and offered first.
      expect(await page.getByLabel('The backup drive plugged into this Memu').isChecked()).toBe(true);
      await page.getByLabel('Recovery kit password').fill(backedUp!.password);
      const started = Date.now();
      await page.getByRole('button', { name: 'Restore' }).click();
      // The page follows the restore by reloading itself every 3 s, until it ends.
      await page.getByRole('link', { name: 'Sign in' }).or(page.getByRole('alert')).waitFor({ timeout: 10 * 60_000 });
      expect(await page.getByRole('alert').count(), await page.locator('body').innerText()).toBe(0);
      console.log(`restore onto a new box from the USB drive: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      await page.getByRole('link', { name: 'Sign in' }).click();
      await page.getByLabel('Username').fill('ada');
      await page.getByLabel('Password').fill('purple kettles hum at dawn');
      await page.getByRole('button', { name: 'Sign in' }).click();
      expect(new URL(page.url()).pathname).toBe('/admin/');
      await page.goto(`${front}/admin/members`);
      expect(await page.textContent('body')).toContain('Chidi Okafor');
    } finally {
      await browser.close();
    }
    expect((await vm!.guest.shell('sha256sum /var/lib/memu/photos/library/2026/IMG_0001.jpg')).split(' ')[0]).toBe(backedUp!.photoSha256);
    // The family's app, held stopped while its data came back, runs again.
    const after = await waitForReport('every service up after the restore', (r) => isStackUp(r as unknown as Record<string, unknown>) && r.stack.services?.canary?.state === 'healthy');
    expect(after.stack.services?.canary?.state).toBe('healthy');
  });
});

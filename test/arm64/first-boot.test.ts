/**
 * The arm64 box under QEMU (TCG), offline: the qemu-arm64 image (the Pi 5's userland and
 * pinned kernel, started by AAVMF and systemd-boot) with the test stack preloaded for
 * linux/arm64 and a preseed carrying the API key. ONE boot, checked as far as it goes: the
 * first boot grows the data partition, brings every service up healthy with no network, the
 * agent answers through the front door, and the guest is the arm64 system the Pi 5 runs.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../hardware/index.ts';
import { PI5_KERNEL } from '../../hardware/profiles/pi5.ts';
import type { ImageManifest } from '../../image/release/image-manifest.ts';
import { createHostLogger } from '../../image/host/log.ts';
import { startVm, waitForAgent, type RunningVm } from '../../image/vm/run-vm.ts';
import { AGENT_HEALTH_PATH, AGENT_LIVENESS_PATH } from '../../shared/contracts/agent-api.ts';
import { commandResult, runMemu, type BuildOutput } from '../helpers/memu-build.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/oci-registry.ts';
import { isStackUp, writeTestStack, type StackHealthz } from '../helpers/test-stack.ts';

const GiB = 1024 ** 3;
const HTTP_PORT = 18493;
const REGISTRY_PORT = 18351;
const API_KEY = 'e2e-arm64-key-0123456789-abcdefghijklmnop';

interface Report extends StackHealthz {
  version: string;
}

describe('the qemu-arm64 box with a preloaded stack (QEMU TCG, no network, 8 GiB drive)', () => {
  let work: string;
  let registry: TestRegistry | undefined;
  let build: BuildOutput;
  let manifest: ImageManifest;
  let vm: RunningVm | undefined;
  const log = createHostLogger({ json: true, level: 'warn' });

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-e2e-arm64-');
    registry = await startTestRegistry({ port: REGISTRY_PORT });
    const stackDir = await writeTestStack(registry, join(work, 'stack'));
    const r = await runMemu(['--json', 'build', 'qemu-arm64', '--out', join(work, 'out'), '--stack', stackDir], { timeoutMs: 60 * 60_000 });
    if (r.code !== 0) throw new Error(`memu build qemu-arm64 failed (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
    build = commandResult<BuildOutput>(r);
    manifest = JSON.parse(await readFile(build.manifest, 'utf8')) as ImageManifest;
    // From here on nothing may need the registry: the boot is offline.
    await registry.stop();
    registry = undefined;
    const settings = join(work, 'settings.json');
    await writeFile(settings, JSON.stringify({ version: 1, hostname: 'memu-arm64', agentApiKey: API_KEY }));
    const preseed = await runMemu(['--json', 'preseed', '--image', build.image, '--file', settings]);
    if (preseed.code !== 0) throw new Error(`memu preseed failed (exit ${preseed.code}):\n${preseed.stderr.slice(-2000)}`);
  });
  afterAll(async () => {
    await vm?.stop(10_000);
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('first boot: the arm64 system with the pinned kernel brings every service up healthy with no network, and the agent answers through the front door', async () => {
    expect(manifest).toMatchObject({ profile: 'qemu-arm64', arch: 'arm64', kernel: PI5_KERNEL.package.slice('linux-image-'.length) });
    expect(manifest.containerImages.length).toBeGreaterThan(0);
    const started = Date.now();
    vm = await startVm({ image: build.image, profile: loadProfile('qemu-arm64'), workDir: join(work, 'vm'), diskSizeBytes: 8 * GiB, noNetwork: true, httpPort: HTTP_PORT, log });
    let body: Report;
    try {
      body = (await waitForAgent({ httpPort: HTTP_PORT, apiKey: API_KEY, timeoutMs: 25 * 60_000, pollMs: 5000, isReady: (a) => isStackUp(a.report!) })).report as unknown as Report;
    } catch (err) {
      const serial = await readFile(vm.serialLog, 'utf8').catch(() => '(no serial log)');
      throw new Error(`${(err as Error).message}\n--- serial console (end) ---\n${serial.slice(-4000)}`);
    }
    console.log(`qemu-arm64: boot to all healthy ${((Date.now() - started) / 1000).toFixed(1)} s; bring-up ${JSON.stringify(body.stack.bringUp)}`);
    expect(body.status).toBe('ok');
    expect(body.version).toBe(manifest.version);
    expect(body.provisioning.ranThisBoot!.slice(0, 2)).toEqual(['grow-data-partition', 'grow-data-filesystem']);
    expect(Object.fromEntries(Object.entries(body.stack.services!).map(([k, v]) => [k, v.state]))).toEqual({ store: 'healthy', api: 'healthy', web: 'healthy', front: 'healthy' });
    expect(body.device).toMatchObject({ mode: 'provisioned', hostname: 'memu-arm64' });
    const data = manifest.layout.partitions.find((p) => p.role === 'data')!;
    expect(body.data!.sizeBytes).toBeGreaterThan((8 * GiB - data.startBytes) * 0.95);

    // The front door serves the stack's page; the agent's liveness to anyone, its report only with the key.
    expect((await (await fetch(`http://127.0.0.1:${HTTP_PORT}/`, { signal: AbortSignal.timeout(30_000) })).text()).trim()).toBe('memu test stack');
    expect(await (await fetch(`http://127.0.0.1:${HTTP_PORT}${AGENT_LIVENESS_PATH}`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`http://127.0.0.1:${HTTP_PORT}${AGENT_HEALTH_PATH}`)).status).toBe(401);

    // Inside: the Pi 5's kernel with 4K pages, slot A booted by systemd-boot, arm64 containers.
    const inside = await vm.guest.shell('uname -m; uname -r; getconf PAGESIZE; cat /proc/cmdline; docker info --format "{{.Architecture}}"');
    const [machine, release, pageSize, cmdline, dockerArch] = inside.trim().split('\n');
    expect(machine).toBe('aarch64');
    expect(release).toBe(manifest.kernel);
    expect(pageSize).toBe('4096');
    expect(cmdline).toContain(`root=PARTUUID=${manifest.layout.partitions.find((p) => p.role === 'root-a')!.partUuid}`);
    expect(cmdline).toContain('memu.slot=a');
    expect(dockerArch).toBe('aarch64');
    console.log(`qemu-arm64: whole test so far ${((Date.now() - started) / 1000).toFixed(1)} s after the VM started`);
  });
});

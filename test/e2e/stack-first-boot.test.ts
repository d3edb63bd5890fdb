import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../hardware/index.ts';
import type { ImageManifest } from '../../image/release/image-manifest.ts';
import { createHostLogger } from '../../image/host/log.ts';
import { startVm, waitForHealthz, type RunningVm } from '../../image/vm/run-vm.ts';
import { buildQemuImage, type BuildOutput } from '../helpers/memu-build.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/oci-registry.ts';
import { isStackUp, writeTestStack, type StackHealthz as Healthz } from '../helpers/test-stack.ts';

const AGENT_PORT = 18482;
const HTTP_PORT = 18483;
const REGISTRY_PORT = 18350;

describe('first boot with a preloaded stack (QEMU, no network)', () => {
  let work: string;
  let registry: TestRegistry;
  let build: BuildOutput;
  let vm: RunningVm | undefined;
  const log = createHostLogger({ json: true, level: 'warn' });

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-e2e-stack-');
    registry = await startTestRegistry({ port: REGISTRY_PORT });
    const stackDir = await writeTestStack(registry, join(work, 'stack'));
    build = await buildQemuImage(join(work, 'out'), ['--stack', stackDir]);
    // From here on nothing may need the registry: the first boot is offline.
    await registry.stop();
  });
  afterAll(async () => {
    await vm?.stop(10_000);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('records the preloaded images in the manifest, pinned by digest', async () => {
    const manifest = JSON.parse(await readFile(build.manifest, 'utf8')) as ImageManifest;
    expect(manifest.containerImages).toEqual([{ service: 'store', reference: `${registry.host}/memu-test/busybox:1`, digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) }]);
  });

  it('brings every service up healthy by itself, in dependency order, with no network', async () => {
    const started = Date.now();
    vm = await startVm({ image: build.image, profile: loadProfile('qemu-amd64'), workDir: join(work, 'vm1'), diskSizeBytes: 8 * 1024 ** 3, noNetwork: true, agentPort: AGENT_PORT, httpPort: HTTP_PORT, log });
    try {
      const body = (await waitForHealthz(AGENT_PORT, 15 * 60_000, isStackUp)) as unknown as Healthz;
      console.log(`boot to all healthy: ${((Date.now() - started) / 1000).toFixed(1)} s; bring-up ${JSON.stringify(body.stack.bringUp)}`);
      expect(body.provisioning.ranThisBoot).toEqual(expect.arrayContaining(['grow-data-partition', 'grow-data-filesystem', 'read-preseed', 'device-secrets', 'bring-stack-up']));
      expect(Object.fromEntries(Object.entries(body.stack.services!).map(([k, v]) => [k, v.state]))).toEqual({ store: 'healthy', api: 'healthy', web: 'healthy' });
      // No preseed on this image: the device comes up in setup-wizard mode and says why.
      expect(body.device).toMatchObject({ mode: 'wizard' });
      const page = await fetch(`http://127.0.0.1:${HTTP_PORT}/`, { signal: AbortSignal.timeout(30_000) });
      expect((await page.text()).trim()).toBe('memu test stack');
    } finally {
      await vm.stop(60_000);
      vm = undefined;
    }
  });

  it('converges after a hard reset in the middle of provisioning', async () => {
    vm = await startVm({ image: build.image, profile: loadProfile('qemu-amd64'), workDir: join(work, 'vm2'), diskSizeBytes: 8 * 1024 ** 3, noNetwork: true, agentPort: AGENT_PORT, httpPort: HTTP_PORT, log });
    const during = (await waitForHealthz(AGENT_PORT, 15 * 60_000, (b) => (b as unknown as Healthz).provisioning.state === 'running' && (b as unknown as Healthz).provisioning.step === 'bring-stack-up')) as unknown as Healthz;
    expect(during.provisioning.step).toBe('bring-stack-up');
    await vm.reset();
    const body = (await waitForHealthz(AGENT_PORT, 15 * 60_000, isStackUp)) as unknown as Healthz;
    // No step journaled before the reset runs again after it; the interrupted one resumes.
    const before = during.provisioning.completed ?? [];
    expect(before).toEqual(expect.arrayContaining(['grow-data-partition', 'read-preseed', 'device-secrets']));
    expect(body.provisioning.ranThisBoot).toContain('bring-stack-up');
    expect(body.provisioning.ranThisBoot!.filter((step) => before.includes(step))).toEqual([]);
    expect(Object.values(body.stack.services!).map((s) => s.state)).toEqual(['healthy', 'healthy', 'healthy']);
    expect((await (await fetch(`http://127.0.0.1:${HTTP_PORT}/`, { signal: AbortSignal.timeout(30_000) })).text()).trim()).toBe('memu test stack');
  });
});

import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../hardware/index.ts';
import type { ImageManifest } from '../../image/build/image-manifest.ts';
import { createHostLogger } from '../../image/log.ts';
import { startVm, waitForHealthz, type RunningVm } from '../../image/vm/run-vm.ts';
import { buildQemuImage, runMemu, type BuildOutput } from '../helpers/memu-build.ts';
import { pushTestImage, startTestRegistry, type TestRegistry } from '../helpers/oci-registry.ts';

const AGENT_PORT = 18482;
const HTTP_PORT = 18483;
const REGISTRY_PORT = 18350;

/**
 * A small stack with a dependency chain: web waits for api to be healthy, api waits for
 * store. All from one busybox test image in a real local registry, pinned by digest.
 */
function stackYaml(image: string): string {
  const common = `    image: ${image}
    restart: unless-stopped
    mem_limit: 64m
    logging:
      driver: local
      options: { max-size: 1m, max-file: "2" }`;
  return `name: memu-test
services:
  store:
${common}
    command: ["sh", "-c", "sleep 3; echo ok > /tmp/ready; while true; do sleep 3600; done"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 2s
      timeout: 2s
      retries: 15
  api:
${common}
    depends_on:
      store: { condition: service_healthy }
    command: ["sh", "-c", "busybox mkdir -p /www && echo api-ok > /www/index.html && exec httpd -f -p 8081 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8081/"]
      interval: 2s
      timeout: 2s
      retries: 15
  web:
${common}
    depends_on:
      api: { condition: service_healthy }
    ports: ["80:80"]
    command: ["sh", "-c", "busybox mkdir -p /www && echo 'memu test stack' > /www/index.html && exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/"]
      interval: 2s
      timeout: 2s
      retries: 15
`;
}

interface Healthz {
  provisioning: { state: string; step?: string; ranThisBoot?: string[] };
  stack: { state: string; converged?: boolean; services?: Record<string, { state: string }> };
}
const isUp = (b: Record<string, unknown>) => {
  const h = b as unknown as Healthz;
  return h.provisioning.state === 'done' && h.stack.state === 'present' && h.stack.converged === true;
};

describe('first boot with a preloaded stack (QEMU, no network)', () => {
  let work: string;
  let registry: TestRegistry;
  let build: BuildOutput;
  let vm: RunningVm | undefined;
  const log = createHostLogger({ json: true, level: 'warn' });

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-e2e-stack-');
    registry = await startTestRegistry({ port: REGISTRY_PORT });
    await pushTestImage(registry, { repo: 'memu-test/busybox', tag: '1', platforms: ['linux/amd64', 'linux/arm64'] });
    const stackDir = join(work, 'stack');
    await mkdir(stackDir);
    await writeFile(join(stackDir, 'stack.yml'), stackYaml(`${registry.host}/memu-test/busybox:1`));
    const lock = await runMemu(['stack', 'lock', '--compose', join(stackDir, 'stack.yml'), '--lock', join(stackDir, 'images.lock.json'), '--platform', 'linux/amd64,linux/arm64']);
    expect(lock.code, lock.stderr.slice(-2000)).toBe(0);
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
    const body = (await waitForHealthz(AGENT_PORT, 15 * 60_000, isUp)) as unknown as Healthz;
    console.log(`boot to all healthy: ${((Date.now() - started) / 1000).toFixed(1)} s`);
    expect(body.provisioning.ranThisBoot).toEqual(['grow-data-partition', 'grow-data-filesystem', 'bring-stack-up']);
    expect(Object.fromEntries(Object.entries(body.stack.services!).map(([k, v]) => [k, v.state]))).toEqual({ store: 'healthy', api: 'healthy', web: 'healthy' });
    const page = await fetch(`http://127.0.0.1:${HTTP_PORT}/`);
    expect((await page.text()).trim()).toBe('memu test stack');
    await vm.stop(60_000);
    vm = undefined;
  });

  it('converges after a hard reset in the middle of provisioning', async () => {
    vm = await startVm({ image: build.image, profile: loadProfile('qemu-amd64'), workDir: join(work, 'vm2'), diskSizeBytes: 8 * 1024 ** 3, noNetwork: true, agentPort: AGENT_PORT, httpPort: HTTP_PORT, log });
    const during = (await waitForHealthz(AGENT_PORT, 15 * 60_000, (b) => (b as unknown as Healthz).provisioning.state === 'running' && (b as unknown as Healthz).provisioning.step === 'bring-stack-up')) as unknown as Healthz;
    expect(during.provisioning.step).toBe('bring-stack-up');
    await vm.reset();
    const body = (await waitForHealthz(AGENT_PORT, 15 * 60_000, isUp)) as unknown as Healthz;
    // Growth finished before the reset and is not redone; the stack step resumes.
    expect(body.provisioning.ranThisBoot).toEqual(['bring-stack-up']);
    expect(Object.values(body.stack.services!).map((s) => s.state)).toEqual(['healthy', 'healthy', 'healthy']);
    expect((await (await fetch(`http://127.0.0.1:${HTTP_PORT}/`)).text()).trim()).toBe('memu test stack');
  });
});

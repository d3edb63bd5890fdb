import type { HealthStatus } from '../../shared/contracts/agent-api.ts';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandResult, runMemu } from './memu-build.ts';
import { pushTestImage, type TestRegistry } from './oci-registry.ts';

/** Both platforms a Memu box runs on: every image of the test stack is locked for each. */
const PLATFORMS = 'linux/amd64,linux/arm64';

/**
 * A small stack with a dependency chain and a front door: front waits for web to be
 * healthy, web for api, api for store. store, api and web are one busybox test image;
 * front is the product's front door image, Debian's nginx built from Debian packages by
 * `memu image build front` (image/debian-images/), which publishes port 80, checked every
 * 5 s (so the box is seen from outside for a few seconds before it is up), serves web's
 * page at / and forwards /admin/ to the agent on the host, as the family stack's front
 * door does. With `cache`, a valkey service (`memu image build valkey`) joins. All from
 * a real local registry, pinned by digest.
 */
export function stackYaml(images: { busybox: string; front: string; cache?: string }, opts: { canary?: boolean } = {}): string {
  const common = `    restart: unless-stopped
    mem_limit: 64m
    logging:
      driver: local
      options: { max-size: 1m, max-file: "2" }`;
  const healthcheck = (test: string, interval = '2s') => `    healthcheck:
      test: ${test}
      interval: ${interval}
      timeout: 2s
      retries: 15`;
  /** A busybox httpd serving `body`, healthy once it answers on `port`. */
  const httpd = (port: number, body: string) => `    command: ["sh", "-c", "busybox mkdir -p /www && echo ${body} > /www/index.html && exec httpd -f -p ${port} -h /www"]
${healthcheck(`["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:${port}/"]`)}`;
  // The cache the family stack runs (Redis there), from Debian's valkey: nothing uses it here.
  const cache = images.cache
    ? `  cache:
    image: ${images.cache}
${common}
${healthcheck('["CMD", "valkey-cli", "ping"]')}
`
    : '';
  // With `canary`: a service that exits with code 1 at every start while the flag file
  // MEMU_DATA_DIR/test-flags/crash exists, so a test can make it crash-loop and recover.
  // Labelled as one of the family's apps, which a whole-box restore holds stopped.
  const canary = opts.canary
    ? `  canary:
    image: ${images.busybox}
${common}
    labels: { org.memu.role: app }
    volumes: ["\${MEMU_DATA_DIR}/test-flags:/flags:ro"]
    command: ["sh", "-c", "if [ -f /flags/crash ]; then echo crashing on purpose; exit 1; fi; touch /tmp/ready; trap 'exit 0' TERM; sleep 2147483647 & wait"]
${healthcheck('["CMD", "test", "-f", "/tmp/ready"]')}
`
    : '';
  return `name: memu-test
services:
  store:
    image: ${images.busybox}
${common}
    command: ["sh", "-c", "sleep 3; echo ok > /tmp/ready; while true; do sleep 3600; done"]
${healthcheck('["CMD", "test", "-f", "/tmp/ready"]')}
  api:
    image: ${images.busybox}
${common}
    depends_on:
      store: { condition: service_healthy }
${httpd(8081, 'api-ok')}
  web:
    image: ${images.busybox}
${common}
    depends_on:
      api: { condition: service_healthy }
${httpd(8082, "'memu test stack'")}
${cache}${canary}  front:
    image: ${images.front}
${common}
    depends_on:
      web: { condition: service_healthy }
    ports: ["80:80"]
    extra_hosts: ["host.docker.internal:host-gateway"]
${healthcheck('["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/healthz"]', '5s')}
`;
}

/**
 * Builds an image definition from Debian packages with the real `memu image build` for
 * both platforms and pushes it to `registry` as `memu-test/<definition>:1`. The .debs
 * and resolved package sets stay in the cache dir, so a rerun needs no network.
 */
export async function pushDebianImage(registry: TestRegistry, definition: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const reference = `${registry.host}/memu-test/${definition}:1`;
  const out = await mkdtemp(join(tmpdir(), `memu-image-${definition}-`));
  try {
    const r = await runMemu(['--json', 'image', 'build', definition, '--platform', PLATFORMS, '--out', out, '--push', reference], { env });
    if (r.code !== 0) throw new Error(`memu image build ${definition} failed (exit ${r.code}):\n${r.stderr.slice(-2000)}`);
    commandResult(r);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
  return reference;
}

/**
 * Pushes the test images to `registry`, writes the stack into `dir` and pins it with the
 * real `memu stack lock` for linux/amd64 and linux/arm64. Returns `dir`, ready for
 * `memu build --stack`. `cacheDir` is memu's cache for the image builds (default: the
 * tests' shared one).
 */
export async function writeTestStack(registry: TestRegistry, dir: string, opts: { cache?: boolean; canary?: boolean; cacheDir?: string } = {}): Promise<string> {
  const env = opts.cacheDir ? { MEMU_CACHE_DIR: opts.cacheDir } : {};
  await pushTestImage(registry, { repo: 'memu-test/busybox', tag: '1', platforms: ['linux/amd64', 'linux/arm64'] });
  const front = await pushDebianImage(registry, 'front', env);
  const cache = opts.cache ? await pushDebianImage(registry, 'valkey', env) : undefined;
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'stack.yml'), stackYaml({ busybox: `${registry.host}/memu-test/busybox:1`, front, cache }, { canary: opts.canary }));
  const lock = await runMemu(['stack', 'lock', '--compose', join(dir, 'stack.yml'), '--lock', join(dir, 'images.lock.json'), '--platform', PLATFORMS], { env });
  if (lock.code !== 0) throw new Error(`memu stack lock failed (exit ${lock.code}):\n${lock.stderr.slice(-2000)}`);
  return dir;
}

/** The agent's health report (AGENT_HEALTH_PATH), the parts these tests read. */
export interface StackHealthz {
  status: HealthStatus;
  /** Why the device is degraded, one per problem (empty when ok). */
  reasons: { source: string; code: string; message: string }[];
  provisioning: { state: string; step?: string; completed?: string[]; ranThisBoot?: string[] };
  stack: {
    state: string;
    loop?: string;
    converged?: boolean;
    services?: Record<string, { state: string; summary: string }>;
    bringUp?: { dockerReadySeconds: number; imagesAvailableSeconds: number; stackUpSeconds: number };
  };
  agent?: { rssBytes: number; heapUsedBytes?: number; heapTotalBytes?: number; externalBytes?: number; cpuSeconds: number };
  device?: { mode: string; reason?: string; hostname?: string };
  data?: { sizeBytes: number; freeBytes: number };
}

/** Provisioning done and every service of the stack up. */
export function isStackUp(body: Record<string, unknown>): boolean {
  const h = body as unknown as StackHealthz;
  const services = Object.values(h.stack.services ?? {});
  return h.provisioning.state === 'done' && h.stack.state === 'present' && h.stack.converged === true && services.length > 0 && services.every((s) => s.state === 'healthy');
}

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runMemu } from './memu-build.ts';
import { pushTestImage, type TestRegistry } from './oci-registry.ts';

/**
 * A small stack with a dependency chain: web waits for api to be healthy, api waits for
 * store. All from one busybox test image in a real local registry, pinned by digest.
 */
export function stackYaml(image: string): string {
  const common = `    image: ${image}
    restart: unless-stopped
    mem_limit: 64m
    logging:
      driver: local
      options: { max-size: 1m, max-file: "2" }`;
  const healthcheck = (test: string) => `    healthcheck:
      test: ${test}
      interval: 2s
      timeout: 2s
      retries: 15`;
  /** A busybox httpd serving `body`, healthy once it answers on `port`. */
  const httpd = (port: number, body: string) => `    command: ["sh", "-c", "busybox mkdir -p /www && echo ${body} > /www/index.html && exec httpd -f -p ${port} -h /www"]
${healthcheck(`["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:${port}/"]`)}`;
  return `name: memu-test
services:
  store:
${common}
    command: ["sh", "-c", "sleep 3; echo ok > /tmp/ready; while true; do sleep 3600; done"]
${healthcheck('["CMD", "test", "-f", "/tmp/ready"]')}
  api:
${common}
    depends_on:
      store: { condition: service_healthy }
${httpd(8081, 'api-ok')}
  web:
${common}
    depends_on:
      api: { condition: service_healthy }
    ports: ["80:80"]
${httpd(80, "'memu test stack'")}
`;
}

/**
 * Pushes the busybox test image to `registry`, writes the stack into `dir` and pins it with
 * the real `memu stack lock`. Returns `dir`, ready for `memu build --stack`.
 */
export async function writeTestStack(registry: TestRegistry, dir: string): Promise<string> {
  await pushTestImage(registry, { repo: 'memu-test/busybox', tag: '1', platforms: ['linux/amd64', 'linux/arm64'] });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'stack.yml'), stackYaml(`${registry.host}/memu-test/busybox:1`));
  const lock = await runMemu(['stack', 'lock', '--compose', join(dir, 'stack.yml'), '--lock', join(dir, 'images.lock.json'), '--platform', 'linux/amd64,linux/arm64']);
  if (lock.code !== 0) throw new Error(`memu stack lock failed (exit ${lock.code}):\n${lock.stderr.slice(-2000)}`);
  return dir;
}

export interface StackHealthz {
  status: 'ok' | 'degraded';
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
  agent?: { rssBytes: number; cpuSeconds: number };
  device?: { mode: string; reason?: string };
}

/** Provisioning done and every service of the stack up. */
export function isStackUp(body: Record<string, unknown>): boolean {
  const h = body as unknown as StackHealthz;
  const services = Object.values(h.stack.services ?? {});
  return h.provisioning.state === 'done' && h.stack.state === 'present' && h.stack.converged === true && services.length > 0 && services.every((s) => s.state === 'healthy');
}

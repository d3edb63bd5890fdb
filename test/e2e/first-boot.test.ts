import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageManifest } from '../../image/release/image-manifest.ts';
import { buildQemuImage, commandResult, runMemu, type BuildOutput } from '../helpers/memu-build.ts';

interface Healthz {
  status: string;
  version: string;
  bootId: string;
  provisioning: { state: string; completed: string[]; ranThisBoot?: string[] };
  data?: { sizeBytes: number; freeBytes: number };
}

const GiB = 1024 ** 3;
const AGENT_PORT = '18480';
const HTTP_PORT = '18481';

/** Boots the image under QEMU (TCG) until /healthz reports provisioning done, then powers it off. */
async function bootUntilHealthy(image: string, workDir: string, extra: string[]): Promise<{ healthz: Healthz; seconds: number }> {
  const r = await runMemu(['--json', 'vm', image, '--no-network', '--work-dir', workDir, '--agent-port', AGENT_PORT, '--http-port', HTTP_PORT, '--wait-healthy', '--timeout', '900', ...extra], {
    timeoutMs: 20 * 60_000,
  });
  if (r.code !== 0) {
    const serial = await readFile(join(workDir, 'serial.log'), 'utf8').catch(() => '(no serial log)');
    throw new Error(`memu vm failed (exit ${r.code}):\n${r.stderr.slice(-2000)}\n--- serial console (end) ---\n${serial.slice(-4000)}`);
  }
  const out = commandResult<{ healthz: Healthz; bootToHealthySeconds: number }>(r);
  return { healthz: out.healthz, seconds: out.bootToHealthySeconds };
}

describe('first boot of the qemu-amd64 image (QEMU, no network, 8 GiB drive)', () => {
  let work: string;
  let build: BuildOutput;
  let manifest: ImageManifest;
  let first: Healthz;

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-e2e-');
    build = await buildQemuImage(join(work, 'out'));
    manifest = JSON.parse(await readFile(build.manifest, 'utf8')) as ImageManifest;
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('boots to a running agent that grows the data partition and filesystem to fill the drive', async () => {
    const { healthz, seconds } = await bootUntilHealthy(build.image, join(work, 'vm'), ['--disk-size', '8G']);
    first = healthz;
    expect(healthz.status).toBe('ok');
    expect(healthz.version).toBe(manifest.version);
    expect(healthz.provisioning.state).toBe('done');
    expect(healthz.provisioning.ranThisBoot!.slice(0, 2)).toEqual(['grow-data-partition', 'grow-data-filesystem']);
    // This image has no stack and no preseed: provisioning still completes, in wizard mode.
    expect(healthz.provisioning.ranThisBoot).toEqual(expect.arrayContaining(['read-preseed', 'device-secrets', 'bring-stack-up']));
    const data = manifest.layout.partitions.find((p) => p.role === 'data')!;
    const shippedBytes = data.sizeBytes;
    const fullPartition = 8 * GiB - data.startBytes - 1024 * 1024;
    expect(healthz.data!.sizeBytes).toBeGreaterThan(shippedBytes * 2);
    // ext4 keeps a few percent for its own metadata; the rest of the drive is the family's.
    expect(healthz.data!.sizeBytes).toBeGreaterThan(fullPartition * 0.95);
    expect(healthz.data!.sizeBytes).toBeLessThanOrEqual(fullPartition);
    console.log(`boot to healthy: ${seconds.toFixed(1)} s; data filesystem ${(healthz.data!.sizeBytes / GiB).toFixed(2)} GiB`);
  });

  it('a second boot of the same drive changes nothing: no step runs again, the size stays', async () => {
    expect(first, 'the first boot must have succeeded').toBeDefined();
    const { healthz } = await bootUntilHealthy(build.image, join(work, 'vm'), ['--reuse-disk']);
    expect(healthz.bootId).not.toBe(first.bootId);
    expect(healthz.provisioning).toMatchObject({ state: 'done', ranThisBoot: [] });
    expect(healthz.data!.sizeBytes).toBe(first.data!.sizeBytes);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadRegistryMirrors,
  mirrorImageReference,
  parseRegistryMirrors,
  splitImageReference,
} from '../../../../agent/config-templates/registry-mirrors.ts';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('registry mirrors', () => {
  const rules = parseRegistryMirrors(
    [
      '# factory mirror',
      'docker.io=mirror.factory.lan:5000/dockerhub',
      'ghcr.io = mirror.factory.lan:5000   # no prefix',
      'docker.io/library/nginx:1.27-alpine=mirror.factory.lan:5000/memu/front-door:1.27',
    ].join('\n'),
    'compose/registry-mirrors',
  );

  it('moves a repository under a registry mirror and keeps tag and digest', () => {
    expect(mirrorImageReference('docker.io/matrixdotorg/synapse:v1.157.2', rules)).toBe('mirror.factory.lan:5000/dockerhub/matrixdotorg/synapse:v1.157.2');
    expect(mirrorImageReference(`ghcr.io/immich-app/immich-server@${DIGEST}`, rules)).toBe(`mirror.factory.lan:5000/immich-app/immich-server@${DIGEST}`);
  });

  it('lets an image rule beat the registry rule', () => {
    expect(mirrorImageReference(`docker.io/library/nginx:1.27-alpine@${DIGEST}`, rules)).toBe(`mirror.factory.lan:5000/memu/front-door:1.27@${DIGEST}`);
  });

  it('leaves references without a rule alone', () => {
    expect(mirrorImageReference('quay.io/x/y:1', rules)).toBe('quay.io/x/y:1');
  });

  it('names the file and line of a bad rule', () => {
    expect(() => parseRegistryMirrors('docker.io=ok.lan\nthis is wrong\n', 'compose/registry-mirrors')).toThrow(/compose\/registry-mirrors line 2/);
  });

  it('refuses short image names that hide their registry', () => {
    expect(() => splitImageReference('nginx:1.27')).toThrow(/must name its registry/);
  });

  it('reads the optional file, then MEMU_REGISTRY_MIRROR on top', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memu-mirrors-'));
    try {
      expect(await loadRegistryMirrors(dir, {})).toEqual({ registries: {}, images: {} });
      await writeFile(join(dir, 'registry-mirrors'), 'docker.io=file.lan/hub\nghcr.io=file.lan/ghcr\n');
      const loaded = await loadRegistryMirrors(dir, { MEMU_REGISTRY_MIRROR: 'docker.io=env.lan:5000/hub' });
      expect(loaded.registries).toEqual({ 'docker.io': 'env.lan:5000/hub', 'ghcr.io': 'file.lan/ghcr' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

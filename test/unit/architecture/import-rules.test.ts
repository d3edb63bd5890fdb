import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import { describe, expect, it } from 'vitest';

/**
 * Who may import whom (.dependency-cruiser.cjs, README "Code map"), checked with
 * dependency-cruiser on the real tree, and on a fixture tree that breaks every rule
 * once, so a rule that stopped matching would turn this red too.
 */
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const LAYERS = ['shared', 'hardware', 'image', 'agent'];

async function violations(baseDir: string): Promise<{ rule: string; from: string; to: string }[]> {
  const options = await extractDepcruiseOptions(`${repoRoot}.dependency-cruiser.cjs`);
  const cwd = process.cwd();
  process.chdir(baseDir); // rules are paths relative to the tree's root
  try {
    const result = (await cruise(LAYERS, { ...options, baseDir })).output as ICruiseResult;
    return result.summary.violations.map((v) => ({ rule: v.rule.name, from: v.from, to: v.to }));
  } finally {
    process.chdir(cwd);
  }
}

describe('import rules', () => {
  it('the code keeps every rule', async () => {
    const found = await violations(repoRoot);
    expect(found.map((v) => `${v.rule}: ${v.from} -> ${v.to}`)).toEqual([]);
  });

  it('each rule catches the import it forbids, and allows a module face', async () => {
    const found = await violations(fileURLToPath(new URL('../../fixtures/import-rules/', import.meta.url)));
    const pairs = found.map((v) => `${v.rule}: ${v.from} -> ${v.to}`);
    expect(pairs).toEqual(
      expect.arrayContaining([
        'shared-is-the-lowest-layer: shared/low.ts -> agent/a/x.ts',
        'hardware-imports-contracts-only: hardware/p.ts -> image/i.ts',
        'hardware-imports-contracts-only: hardware/q.ts -> shared/files/f.ts',
        'host-never-imports-device: image/dev.ts -> agent/b/index.ts',
        'device-never-imports-host: agent/a/x.ts -> image/i.ts',
        'host-domain-never-imports-cli: image/domain.ts -> image/cli/c.ts',
        'agent-modules-meet-through-index: agent/a/y.ts -> agent/b/internal.ts',
        'agent-root-uses-module-faces: agent/root.ts -> agent/b/internal.ts',
        'no-cycles: image/c1.ts -> image/c2.ts',
      ]),
    );
    expect(pairs.filter((p) => p.includes('agent/a/z.ts'))).toEqual([]);
  });
});

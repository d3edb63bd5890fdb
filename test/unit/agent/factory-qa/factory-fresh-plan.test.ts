import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shippedFromBootListing } from '../../../../agent/factory-qa/factory-fresh-plan.ts';
import { listTree, planFactoryFreshCleanup } from '../../../../agent/factory-qa/index.ts';
import { qaFixture } from './checks/qa-fixtures.ts';

// test/fixtures/factory-qa/after-qa: a unit's data partition, root file system and FAT after
// a QA boot, and shipped.json: what the image had there before it ever booted.
const tree = qaFixture('after-qa');

describe('factory-fresh cleanup plan', () => {
  it('removes what QA created, keeps the report and the claim code', async () => {
    const shipped = JSON.parse(await readFile(join(tree, 'shipped.json'), 'utf8')) as { data: string[]; root: string[] };
    const plan = planFactoryFreshCleanup({
      shippedData: shipped.data,
      presentData: await listTree(join(tree, 'data')),
      shippedRoot: shipped.root,
      presentRoot: await listTree(join(tree, 'root')),
      presentFat: await readdir(join(tree, 'fat')),
    });
    expect(plan.removeData).toEqual([
      { path: 'agent', why: "the agent's state (journal, preseed record, database, boot and health records)" },
      { path: 'docker/network', why: 'created during QA' },
      { path: 'secrets', why: 'per-device secrets' },
    ]);
    expect(plan.removeRoot).toEqual([
      { path: 'etc/ssh/ssh_host_ed25519_key', why: 'SSH host keys (each unit makes its own on its first real boot)' },
      { path: 'etc/ssh/ssh_host_ed25519_key.pub', why: 'SSH host keys (each unit makes its own on its first real boot)' },
      { path: 'var/lib/systemd/random-seed', why: 'the random seed' },
      { path: 'var/lib/systemd/timers', why: 'created during QA' },
      { path: 'var/log/journal/4f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c', why: 'the systemd journal' },
      { path: 'var/log/memu-qa.log', why: 'logs' },
    ]);
    expect(plan.removeFat).toEqual([{ path: 'memu-qa.json', why: "the station's QA settings with this unit's signing key" }]);
    expect(plan).toMatchObject({ rewritePreseed: true, emptyMachineId: true });
    expect(plan.keep.sort()).toEqual(['factory-qa', 'factory-qa/memu-qa-report.json', 'factory-qa/memu-qa-report.json.sig', 'fat:memu-preseed.json', 'fat:memu-qa-report.json', 'fat:memu-qa-report.json.sig']);
  });

  it('outside the directories a boot writes to, the root file system is left alone; a unit that never booted needs nothing removed', () => {
    const plan = planFactoryFreshCleanup({ shippedData: ['docker'], presentData: ['docker'], shippedRoot: [], presentRoot: ['etc/hostname', 'usr/bin/new-tool'], presentFat: [] });
    expect(plan).toMatchObject({ removeData: [], removeRoot: [], removeFat: [], rewritePreseed: false });
  });

  it("a listing taken when the QA boot began counts neither the agent's folders nor what every boot writes as shipped", () => {
    const shipped = shippedFromBootListing({
      data: ['agent', 'agent/provisioning.json', 'secrets', 'docker', 'docker/volumes', 'stack/compose.yml'],
      root: ['etc/ssh', 'etc/ssh/sshd_config', 'etc/ssh/ssh_host_ed25519_key', 'var/log/journal', 'var/log/journal/abc/system.journal', 'var/lib/systemd/random-seed', 'var/log/apt/history.log'],
    });
    expect(shipped).toEqual({ data: ['docker', 'docker/volumes', 'stack/compose.yml'], root: ['etc/ssh', 'etc/ssh/sshd_config', 'var/log/journal', 'var/log/apt/history.log'] });
  });

  it("QA's own listing is removed last, after everything else, so a power cut before it plans again from it", () => {
    const plan = planFactoryFreshCleanup({
      shippedData: ['docker'],
      presentData: ['docker', 'agent', 'agent/provisioning.json', 'factory-qa', 'factory-qa/shipped-listing.json', 'factory-qa/memu-qa-report.json'],
      shippedRoot: [],
      presentRoot: [],
      presentFat: ['memu-preseed.json'],
    });
    expect(plan.removeData.map((r) => r.path)).toEqual(['agent']);
    expect(plan.removeDataLast).toEqual([{ path: 'factory-qa/shipped-listing.json', why: "QA's listing of what the unit held before QA" }]);
  });
});

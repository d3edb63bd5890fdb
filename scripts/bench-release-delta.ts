#!/usr/bin/env -S npx tsx
// Measures what RAUC's adaptive updates (block-hash-index) download for releases that
// change only the agent, only an overlay file, or one package, against the full bundle.
// Two root images are made from one cached root filesystem tree with the build's own
// makeExt4 (same UUID, hash seed and epoch as a rebuild), each released as a real RAUC
// bundle; the estimate reads the bundle's own squashfs tables (image/release/adaptive-download.ts).
//
//   npx tsx scripts/bench-release-delta.ts --tree /var/tmp/memu-test-cache/rootfs/<key>/tree [--work /var/tmp] [--squashfs-args="..."] [--only agent-only,adds-files]
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadProfile } from '../hardware/index.ts';
import { makeExt4 } from '../image/disk/ext4.ts';
import { computeLayout, partitionByRole } from '../image/disk/layout.ts';
import { bundleAgentCode } from '../image/pipeline/agent-bundle.ts';
import { estimateAdaptiveDownload } from '../image/release/adaptive-download.ts';
import { generateRaucPki } from '../image/release/rauc-certificates.ts';
import { BUNDLE_SQUASHFS_ARGS, raucManifestText } from '../image/release/rauc-bundle.ts';
import { AGENT_BUNDLE_NAME, AGENT_INSTALL_DIR } from '../shared/contracts/agent-install.ts';
import { runCommand } from '../shared/process/run-command.ts';

const { values } = parseArgs({ options: { tree: { type: 'string' }, work: { type: 'string', default: '/var/tmp' }, 'squashfs-args': { type: 'string' }, only: { type: 'string' } } });
if (!values.tree) throw new Error('--tree DIR: a cached root filesystem tree');
const squashfsArgs = values['squashfs-args'] ?? BUNDLE_SQUASHFS_ARGS;
const work = await mkdtemp(join(values.work!, 'memu-bench-release-delta-'));
const layout = computeLayout(loadProfile('qemu-amd64'), 'bench');
const rootA = partitionByRole(layout, 'root-a');
const EPOCH = 1767225600;
const agentPath = `${AGENT_INSTALL_DIR}/${AGENT_BUNDLE_NAME}`;

/** A hard-linked copy of the tree (the cache's files are never written: changed paths are replaced). */
async function stage(name: string): Promise<string> {
  const dir = join(work, name);
  await runCommand('cp', ['-al', values.tree!, dir]);
  return dir;
}
async function replace(tree: string, path: string, contents: Buffer): Promise<void> {
  await mkdir(join(tree, path, '..'), { recursive: true });
  await unlink(join(tree, path)).catch(() => {});
  await writeFile(join(tree, path), contents);
}
async function rootImage(tree: string, name: string): Promise<string> {
  const file = join(work, `${name}.ext4`);
  await writeFile(file, '');
  await runCommand('truncate', ['-s', String(rootA.sizeBytes), file]);
  await makeExt4({ target: { file, offsetBytes: 0, sizeBytes: rootA.sizeBytes }, uuid: rootA.fsUuid, label: rootA.label, sourceDir: tree, epoch: EPOCH });
  return file;
}
const pki = await generateRaucPki(join(work, 'pki'));
async function bundle(image: string, name: string): Promise<{ path: string; seconds: number }> {
  const input = join(work, `${name}-input`);
  await mkdir(input);
  await runCommand('ln', [image, join(input, 'rootfs.ext4')]);
  await writeFile(join(input, 'manifest.raucm'), raucManifestText({ profile: 'qemu-amd64', version: '1.0.0', build: name, images: [{ slotClass: 'rootfs', fileName: 'rootfs.ext4', adaptive: true }] }));
  const path = join(work, `${name}.raucb`);
  const t = Date.now();
  await runCommand('rauc', ['bundle', `--cert=${pki.signer.certPath}`, `--key=${pki.signer.keyPath}`, `--mksquashfs-args=${squashfsArgs}`, input, path]);
  return { path, seconds: (Date.now() - t) / 1000 };
}

// v1: the tree plus the agent, as the pipeline's agent stage installs it.
const agent = await bundleAgentCode('1.0.0');
const base = await stage('v1');
// The overlay files the releases below change, as the previous release shipped them.
const overlayFiles = {
  'etc/sysctl.d/90-memu.conf': Buffer.from('# memu\nfs.inotify.max_user_watches=524288\nfs.inotify.max_user_instances=512\nkernel.panic=10\n'),
  'etc/docker/daemon.json': Buffer.from('{"data-root":"/var/lib/memu/docker","log-driver":"local","log-opts":{"max-size":"10m","max-file":"2"}}\n'),
};
async function installBase(tree: string): Promise<void> {
  await replace(tree, agentPath, agent);
  for (const [path, contents] of Object.entries(overlayFiles)) await replace(tree, path, contents);
}
await installBase(base);
const v1 = await rootImage(base, 'v1');

/** Files of one Debian package in the tree, from dpkg's list. */
async function packageFiles(tree: string, pkg: string): Promise<string[]> {
  const list = (await readFile(join(tree, 'var/lib/dpkg/info', `${pkg}.list`), 'utf8').catch(() => readFile(join(tree, 'var/lib/dpkg/info', `${pkg}:amd64.list`), 'utf8'))).split('\n').filter(Boolean);
  const files: string[] = [];
  for (const p of list) if ((await stat(join(tree, p)).catch(() => undefined))?.isFile()) files.push(p.slice(1));
  return files;
}

const variants: Record<string, (tree: string) => Promise<string>> = {
  // A code change: one line added at the top shifts every byte of the bundle after it.
  'agent-only': async (tree) => {
    await replace(tree, agentPath, Buffer.concat([Buffer.from('// release 1.0.1: one changed line\n'), agent]));
    return `agent bundle ${(agent.length / 1e6).toFixed(1)} MB, every byte shifted`;
  },
  // A change that makes the bundle longer by a few blocks, so the files written after it move.
  'agent-grows': async (tree) => {
    await replace(tree, agentPath, Buffer.concat([agent, Buffer.from(`\n// ${'x'.repeat(10_000)}\n`)]));
    return `agent bundle ${(agent.length / 1e6).toFixed(1)} MB, 10 KB added at the end`;
  },
  // Two configuration files of the overlay, as a settings fix would change them.
  'overlay-only': async (tree) => {
    await replace(tree, 'etc/sysctl.d/90-memu.conf', Buffer.from('# memu\nfs.inotify.max_user_watches=1048576\nfs.inotify.max_user_instances=1024\nkernel.panic=10\n'));
    await replace(tree, 'etc/docker/daemon.json', Buffer.from('{"data-root":"/var/lib/memu/docker","log-driver":"local","log-opts":{"max-size":"10m","max-file":"3"}}\n'));
    return '2 files under /etc changed (same number of files)';
  },
  // Files added (a new unit and its configuration): mke2fs -d numbers inodes in the order it
  // walks the tree, so every inode after the new ones moves.
  'adds-files': async (tree) => {
    await replace(tree, 'etc/systemd/system/memu-example.service', Buffer.from('[Unit]\nDescription=example\n[Service]\nExecStart=/bin/true\n'));
    await replace(tree, 'etc/memu/example.conf', Buffer.from('example=1\n'));
    return '2 new files under /etc';
  },
  // A package upgrade: every file of one package replaced by new bytes of the same size
  // (a rebuilt binary differs throughout). openssh-server and its client: a typical security update.
  'package-upgrade': async (tree) => {
    let bytes = 0;
    for (const pkg of ['openssh-server', 'openssh-client', 'openssh-sftp-server']) {
      for (const f of await packageFiles(tree, pkg).catch(() => [])) {
        const old = await readFile(join(tree, f));
        const changed = Buffer.from(old);
        for (let i = 0; i < changed.length; i += 97) changed[i] = changed[i]! ^ 0x5a;
        await replace(tree, f, changed);
        bytes += old.length;
      }
    }
    return `openssh (3 packages), ${(bytes / 1e6).toFixed(1)} MB of files rewritten`;
  },
};

console.log(`squashfs: ${squashfsArgs}`);
for (const [name, change] of Object.entries(variants)) {
  if (values.only && !values.only.split(',').includes(name)) continue;
  const tree = await stage(name);
  await installBase(tree);
  const what = await change(tree);
  const image = await rootImage(tree, name);
  const b = await bundle(image, name);
  const e = await estimateAdaptiveDownload({ bundle: b.path, localSlotImages: [v1] });
  console.log(JSON.stringify({ release: name, change: what, bundleMiB: +(e.bundleBytes / 1048576).toFixed(1), downloadMiB: +(e.downloadBytes / 1048576).toFixed(2), ratioPercent: +(e.ratio * 100).toFixed(2), bundleSeconds: b.seconds, ...e }));
  await rm(tree, { recursive: true, force: true });
  await rm(image, { force: true });
}
await rm(work, { recursive: true, force: true });

import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleAgent, bundleAgentCode } from '../../../../image/pipeline/agent-bundle.ts';
import { REPO_ROOT, TEST_CACHE_DIR } from '../../../helpers/memu-build.ts';

const exec = promisify(execFile);

/**
 * The agent ships as its bundle and SQLite's compiled addon, nothing from node_modules. An
 * entry that opens memu.db through the agent's own modules is bundled exactly as the agent
 * is, and those two files alone, in an empty directory, must create, migrate, write and
 * read one. The arm64 addon, cross-compiled, must be an arm64 ELF object.
 */
const log = pino({ level: 'silent' });
const bundleFor = (arch: 'amd64' | 'arm64', entryPoint?: string) => bundleAgent({ version: '0.0.0-test', arch, cacheDir: TEST_CACHE_DIR, log, entryPoint });

const ENTRY = `
import { createAgentLogger } from '${REPO_ROOT}agent/log.ts';
import { familyDbPath, openFamilyDb } from '${REPO_ROOT}agent/family-db/index.ts';
const db = openFamilyDb(familyDbPath(process.argv[2]), createAgentLogger('warn'));
db.transaction(() => db.run("INSERT INTO audit_log (at, actor, action) VALUES (?, 'system', 'bundle.check')", [Date.now()]));
const actions = db.all('SELECT action FROM audit_log ORDER BY id').map((r) => r.action);
process.stdout.write(JSON.stringify({ schemaVersion: db.schemaVersion(), actions }) + '\\n');
db.close();
`;

describe('the agent bundle', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'memu-agent-bundle-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('needs nothing but its own files: copied alone into an empty directory, it opens, migrates, writes and reads memu.db', async () => {
    const entry = join(work, 'family-db-check.ts');
    await writeFile(entry, ENTRY);
    const bundle = await bundleFor('amd64', entry);
    const lone = join(work, 'lone');
    const dataDir = join(work, 'data');
    await exec('mkdir', [lone]);
    for (const file of bundle.files) await writeFile(join(lone, file.name), file.contents);
    const shipped = ['better_sqlite3.node', 'memu-agent.mjs'];
    expect((await readdir(lone)).sort()).toEqual(shipped);

    const run = async () => JSON.parse((await exec(process.execPath, [join(lone, 'memu-agent.mjs'), dataDir], { cwd: lone })).stdout) as unknown;
    expect(await run()).toEqual({ schemaVersion: 1, actions: ['bundle.check'] });
    expect(await run()).toEqual({ schemaVersion: 1, actions: ['bundle.check', 'bundle.check'] });
    expect((await readdir(lone)).sort()).toEqual(shipped);
    expect((await readdir(join(dataDir, 'agent'))).sort()).toEqual(['memu.db']);

    expect((await bundleFor('amd64', entry)).sha256).toBe(bundle.sha256);
  }, 600_000);

  it('carries an addon compiled for the image\'s architecture: x86-64 for amd64, AArch64 for arm64', async () => {
    const elfMachine = (addon: Buffer) => addon.readUInt16LE(18);
    const addonOf = async (arch: 'amd64' | 'arm64') => (await bundleFor(arch)).files.find((f) => f.name === 'better_sqlite3.node')!.contents;
    expect(elfMachine(await addonOf('amd64'))).toBe(62); // EM_X86_64
    expect(elfMachine(await addonOf('arm64'))).toBe(183); // EM_AARCH64
  }, 600_000);

  it('is ASCII, so V8 keeps its source at one byte a character; a page template with a non-ASCII character stops the build', async () => {
    const code = await bundleAgentCode('0.0.0-test');
    expect(code.findIndex((b) => b > 0x7f)).toBe(-1);

    const entry = join(work, 'non-ascii.ts');
    await writeFile(entry, `import { html } from '${REPO_ROOT}agent/web-pages/index.ts';\nconsole.log(String(html\`<p>Restarting\u2026</p>\`));\n`);
    await expect(bundleAgentCode('0.0.0-test', entry)).rejects.toThrow(/non-ASCII character "\u2026" \(U\+2026\).*Restarting/);
  });

  it("holds no fetch and no WebAssembly, which the agent's lite-mode V8 cannot run; code that calls fetch stops the build", async () => {
    expect((await bundleAgentCode('0.0.0-test')).toString('latin1')).not.toMatch(/(?<![\w$.])fetch\(|\bWebAssembly\b/);
    const entry = join(work, 'calls-fetch.ts');
    await writeFile(entry, "const answer = await fetch('http://127.0.0.1:8008/health');\nconsole.log(answer.status);\n");
    await expect(bundleAgentCode('0.0.0-test', entry)).rejects.toThrow(/uses the global fetch near: .*fetch\("http:\/\/127\.0\.0\.1:8008\/health"\)[\s\S]*call services through node:http/);
  });
});

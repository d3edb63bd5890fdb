import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleAgent } from '../../../../image/pipeline/agent-bundle.ts';
import { REPO_ROOT } from '../../../helpers/memu-build.ts';

const exec = promisify(execFile);

/**
 * The agent ships as its bundle and SQLite's WebAssembly, nothing from node_modules. An
 * entry that opens memu.db through the agent's own modules is bundled exactly as the agent
 * is, and those two files alone, in an empty directory, must create, migrate, write and
 * read one.
 */
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
    const bundle = await bundleAgent('0.0.0-test', entry);
    const lone = join(work, 'lone');
    const dataDir = join(work, 'data');
    await exec('mkdir', [lone]);
    for (const file of bundle.files) await writeFile(join(lone, file.name), file.contents);
    const shipped = ['memu-agent.mjs', 'node-sqlite3-wasm.wasm'];
    expect((await readdir(lone)).sort()).toEqual(shipped);

    const run = async () => JSON.parse((await exec(process.execPath, [join(lone, 'memu-agent.mjs'), dataDir], { cwd: lone })).stdout) as unknown;
    expect(await run()).toEqual({ schemaVersion: 1, actions: ['bundle.check'] });
    expect(await run()).toEqual({ schemaVersion: 1, actions: ['bundle.check', 'bundle.check'] });
    expect((await readdir(lone)).sort()).toEqual(shipped);
    expect((await readdir(join(dataDir, 'agent'))).sort()).toEqual(['memu.db']);

    expect((await bundleAgent('0.0.0-test', entry)).sha256).toBe(bundle.sha256);
  });

  it('is ASCII, so V8 keeps its source at one byte a character; a page template with a non-ASCII character stops the build', async () => {
    const agent = await bundleAgent('0.0.0-test');
    const code = agent.files.find((f) => f.name === 'memu-agent.mjs')!.contents;
    expect(code.findIndex((b) => b > 0x7f)).toBe(-1);

    const entry = join(work, 'non-ascii.ts');
    await writeFile(entry, `import { html } from '${REPO_ROOT}agent/web-pages/index.ts';\nconsole.log(String(html\`<p>Restarting\u2026</p>\`));\n`);
    await expect(bundleAgent('0.0.0-test', entry)).rejects.toThrow(/non-ASCII character "\u2026" \(U\+2026\).*Restarting/);
  });
});

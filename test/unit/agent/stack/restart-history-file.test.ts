import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { restartHistoryFile } from '../../../../agent/stack/restart-history-file.ts';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'memu-restarts-'));
  dirs.push(d);
  return d;
};

describe('the restart history on the data partition', () => {
  it('keeps the loop breaker\'s count across a restart of the agent', async () => {
    const path = join(await tempDir(), 'agent', 'restart-history.json');
    const before = restartHistoryFile(path, log);
    expect(await before.load()).toEqual({});
    await before.save({ flaky: { restarts: [1000, 2000, 3000], streak: 3 } });
    const after = restartHistoryFile(path, log);
    expect(await after.load()).toEqual({ flaky: { restarts: [1000, 2000, 3000], streak: 3 } });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('writes only when the history changed', async () => {
    const path = join(await tempDir(), 'restart-history.json');
    const file = restartHistoryFile(path, log);
    await file.save({ a: { restarts: [1], streak: 1 } });
    const written = (await stat(path)).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    await file.save({ a: { restarts: [1], streak: 1 } });
    expect((await stat(path)).mtimeMs).toBe(written);
  });

  it('starts from none when the file is damaged, instead of stopping the reconciler', async () => {
    const path = join(await tempDir(), 'restart-history.json');
    await writeFile(path, '{"flaky": {"restarts": [1, 2');
    expect(await restartHistoryFile(path, log).load()).toEqual({});
    await writeFile(path, '{"flaky": {"restarts": "many", "streak": 1}}');
    expect(await restartHistoryFile(path, log).load()).toEqual({});
    expect(await readFile(path, 'utf8')).toContain('many');
  });
});

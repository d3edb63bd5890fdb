/**
 * The Docker watchdog against a real dockerd: a throwaway daemon (its own data-root and
 * socket, never the host's) is frozen with SIGSTOP, the docker-responsive check finds it
 * unhealthy, and the restart-docker repair, run by the repairer, restarts it the way
 * systemd does (SIGTERM with SIGCONT, then a fresh start); afterwards the check is ok.
 */
import { readdir, readFile, rm, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { createDockerResponsiveCheck } from '../../../../agent/health/checks/docker-responsive.ts';
import { loadHealthHistory } from '../../../../agent/health/health-history.ts';
import { createRepairer, restartDockerRepair } from '../../../../agent/health/repairs/index.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { startThrowawayDockerd, type ThrowawayDockerd } from '../../../../image/preload/throwaway-dockerd.ts';
import { isRoot, prerequisite } from '../../../helpers/prerequisites.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const hostLog = createHostLogger({ json: true, level: 'silent' });
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
const canRunDockerd = prerequisite('root, to run a throwaway dockerd', isRoot);

let daemon: ThrowawayDockerd | undefined;
afterAll(async () => {
  await daemon?.stop();
});

/** A directory for the test, removed after the daemon in it has stopped (its data-root holds mounts). */
async function workDir(): Promise<string> {
  const dir = await tempDir('memu-docker-watchdog-');
  onTestFinished(async () => {
    await daemon?.stop();
    daemon = undefined;
  });
  return dir;
}

const pidOf = async (d: ThrowawayDockerd) => Number((await readFile(join(dirname(d.socketPath), 'dockerd.pid'), 'utf8')).trim());

/** Until every thread of the process is in the stopped state (T in /proc/PID/task/TID/stat). */
async function waitForStopped(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const tids = await readdir(`/proc/${pid}/task`);
    const states = await Promise.all(tids.map(async (tid) => (await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8')).replace(/^.*\) /s, '')[0]));
    if (states.every((state) => state === 'T')) return;
    if (Date.now() > deadline) throw new Error(`dockerd ${pid} did not stop within 10 s after SIGSTOP (thread states ${states.join('')})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the Docker watchdog (real dockerd)', () => {
  it.skipIf(!canRunDockerd)('finds a SIGSTOPped dockerd unhealthy, restarts it through the repairer, and then finds it ok', async () => {
    const dir = await workDir();
    const dataRoot = join(dir, 'data-root');
    // The daemon's socket moves with each start; the check and the repair use one stable name.
    const socket = join(dir, 'docker.sock');
    daemon = await startThrowawayDockerd({ dataRoot, log: hostLog });
    await symlink(daemon.socketPath, socket);

    const timeoutSeconds = 2;
    const check = createDockerResponsiveCheck({ socketPath: socket, thresholds: { slowSeconds: 1, timeoutSeconds } });
    expect((await check.run())[0]).toMatchObject({ status: 'ok' });

    const pid = await pidOf(daemon);
    process.kill(pid, 'SIGSTOP');
    // kill() returns before every thread of the daemon has stopped; on a loaded machine a
    // ping sent at once was answered (in 2 ms). The premise is a stopped daemon: wait for it.
    await waitForStopped(pid);
    const detectStarted = performance.now();
    const [frozen] = await check.run();
    const detectSeconds = (performance.now() - detectStarted) / 1000;
    expect(frozen).toMatchObject({ check: 'docker-responsive', status: 'unhealthy', reason: `Docker stopped answering: no answer within ${timeoutSeconds} s; the box restarts it.` });
    expect(detectSeconds).toBeLessThan(timeoutSeconds + 1);

    let restarts = 0;
    const restart = async () => {
      restarts++;
      const old = daemon!;
      // What systemd does to stop a unit: SIGTERM, and SIGCONT so a stopped process gets it.
      const stopped = old.stop();
      process.kill(pid, 'SIGCONT');
      await stopped;
      daemon = await startThrowawayDockerd({ dataRoot, log: hostLog });
      await rm(socket, { force: true });
      await symlink(daemon.socketPath, socket);
    };
    const history = await loadHealthHistory(join(dir, 'agent', 'health-history.json'), Date.now(), log);
    history.observe(frozen!, Date.now());
    const repairer = createRepairer({ repairs: [restartDockerRepair({ socketPath: socket, restart, unhealthyForMs: 0, answerWithinSeconds: 60 })], history, log });
    const round = await repairer.round([frozen!]);
    expect(restarts).toBe(1);
    expect(round.ran).toHaveLength(1);
    expect(round.ran[0]!.outcome).toMatchObject({ ok: true, message: expect.stringMatching(/^Docker was restarted \(.* s\) and answers again, .* s after the restart began\.$/) });

    const [after] = await check.run();
    expect(after).toMatchObject({ status: 'ok' });
    history.observe(after!, Date.now());
    await history.flush();
    // The attempt is on disk for the loop breaker; a second round with Docker well runs nothing.
    const reloaded = await loadHealthHistory(history.path!, Date.now(), log);
    expect(reloaded.events()[0]).toMatchObject({ kind: 'transition', check: 'docker-responsive', from: 'unhealthy', to: 'ok' });
    expect(reloaded.attemptsSince('restart-docker', 0)).toBe(1);
    expect((await repairer.round([after!])).ran).toEqual([]);
    process.stderr.write(`docker watchdog: unhealthy found in ${detectSeconds.toFixed(2)} s; restart repair took ${(round.ran[0]!.durationMs / 1000).toFixed(2)} s\n`);
  });
});

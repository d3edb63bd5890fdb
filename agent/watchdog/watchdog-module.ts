import type { Logger } from 'pino';
import type { AgentModule, LivenessProbe } from '../module.ts';
import { notifySystemd } from '../systemd-notify.ts';

export interface WatchdogModuleOptions {
  /** systemd's WATCHDOG_USEC for this process; no pings without it (not under systemd, or no WatchdogSec=). */
  watchdogUsec?: number;
  probes: readonly LivenessProbe[];
  /** How the ping is sent; systemd-notify by default. */
  ping?: () => Promise<void>;
  now?: () => number;
}

export interface WatchdogModule extends AgentModule {
  /** The probes' answers right now: what a ping would be withheld for. */
  check(now?: number): { alive: boolean; failing: { probe: string; reason: string }[] };
}

/**
 * The agent's side of `WatchdogSec=` in memu-agent.service: pings systemd at half the
 * watchdog time from a timer on the event loop, so a blocked loop misses them, and only
 * while every probe says its module is alive. Missing pings get the agent restarted.
 */
export function createWatchdogModule(opts: WatchdogModuleOptions, log: Logger): WatchdogModule {
  const now = opts.now ?? Date.now;
  const ping = opts.ping ?? (() => notifySystemd('WATCHDOG=1'));
  let timer: NodeJS.Timeout | undefined;
  let withheld = false;
  const check = (at = now()) => {
    const failing: { probe: string; reason: string }[] = [];
    for (const probe of opts.probes) {
      const answer = probe.alive(at);
      if (answer !== true) failing.push({ probe: probe.name, reason: answer });
    }
    return { alive: failing.length === 0, failing };
  };
  const tick = () => {
    const { alive, failing } = check();
    if (!alive) {
      if (!withheld) log.error({ failing }, 'withholding the watchdog ping: systemd restarts the agent unless this recovers');
      withheld = true;
      return;
    }
    if (withheld) log.info('modules alive again; watchdog pings resume');
    withheld = false;
    ping().catch((err: unknown) => log.warn({ err }, 'could not ping the systemd watchdog'));
  };
  return {
    name: 'watchdog',
    check,
    async start() {
      if (!opts.watchdogUsec) {
        log.debug('no systemd watchdog for this process');
        return;
      }
      const intervalMs = Math.max(1000, Math.floor(opts.watchdogUsec / 1000 / 2));
      log.info({ intervalMs }, 'pinging the systemd watchdog');
      tick();
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}

/** WATCHDOG_USEC, when systemd set it for this very process (WATCHDOG_PID, if present, names it). */
export function systemdWatchdogUsec(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return usec;
}

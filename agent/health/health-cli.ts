import type { HealthReason } from './health-report.ts';
import { readHealthSnapshot, type HealthSnapshot } from './health-snapshot.ts';

/** A snapshot older than this means the agent is not running its health rounds. */
const STALE_AFTER_MS = 2 * 60_000;

/**
 * `memu-agent health [--json]` on the device: the latest health report the agent wrote,
 * for a person at the console (or factory QA over SSH). Exit codes: 0 ok, 1 degraded or
 * starting, 2 unhealthy, 3 no report or a stale one (the agent is not running).
 */
export async function healthCommand(args: readonly string[], snapshotPath: string, out: (line: string) => void = console.log, now = Date.now()): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    out('Usage: memu-agent health [--json]\n\nPrints the device\'s health: the overall status, what is wrong and since when, what to do, and every check.\nExit codes: 0 ok, 1 degraded or starting, 2 unhealthy, 3 no current report (the agent is not running).');
    return 0;
  }
  const snapshot = await readHealthSnapshot(snapshotPath);
  const stale = snapshot === undefined || now - snapshot.writtenAt > STALE_AFTER_MS;
  if (args.includes('--json')) {
    out(JSON.stringify({ stale, ageSeconds: snapshot ? Math.round((now - snapshot.writtenAt) / 1000) : null, report: snapshot?.report ?? null }));
  } else {
    for (const line of describeSnapshot(snapshot, now, snapshotPath)) out(line);
  }
  if (stale) return 3;
  return { ok: 0, starting: 1, degraded: 1, unhealthy: 2 }[snapshot.report.status];
}

export function describeSnapshot(snapshot: HealthSnapshot | undefined, now: number, path: string): string[] {
  if (!snapshot) return [`No health report at ${path}: the agent has not run since boot. Check: systemctl status memu-agent`];
  const age = Math.round((now - snapshot.writtenAt) / 1000);
  const lines: string[] = [];
  if (now - snapshot.writtenAt > STALE_AFTER_MS) lines.push(`This report is ${age} s old: the agent is not running its checks. Check: systemctl status memu-agent`);
  const r = snapshot.report;
  lines.push(`Memu ${r.version}: ${r.status.toUpperCase()} (as of ${age} s ago)`);
  for (const reason of r.reasons) lines.push(...describeReason(reason));
  if (r.checks.length > 0) {
    lines.push('', 'Checks:');
    const width = Math.max(...r.checks.map((c) => c.check.length));
    for (const c of r.checks) lines.push(`  ${c.check.padEnd(width)}  ${c.status.padEnd(9)}  ${c.reason}`);
  }
  return lines;
}

function describeReason(reason: HealthReason): string[] {
  const since = reason.since !== undefined ? ` (since ${new Date(reason.since).toISOString().slice(0, 16).replace('T', ' ')} UTC)` : '';
  const lines = [`  ${(reason.status ?? 'degraded').padEnd(9)}  ${reason.message}${since}`];
  if (reason.action) lines.push(`             ${reason.action}`);
  return lines;
}

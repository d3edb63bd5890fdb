import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { readStoredSettings } from '../../device-settings/index.ts';
import { joinTailnet } from '../../tailscale/index.ts';
import { fault, firstBootPaths, type FirstBootContext } from './first-boot-context.ts';
import { readJsonIfPresent, removeStaleTemporaryFiles, writeJsonDurably } from '../../../shared/files/durable-files.ts';
import { writeStepOutcome } from './preseed-record.ts';
import { readTailscaleAuthKey, removeTailscaleAuthKey } from './preseed-secrets.ts';

/**
 * `<dataDir>/agent/tailscale.json`: how the last join attempt ended (no key in it).
 *
 * A failed join does NOT fail the step: the device must come up and serve the wizard
 * without Tailscale (no internet yet, an expired key), and a failing journal step would
 * hold back every later step and mark the device degraded. Instead the step completes
 * with state 'failed' and the reason recorded here and in provisioningSummary(), and
 * the auth key stays in `<dataDir>/secrets/tailscale-auth-key` so `tailscaleJoinStep` can
 * be called again later (wizard button, health module) without asking for the key again.
 * The key file is deleted only once the join succeeded or awaits approval.
 */
export const tailscaleRecordSchema = z.object({
  state: z.enum(['joined', 'needs-approval', 'failed']),
  tailnet: z.string().optional(),
  dnsName: z.string().optional(),
  reason: z.string().optional(),
  at: z.string(),
});
export type TailscaleRecord = z.infer<typeof tailscaleRecordSchema>;

export function tailscaleRecordPath(dataDir: string): string {
  return join(firstBootPaths(dataDir).agentDir, 'tailscale.json');
}

export async function readTailscaleRecord(dataDir: string): Promise<TailscaleRecord | undefined> {
  const parsed = tailscaleRecordSchema.safeParse(await readJsonIfPresent(tailscaleRecordPath(dataDir)).catch(() => undefined));
  return parsed.success ? parsed.data : undefined;
}

/** tailscale-join (and the retry entry point). No auth key: no-op. */
export async function tailscaleJoinStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  await removeStaleTemporaryFiles(firstBootPaths(ctx.dataDir).agentDir);
  const authKey = await readTailscaleAuthKey(ctx.dataDir);
  if (!authKey) {
    const previous = await readTailscaleRecord(ctx.dataDir);
    log.info({ previous: previous?.state }, previous ? 'Tailscale auth key already consumed' : 'no Tailscale auth key: join later from the setup wizard');
    await writeStepOutcome(ctx.dataDir, {
      step: 'tailscale-join',
      fields: previous && previous.state !== 'failed' ? ['tailscaleAuthKey'] : [],
      warnings: previous?.state === 'failed' && previous.reason ? [previous.reason] : [],
      tailscale: previous?.state ?? 'not-requested',
    });
    return;
  }
  const settings = await readStoredSettings(ctx.dataDir);
  const result = await joinTailnet({
    socketPath: ctx.tailscaleSocket,
    authKey,
    hostname: settings?.hostname ?? 'memu',
    controlUrl: ctx.tailscale?.controlUrl,
    socketWaitMs: ctx.tailscale?.socketWaitMs,
    joinTimeoutMs: ctx.tailscale?.joinTimeoutMs,
    pollIntervalMs: ctx.tailscale?.pollIntervalMs,
    log,
  });
  const at = new Date().toISOString();
  if (result.state === 'failed') {
    log.warn({ reason: result.reason }, 'joining the tailnet failed; the device continues without Tailscale');
    await writeJsonDurably(tailscaleRecordPath(ctx.dataDir), { state: 'failed', reason: result.reason, at } satisfies TailscaleRecord);
    await writeStepOutcome(ctx.dataDir, { step: 'tailscale-join', fields: [], warnings: [result.reason], tailscale: 'failed' });
    return;
  }
  const outcome: TailscaleRecord = { state: result.state, tailnet: result.tailnet, dnsName: result.state === 'joined' ? result.dnsName : undefined, at };
  await writeJsonDurably(tailscaleRecordPath(ctx.dataDir), outcome);
  await fault(ctx, 'tailscale-join:after-join');
  await removeTailscaleAuthKey(ctx.dataDir);
  log.info({ state: result.state }, 'Tailscale auth key consumed');
  await writeStepOutcome(ctx.dataDir, { step: 'tailscale-join', fields: ['tailscaleAuthKey'], warnings: [], tailscale: result.state });
}

#!/usr/bin/env -S npx tsx
/**
 * Server time and weight of the wizard's and dashboard's pages.
 *
 *   scripts/bench-web.ts [--requests N]
 *
 * Starts the agent's web side as the tests do (test/helpers/web-agent.ts: real memu.db,
 * fake Synapse, Immich and tailscaled), walks the wizard once, asking each page 20 times
 * to warm up and then N times (default 200), and prints the median and p95 server time (request sent to last byte, over
 * loopback) and the page's size, beside the same numbers for the reference: a bare fastify
 * route answering a fixed page of the same size in the same process. Target: p95 under
 * 50 ms, every page under 150 KB.
 */
import Fastify from 'fastify';
import { startWebAgent, TEST_CLAIM_CODE } from '../test/helpers/web-agent.ts';
import { printBenchTable, ratio, type BenchRow } from './bench-table.ts';

const args = process.argv.slice(2);
const REQUESTS = args.includes('--requests') ? Number(args[args.indexOf('--requests') + 1]) : 200;
const WARM_UP = 20;

const cookies = new Map<string, string>();
async function request(base: string, path: string, form?: Record<string, string>): Promise<{ status: number; body: string; ms: number; location: string | null }> {
  const started = process.hrtime.bigint();
  const res = await fetch(`${base}${path}`, {
    method: form ? 'POST' : 'GET',
    redirect: 'manual',
    headers: { accept: 'text/html', cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  const body = await res.text();
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const [name, ...value] = pair!.split('=');
    cookies.set(name!, value.join('='));
  }
  return { status: res.status, body, ms, location: res.headers.get('location') };
}

async function submit(base: string, path: string, action: string, form: Record<string, string>) {
  const page = await request(base, path);
  const token = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
  return request(base, action, { ...form, _csrf: token });
}

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))]!;

async function measure(base: string, path: string): Promise<{ median: number; p95: number; bytes: number }> {
  const times: number[] = [];
  let bytes = 0;
  // The first requests of a route pay for compiling its code; what a family feels is the rest.
  for (let i = 0; i < REQUESTS + WARM_UP; i++) {
    const r = await request(base, path);
    if (r.status !== 200) throw new Error(`${path} answered ${r.status} (${r.location ?? ''})`);
    if (i >= WARM_UP) times.push(r.ms);
    bytes = Buffer.byteLength(r.body);
  }
  return { median: percentile(times, 50), p95: percentile(times, 95), bytes };
}

const agent = await startWebAgent();
const reference = Fastify();
let referencePage = '';
reference.get('/page', async (_request, reply) => reply.type('text/html; charset=utf-8').send(referencePage));
await reference.listen({ host: '127.0.0.1', port: 0 });
const referenceBase = `http://127.0.0.1:${(reference.server.address() as { port: number }).port}`;
const rows: BenchRow[] = [];
try {
  const claim = await measure(agent.base, '/admin/setup/claim');
  const results: [string, Awaited<ReturnType<typeof measure>>][] = [['/admin/setup/claim', claim]];
  await submit(agent.base, '/admin/setup/claim', '/admin/setup/claim', { code: TEST_CLAIM_CODE });
  await submit(agent.base, '/admin/setup/admin', '/admin/setup/admin', { familyName: 'The Benches', displayName: 'Bench', username: 'bench', password: 'quiet rivers count pebbles' });
  // Each page, then on to the next step as a person would.
  const walk: [string, string, Record<string, string>][] = [
    ['/admin/setup/network', '/admin/setup/network/next', {}],
    ['/admin/setup/region', '/admin/setup/region', { timezone: 'Europe/London', locale: 'en-GB' }],
    ['/admin/setup/remote', '/admin/setup/remote/next', {}],
    ['/admin/setup/members', '/admin/setup/members/next', {}],
  ];
  for (const [path, action, form] of walk) {
    results.push([path, await measure(agent.base, path)]);
    await submit(agent.base, path, action, form);
  }
  for (const [path, m] of results) {
    referencePage = 'x'.repeat(m.bytes);
    const ref = await measure(referenceBase, '/page');
    rows.push([`${path} p95 (median)`, `${m.p95.toFixed(2)} ms (${m.median.toFixed(2)})`, `fixed page, bare fastify ${ref.p95.toFixed(2)} ms (${ref.median.toFixed(2)})`, ratio(m.p95, ref.p95)]);
    rows.push([`${path} size`, `${(m.bytes / 1024).toFixed(1)} KiB`, '', '']);
  }
} finally {
  await reference.close();
  await agent.stop();
}
printBenchTable(rows);

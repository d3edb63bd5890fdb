import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * The one HTTP path to the family services (Synapse, Immich): JSON in, JSON out, a
 * timeout on every call, and failures sorted by what they mean for the account records:
 * whether the service answered (and so whether the request certainly did or did not take
 * effect) or the outcome is unknown (timeout, connection lost, a 5xx).
 *
 * Through node:http rather than the global fetch: Node's fetch (undici) parses HTTP with
 * WebAssembly, which the agent's V8 runs without (`--lite-mode`, memu-agent.service), and
 * fetch then throws outside any promise and ends the process. The agent's bundle is
 * refused at build time if it calls fetch (image/pipeline/agent-bundle.ts).
 */
export type ServiceCallFailure =
  /** The service answered with a status outside 2xx. */
  | 'answer'
  /** No answer within the time allowed: the request may still have been carried out. */
  | 'timeout'
  /** Nothing accepted the connection: the request never reached the service. */
  | 'unreachable'
  /** The connection broke before the answer was complete: the request may have been carried out. */
  | 'connection-lost';

export class ServiceCallError extends Error {
  constructor(
    message: string,
    readonly failure: ServiceCallFailure,
    readonly status?: number,
    readonly body?: unknown,
  ) {
    super(message);
    this.name = 'ServiceCallError';
  }

  /** The request may have taken effect although nothing said so (a 5xx can come after a write). */
  get outcomeUnknown(): boolean {
    return this.failure === 'timeout' || this.failure === 'connection-lost' || (this.failure === 'answer' && (this.status ?? 0) >= 500);
  }
}

export interface JsonRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs: number;
}

export interface JsonAnswer {
  status: number;
  /** The parsed JSON body; the raw text when it is not JSON; undefined when empty. */
  body: unknown;
}

/**
 * Sends one request to `baseUrl` + `path`. Answers of any status are returned (the
 * service's client decides what a 4xx means); transport failures throw ServiceCallError.
 * Request bodies carry passwords, so neither they nor the headers appear in any message.
 */
export async function requestJson(service: string, baseUrl: string, req: JsonRequest): Promise<JsonAnswer> {
  const url = new URL(req.path, baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
  const what = `${service} (${req.method} ${url.pathname})`;
  const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
  const headers: Record<string, string> = {
    accept: 'application/json',
    ...(body ? { 'content-type': 'application/json', 'content-length': String(body.length) } : {}),
    ...req.headers,
  };
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<JsonAnswer>((resolve, reject) => {
    let timedOut = false;
    // A connection per call (agent: false): a pooled connection the service has since closed
    // would fail as "connection lost" (outcome unknown) for a request that never reached it.
    const call = send(url, { method: req.method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: parseBody(Buffer.concat(chunks).toString('utf8')) });
      });
      res.on('error', (err) => fail(err));
      res.on('aborted', () => fail(Object.assign(new Error('the answer was cut off'), { code: 'ECONNRESET' })));
    });
    const fail = (err: unknown) => {
      clearTimeout(timer);
      reject(transportError(what, url.origin, req.timeoutMs, err, timedOut));
    };
    // One deadline for the whole exchange, as AbortSignal.timeout gave fetch.
    const timer = setTimeout(() => {
      timedOut = true;
      call.destroy(new Error('timeout'));
    }, req.timeoutMs);
    call.on('error', fail);
    call.end(body);
  });
}

/** Whether the service answers 200 on its health path within `timeoutMs`; the reason when not. */
export async function probeHealth(service: string, baseUrl: string, path: string, timeoutMs: number): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const answer = await requestJson(service, baseUrl, { method: 'GET', path, timeoutMs });
    if (answer.status === 200) return { ok: true };
    return { ok: false, reason: `${service} answered its health check ${path} with HTTP ${answer.status}` };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

/** What each service's client shares: where it is, how long a call may take, its health check. */
export abstract class JsonServiceClient {
  constructor(
    private readonly service: string,
    readonly baseUrl: string,
    private readonly healthPath: string,
    private readonly timeoutMs: number,
  ) {}

  health(timeoutMs: number): Promise<{ ok: true } | { ok: false; reason: string }> {
    return probeHealth(this.service, this.baseUrl, this.healthPath, timeoutMs);
  }

  protected send(req: Omit<JsonRequest, 'timeoutMs' | 'headers'>, headers?: Record<string, string>): Promise<JsonAnswer> {
    return requestJson(this.service, this.baseUrl, { ...req, headers, timeoutMs: this.timeoutMs });
  }
}

function transportError(what: string, origin: string, timeoutMs: number, err: unknown, timedOut: boolean): ServiceCallError {
  if (timedOut) {
    return new ServiceCallError(`${what} did not answer within ${formatSeconds(timeoutMs)}`, 'timeout');
  }
  const code = causeCode(err);
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EAI_AGAIN') {
    return new ServiceCallError(`${what}: nothing answers at ${origin} (${code})`, 'unreachable');
  }
  return new ServiceCallError(`${what}: the connection broke before the answer was complete (${code ?? (err as Error).message})`, 'connection-lost');
}

function causeCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function parseBody(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function formatSeconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/** A short single-line excerpt of an answer body for messages (service error texts, never ours). */
export function excerpt(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body) ?? '';
  return text.replace(/\s+/g, ' ').trim().slice(0, 200) || 'no body';
}

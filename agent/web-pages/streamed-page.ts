import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { html, type SafeHtml } from './html.ts';

/** Where a streamed page's document is cut: what comes before it is sent at once. */
export const STREAM_MARK = '<!--memu:stream-->';

/**
 * A page whose answer takes seconds (making accounts, joining a tailnet): the top of the
 * document, with a "…" note, is sent at once, and the result follows when `work` ends,
 * with no script; the stylesheet hides the note once the result (`.done`) is there.
 * `document` holds STREAM_MARK where the result goes.
 */
export function sendStreamed(reply: FastifyReply, document: string, work: () => Promise<SafeHtml>, onError: (err: unknown) => SafeHtml): FastifyReply {
  const [head, tail] = document.split(STREAM_MARK) as [string, string | undefined];
  if (tail === undefined) throw new Error('a streamed page needs STREAM_MARK in its document');
  async function* chunks() {
    yield head;
    let result: SafeHtml;
    try {
      result = await work();
    } catch (err) {
      result = onError(err);
    }
    yield html`<div class="done">${result}</div>`.value;
    yield tail;
  }
  // The front door (nginx) would otherwise hold the first part back until the end.
  return reply
    .code(200)
    .header('cache-control', 'no-store')
    .header('x-accel-buffering', 'no')
    .type('text/html; charset=utf-8')
    .send(Readable.from(chunks(), { objectMode: false }));
}

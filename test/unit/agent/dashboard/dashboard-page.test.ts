import Fastify, { type FastifyRequest } from 'fastify';
import { describe, expect, it, onTestFinished } from 'vitest';
import { confirmed, field, isolate, Notices, sendStreamedPage } from '../../../../agent/dashboard/dashboard-page.ts';
import { html } from '../../../../agent/web-pages/index.ts';

const request = (sessionIdHash: string) => ({ admin: { username: 'mum', displayName: 'Mum', sessionIdHash } }) as FastifyRequest;

describe('dashboard page parts', () => {
  it('shows a notice once, on the next page of the same session only', () => {
    const notices = new Notices();
    notices.add(request('a'), { kind: 'ok', text: 'Anna <was> removed.' });
    notices.add(request('a'), { kind: 'error', text: 'Leaving failed.' });
    expect(notices.take(request('b')).value).toBe('');
    const shown = notices.take(request('a')).value;
    expect(shown).toContain('<div class="notice" role="status">Anna &lt;was&gt; removed.</div>');
    expect(shown).toContain('<div class="error" role="alert">Leaving failed.</div>');
    expect(notices.take(request('a')).value).toBe('');
  });

  it('keeps the last five notices of a session and at most a hundred sessions', () => {
    const notices = new Notices();
    for (let i = 0; i < 7; i++) notices.addFor('a', { kind: 'ok', text: `n${i}` });
    expect(notices.take(request('a')).value.match(/role="status"/g)).toHaveLength(5);
    for (let i = 0; i < 101; i++) notices.addFor(`s${i}`, { kind: 'ok', text: 'x' });
    expect(notices.take(request('s0')).value).toBe('');
    expect(notices.take(request('s100')).value).not.toBe('');
  });

  it('labels every input and ties its hint and error to it', () => {
    const input = field({ name: 'username', label: 'Username', hint: 'lower-case', error: 'is "taken"', value: '"><script>' }).value;
    expect(input).toContain('<label for="f-username">Username <span class="hint" id="f-username-hint">lower-case</span></label>');
    expect(input).toContain('aria-describedby="f-username-hint f-username-error"');
    expect(input).toContain('aria-invalid="true"');
    expect(input).toContain('<span class="field-error" id="f-username-error">is &quot;taken&quot;</span>');
    expect(input).toContain('value="&quot;&gt;&lt;script&gt;"');
    expect(field({ name: 'x', label: 'X' }).value).not.toContain('aria-');
  });

  it('takes a form as confirmed only with confirm=yes', () => {
    expect(confirmed({ confirm: 'yes' })).toBe(true);
    expect(confirmed({ confirm: 'no' })).toBe(false);
    expect(confirmed({})).toBe(false);
    expect(confirmed(undefined)).toBe(false);
  });

  it('isolates a name in plain text', () => {
    expect(isolate('أمينة')).toBe('\u2068أمينة\u2069');
  });
});

describe('a page for work that takes seconds', () => {
  it('sends the page up to its progress note at once, the result when the work is done', async () => {
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const app = Fastify();
    app.decorateReply('generateCsrf', () => 'token');
    app.addHook('onRequest', async (request) => void (request.admin = { username: 'mum', displayName: 'Mum', sessionIdHash: 'a' }));
    app.post('/slow', (request, reply) =>
      sendStreamedPage(request, reply, { section: 'members', title: 'Slow', waiting: 'Working…' }, async () => (await done, html`<p>Result</p>`), () => html`<p>Failed</p>`),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    onTestFinished(() => app.close());
    const res = await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/slow`, { method: 'POST' });
    expect(res.headers.get('x-accel-buffering')).toBe('no');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('<p class="notice progress no-print" role="status">Working…</p>');
    expect(first).not.toContain('Result');
    finish();
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toContain('<div class="done"><p>Result</p></div>');
    expect(rest).toContain('</html>');
  });
});

import { describe, expect, it } from 'vitest';
import { html, page, raw } from '../../../../agent/web-pages/index.ts';

describe('pages from escaped templates', () => {
  it('escapes every value, in text and in attributes, and keeps other scripts as they are', () => {
    const name = `"><script>alert('x')</script> 安娜 آنا`;
    const out = html`<p title="${name}">${name}</p>`.value;
    expect(out).toBe('<p title="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 安娜 آنا">&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; 安娜 آنا</p>');
  });

  it('nests templates and lists without escaping them twice, and leaves out null, undefined and false', () => {
    const items = ['a<b', 'c&d'].map((t) => html`<li>${t}</li>`);
    expect(html`<ul>${items}</ul>${null}${undefined}${false}`.value).toBe('<ul><li>a&lt;b</li><li>c&amp;d</li></ul>');
    expect(html`${raw('<svg></svg>')}`.value).toBe('<svg></svg>');
  });

  it('makes a whole page with no inline script, the skip link and one stylesheet', () => {
    const doc = page({ title: 'Claim <this>', body: html`<p>x</p>` });
    expect(doc).toContain('<title>Claim &lt;this&gt; &middot; Memu</title>');
    expect(doc).toContain('<a class="skip" href="#main">');
    expect(doc).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(page({ title: 't', body: html``, refreshSeconds: 3 })).toContain('<script src="/admin/assets/progress.js" defer></script>');
  });
});

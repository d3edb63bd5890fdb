/**
 * A browser as far as the dashboard's tests need one: a cookie jar, GETs that ask for
 * HTML, and form posts that carry the CSRF token of the last page (as a real form would).
 */
export interface Answer {
  status: number;
  location: string | null;
  headers: Headers;
  text: string;
  ms: number;
}

export class Browser {
  readonly cookies = new Map<string, string>();
  /** The CSRF token of the last page that had a form. */
  csrf: string | undefined;

  constructor(readonly base: string) {}

  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private keep(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split('=')[1]!) < Date.now()));
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  private async answer(res: Response, started: number): Promise<Answer> {
    this.keep(res);
    const text = await res.text();
    const ms = performance.now() - started;
    const token = /name="_csrf" value="([^"]+)"/.exec(text)?.[1];
    if (token) this.csrf = token;
    return { status: res.status, location: res.headers.get('location'), headers: res.headers, text, ms };
  }

  async get(path: string): Promise<Answer> {
    const started = performance.now();
    const res = await fetch(this.base + path, { headers: { accept: 'text/html', cookie: this.cookieHeader() }, redirect: 'manual' });
    return this.answer(res, started);
  }

  /** Posts a form; `csrf: false` leaves the token out. */
  async post(path: string, form: Record<string, string> = {}, opts: { csrf?: boolean } = {}): Promise<Answer> {
    const fields = new URLSearchParams(form);
    if (opts.csrf !== false && this.csrf) fields.set('_csrf', this.csrf);
    const started = performance.now();
    const res = await fetch(this.base + path, {
      method: 'POST',
      headers: { accept: 'text/html', 'content-type': 'application/x-www-form-urlencoded', cookie: this.cookieHeader() },
      body: fields.toString(),
      redirect: 'manual',
    });
    return this.answer(res, started);
  }

  async signIn(username: string, password: string): Promise<void> {
    await this.get('/admin/login');
    const res = await this.post('/admin/login', { username, password, next: '/admin/' });
    if (res.status !== 303 || !this.cookies.has('memu_session')) throw new Error(`sign-in failed: HTTP ${res.status} ${res.text.slice(0, 300)}`);
  }
}

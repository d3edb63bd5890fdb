/**
 * The setup wizard, then the dashboard, in a real browser (Debian's Chromium through playwright-core) against
 * the agent's web side (test/helpers/web-agent.ts: real memu.db, FAKE Synapse, Immich and
 * tailscaled). Every step at phone and desktop width: no serious or critical axe-core
 * violation, under 150 KB transferred, a screenshot for the README (docs/screenshots/).
 */
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { axeViolations, launchChromium, seriousViolations, VIEWPORTS } from '../../../helpers/browser.ts';
import { startWebAgent, TEST_CLAIM_CODE, type WebAgent } from '../../../helpers/web-agent.ts';

const SCREENSHOTS = fileURLToPath(new URL('../../../../docs/screenshots/', import.meta.url));
const PAGE_BUDGET_BYTES = 150 * 1024;

let agent: WebAgent;
let browser: Browser;
let page: Page;
const weights: Record<string, number> = {};

/** Bytes the browser received for the page (document, stylesheet, headers; a cached stylesheet counts 0, as it costs nothing). */
const transferredBytes = () => page.evaluate(() => performance.getEntries().reduce((n, e) => n + ((e as PerformanceResourceTiming).transferSize ?? 0), 0));

/** Checks the page as shown, at both widths, and keeps its screenshots. */
async function inspect(name: string, prefix = 'wizard'): Promise<void> {
  const transferred = await transferredBytes();
  weights[name] = transferred;
  expect(transferred, `${name}: bytes transferred`).toBeGreaterThan(0);
  expect(transferred, `${name}: bytes transferred`).toBeLessThan(PAGE_BUDGET_BYTES);
  for (const [size, viewport] of Object.entries(VIEWPORTS)) {
    await page.setViewportSize(viewport);
    expect(seriousViolations(await axeViolations(page)), `${name} at ${size} width`).toEqual([]);
    // Nothing wider than the screen: a phone never scrolls sideways.
    expect(await page.evaluate(() => document.documentElement.scrollWidth), `${name} at ${size}: page width`).toBeLessThanOrEqual(viewport.width);
    await page.screenshot({ path: `${SCREENSHOTS}${prefix}-${name}-${size}.png`, fullPage: true });
  }
  await page.setViewportSize(VIEWPORTS.phone);
}

async function go(action: () => Promise<unknown>): Promise<void> {
  await action();
  await page.waitForLoadState('load');
}

beforeAll(async () => {
  await mkdir(SCREENSHOTS, { recursive: true });
  agent = await startWebAgent({ dashboard: true });
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: VIEWPORTS.phone, locale: 'en-GB' });
  page = await context.newPage();
});

afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  console.log(`page weight (bytes, document + stylesheet + headers): ${JSON.stringify(weights)}`);
});

describe('the setup wizard in Chromium, at phone and desktop width', () => {
  it('walks from the claim code to the dashboard', async () => {
    await go(() => page.goto(`${agent.base}/admin/`));
    expect(page.url()).toBe(`${agent.base}/admin/setup/claim`);
    await inspect('1-claim');

    await go(() => page.getByLabel('Claim code').fill('WRNG-CODE-0000-0000').then(() => page.getByRole('button', { name: 'Claim' }).click()));
    expect(await page.getByRole('alert').textContent()).toMatch(/not the claim code of this Memu/);
    await inspect('1-claim-wrong');

    await page.getByLabel('Claim code').fill(TEST_CLAIM_CODE.toLowerCase());
    await go(() => page.getByRole('button', { name: 'Claim' }).click());
    expect(page.url()).toBe(`${agent.base}/admin/setup/admin`);
    await inspect('2-admin');

    await page.getByLabel('Family name').fill('The Okafors');
    await page.getByLabel('Your name').fill('Adaeze Okafor');
    await page.getByLabel('Username').fill('ada');
    // Long enough for the browser's own check, refused by the agent's rules.
    await page.getByLabel('Password').fill('aaaaaaaaaaaaaaaa');
    await go(() => page.getByRole('button', { name: 'Create the admin' }).click());
    expect(await page.getByText('the password repeats one or two characters').isVisible()).toBe(true);
    await inspect('2-admin-problems');
    await page.getByLabel('Password').fill('purple kettles hum at dawn');
    await go(() => page.getByRole('button', { name: 'Create the admin' }).click());
    expect(page.url()).toBe(`${agent.base}/admin/setup/network`);
    await inspect('3-network');

    await go(() => page.getByRole('button', { name: 'Continue' }).click());
    expect(page.url()).toBe(`${agent.base}/admin/setup/region`);
    await inspect('4-region');
    await page.getByLabel('Time zone').selectOption('Africa/Lagos');
    await page.getByLabel('Language and formats').selectOption('en-GB');
    await go(() => page.getByRole('button', { name: 'Save and continue' }).click());
    expect(page.url()).toBe(`${agent.base}/admin/setup/remote`);
    await inspect('5-remote');

    await go(() => page.getByRole('button', { name: 'Sign in with a browser' }).click());
    expect(await page.getByRole('img', { name: 'QR code of the sign-in link' }).isVisible()).toBe(true);
    await inspect('5-remote-login');
    await go(() => page.getByRole('button', { name: 'Skip for now' }).click());
    expect(page.url()).toBe(`${agent.base}/admin/setup/members`);
    await inspect('6-members');

    await page.getByLabel('Name', { exact: true }).fill('Chidi Okafor');
    await page.getByLabel('Username').fill('chidi');
    await go(() => page.getByRole('button', { name: 'Add' }).click());
    expect(await page.getByText('Shown only now.').isVisible()).toBe(true);
    await inspect('6-members-added');

    await go(() => page.getByRole('button', { name: 'Continue' }).click());
    expect(page.url()).toBe(`${agent.base}/admin/setup/done`);
    await inspect('7-done');
    await go(() => page.getByRole('button', { name: 'Go to the dashboard' }).click());
    expect(new URL(page.url()).pathname).toBe('/admin/');
  });

  it('shows every dashboard page to the admin the wizard signed in', async () => {
    for (const [name, path] of [
      ['1-overview', '/admin/'],
      ['2-members', '/admin/members'],
      ['3-tailscale', '/admin/tailscale'],
      ['4-account', '/admin/account'],
      ['5-power', '/admin/power'],
      ['6-audit', '/admin/audit'],
    ] as const) {
      await go(() => page.goto(`${agent.base}${path}`));
      expect(new URL(page.url()).pathname, name).toBe(path);
      await inspect(name, 'dashboard');
    }
    // The overview shows the stack's services; the audit log, what the wizard did.
    await go(() => page.goto(`${agent.base}/admin/`));
    expect(await page.getByText('immich_server').count()).toBeGreaterThan(0);
    await go(() => page.goto(`${agent.base}/admin/audit`));
    expect(await page.getByText('setup.admin').count()).toBeGreaterThan(0);
  });
});

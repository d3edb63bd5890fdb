import QRCode from 'qrcode';
import { describe, expect, it } from 'vitest';
import type { ServiceAccountResult } from '../../../../agent/accounts/index.ts';
import { accountSheet, appAddresses, canRetry, qrCode } from '../../../../agent/family-members/account-sheet.ts';
import { html } from '../../../../agent/web-pages/index.ts';

const RETRY = html`<form id="retry"></form>`;
const member = { username: 'anna', displayName: '<i>Anna</i>' };

describe('the account sheet', () => {
  it('shows each one-time password with the address and login, and QR codes of those only', async () => {
    const results: ServiceAccountResult[] = [
      { service: 'synapse', state: 'created', login: '@anna:hub.home.arpa', oneTimePassword: 'AAAAA-BBBBB-CCCCC-DDDDD' },
      { service: 'immich', state: 'created', login: 'anna@hub.home.arpa', oneTimePassword: 'EEEEE-FFFFF-GGGGG-HHHHH' },
    ];
    const sheet = (await accountSheet(member, results, 'hub', RETRY)).value;
    expect(sheet).toContain('<span class="secret">AAAAA-BBBBB-CCCCC-DDDDD</span>');
    expect(sheet).toContain('<code>http://hub:2283</code>');
    expect(sheet).toContain('&lt;i&gt;Anna&lt;/i&gt;');
    expect(sheet).not.toContain('id="retry"');
    expect(sheet.match(/<svg /g)).toHaveLength(4);
    for (const text of ['http://hub', '@anna:hub.home.arpa', 'http://hub:2283', 'anna@hub.home.arpa']) expect(sheet).toContain(pathOf(await QRCode.toString(text, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' })));
    for (const secret of ['AAAAA-BBBBB-CCCCC-DDDDD', 'EEEEE-FFFFF-GGGGG-HHHHH']) expect(sheet).not.toContain(pathOf(await QRCode.toString(secret, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' })));
  });

  it('says per app what happened where no password was issued, with the retry form when trying again could help', async () => {
    const sheet = (
      await accountSheet(
        member,
        [
          { service: 'synapse', state: 'unavailable', error: 'Memu Chat (Synapse) is not part of the installed stack' },
          { service: 'immich', state: 'failed', error: 'Immich answered HTTP 500', retriable: true },
        ],
        'hub',
        RETRY,
      )
    ).value;
    expect(sheet).not.toContain('Shown only now');
    expect(sheet).toContain('Why: Memu Chat (Synapse) is not part of the installed stack');
    expect(sheet).toContain('What happened: Immich answered HTTP 500');
    expect(sheet).toContain('id="retry"');
  });

  it('knows when trying again can help', () => {
    expect(canRetry({ service: 'immich', state: 'failed', retriable: true })).toBe(true);
    expect(canRetry({ service: 'immich', state: 'failed', retriable: false })).toBe(false);
    expect(canRetry({ service: 'immich', state: 'unavailable' })).toBe(true);
    expect(canRetry({ service: 'immich', state: 'pending' })).toBe(true);
    expect(canRetry({ service: 'immich', state: 'created' })).toBe(false);
    expect(canRetry({ service: 'immich', state: 'removed' })).toBe(false);
  });

  it('puts the apps at the box’s name, Immich on its own port', () => {
    expect(appAddresses('memu-hub')).toEqual({ synapse: 'http://memu-hub', immich: 'http://memu-hub:2283' });
  });

  it('hides a QR code from screen readers and captions it', async () => {
    const qr = (await qrCode('http://hub', 'Homeserver <address>')).value;
    expect(qr).toMatch(/^<figure class="qr"><svg aria-hidden="true" focusable="false" xmlns=/);
    expect(qr).toContain('<figcaption>Homeserver &lt;address&gt;</figcaption>');
  });
});

/** The modules of a QR code's SVG: its second path. */
function pathOf(svg: string): string {
  return /<path stroke="#000000" d="([^"]+)"/.exec(svg)![1]!;
}

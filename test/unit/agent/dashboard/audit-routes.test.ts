import { describe, expect, it } from 'vitest';
import { auditDetail, auditList } from '../../../../agent/dashboard/audit-routes.ts';
import { familyFormats } from '../../../../agent/dashboard/format.ts';

const fmt = familyFormats({ locale: 'en_GB', timezone: 'America/New_York' });

describe('the audit log page', () => {
  it('words details as key: value pairs, and cuts long ones', () => {
    expect(auditDetail({ username: 'anna', synapse: 'created', n: 2, list: ['a'] })).toBe('username: anna, synapse: created, n: 2, list: ["a"]');
    expect(auditDetail({})).toBe('');
    const long = auditDetail({ error: 'x'.repeat(1000) });
    expect(long).toHaveLength(300);
    expect(long.endsWith('…')).toBe(true);
  });

  it('lists entries in the order given (newest first), in the family time zone, escaped, with words for known actions', () => {
    const at = Date.parse('2026-07-04T12:00:00Z');
    const list = auditList(
      [
        { id: 2, at, actor: 'mum', action: 'member.add', detail: { username: '<b>' } },
        { id: 1, at: at - 1000, actor: 'system', action: 'something.new', detail: {} },
      ],
      fmt,
    ).value;
    expect(list).toContain('<time datetime="2026-07-04T12:00:00.000Z">4 Jul 2026, 08:00:00</time> <strong>mum</strong> added a member<br><span class="hint">username: &lt;b&gt;</span>');
    expect(list).toContain('<strong>system</strong> something.new</li>');
    expect(list.indexOf('mum')).toBeLessThan(list.indexOf('system'));
    expect(auditList([], fmt).value).toContain('Nothing has been recorded yet.');
  });
});

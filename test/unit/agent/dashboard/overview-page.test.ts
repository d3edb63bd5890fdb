import { describe, expect, it } from 'vitest';
import type { HealthBody } from '../../../../agent/health/index.ts';
import { familyFormats } from '../../../../agent/dashboard/format.ts';
import { deviceCard, healthCard, serviceHealth, serviceLastError, serviceRestarts, servicesCard, storageCard } from '../../../../agent/dashboard/overview-page.ts';
import type { ReportedServiceStatus, StackModuleStatus } from '../../../../agent/stack/index.ts';

const fmt = familyFormats(undefined);
type Status = ReportedServiceStatus extends infer T ? (T extends unknown ? Omit<T, 'summary'> : never) : never;
const s = (status: Status): ReportedServiceStatus => ({ ...status, summary: 'summary' }) as ReportedServiceStatus;
const report = (extra: Partial<HealthBody> = {}): HealthBody => ({ status: 'ok', reasons: [], version: '1.0.0', bootId: 'b', uptimeSeconds: 1, checks: [], ...extra });

describe('a service in words', () => {
  it('names state and health apart, so an unhealthy service still reads as running', () => {
    expect(serviceHealth(s({ state: 'healthy', containerId: 'c' }))).toEqual({ state: 'running', stateTone: 'ok', health: 'healthy', healthTone: 'ok' });
    expect(serviceHealth(s({ state: 'running', containerId: 'c' }))).toMatchObject({ state: 'running', health: 'no health check' });
    expect(serviceHealth(s({ state: 'unhealthy', containerId: 'c', restarts: 1, loopBreaker: false }))).toMatchObject({ state: 'running', health: 'unhealthy', healthTone: 'bad' });
    expect(serviceHealth(s({ state: 'crash-looping', exitCode: 1, restarts: 9, nextRetryAt: 0 }))).toMatchObject({ state: 'crash-looping', stateTone: 'bad' });
    expect(serviceHealth(s({ state: 'exited', exitCode: 0 }))).toMatchObject({ state: 'stopped', stateTone: 'ok' });
    expect(serviceHealth(s({ state: 'exited', exitCode: 2 }))).toMatchObject({ state: 'stopped', stateTone: 'bad' });
  });

  it('gives restarts and the last error where the status has them', () => {
    const looping = s({ state: 'crash-looping', exitCode: 137, restarts: 5, nextRetryAt: 0 });
    expect(serviceRestarts(looping)).toBe(5);
    expect(serviceLastError(looping)).toBe('exited with code 137');
    expect(serviceLastError(s({ state: 'error', reason: 'pull failed: no such image' }))).toBe('pull failed: no such image');
    expect(serviceRestarts(s({ state: 'healthy', containerId: 'c' }))).toBe(0);
    expect(serviceLastError(s({ state: 'healthy', containerId: 'c' }))).toBeUndefined();
    expect(serviceLastError(s({ state: 'exited', exitCode: 0 }))).toBeUndefined();
  });
});

describe('the overview cards', () => {
  it('lists every service with a confirmed restart link, and escapes what the stack reports', () => {
    const status: StackModuleStatus = {
      state: 'present',
      loop: 'paused: backup',
      converged: true,
      services: { web: s({ state: 'error', reason: '<b>bad</b>' }), db: s({ state: 'healthy', containerId: 'c' }) },
    };
    const card = servicesCard(status, [{ service: 'web', actor: 'mum', state: 'failed', startedAt: 0, finishedAt: 1, error: 'no container' }]).value;
    expect(card.indexOf('<h3>db</h3>')).toBeLessThan(card.indexOf('<h3>web</h3>'));
    expect(card).toContain('&lt;b&gt;bad&lt;/b&gt;');
    expect(card).toContain('href="/admin/services/db/restart"');
    expect(card).toContain('The restart failed: no container');
    expect(card).toContain('holding the apps still (backup)');
  });

  it('hides the restart link while a restart runs, and says when there is no stack at all', () => {
    const status: StackModuleStatus = { state: 'present', loop: 'running', converged: true, services: { db: s({ state: 'healthy', containerId: 'c' }) } };
    const card = servicesCard(status, [{ service: 'db', actor: 'mum', state: 'running', startedAt: 0 }]).value;
    expect(card).toContain('Restarting&hellip;');
    expect(card).not.toContain('/restart"');
    expect(servicesCard({ state: 'none', reason: 'this image carries no container stack' }, []).value).toContain('No apps are installed on this device: this image carries no container stack.');
  });

  it('says why the device is degraded', () => {
    const card = healthCard({ status: 'degraded', reasons: [{ source: 'stack', code: 'service-unhealthy', message: 'service web is <unhealthy>' }] }).value;
    expect(card).toContain('Something needs attention.');
    expect(card).toContain('service web is &lt;unhealthy&gt;');
  });

  it('shows the device and its setup history, whatever the sections hold', () => {
    const card = deviceCard(
      { model: 'Pi', uptimeSeconds: 3_700, temperature: { celsius: 81, zone: 'cpu' } },
      report({ provisioning: { state: 'failed', step: 'bring-stack-up', error: 'docker <down>', completed: ['read-preseed'] }, device: { mode: 'wizard', hostname: 'memu-1' }, agent: { rssBytes: 60_000_000 } }),
      fmt,
    ).value;
    expect(card).toContain('<dd>1 hour 1 minute</dd>');
    expect(card).toContain('<span class="bad">81 °C</span>');
    expect(card).toContain('with the setup wizard');
    expect(card).toContain('Step bring-stack-up failed: docker &lt;down&gt;');
    expect(card).toContain('60 MB');
    expect(deviceCard({}, report(), fmt).value).toContain('not reported by the hardware');
  });

  it('shows space used and free, and warns when the drive is nearly full', () => {
    const full = storageCard({ sizeBytes: 100e9, freeBytes: 5e9 }, { state: 'measured', at: 0, directories: [{ name: 'photos', label: 'Photos', bytes: 90e9 }], refreshing: false }, fmt).value;
    expect(full).toContain('5 GB free of 100 GB (95% used)');
    expect(full).toContain('nearly full');
    expect(full).toContain('<td>Photos</td><td class="size">90 GB</td>');
    expect(storageCard(undefined, { state: 'measuring', since: 0 }, fmt).value).toContain('Measuring&hellip;');
  });
});

import { describe, expect, it } from 'vitest';
import { provisioningHealthReasons } from '../../../../agent/provisioning/provisioning-health.ts';

describe('what provisioning tells /healthz is wrong', () => {
  it('a failed run, with the step and its error', () => {
    expect(provisioningHealthReasons({ state: 'failed', step: 'render-stack-config', error: 'template nginx/site.conf.tmpl references unknown value "x"', completed: [] })).toEqual([
      {
        source: 'provisioning',
        code: 'provisioning-failed',
        message: 'provisioning failed at step render-stack-config: template nginx/site.conf.tmpl references unknown value "x"',
      },
    ]);
  });

  it('nothing while it is pending, running or done', () => {
    expect(provisioningHealthReasons({ state: 'pending', completed: [] })).toEqual([]);
    expect(provisioningHealthReasons({ state: 'running', step: 'bring-stack-up', completed: ['read-preseed'] })).toEqual([]);
    expect(provisioningHealthReasons({ state: 'done', completed: ['read-preseed'], ranThisBoot: [] })).toEqual([]);
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnvFile } from '../../../../shared/compose/load.ts';
import {
  dataDirStackVariables,
  exampleDeviceStackVariables,
  STACK_ENV_TEMPLATE,
  STACK_ENV_VARIABLE_EXAMPLES,
} from '../../../../shared/contracts/stack-variables.ts';
import { REPO_ROOT } from '../../../helpers/memu-build.ts';

describe('the variables a device defines for its stack', () => {
  it("are exactly the names compose/'s stack env template defines", () => {
    const template = readFileSync(join(REPO_ROOT, 'compose', STACK_ENV_TEMPLATE), 'utf8');
    expect(Object.keys(parseEnvFile(template, {})).sort()).toEqual(Object.keys(STACK_ENV_VARIABLE_EXAMPLES).sort());
  });

  it('are only the data-directory ones for a stack without templates', () => {
    expect(exampleDeviceStackVariables(false)).toEqual({ MEMU_DATA_DIR: '/var/lib/memu', MEMU_CONFIG_DIR: '/var/lib/memu/config' });
    expect(exampleDeviceStackVariables(true)).toEqual(STACK_ENV_VARIABLE_EXAMPLES);
    expect(dataDirStackVariables('/data/')).toEqual({ MEMU_DATA_DIR: '/data/', MEMU_CONFIG_DIR: '/data/config' });
  });
});

import type { RegisterCommand } from '../main.ts';
import { registerBuild } from './build.ts';
import { registerVerify } from './verify.ts';
import { registerVm } from './vm.ts';
import { registerDevices } from './devices.ts';
import { registerFlash } from './flash.ts';
import { registerPreseed } from './preseed.ts';
import { registerStack } from './stack.ts';
import { registerKeygen } from './keygen.ts';

/** Every `memu` subcommand, in the order `memu --help` lists them. */
export const commands: RegisterCommand[] = [
  registerBuild,
  registerVerify,
  registerVm,
  registerDevices,
  registerFlash,
  registerPreseed,
  registerStack,
  registerKeygen,
];

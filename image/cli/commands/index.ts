import type { RegisterCommand } from '../main.ts';
import { registerKeygen } from './keygen.ts';

/** Every `memu` subcommand, in the order `memu --help` lists them. */
export const commands: RegisterCommand[] = [registerKeygen];

#!/usr/bin/env node
// The host CLI runs from TypeScript sources through tsx, so a checkout needs no build step.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../image/cli/main.ts');
process.exitCode = await main(process.argv);

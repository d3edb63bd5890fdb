#!/usr/bin/env node
// The host CLI runs from TypeScript sources through tsx, so a checkout needs no build step.
import { register } from 'tsx/esm/api';
register();
// `memu devices | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});
const { main } = await import('../image/cli/main.ts');
process.exitCode = await main(process.argv);

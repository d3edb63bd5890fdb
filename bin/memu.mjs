#!/usr/bin/env node
// `memu` runs from an esbuild bundle of the CLI while that is fresh, and otherwise from
// the TypeScript sources through tsx, rebuilding the bundle on the way (see
// image/cli/bundle.ts for the layout of .cache/cli/). MEMU_CLI_FROM_SOURCE=1 skips the
// bundle, for stack traces that point into the sources.
import { readFileSync, statSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const root = new URL('../', import.meta.url);

/** The bundle's entry when current.json names one built after every input last changed. */
function freshBundleEntry() {
  if (process.env.MEMU_CLI_FROM_SOURCE === '1') return undefined;
  try {
    const pointer = JSON.parse(readFileSync(new URL('.cache/cli/current.json', root), 'utf8'));
    for (const input of pointer.inputs) if (statSync(new URL(input, root)).mtimeMs > pointer.builtAt) return undefined;
    return new URL(`.cache/cli/${pointer.dir}/main.js`, root);
  } catch {
    return undefined; // no bundle yet, or an input is gone
  }
}

async function loadMain() {
  const entry = freshBundleEntry();
  if (entry) {
    const loaded = await import(entry.href).catch(() => undefined); // removed under us: fall through
    if (loaded) return loaded.main;
  }
  const { register } = await import('tsx/esm/api');
  register();
  if (process.env.MEMU_CLI_FROM_SOURCE !== '1') {
    // A checkout that cannot be written (or a bundle that fails to build) still runs, from sources.
    const rebuilt = await import('../image/cli/bundle.ts').then((m) => m.rebuildCliBundle()).catch(() => undefined);
    if (rebuilt) return (await import(pathToFileURL(rebuilt).href)).main;
  }
  return (await import('../image/cli/main.ts')).main;
}

// `memu devices | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});
const main = await loadMain();
process.exitCode = await main(process.argv);

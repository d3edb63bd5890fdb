import type { RegisterCommand } from '../command.ts';

/**
 * Every `memu` subcommand, in the order `memu --help` lists them, loaded on demand: a
 * factory station running `memu flash` should not pay for dockerode or esbuild at start-up.
 */
export const commandLoaders: Record<string, () => Promise<RegisterCommand>> = {
  build: async () => (await import('./build.ts')).registerBuild,
  verify: async () => (await import('./verify.ts')).registerVerify,
  vm: async () => (await import('./vm.ts')).registerVm,
  devices: async () => (await import('./devices.ts')).registerDevices,
  flash: async () => (await import('./flash.ts')).registerFlash,
  preseed: async () => (await import('./preseed.ts')).registerPreseed,
  stack: async () => (await import('./stack.ts')).registerStack,
  image: async () => (await import('./image.ts')).registerImage,
  keygen: async () => (await import('./keygen.ts')).registerKeygen,
  qa: async () => (await import('./qa.ts')).registerQa,
  release: async () => (await import('./release.ts')).registerRelease,
};

/** The commands to register for this command line: just the one named, or all (for help). */
export async function loadCommands(argv: string[]): Promise<RegisterCommand[]> {
  const named = commandNamed(argv);
  const names = named ? [named] : Object.keys(commandLoaders);
  return Promise.all(names.map((n) => commandLoaders[n]!()));
}

/** The subcommand an argv names, if any. */
export function commandNamed(argv: string[]): string | undefined {
  return argv.slice(2).find((a) => !a.startsWith('-') && a in commandLoaders);
}

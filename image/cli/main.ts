import { Command, CommanderError } from 'commander';
import { ExitCode, MemuError } from '../host/errors.ts';
import { createCliContext, type CliContext } from './context.ts';
import { loadCommands } from './commands/index.ts';

/**
 * The `memu` host CLI. Each subcommand lives in `commands/` and registers itself;
 * a command's action returns its exit code. A MemuError becomes its message, hint
 * and exit code; anything else is reported as an internal failure (exit 1).
 */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('memu')
    .description('Memu OS host tools: build, verify, boot, flash and preseed Memu images')
    .option('--json', 'log JSON lines on stderr (default when stderr is not a terminal)')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  let exitCode: number = ExitCode.ok;
  let ctx: CliContext | undefined;
  const getContext = (): CliContext => {
    ctx ??= createCliContext(program.opts<{ json?: boolean; logLevel?: string }>());
    return ctx;
  };
  for (const register of await loadCommands(argv)) {
    register(program, async (run) => {
      exitCode = await run(getContext());
    });
  }

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
    }
    if (err instanceof MemuError) {
      const c = getContext();
      c.log.error({ exitCode: err.exitCode, hint: err.hint }, err.message);
      if (!c.json) process.stderr.write(`error: ${err.message}${err.hint ? `\n  hint: ${err.hint}` : ''}\n`);
      return err.exitCode;
    }
    getContext().log.error({ err }, 'internal error');
    return ExitCode.failure;
  }
}

/** Signature of a command module: adds its subcommand and runs its action through `run`. */
export type RegisterCommand = (
  program: Command,
  run: (action: (ctx: CliContext) => Promise<number>) => Promise<void>,
) => void;

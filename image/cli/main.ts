import { Command, CommanderError } from 'commander';
import { ExitCode, MemuError } from '../host/errors.ts';
import { createCliContext, type CliContext } from './command.ts';
import { commandNamed, loadCommands } from './commands/index.ts';
import { printOutcome, reportFailure } from './output.ts';

/**
 * The `memu` host CLI. Each subcommand lives in `commands/` and registers itself; a
 * command's action returns its outcome, which output.ts prints. A MemuError becomes its
 * message, hint and exit code; anything else is reported as an internal failure (exit 1).
 */
export async function main(argv: string[]): Promise<number> {
  // Known before parsing, so even a usage error is reported the way --json asks.
  const json = argv.slice(2).includes('--json');
  const program = new Command('memu')
    .description('Memu OS host tools: build, verify, boot, flash and preseed Memu images')
    .option('--json', 'JSON lines: progress and one result object on stdout, logs on stderr')
    .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (text) => (json ? undefined : process.stderr.write(text)) })
    .exitOverride();
  program.commands.forEach((c) => c.exitOverride());

  let exitCode: number = ExitCode.ok;
  // Set from the parsed command; a usage error is reported under the command named in argv.
  let commandName: string | undefined = commandNamed(argv);
  let ctx: CliContext | undefined;
  const getContext = (): CliContext => {
    ctx ??= createCliContext({ ...program.opts<{ logLevel?: string }>(), json });
    return ctx;
  };
  for (const register of await loadCommands(argv)) {
    register(program, async (action) => {
      const outcome = await action(getContext());
      printOutcome(commandName ?? '', outcome, json);
      exitCode = outcome.exitCode;
    });
  }
  program.hook('preAction', (_program, actionCommand) => {
    commandName = commandPath(actionCommand);
  });

  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (err) {
    const c = getContext();
    const readableLogs = !json && Boolean(process.stderr.isTTY);
    if (err instanceof CommanderError) {
      // --help and --version exit through here with code 0; commander has printed them.
      if (err.exitCode === 0) return ExitCode.ok;
      // Without --json commander has already printed the message; with it, nothing has.
      if (json) return reportFailure(commandName, new MemuError(err.message.replace(/^error: /, ''), ExitCode.badInput, 'run with --help for usage'), { ...c, readableLogs });
      return ExitCode.badInput;
    }
    return reportFailure(commandName, err, { log: c.log, json, readableLogs });
  }
}

/** `stack lock` for the nested command, `flash` for a top-level one. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

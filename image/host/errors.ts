/** Exit codes shared by every `memu` command, so scripts and factory stations can branch on them. */
export const ExitCode = {
  ok: 0,
  /** Something went wrong that is not the caller's fault (a bug, a tool crashing). */
  failure: 1,
  /** Bad arguments or bad input files: fix the command line or the file. */
  badInput: 2,
  /** The host cannot do this: a missing tool, too little disk space, not root. */
  environment: 3,
  /** Signature, hash or read-back verification failed. */
  verifyFailed: 4,
  /** `memu flash` refused the target drive. */
  targetRefused: 5,
  /** Writing to the target failed. */
  writeError: 6,
  /** Stopped by SIGINT (Ctrl-C): 128 + the signal's number, as shells report it. */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * An error meant for the person at the terminal: what is wrong and how to fix it.
 * Anything else that escapes a command is reported as an internal failure.
 */
export class MemuError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = ExitCode.badInput,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'MemuError';
  }
}

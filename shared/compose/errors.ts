/**
 * A compose file (or the set of them) does not fit what the agent supports.
 * The message names the file, the service and the key; `hint` says how to fix it.
 */
export class ComposeError extends Error {
  /** The message without the hint. */
  readonly problem: string;

  constructor(
    message: string,
    readonly location: { file?: string; service?: string; key?: string } = {},
    readonly hint?: string,
  ) {
    super(hint ? `${message} (${hint})` : message);
    this.problem = message;
    this.name = 'ComposeError';
  }
}

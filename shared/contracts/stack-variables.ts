import { join } from 'node:path/posix';

/**
 * The `${VAR}` names a device defines for its stack's compose files, so the host can check
 * the files against the same set before an image is built. Each name comes with an
 * example value of the same shape (a path, a port, a time zone): off the device, compose
 * files are interpolated with these, so a value that must parse (a published port, an
 * absolute bind-mount source) is checked as the device will parse it.
 */

/** The stack env file the agent reads, relative to the data directory. */
export const STACK_ENV_FILE = 'config/stack.env';
/** Its template, relative to the stack directory; rendered when the stack has `templates/`. */
export const STACK_ENV_TEMPLATE = 'templates/env/stack.env.tmpl';
/** The stack directory's folder of config templates; without it the device renders nothing. */
export const STACK_TEMPLATES_DIR = 'templates';

/** Defined on every device, from the data directory, before any file is read. */
export function dataDirStackVariables(dataDir: string): { MEMU_DATA_DIR: string; MEMU_CONFIG_DIR: string } {
  return { MEMU_DATA_DIR: dataDir, MEMU_CONFIG_DIR: join(dataDir, 'config') };
}

const EXAMPLE_DATA_DIR = '/var/lib/memu';

/** Every name `config/stack.env` defines, with an example of each value. */
export const STACK_ENV_VARIABLE_EXAMPLES: Readonly<Record<string, string>> = {
  ...dataDirStackVariables(EXAMPLE_DATA_DIR),
  MEMU_HOSTNAME: 'memu-0000',
  MEMU_HTTP_PORT: '80',
  MEMU_PHOTOS_PORT: '2283',
  MEMU_AGENT_PORT: '8080',
  MEMU_TIMEZONE: 'Etc/UTC',
};

/**
 * The variables a device will define for a stack, with example values: the data-directory
 * ones always, and the stack env file's when the stack carries its template.
 */
export function exampleDeviceStackVariables(stackHasEnvTemplate: boolean): Record<string, string> {
  return stackHasEnvTemplate ? { ...STACK_ENV_VARIABLE_EXAMPLES } : dataDirStackVariables(EXAMPLE_DATA_DIR);
}

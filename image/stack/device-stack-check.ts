import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { ComposeError } from '../../shared/compose/errors.ts';
import { composeStackFromSources, parseEnvFile, readComposeDocument, type ComposeSource } from '../../shared/compose/load.ts';
import { DEVICE_OVERRIDES, STACK_BASE_FILE, STACK_INSTALL_DIR } from '../../shared/contracts/stack-files.ts';
import {
  exampleDeviceStackVariables,
  STACK_ENV_TEMPLATE,
  STACK_ENV_VARIABLE_EXAMPLES,
  STACK_TEMPLATES_DIR,
} from '../../shared/contracts/stack-variables.ts';
import { isNotFound } from '../../shared/errors.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * Checks a stack's compose files on the host with the loader the device runs
 * (shared/compose/load.ts), the way the device will run it: installed in
 * STACK_INSTALL_DIR, with the variables the device defines, once for every set of
 * overrides a device may apply. What the device would refuse at first boot is refused
 * here, before an image is locked or built.
 */

/** One `services.<name>.image` of the stack as the device loads it. */
export interface ComposeImage {
  service: string;
  reference: string;
}

export interface StackFiles {
  /** The directory installed as STACK_INSTALL_DIR on the device. */
  stackDir: string;
  /** The base compose file, always applied. */
  base: string;
  /** Override files, each applied after the base on some devices only, in the device's order. */
  overrides: string[];
}

const SUBSET_HINT = 'shared/compose/COMPOSE-SUBSET.md lists what the device supports';

/**
 * The compose files a device finds in a stack directory: `stack.yml`, then the overrides of
 * DEVICE_OVERRIDES that exist. Any other compose file there would never be loaded, so it
 * is refused rather than shipped.
 */
export async function findStackFiles(stackDir: string): Promise<StackFiles> {
  const names = await readdir(stackDir).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`stack directory ${stackDir} cannot be read: ${err.code ?? err.message}`, ExitCode.badInput, `pass a directory with ${STACK_BASE_FILE} and its image lock`);
  });
  const composeNames = names.filter((n) => /\.ya?ml$/.test(n));
  if (!composeNames.includes(STACK_BASE_FILE)) {
    throw new MemuError(`stack directory ${stackDir} has no ${STACK_BASE_FILE}`, ExitCode.badInput, `the base compose file must be named ${STACK_BASE_FILE}; overrides sit beside it`);
  }
  const overrideNames = Object.keys(DEVICE_OVERRIDES);
  const ignored = composeNames.filter((n) => n !== STACK_BASE_FILE && !overrideNames.includes(n));
  if (ignored.length > 0) {
    throw new MemuError(
      `stack directory ${stackDir} has ${ignored.join(', ')}, which the device never loads`,
      ExitCode.badInput,
      `the device loads ${STACK_BASE_FILE} and, on hardware with the matching device, ${overrideNames.join(', ')}; remove or rename the others`,
    );
  }
  return {
    stackDir: resolve(stackDir),
    base: resolve(stackDir, STACK_BASE_FILE),
    overrides: overrideNames.filter((n) => composeNames.includes(n)).map((n) => resolve(stackDir, n)),
  };
}

/** Files named on a command line: the first is the base, each further one an override. */
export function stackFilesFromList(files: string[]): StackFiles {
  const [base, ...overrides] = files.map((f) => resolve(f));
  if (!base) throw new MemuError('no compose file given', ExitCode.badInput, 'pass --compose FILE');
  return { stackDir: dirname(base), base, overrides };
}

/**
 * Loads the stack with the device's loader for the base alone and with every combination
 * of overrides, and returns every image a device may run. Throws a MemuError (exit 2)
 * naming the file, service and key the device would refuse.
 */
export async function checkStackAsDevice(files: StackFiles): Promise<ComposeImage[]> {
  const sources = new Map<string, ComposeSource>();
  for (const file of [files.base, ...files.overrides]) sources.set(file, { file, text: await readComposeText(file) });
  for (const source of sources.values()) refuseInterpolatedImages(source);
  const variables = await deviceVariables(files.stackDir);

  const images = new Map<string, ComposeImage>();
  for (const applied of overrideCombinations(files.overrides)) {
    const stack = await composeStackFromSources([files.base, ...applied].map((f) => sources.get(f)!), {
      variables,
      projectDir: STACK_INSTALL_DIR,
      readTextFile: (path) => readDeviceFile(files.stackDir, path),
    }).catch((err: unknown) => {
      if (!(err instanceof ComposeError)) throw err;
      const when = applied.length > 0 ? ` (${describeApplied(applied)})` : '';
      throw new MemuError(`${err.problem}${when}`, ExitCode.badInput, err.hint ?? SUBSET_HINT);
    });
    for (const service of Object.values(stack.services)) {
      images.set(`${service.name}\n${service.image}`, { service: service.name, reference: service.image });
    }
  }
  return [...images.values()];
}

async function readComposeText(file: string): Promise<string> {
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot read compose file ${file}: ${err.code ?? err.message}`, ExitCode.badInput, 'pass existing compose files');
  });
  if (!info.isFile()) throw new MemuError(`compose file ${file} is not a regular file`, ExitCode.badInput, 'pass existing compose files');
  return readFile(file, 'utf8');
}

/** The lock is keyed by the literal reference: one that depends on a variable cannot be pinned before the device defines it. */
function refuseInterpolatedImages(source: ComposeSource): void {
  let document: Record<string, unknown>;
  try {
    document = readComposeDocument(source);
  } catch (err) {
    if (err instanceof ComposeError) throw new MemuError(err.problem, ExitCode.badInput, err.hint ?? SUBSET_HINT);
    throw err;
  }
  const services = document.services;
  if (!services || typeof services !== 'object') return;
  for (const [name, service] of Object.entries(services as Record<string, { image?: unknown } | null>)) {
    const image = service?.image;
    if (typeof image === 'string' && image.includes('$')) {
      throw new MemuError(
        `${source.file}: service "${name}": image "${image}" uses variable interpolation`,
        ExitCode.badInput,
        'write the literal repo:tag in the compose file; the image lock pins it to digests anyway',
      );
    }
  }
}

/**
 * The device defines MEMU_DATA_DIR and MEMU_CONFIG_DIR always, and the stack env file's
 * variables when the stack has config templates (it renders them all, that file included).
 * The template must define exactly the contract's names: the host knows no others' shape,
 * and a name the contract lists but the template lacks would be undefined on the device.
 */
async function deviceVariables(stackDir: string): Promise<Record<string, string>> {
  const templatesDir = join(stackDir, STACK_TEMPLATES_DIR);
  const hasTemplates = await stat(templatesDir).then((s) => s.isDirectory(), (err: unknown) => (isNotFound(err) ? false : Promise.reject(err)));
  if (!hasTemplates) return exampleDeviceStackVariables(false);
  const templatePath = join(stackDir, STACK_ENV_TEMPLATE);
  const template = await readFile(templatePath, 'utf8').catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
    throw new MemuError(
      `${templatesDir} has no ${relative(STACK_TEMPLATES_DIR, STACK_ENV_TEMPLATE)}`,
      ExitCode.badInput,
      `the device renders every config template, the stack env file (config/stack.env) among them; add ${STACK_ENV_TEMPLATE}`,
    );
  });
  let names: string[];
  try {
    names = Object.keys(parseEnvFile(template, {}));
  } catch (err) {
    throw new MemuError(`${templatePath}: ${(err as Error).message}`, ExitCode.badInput, 'each line must be NAME=value (or a # comment)');
  }
  const known = Object.keys(STACK_ENV_VARIABLE_EXAMPLES);
  const unknown = names.filter((n) => !known.includes(n));
  const missing = known.filter((n) => !names.includes(n));
  if (unknown.length > 0 || missing.length > 0) {
    const parts = [unknown.length ? `defines ${unknown.join(', ')}, which the device contract does not list` : '', missing.length ? `lacks ${missing.join(', ')}` : ''].filter(Boolean);
    throw new MemuError(
      `${templatePath} ${parts.join(' and ')}`,
      ExitCode.badInput,
      'the template must define exactly the names in shared/contracts/stack-variables.ts (STACK_ENV_VARIABLE_EXAMPLES); change both together',
    );
  }
  return exampleDeviceStackVariables(true);
}

/**
 * An env file as the device will find it: one inside the installed stack is read from
 * the stack directory (absent stays absent); any other path is a file the device renders
 * or holds itself, which the host cannot see: it stands in as present and empty.
 */
async function readDeviceFile(stackDir: string, devicePath: string): Promise<string | undefined> {
  const inStack = relative(STACK_INSTALL_DIR, devicePath);
  if (inStack.startsWith('..') || inStack === '') return '';
  return readFile(join(stackDir, inStack), 'utf8').catch(() => undefined);
}

/** Every subset of the overrides, each in the given order, the empty one first. */
function overrideCombinations(overrides: string[]): string[][] {
  const combinations: string[][] = [];
  for (let mask = 0; mask < 1 << overrides.length; mask++) combinations.push(overrides.filter((_, i) => mask & (1 << i)));
  return combinations;
}

function describeApplied(applied: string[]): string {
  const names = applied.map((f) => basename(f));
  const devices = names.map((n) => DEVICE_OVERRIDES[n]).filter((d): d is string => d !== undefined);
  const onHardware = devices.length === names.length ? `, as on hardware that has ${devices.join(' and ')}` : '';
  return `with ${names.join(' and ')} applied${onHardware}`;
}

import { validateDefinition, type ImageDefinition, type ImageDefinitionInput } from '../definition.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { front } from './front.ts';
import { valkey } from './valkey.ts';

/** Every image `memu image build` can make, by name. */
const DEFINITIONS: Record<string, ImageDefinitionInput> = { front, valkey };

export function definitionNames(): string[] {
  return Object.keys(DEFINITIONS).sort();
}

/** The named definition, validated; an unknown name is bad input naming the known ones. */
export function loadDefinition(name: string): ImageDefinition {
  const data = DEFINITIONS[name];
  if (!data) throw new MemuError(`unknown image definition "${name}"`, ExitCode.badInput, `choose one of: ${definitionNames().join(', ')}`);
  return validateDefinition(data, name);
}

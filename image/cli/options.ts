import { ExitCode, MemuError } from '../host/errors.ts';
import { parseRegistryMirror, type RegistryMirrors } from '../oci/reference.ts';

/** Option values several commands share, parsed once. */

/** Collects a repeatable option's values. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** `--registry-mirror FROM=TO` (repeatable), shared by `build` and `stack lock`. */
export function parseMirrorOptions(specs: string[] = []): RegistryMirrors {
  const mirrors: RegistryMirrors = {};
  for (const spec of specs) {
    try {
      const [from, to] = parseRegistryMirror(spec);
      mirrors[from] = to;
    } catch (err) {
      throw new MemuError((err as Error).message, ExitCode.badInput, 'e.g. --registry-mirror docker.io=127.0.0.1:5000');
    }
  }
  return mirrors;
}

export const CACHE_DIR_HELP = 'cache for root filesystems, packages and image blobs (default: $MEMU_CACHE_DIR, else ~/.cache/memu)';

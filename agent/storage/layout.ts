import { readFile } from 'node:fs/promises';
import { diskLayoutSchema, type DiskLayout, type LayoutPartition } from '../../shared/contracts/disk-layout.ts';
import { describeInvalid } from '../../shared/errors.ts';

export async function loadDiskLayout(path: string): Promise<DiskLayout> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the disk layout ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const parsed = diskLayoutSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(describeInvalid(`disk layout ${path}`, parsed.error.issues));
  return parsed.data;
}

export function layoutPartition(layout: DiskLayout, role: LayoutPartition['role']): LayoutPartition {
  const p = layout.partitions.find((x) => x.role === role);
  if (!p) throw new Error(`the disk layout has no ${role} partition`);
  return p;
}

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atLeast, skipped, type QaCheckOutcome } from './qa-check.ts';

/**
 * The processor: how many cores Linux brought up and what they are. x86 names its model
 * in /proc/cpuinfo; arm64 gives only implementer and part numbers, named here for the
 * cores Memu's boards have (Arm's Technical Reference Manuals, MIDR part numbers).
 */
export interface CpuFacts {
  cores: number;
  model?: string;
}

const ARM_PARTS: Record<string, string> = { '0xd03': 'Cortex-A53', '0xd08': 'Cortex-A72', '0xd0b': 'Cortex-A76', '0xd0c': 'Neoverse-N1' };

export function parseCpuinfo(text: string): CpuFacts {
  const blocks = text.split(/\n\s*\n/).filter((b) => /^processor\s*:/m.test(b));
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(text)?.[1]?.trim();
  const modelName = field('model name');
  const part = field('CPU part');
  const model = modelName ?? (field('CPU implementer') === '0x41' && part ? (ARM_PARTS[part] ?? `Arm part ${part}`) : undefined);
  return { cores: blocks.length, model };
}

export function evaluateCpu(facts: CpuFacts, t: { minCpuCores: number; cpuModelPattern?: string }): QaCheckOutcome[] {
  const cores = atLeast('cpu-cores', facts.cores, t.minCpuCores, '', `Processor cores${facts.model ? ` (${facts.model})` : ''}`);
  if (!t.cpuModelPattern) return [cores, skipped('cpu-model', `The profile names no processor model; this one is ${facts.model ?? 'unnamed'}.`)];
  const matches = facts.model !== undefined && new RegExp(t.cpuModelPattern).test(facts.model);
  return [
    cores,
    {
      check: 'cpu-model',
      verdict: matches ? 'pass' : 'fail',
      measured: facts.model ?? null,
      unit: '',
      threshold: { expected: t.cpuModelPattern },
      reason: matches ? `The processor is a ${facts.model}.` : `The processor is ${facts.model ? `a ${facts.model}` : 'unnamed'}, not the expected ${t.cpuModelPattern}.`,
    },
  ];
}

export async function readCpu(procDir: string): Promise<CpuFacts> {
  return parseCpuinfo(await readFile(join(procDir, 'cpuinfo'), 'utf8'));
}

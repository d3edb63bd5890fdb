import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { verifyDetached } from '../../shared/contracts/signature.ts';
import { hashFile } from '../pipeline/file-hash.ts';
import { ARTIFACT_NAME, MANIFEST_NAME, SIGNATURE_NAME, imageManifestSchema, type ImageManifest } from './image-manifest.ts';
import { describeInvalid, ignoreNotFound } from '../../shared/errors.ts';

export type VerifyProblem = { file: string; problem: string };
export interface VerifyReport {
  ok: boolean;
  keyId?: string;
  manifest?: ImageManifest;
  checked: { name: string; sizeBytes: number; sha256: string }[];
  problems: VerifyProblem[];
}

/**
 * Checks a build output directory: the manifest's signature against a trusted key, then
 * the size and sha256 of every artifact the manifest lists. Reports every problem found.
 * A set is complete exactly when manifest and signature are both there (see
 * image/pipeline/artifacts.ts); without either, the directory holds an incomplete set.
 */
export async function verifyImageDirectory(dir: string, trustedKey: KeyObject, onFile?: (name: string) => void): Promise<VerifyReport> {
  const report: VerifyReport = { ok: false, checked: [], problems: [] };
  const manifestBytes = await readFile(join(dir, MANIFEST_NAME)).catch(ignoreNotFound);
  const signatureText = await readFile(join(dir, SIGNATURE_NAME), 'utf8').catch(ignoreNotFound);
  if (manifestBytes === undefined || signatureText === undefined) {
    report.problems.push(await incompleteSet(dir, manifestBytes === undefined ? MANIFEST_NAME : SIGNATURE_NAME));
    return report;
  }
  const sig = verifyDetached(manifestBytes, signatureText, trustedKey);
  if (!sig.ok) {
    report.problems.push({ file: SIGNATURE_NAME, problem: sig.reason });
    return report;
  }
  report.keyId = sig.keyId;
  const parsed = imageManifestSchema.safeParse(JSON.parse(manifestBytes.toString()));
  if (!parsed.success) {
    report.problems.push({ file: MANIFEST_NAME, problem: `signed, but ${describeInvalid('the image manifest', parsed.error.issues)}` });
    return report;
  }
  report.manifest = parsed.data;
  for (const a of parsed.data.artifacts) {
    onFile?.(a.name);
    try {
      const actual = await hashFile(join(dir, a.name));
      report.checked.push({ name: a.name, ...actual });
      if (actual.sizeBytes !== a.sizeBytes) report.problems.push({ file: a.name, problem: `size ${actual.sizeBytes} bytes, manifest says ${a.sizeBytes}` });
      else if (actual.sha256 !== a.sha256) report.problems.push({ file: a.name, problem: `sha256 ${actual.sha256}, manifest says ${a.sha256}` });
    } catch (err) {
      report.problems.push({ file: a.name, problem: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
    }
  }
  report.ok = report.problems.length === 0;
  return report;
}

async function incompleteSet(dir: string, missing: string): Promise<VerifyProblem> {
  const names = await readdir(dir).catch(ignoreNotFound);
  if (names === undefined) return { file: dir, problem: 'no such directory' };
  const leftovers = names.filter((n) => ARTIFACT_NAME.test(n) || n === MANIFEST_NAME).sort();
  const what = leftovers.length ? `it holds ${leftovers.join(', ')} without ${missing}` : `it holds no artifacts`;
  return {
    file: missing,
    problem: `missing, so ${dir} holds no complete image set (${what}): a build was interrupted or is still writing it; run \`memu build\` again to replace it`,
  };
}

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { writeFileDurably } from '../../../shared/files/durable-files.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { DEFAULT_LABEL, parseLabelSize, renderLabelsPdf } from '../../factory-qa/labels.ts';
import { buildQaRecords, writeQaRecords, type QaRecord } from '../../factory-qa/qa-records.ts';
import { collectReports, loadTrustedQaKeys, readReportsUnverified } from '../../factory-qa/qa-report-files.ts';
import { suggestThresholds, type ThresholdSuggestion } from '../../factory-qa/threshold-suggestions.ts';
import type { RegisterCommand } from '../command.ts';

export const registerQa: RegisterCommand = (program, run) => {
  const qa = program.command('qa').description('factory QA on the station: thresholds from measured units, verified records per serial, device labels');

  qa.command('thresholds')
    .description('suggest QA thresholds from a set of QA reports of good units: a low percentile (p5) less a margin for minimums, p95 plus it for maximums')
    .argument('<reports...>', 'QA report files (memu-qa-report.json)')
    .option('--margin <percent>', 'safety margin in percent', '10')
    .action((files: string[], opts: { margin: string }) =>
      run(async () => {
        const margin = Number(opts.margin);
        if (!Number.isFinite(margin) || margin < 0 || margin >= 100) throw new MemuError(`--margin ${opts.margin} is not a percentage from 0 to 99`, ExitCode.badInput, 'e.g. --margin 10');
        const reports = await readReportsUnverified(files.map((f) => resolve(f)));
        const suggestions = suggestThresholds(reports, margin);
        return { exitCode: ExitCode.ok, result: { reports: reports.length, marginPercent: margin, suggestions }, summary: thresholdTable(reports.length, margin, suggestions) };
      }),
    );

  qa.command('records')
    .description('verify every QA report below a directory (signature, duplicate serials and claim codes) and write the per-serial record as qa-records.json and qa-records.csv')
    .argument('<dir>', 'the directory the reports were collected into (each report with its .sig beside it)')
    .requiredOption('--keys <dir>', "the station's trusted public keys (.pub, one per unit named after its claim code)")
    .option('--out <dir>', 'where to write the records (default: <dir>)')
    .action((dir: string, opts: { keys: string; out?: string }) =>
      run(async ({ log }) => {
        const trusted = await loadTrustedQaKeys(resolve(opts.keys));
        const records = buildQaRecords(await collectReports(resolve(dir), trusted));
        if (records.length === 0) throw new MemuError(`no QA reports (*.json) below ${dir}`, ExitCode.badInput, 'pass the directory the station collected the reports into');
        const written = await writeQaRecords(resolve(opts.out ?? dir), records);
        const rejected = records.filter((r) => r.verdict === 'rejected');
        for (const r of rejected) log.warn({ serialNumber: r.serialNumber, reportFile: r.reportFile }, `rejected: ${r.problem}`);
        const counts = { passed: records.filter((r) => r.verdict === 'pass').length, failed: records.filter((r) => r.verdict === 'fail').length, rejected: rejected.length };
        return {
          exitCode: rejected.length > 0 ? ExitCode.verifyFailed : ExitCode.ok,
          result: { ...counts, records, ...written },
          summary: recordsTable(records, counts, written.csv),
        };
      }),
    );

  qa.command('labels')
    .description('render a PDF of device labels (serial, claim code, QR code of the setup address with the code), one per page, for every unit that passed')
    .argument('<records>', 'qa-records.json written by `memu qa records`')
    .requiredOption('--out <file>', 'the PDF to write')
    .option('--size <WxH>', 'label size in millimetres', `${DEFAULT_LABEL.widthMm}x${DEFAULT_LABEL.heightMm}`)
    .option('--setup-url <url>', "the setup wizard's claim page; the code is added as ?code=", DEFAULT_LABEL.setupUrl)
    .action((recordsFile: string, opts: { out: string; size: string; setupUrl: string }) =>
      run(async () => {
        const size = parseLabelSize(opts.size);
        if (!URL.canParse(opts.setupUrl)) throw new MemuError(`--setup-url ${opts.setupUrl} is not a URL`, ExitCode.badInput, `e.g. --setup-url ${DEFAULT_LABEL.setupUrl}`);
        const records = await readRecords(resolve(recordsFile));
        const passed = records.filter((r) => r.verdict === 'pass' && r.claimCode !== '');
        const pdf = await renderLabelsPdf(passed, { ...size, setupUrl: opts.setupUrl });
        const out = resolve(opts.out);
        await writeFileDurably(out, pdf, 0o644);
        const skipped = records.length - passed.length;
        return {
          exitCode: ExitCode.ok,
          result: { out, labels: passed.length, skipped, size },
          summary: `wrote ${passed.length} label${passed.length === 1 ? '' : 's'} (${size.widthMm} × ${size.heightMm} mm) to ${out}${skipped ? `; ${skipped === 1 ? '1 unit without a pass gets' : `${skipped} units without a pass get`} none` : ''}`,
        };
      }),
    );
};

const recordsFileSchema = z.object({
  records: z.array(z.object({ serialNumber: z.string(), claimCode: z.string(), verdict: z.enum(['pass', 'fail', 'rejected']) }).passthrough()),
});

async function readRecords(path: string): Promise<Pick<QaRecord, 'serialNumber' | 'claimCode' | 'verdict'>[]> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot read ${path}: ${err.code ?? err.message}`, ExitCode.badInput, 'pass the qa-records.json that `memu qa records` wrote');
  });
  let parsed;
  try {
    parsed = recordsFileSchema.safeParse(JSON.parse(text));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) throw new MemuError(`${path} is not a qa-records.json file`, ExitCode.badInput, 'pass the qa-records.json that `memu qa records` wrote');
  return parsed.data.records;
}

function thresholdTable(n: number, margin: number, suggestions: readonly ThresholdSuggestion[]): string {
  const rows = suggestions.map((s) => [
    s.check,
    s.bound,
    String(s.n),
    String(s.min),
    String(s.p5),
    String(s.median),
    String(s.p95),
    String(s.max),
    s.current === undefined ? '' : String(s.current),
    `${s.suggested}${s.unit ? ` ${s.unit}` : ''}`,
  ]);
  return `${table(['check', 'bound', 'n', 'min', 'p5', 'median', 'p95', 'max', 'current', 'suggested'], rows)}\nfrom ${n} report${n === 1 ? '' : 's'}, margin ${margin} %`;
}

function recordsTable(records: readonly QaRecord[], counts: { passed: number; failed: number; rejected: number }, csv: string): string {
  const rows = records.map((r) => [r.serialNumber || '?', r.claimCode, r.verdict.toUpperCase(), r.verdict === 'rejected' ? r.problem : r.failingChecks.join(', ')]);
  return `${table(['serial', 'claim code', 'verdict', 'failing checks / problem'], rows)}\n${counts.passed} passed, ${counts.failed} failed, ${counts.rejected} rejected; records in ${csv}`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

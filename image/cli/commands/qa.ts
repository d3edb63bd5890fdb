import { abortOnSigint } from '../abort-on-sigint.ts';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { writeFileDurably } from '../../../shared/files/durable-files.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { DEFAULT_LABEL, parseLabelSize, renderLabelsPdf } from '../../factory-qa/labels.ts';
import { buildQaRecords, writeQaRecords, type QaRecord } from '../../factory-qa/qa-records.ts';
import { collectReports, loadTrustedQaKeys, readReportsUnverified } from '../../factory-qa/qa-report-files.ts';
import { suggestThresholds, type ThresholdSuggestion } from '../../factory-qa/threshold-suggestions.ts';
import { collectFromDrives, type CollectedSlot } from '../../factory-qa/station-collect.ts';
import { flashStation } from '../../factory-qa/station.ts';
import type { SlotState } from '../../factory-qa/station-slots.ts';
import { benchSummary, createJsonLinesView, createLogView, createTerminalView, renderStationTable, slotLine } from '../../factory-qa/station-view.ts';
import { createWatchJsonLinesView, createWatchLogView, createWatchTerminalView, renderWatchTable, watchSummary } from '../../factory-qa/station-watch-view.ts';
import { hasFinalReport, parseListen, watchStation, type WatchSlot } from '../../factory-qa/station-watch.ts';
import { loadPreseedSettings } from '../../preseed/write.ts';
import type { RegisterCommand } from '../command.ts';

export const registerQa: RegisterCommand = (program, run) => {
  const qa = program.command('qa').description('factory QA on the station: flashing the bench, verified records per serial, device labels, thresholds from measured units');

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

  const station = qa.command('station').description('the bench: flash many drives at once for QA, each with its own claim code and key, and read their reports back');

  station
    .command('flash')
    .description('flash the image to every target at once; each drive gets its own claim code, QA key and a preseed with factoryQa, and is recorded in the station file')
    .argument('<image>', 'the image: memu-*.img, or .img.zst / .img.xz / .img.gz')
    .argument('<targets...>', 'whole drives (see `memu devices`) or image files, one per bench slot')
    .requiredOption('--keys <dir>', "where the units' public keys go (<claim code>.pub): the directory `memu qa records --keys` and `collect` trust")
    .option('--bench <dir>', 'where to keep the station file qa-station.json (default: the keys directory)')
    .option('--bmap <file>', 'block map of the image (default: the one beside it)')
    .option('--preseed <settings.json>', 'first-boot settings every unit of the batch gets; the claim code and factoryQa are added per unit')
    .option('--station-url <url>', 'http://HOST:PORT where the units tell `memu qa station watch` how QA goes and send their signed report (the report is left on the FAT as well)')
    .option('-y, --yes', 'write drives without asking (a bench has no one to ask per drive; needed for drives)')
    .option('--unmount', "unmount the drives' mounted partitions first instead of refusing")
    .option('--no-verify', 'skip reading each drive back (not recommended)')
    .addHelpText(
      'after',
      `
Every target goes through the rules of \`memu flash\` before any is written (the station's
own disk, mounted or busy drives, drives smaller than the image, the image itself); a
target given twice under any name is refused too. A slot that fails while flashing
(a drive pulled, a write or read-back error) is marked failed with the reason and the
other slots go on.

Exit codes: 0 every slot ready; otherwise the first failed slot's (4 read-back or
preseed verification, 5 refused, 6 write error); 2 bad input, before anything is written.`,
    )
    .action((image: string, targets: string[], opts: { keys: string; bench?: string; bmap?: string; preseed?: string; stationUrl?: string; yes?: boolean; unmount?: boolean; verify: boolean }) =>
      run(async (ctx) => {
        const baseSettings = opts.preseed ? await loadPreseedSettings({ settingsFile: opts.preseed }) : undefined;
        const slots: SlotState[] = [];
        const terminal = !ctx.json && Boolean(process.stderr.isTTY);
        const view = ctx.json
          ? createJsonLinesView((line) => process.stdout.write(line))
          : terminal
            ? createTerminalView(() => slots, { write: (text) => process.stderr.write(text), columns: process.stderr.columns })
            : createLogView(ctx.log);
        const { signal, release } = abortOnSigint(ctx.log);
        const done = await flashStation({
          image,
          targets,
          keysDir: opts.keys,
          ...(opts.bench ? { benchDir: opts.bench } : {}),
          ...(opts.bmap ? { bmap: opts.bmap } : {}),
          ...(baseSettings ? { baseSettings } : {}),
          ...(opts.stationUrl !== undefined ? { stationUrl: opts.stationUrl } : {}),
          yes: Boolean(opts.yes),
          unmount: Boolean(opts.unmount),
          verify: opts.verify,
          log: ctx.log,
          // Under the redrawn table only warnings get through, or every log line would tear it.
          ...(terminal ? { flashLog: ctx.log.child({}, { level: 'warn' }) } : {}),
          view,
          slots,
          signal,
        }).finally(release);
        view.close();
        const failed = done.slots.filter((s) => s.stage === 'failed');
        return {
          exitCode: done.exitCode,
          result: {
            image: done.image,
            stationFile: done.stationFile,
            ready: done.slots.length - failed.length,
            failed: failed.length,
            slots: done.slots.map((s) => {
              const { type: _type, ...line } = slotLine(s);
              return line;
            }),
          },
          summary: [
            ...renderStationTable(done.slots),
            ...failed.map((s) => `slot ${s.slot} (${s.target}) failed: ${s.reason}`),
            `${benchSummary(done.slots)}; image ${done.image.version} sha256 ${done.image.sha256.slice(0, 16)}…; station record in ${done.stationFile}`,
          ].join('\n'),
        };
      }),
    );

  station
    .command('collect')
    .description("read each QA'd drive's signed report from its first FAT partition (without mounting), verify it and update the records (qa-records.json and .csv)")
    .argument('<targets...>', 'the drives (or image files) back from the QA bench')
    .requiredOption('--keys <dir>', "the station's keys directory (the one `station flash --keys` filled)")
    .requiredOption('--out <dir>', 'where the reports are kept (<dir>/reports/) and the records written; earlier batches there are recorded again with this one')
    .addHelpText('after', '\nExit codes: 0 every drive had a report that verified; 4 any report rejected (bad signature, unknown key, duplicate serial or claim code); 2 a drive without a report or unreadable.')
    .action((targets: string[], opts: { keys: string; out: string }) =>
      run(async ({ log }) => {
        const done = await collectFromDrives({ targets, keysDir: opts.keys, outDir: opts.out, log });
        const counts = {
          passed: done.slots.filter((s) => s.outcome === 'collected' && s.verdict === 'pass').length,
          failed: done.slots.filter((s) => s.outcome === 'collected' && s.verdict === 'fail').length,
          rejected: done.slots.filter((s) => s.outcome === 'collected' && s.verdict === 'rejected').length,
          withoutReport: done.slots.filter((s) => s.outcome !== 'collected').length,
        };
        return {
          exitCode: done.exitCode,
          result: { ...counts, slots: done.slots, records: done.records.length, json: done.json, csv: done.csv },
          summary: `${collectTable(done.slots)}\n${counts.passed} passed, ${counts.failed} failed, ${counts.rejected} rejected, ${counts.withoutReport} without a report; ${done.records.length} record${done.records.length === 1 ? '' : 's'} in ${done.csv}`,
        };
      }),
    );

  station
    .command('watch')
    .description("the bench while the units test themselves: serve the station's address for their progress and signed reports, show each slot live (booting, testing, passed, FAILED), verify and record every report as collect does")
    .requiredOption('--keys <dir>', "the station's keys directory (the one `station flash --keys` filled)")
    .requiredOption('--out <dir>', 'where the reports are kept (<dir>/reports/) and the records written (qa-records.json and .csv), as collect does')
    .requiredOption('--listen <host:port>', 'where to listen: the address the units were given with `station flash --station-url`, e.g. 0.0.0.0:8470')
    .option('--bench <dir>', 'where the station file qa-station.json is (default: the keys directory)')
    .option('--until-done', 'end once every unit of the latest batch has sent its report')
    .option('--timeout <minutes>', 'end after this many minutes in any case (units without a report are named)')
    .addHelpText(
      'after',
      `
The units of the station file's latest batch are the slots; a unit of an earlier batch that
reports gets a row of its own. Only a report whose signature verifies against the key made
for that unit counts: anything else a unit says is shown, never recorded. The table is also
served as a page at / (read-only), and as JSON at /qa/units.

Exit codes: 0 every unit of the batch reported and every report verified; 4 any report
rejected (bad signature, unknown key, duplicate serial or claim code); 2 a unit without a
report when the watch ended (timeout or Ctrl-C), or bad input; 3 the address cannot be used.`,
    )
    .action((opts: { keys: string; out: string; listen: string; bench?: string; untilDone?: boolean; timeout?: string }) =>
      run(async (ctx) => {
        const { host, port } = parseListen(opts.listen);
        const minutes = opts.timeout === undefined ? undefined : Number(opts.timeout);
        if (minutes !== undefined && !(Number.isFinite(minutes) && minutes > 0)) throw new MemuError(`--timeout ${opts.timeout} is not a number of minutes`, ExitCode.badInput, 'e.g. --timeout 30');
        const slots: WatchSlot[] = [];
        const terminal = !ctx.json && Boolean(process.stderr.isTTY);
        const view = ctx.json
          ? createWatchJsonLinesView((line) => process.stdout.write(line))
          : terminal
            ? createWatchTerminalView(() => slots, { write: (text) => process.stderr.write(text), columns: process.stderr.columns })
            : createWatchLogView(ctx.log);
        const { signal, release } = abortOnSigint(ctx.log);
        const done = await watchStation({
          keysDir: opts.keys,
          outDir: opts.out,
          ...(opts.bench ? { benchDir: opts.bench } : {}),
          host,
          port,
          untilDone: Boolean(opts.untilDone),
          ...(minutes !== undefined ? { timeoutMs: minutes * 60_000 } : {}),
          log: terminal ? ctx.log.child({}, { level: 'warn' }) : ctx.log,
          view,
          slots,
          signal,
        }).finally(release);
        const waiting = done.slots.filter((s) => !s.earlierBatch && s.claimCode && !hasFinalReport(s));
        return {
          exitCode: done.exitCode,
          result: {
            url: done.url,
            ended: done.ended,
            passed: done.slots.filter((s) => s.stage === 'passed').length,
            failed: done.slots.filter((s) => s.stage === 'failed').length,
            rejected: done.slots.filter((s) => s.stage === 'rejected').length,
            withoutReport: waiting.length,
            slots: done.slots,
            ...(done.records ?? {}),
          },
          summary: [
            ...renderWatchTable(done.slots),
            ...waiting.map((s) => `slot ${s.slot} (${s.target}, ${s.claimCode}) has no report: ${s.stage === 'error' ? `QA could not run: ${s.reason}` : s.stage === 'testing' ? `still testing (${s.step ?? 'no step named'})` : 'no contact: check that the unit booted and reaches the station'}`),
            `${watchSummary(done.slots)}${done.ended === 'timeout' ? ' when the time ran out' : done.ended === 'stopped' ? ' when stopped' : ''}${done.records ? `; records in ${done.records.csv}` : ''}`,
          ].join('\n'),
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

function collectTable(slots: readonly CollectedSlot[]): string {
  const rows = slots.map((s) =>
    s.outcome === 'collected'
      ? [String(s.slot), s.target, s.verdict.toUpperCase(), s.serialNumber || '?', s.claimCode, s.verdict === 'rejected' ? s.problem : s.failingChecks.join(', ')]
      : [String(s.slot), s.target, s.outcome === 'no-report' ? 'NO REPORT' : 'UNREADABLE', '', '', s.problem],
  );
  return table(['slot', 'target', 'verdict', 'serial', 'claim code', 'failing checks / problem'], rows);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

import { dirname } from 'node:path';
import { mkdir, rm } from 'node:fs/promises';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { runCommandOutcome } from '../../shared/process/run-command.ts';
import type { FactoryQaState } from './factory-qa-state.ts';

/**
 * The bench operator's view: PASS, or FAIL and why, on the unit's HDMI console, where the
 * login prompt is. getty (agetty) prints /etc/issue and every `*.issue` in /etc/issue.d
 * above its prompt; the image links /etc/issue.d/memu-factory-qa.issue to the file below
 * (overlays/common), so the message lives in /run: nothing is written to the root slot,
 * and it is gone at the next boot. A missing target is skipped by agetty.
 */
export const FACTORY_QA_ISSUE_PATH = '/run/memu/factory-qa.issue';

export interface QaConsole {
  /** Shows the text on the console, or removes the message (undefined). */
  show(text: string | undefined): Promise<void>;
}

/** Writes the issue file and asks every agetty to print its prompt again (`agetty --reload`), so the text shows without a key press. */
export function issueFileConsole(path = FACTORY_QA_ISSUE_PATH, reload: () => Promise<unknown> = () => runCommandOutcome('agetty', ['--reload'])): QaConsole {
  return {
    async show(text) {
      if (text === undefined) await rm(path, { force: true });
      else {
        await mkdir(dirname(path), { recursive: true });
        await writeFileAtomic(path, escapeForIssue(text));
      }
      await reload();
    },
  };
}

/** agetty reads backslash sequences (\n is the hostname, \l the tty) in issue files: a reason's own backslashes are doubled. */
export function escapeForIssue(text: string): string {
  return text.replace(/\\/g, '\\\\');
}

/**
 * 5×5 letters drawn with '#': each cell is two characters wide and two lines tall, so on
 * the console's 8×16 font a letter is 80×160 pixels (a sixth of a 1080p screen's height)
 * and "PASS" fits in 48 columns, inside even an 80-column console.
 */
const LETTERS: Record<string, string[]> = {
  P: ['####.', '#...#', '####.', '#....', '#....'],
  A: ['.###.', '#...#', '#####', '#...#', '#...#'],
  S: ['.####', '#....', '.###.', '....#', '####.'],
  F: ['#####', '#....', '####.', '#....', '#....'],
  I: ['#####', '..#..', '..#..', '..#..', '#####'],
  L: ['#....', '#....', '#....', '#....', '#####'],
};

export function banner(word: 'PASS' | 'FAIL'): string[] {
  const lines: string[] = [];
  for (let row = 0; row < 5; row++) {
    const line = [...word].map((letter) => [...LETTERS[letter]![row]!].map((cell) => (cell === '#' ? '##' : '  ')).join('')).join('  ');
    lines.push(`  ${line}`.trimEnd(), `  ${line}`.trimEnd());
  }
  return lines;
}

/** The console text for a state; undefined when this boot is not a QA boot. */
export function consoleText(state: FactoryQaState): string | undefined {
  switch (state.status) {
    case 'waiting':
    case 'not-requested':
      return undefined;
    case 'running':
      return ['', `  Factory QA running: ${state.step ?? 'finishing'} (${state.done.length} checks done). Do not switch the unit off.`, '', ''].join('\n');
    case 'error':
      return ['', ...banner('FAIL'), '', '  Factory QA could not run:', `  ${state.reason}`, '', '  Nothing was tested. Flash the drive again with the station.', '', ''].join('\n');
    case 'done': {
      const { report } = state;
      const who = `S/N ${report.serialNumber}, ${report.profile}, image ${report.imageVersion}`;
      if (report.verdict === 'pass') {
        return ['', ...banner('PASS'), '', `  Factory QA passed: ${who}.`, '  The unit is made factory-fresh and switches itself off.', '', ''].join('\n');
      }
      const failing = report.checks.filter((c) => c.verdict === 'fail').map((c) => `  ${c.check}: ${c.reason}`);
      return [
        '',
        ...banner('FAIL'),
        '',
        `  Factory QA failed: ${who}. Failing checks:`,
        ...failing,
        ...(state.fatProblem ? ['', `  The report could not be left on the FAT partition: ${state.fatProblem}`] : []),
        '',
        '  The unit stays on. Fix the cause and switch it off and on again to test again.',
        '',
        '',
      ].join('\n');
    }
  }
}

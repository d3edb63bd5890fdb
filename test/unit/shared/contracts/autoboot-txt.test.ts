import { describe, expect, it } from 'vitest';
import {
  AutobootTxtError,
  appliedSetting,
  bootPartitionOf,
  parseAutobootTxt,
  renderAutobootTxt,
  setBootPartition,
  setSectionSetting,
} from '../../../../shared/contracts/autoboot-txt.ts';

const rewrite = (text: string, section: string, partition: number) => renderAutobootTxt(setBootPartition(parseAutobootTxt(text), section, partition));

describe('autoboot.txt', () => {
  it('renders what it parsed byte for byte: comments, blank lines, unknown keys and sections, CRLF, no final line break', () => {
    for (const text of [
      '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n',
      '# Memu\n\n[all]\n  boot_partition = 2\n[pi5]\nsomething_else=x y\n[none]\n',
      '[all]\r\nboot_partition=2\r\n[tryboot]\r\nboot_partition=3',
      '',
    ]) {
      expect(renderAutobootTxt(parseAutobootTxt(text))).toBe(text);
    }
  });

  it("reads a section's boot_partition: lines before any header are [all], the last one wins", () => {
    const doc = parseAutobootTxt('boot_partition=4\n[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n');
    expect(bootPartitionOf(doc, 'all')).toBe(2);
    expect(bootPartitionOf(doc, 'tryboot')).toBe(3);
    expect(bootPartitionOf(doc, 'none')).toBeUndefined();
  });

  it('applies settings by filter: [all] always, [tryboot] only with the flag, [none] never, later lines override', () => {
    const doc = parseAutobootTxt('[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n[none]\nboot_partition=9\n');
    expect(appliedSetting(doc, 'boot_partition', { tryboot: false })).toEqual({ value: '2', line: 2 });
    expect(appliedSetting(doc, 'boot_partition', { tryboot: true })).toEqual({ value: '3', line: 4 });
    const overridden = parseAutobootTxt('[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n');
    expect(appliedSetting(overridden, 'boot_partition', { tryboot: true })?.value).toBe('2');
  });

  it('refuses to say what a filter autoboot.txt does not document applies, but only for the key it sets', () => {
    const doc = parseAutobootTxt('[all]\nboot_partition=2\n[pi5]\nboot_partition=3\nother=1\n');
    expect(() => appliedSetting(doc, 'boot_partition', { tryboot: false })).toThrow(/line 4: boot_partition is set under \[pi5\]/);
    expect(appliedSetting(doc, 'tryboot_a_b', { tryboot: true })).toBeUndefined();
  });

  it('sets boot_partition in place, keeping every other line as written', () => {
    expect(rewrite('# keep\n[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n[pi5]\nfoo=bar\n', 'all', 3)).toBe(
      '# keep\n[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=3\n[pi5]\nfoo=bar\n',
    );
  });

  it("adds a missing setting to the section's last block, before the comments that lead into the next", () => {
    expect(rewrite('[all]\nboot_partition=2\n[tryboot]\ntryboot_a_b=1\n\n# the end\n', 'tryboot', 3)).toBe(
      '[all]\nboot_partition=2\n[tryboot]\ntryboot_a_b=1\nboot_partition=3\n\n# the end\n',
    );
    expect(rewrite('[all]\n\n[tryboot]\nboot_partition=3\n', 'all', 2)).toBe('[all]\nboot_partition=2\n\n[tryboot]\nboot_partition=3\n');
  });

  it('adds a missing section: [all] at the top, where no filter is active, any other at the end; keeps CRLF', () => {
    expect(rewrite('[tryboot]\r\nboot_partition=3\r\n', 'all', 2)).toBe('boot_partition=2\r\n[tryboot]\r\nboot_partition=3\r\n');
    expect(rewrite('[all]\r\nboot_partition=2', 'tryboot', 3)).toBe('[all]\r\nboot_partition=2\r\n[tryboot]\r\nboot_partition=3');
    expect(rewrite('', 'tryboot', 3)).toBe('[tryboot]\nboot_partition=3\n');
    expect(renderAutobootTxt(setSectionSetting(parseAutobootTxt('boot_partition=2\n'), 'all', 'tryboot_a_b', '1'))).toBe('boot_partition=2\ntryboot_a_b=1\n');
  });

  it('names the line of malformed input', () => {
    expect(() => parseAutobootTxt('[all]\nboot_partition 3\n')).toThrow(/^autoboot\.txt line 2: "boot_partition 3" is neither a \[section\]/);
    expect(() => parseAutobootTxt('# x\n[tryboot\n')).toThrow(/line 2: "\[tryboot"/);
    expect(() => parseAutobootTxt('[all]\r\n=3\r\n')).toThrow(AutobootTxtError);
    expect(() => bootPartitionOf(parseAutobootTxt('[all]\n\nboot_partition=two\n'), 'all')).toThrow(/line 3: boot_partition=two is not a partition number/);
  });
});

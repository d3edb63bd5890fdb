import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LABEL, parseLabelSize, qrMatrix, renderLabelsPdf, setupAddressFor } from '../../../../image/factory-qa/labels.ts';

/** Pages and their decompressed content streams, read from the PDF's objects (pdfkit writes one Flate stream per page). */
function readPdf(pdf: Buffer): { header: string; pages: number; mediaBox: number[]; contents: string[] } {
  const text = pdf.toString('latin1');
  const pages = text.match(/\/Type \/Page\n/g)?.length ?? 0;
  const mediaBox = (/\/MediaBox \[([^\]]+)\]/.exec(text)?.[1] ?? '').trim().split(/\s+/).map(Number);
  const contents: string[] = [];
  const stream = /\/Filter \/FlateDecode\n>>\nstream\n/g;
  for (let m = stream.exec(text); m; m = stream.exec(text)) {
    const start = m.index + m[0].length;
    const end = text.indexOf('\nendstream', start);
    contents.push(inflateSync(pdf.subarray(start, end)).toString('latin1'));
  }
  return { header: text.slice(0, 8), pages, mediaBox, contents };
}

/** The strings a content stream shows: pdfkit writes standard-font text as hex strings in TJ arrays. */
function shownText(content: string): string[] {
  return [...content.matchAll(/\[([^\]]*)\] TJ/g)].map((m) => [...m[1]!.matchAll(/<([0-9a-f]*)>/g)].map((h) => Buffer.from(h[1]!, 'hex').toString('latin1')).join(''));
}

/** The QR code drawn on a page, read back from its rectangles into a matrix of dark modules. */
function drawnQr(content: string): Set<string> {
  const rects = [...content.matchAll(/^([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) re$/gm)].map((m) => m.slice(1, 5).map(Number) as [number, number, number, number]);
  const module = Math.min(...rects.map((r) => r[3]));
  const x0 = Math.min(...rects.map((r) => r[0]));
  const y0 = Math.min(...rects.map((r) => r[1]));
  const dark = new Set<string>();
  for (const [x, y, w] of rects) {
    const row = Math.round((y - y0) / module);
    const first = Math.round((x - x0) / module);
    for (let c = 0; c < Math.round(w / module); c++) dark.add(`${row},${first + c}`);
  }
  return dark;
}

const units = [
  { serialNumber: 'a1b2c3d4e5f60718', claimCode: '7K3M-Q9XD-2HFT-B8RW' },
  { serialNumber: 'b2c3d4e5f6071829', claimCode: 'AAAA-BBBB-CCCC-DDDD' },
  { serialNumber: 'c3d4e5f607182930', claimCode: 'EEEE-FFFF-GGGG-HHHH' },
];

describe('device labels', () => {
  it('one 62 × 29 mm page per unit, with its claim code and serial number as text', async () => {
    const pdf = readPdf(await renderLabelsPdf(units));
    expect(pdf.header).toBe('%PDF-1.3');
    expect(pdf.pages).toBe(3);
    expect(pdf.mediaBox.map((n) => Math.round(n * 100) / 100)).toEqual([0, 0, 175.75, 82.2]);
    expect(pdf.contents).toHaveLength(3);
    pdf.contents.forEach((content, i) => expect(shownText(content)).toEqual(['Claim code', units[i]!.claimCode, `S/N ${units[i]!.serialNumber}`]));
  });

  it("each page's QR code is exactly the QR code of the setup address with that unit's code", async () => {
    const pdf = readPdf(await renderLabelsPdf(units, { ...DEFAULT_LABEL, setupUrl: 'http://smith-memu.local/admin/setup/claim' }));
    pdf.contents.forEach((content, i) => {
      const address = setupAddressFor('http://smith-memu.local/admin/setup/claim', units[i]!.claimCode);
      expect(address).toBe(`http://smith-memu.local/admin/setup/claim?code=${units[i]!.claimCode}`);
      const { size, dark } = qrMatrix(address);
      const expected = new Set<string>();
      for (let r = 0; r < size; r++) for (let c = 0; c < size; c++) if (dark(r, c)) expected.add(`${r},${c}`);
      expect(drawnQr(content)).toEqual(expected);
    });
    // Two codes differ in their QR codes: the matrix follows the text.
    expect(drawnQr(pdf.contents[0]!)).not.toEqual(drawnQr(pdf.contents[1]!));
  });

  it('label sizes: WIDTHxHEIGHT in millimetres, within what printers take', async () => {
    expect(parseLabelSize('62x29')).toEqual({ widthMm: 62, heightMm: 29 });
    expect(parseLabelSize('102x51.5')).toEqual({ widthMm: 102, heightMm: 51.5 });
    expect(() => parseLabelSize('62 by 29')).toThrow('label size "62 by 29" is not WIDTHxHEIGHT in millimetres between 20x12 and 300x300');
    expect(() => parseLabelSize('10x5')).toThrow('is not WIDTHxHEIGHT');
    const big = readPdf(await renderLabelsPdf(units.slice(0, 1), { ...DEFAULT_LABEL, widthMm: 102, heightMm: 51 }));
    expect(big.pages).toBe(1);
    expect(big.mediaBox.map((n) => Math.round(n))).toEqual([0, 0, 289, 145]);
    await expect(renderLabelsPdf([])).rejects.toThrow('no units to print labels for');
  });
});

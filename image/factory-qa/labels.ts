import type PDFDocumentClass from 'pdfkit';
import QRCode from 'qrcode';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * Device labels for a label printer: one label per page, at the printer's label size
 * (62 mm × 29 mm, Brother's DK-11209 and similar, by default), each with the unit's serial
 * number, its claim code in large type and a QR code of the setup address with the code,
 * so a phone opens the wizard with the code filled in. The QR code is drawn as vector
 * squares, sharp at any printer resolution.
 */
export interface LabelUnit {
  serialNumber: string;
  claimCode: string;
}

export interface LabelOptions {
  widthMm: number;
  heightMm: number;
  /** The wizard's claim page; the code is added as `?code=`. */
  setupUrl: string;
}

export const DEFAULT_LABEL: LabelOptions = { widthMm: 62, heightMm: 29, setupUrl: 'http://memu.local/admin/setup/claim' };

const POINTS_PER_MM = 72 / 25.4;

/** Loaded when labels are made, so other `memu qa` commands do not pay for it; the CLI bundle leaves it external (image/cli/bundle.ts). */
async function loadPdfkit(): Promise<typeof PDFDocumentClass> {
  return (await import('pdfkit')).default;
}

export function setupAddressFor(setupUrl: string, claimCode: string): string {
  const url = new URL(setupUrl);
  url.searchParams.set('code', claimCode);
  return url.toString();
}

/** Parses a `--size` such as `62x29` (millimetres). */
export function parseLabelSize(text: string): { widthMm: number; heightMm: number } {
  const match = /^(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)$/.exec(text.trim());
  const widthMm = Number(match?.[1]);
  const heightMm = Number(match?.[2]);
  if (!match || widthMm < 20 || heightMm < 12 || widthMm > 300 || heightMm > 300) {
    throw new MemuError(`label size "${text}" is not WIDTHxHEIGHT in millimetres between 20x12 and 300x300`, ExitCode.badInput, 'e.g. --size 62x29 for 62 mm × 29 mm labels');
  }
  return { widthMm, heightMm };
}

export async function renderLabelsPdf(units: readonly LabelUnit[], o: LabelOptions = DEFAULT_LABEL): Promise<Buffer> {
  if (units.length === 0) throw new MemuError('no units to print labels for', ExitCode.badInput, 'only units whose QA passed get a label; check the records');
  const width = o.widthMm * POINTS_PER_MM;
  const height = o.heightMm * POINTS_PER_MM;
  const PDFDocument = await loadPdfkit();
  const doc = new PDFDocument({ autoFirstPage: false, size: [width, height], margin: 0, info: { Title: 'Memu device labels', Producer: 'memu', Creator: 'memu qa labels' } });
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    doc.on('end', resolve);
    doc.on('error', reject);
  });
  const margin = 1.5 * POINTS_PER_MM;
  for (const unit of units) {
    doc.addPage({ size: [width, height], margin: 0 });
    // The QR code fills the label's height on the left; the text takes the rest.
    const qrSide = height - 2 * margin;
    drawQrCode(doc, setupAddressFor(o.setupUrl, unit.claimCode), margin, margin, qrSide);
    const textX = margin * 2 + qrSide;
    const textWidth = width - textX - margin;
    doc.fillColor('black').font('Helvetica').fontSize(7).text('Claim code', textX, margin + 2, { width: textWidth, lineBreak: false });
    doc.font('Helvetica-Bold').fontSize(fitFontSize(doc, unit.claimCode, textWidth, 13)).text(unit.claimCode, textX, margin + 11, { width: textWidth, lineBreak: false });
    doc.font('Helvetica').fontSize(6.5).text(`S/N ${unit.serialNumber}`, textX, height - margin - 9, { width: textWidth, lineBreak: false, ellipsis: true });
  }
  doc.end();
  await ended;
  return Buffer.concat(chunks);
}

/** The largest size up to `max` at which `text` fits `width`. */
function fitFontSize(doc: PDFKit.PDFDocument, text: string, width: number, max: number): number {
  let size = max;
  while (size > 5 && doc.fontSize(size).widthOfString(text) > width) size -= 0.5;
  return size;
}

/** The QR matrix of `text` (error correction M: readable with a fifth of the label scuffed). */
export function qrMatrix(text: string): { size: number; dark: (row: number, column: number) => boolean } {
  const qr = QRCode.create(text, { errorCorrectionLevel: 'M' });
  return { size: qr.modules.size, dark: (row, column) => qr.modules.get(row, column) === 1 };
}

function drawQrCode(doc: PDFKit.PDFDocument, text: string, x: number, y: number, side: number): void {
  const { size, dark } = qrMatrix(text);
  // A quiet zone of 2 modules (the standard asks for 4; labels are tight and readers cope with 2).
  const module = side / (size + 4);
  for (let row = 0; row < size; row++) {
    let run = -1;
    for (let column = 0; column <= size; column++) {
      const on = column < size && dark(row, column);
      if (on && run < 0) run = column;
      if (!on && run >= 0) {
        doc.rect(x + (run + 2) * module, y + (row + 2) * module, (column - run) * module, module);
        run = -1;
      }
    }
  }
  doc.fillColor('black').fill();
}

/**
 * A small time-series plot as standalone SVG, for `cage lab … --plot FILE.svg`: one line per
 * series over a shared time axis, like the papers' figures. Pure: returns the document text.
 */
export interface PlotSeries {
  label: string;
  /** One value per x; null leaves a gap. */
  values: readonly (number | null)[];
  color: string;
  /** Draw dashed (caps, targets) rather than solid (measurements). */
  dashed?: boolean;
}

export interface PlotSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  x: readonly number[];
  series: readonly PlotSeries[];
  /** Fixed y range; by default 0 to the largest value plus 10%. */
  yMax?: number;
}

const W = 800;
const H = 420;
const M = { left: 70, right: 170, top: 40, bottom: 50 };

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A round step giving about `target` ticks over `span`. */
function tickStep(span: number, target: number): number {
  const raw = span / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const n = raw / pow;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * pow;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

export function renderSvgPlot(spec: PlotSpec): string {
  if (spec.x.length === 0) throw new RangeError("plot: no x values");
  for (const s of spec.series) {
    if (s.values.length !== spec.x.length) throw new RangeError(`plot: series ${s.label} has ${s.values.length} values for ${spec.x.length} x values`);
  }
  const xMin = Math.min(...spec.x);
  const xMax = Math.max(...spec.x, xMin + 1);
  const all = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const yMax = spec.yMax ?? Math.max(1, ...all) * 1.1;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x: number): number => M.left + ((x - xMin) / (xMax - xMin)) * pw;
  const sy = (y: number): number => M.top + ph - (Math.min(Math.max(y, 0), yMax) / yMax) * ph;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(spec.title)}</text>`,
  ];
  const yStep = tickStep(yMax, 6);
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#ddd"/>`);
    out.push(`<text x="${M.left - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end">${fmt(y)}</text>`);
  }
  const xStep = tickStep(xMax - xMin, 8);
  for (let x = Math.ceil(xMin / xStep) * xStep; x <= xMax + 1e-9; x += xStep) {
    out.push(`<text x="${sx(x).toFixed(1)}" y="${M.top + ph + 18}" text-anchor="middle">${fmt(x)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="black"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`);
  spec.series.forEach((s, i) => {
    const parts: string[] = [];
    let pen = "M";
    s.values.forEach((v, j) => {
      if (v === null || !Number.isFinite(v)) {
        pen = "M";
        return;
      }
      parts.push(`${pen}${sx(spec.x[j] ?? 0).toFixed(1)},${sy(v).toFixed(1)}`);
      pen = "L";
    });
    const dash = s.dashed === true ? ` stroke-dasharray="6 4"` : "";
    out.push(`<path d="${parts.join(" ")}" fill="none" stroke="${escapeXml(s.color)}" stroke-width="1.8"${dash}/>`);
    const ly = M.top + 10 + i * 20;
    out.push(`<line x1="${W - M.right + 12}" x2="${W - M.right + 36}" y1="${ly}" y2="${ly}" stroke="${escapeXml(s.color)}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${W - M.right + 42}" y="${ly + 4}">${escapeXml(s.label)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

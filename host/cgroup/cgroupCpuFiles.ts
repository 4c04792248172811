/**
 * The cgroup CPU files' formats (platform-facts §5.2), pure. Every parser is strict and names
 * the file in its error.
 *   v1: cpu.cfs_quota_us (µs, -1 = unlimited), cpu.cfs_period_us (µs), cpu.shares (2..262144)
 *   v2: cpu.max ("MAX PERIOD", MAX = "max" or µs), cpu.weight (1..10000)
 */

/** A cgroup CPU file whose content, or a value bound for it, is not what the kernel uses. */
export class CgroupFileError extends Error {
  override readonly name = "CgroupFileError";
}

/** The kernel's lower bound for a CFS quota (1 ms). */
export const MIN_QUOTA_US = 1000;

function integerIn(text: string, file: string, min: number): number {
  const t = text.trim();
  if (!/^-?[0-9]+$/.test(t)) throw new CgroupFileError(`${file}: expected an integer, got ${JSON.stringify(text.slice(0, 40))}`);
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n < min) throw new CgroupFileError(`${file}: ${t} is out of range (>= ${min})`);
  return n;
}

/** cpu.cfs_quota_us → µs, or null for unlimited (-1). */
export function parseV1Quota(text: string, file = "cpu.cfs_quota_us"): number | null {
  const n = integerIn(text, file, -1);
  if (n === 0) throw new CgroupFileError(`${file}: 0 is not a valid quota`);
  return n < 0 ? null : n;
}

export function parseV1Period(text: string, file = "cpu.cfs_period_us"): number {
  return integerIn(text, file, 1);
}

export function parseV1Shares(text: string, file = "cpu.shares"): number {
  return integerIn(text, file, 2);
}

/** cpu.max → quota µs (null = "max") and period µs. */
export function parseV2Max(text: string, file = "cpu.max"): { quotaUs: number | null; periodUs: number } {
  const m = /^(max|[0-9]+) ([0-9]+)$/.exec(text.trim());
  if (!m) throw new CgroupFileError(`${file}: expected "max PERIOD" or "QUOTA PERIOD", got ${JSON.stringify(text.slice(0, 40))}`);
  const periodUs = Number(m[2]);
  if (periodUs <= 0) throw new CgroupFileError(`${file}: period must be > 0`);
  return { quotaUs: m[1] === "max" ? null : Number(m[1]), periodUs };
}

export function formatV2Max(quotaUs: number | null, periodUs: number): string {
  return `${quotaUs === null ? "max" : String(quotaUs)} ${periodUs}`;
}

export function parseV2Weight(text: string, file = "cpu.weight"): number {
  const n = integerIn(text, file, 1);
  if (n > 10000) throw new CgroupFileError(`${file}: ${n} is out of range (1..10000)`);
  return n;
}

/** A cap in % of one CPU as a CFS quota for `periodUs` (≥ 1 ms, the kernel's minimum). */
export function quotaUsFor(capPct: number, periodUs: number): number {
  if (!Number.isFinite(capPct) || capPct <= 0) throw new CgroupFileError(`cap must be a positive number of % of one CPU, got ${capPct}`);
  return Math.max(MIN_QUOTA_US, Math.round((capPct / 100) * periodUs));
}

/** A quota back to % of one CPU. */
export function capPctOf(quotaUs: number | null, periodUs: number): number | null {
  return quotaUs === null ? null : (quotaUs / periodUs) * 100;
}

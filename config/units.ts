/** The value formats of the cage file that the schema only checks the spelling of: sizes and InfluxQL durations. */

const SIZE_FACTORS: Record<string, number> = {
  B: 1, K: 1024, KiB: 1024, M: 1024 ** 2, MiB: 1024 ** 2, G: 1024 ** 3, GiB: 1024 ** 3, T: 1024 ** 4, TiB: 1024 ** 4,
  KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12,
};

const SIZE_PATTERN = /^([0-9]+(?:\.[0-9]+)?) ?(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T)?$/;

/**
 * Bytes from an integer or a size string ("1GiB", "512 MiB", "1.5G"). KiB/MiB/GiB/TiB and the
 * bare K/M/G/T (as in cgroup files) are powers of 1024; KB/MB/GB/TB are powers of 1000.
 * Returns null for anything else.
 */
export function parseSize(value: unknown): number | null {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : null;
  if (typeof value !== "string") return null;
  const m = SIZE_PATTERN.exec(value);
  if (!m) return null;
  const bytes = Math.round(Number(m[1]) * (SIZE_FACTORS[m[2] ?? "B"] ?? 1));
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** A size written correctly whose bytes exceed Number.MAX_SAFE_INTEGER: the schema accepts it, parseSize cannot. */
export function isTooLargeSize(value: unknown): boolean {
  if (typeof value === "number") return Number.isInteger(value) && !Number.isSafeInteger(value);
  return typeof value === "string" && SIZE_PATTERN.test(value) && parseSize(value) === null;
}

const DURATION_MINUTES: Record<string, number> = { m: 1, h: 60, d: 1440, w: 10080 };

/** Minutes in an InfluxQL duration the schema accepted ("30m", "7d"), or null for anything else. */
export function influxDurationMinutes(value: unknown): number | null {
  if (typeof value !== "string") return null;
  const m = /^([1-9][0-9]{0,5})(m|h|d|w)$/.exec(value);
  return m ? Number(m[1]) * (DURATION_MINUTES[m[2] as string] as number) : null;
}

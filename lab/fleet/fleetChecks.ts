/**
 * The fleet lab's verdicts, pure: what Prometheus and InfluxDB answered, against what the lab
 * set up. Each check returns the problems it found, each naming the host and cage; none = pass.
 */

/** Host names host-01 … (zero-padded so they sort), the same cage names on every host. */
export function fleetHostNames(hosts: number): string[] {
  const width = Math.max(2, String(hosts).length);
  return Array.from({ length: hosts }, (_, i) => `host-${String(i + 1).padStart(width, "0")}`);
}

export function fleetCageNames(cages: number): string[] {
  const width = Math.max(2, String(cages).length);
  return Array.from({ length: cages }, (_, i) => `cage-${String(i + 1).padStart(width, "0")}`);
}

/** One result row of `count by (instance, cage, …) (METRIC)`. */
export interface SeriesCount {
  labels: Record<string, string>;
  count: number;
}

/**
 * Every (host, cage) — times each value of `perCageLabel` when given (role: vm, ids) — must have
 * exactly one series of `metric`, and no other (host, cage) may appear. Prometheus tells hosts
 * apart by `instance`, which the lab sets to the host name.
 */
export function checkSeriesOnce(metric: string, rows: readonly SeriesCount[], hosts: readonly string[], cages: readonly string[], perCageLabel?: { name: string; values: readonly string[] }): string[] {
  const problems: string[] = [];
  const expected = new Set<string>();
  for (const host of hosts) {
    for (const cage of cages) {
      if (perCageLabel === undefined) expected.add(`${host}/${cage}`);
      else for (const v of perCageLabel.values) expected.add(`${host}/${cage}/${v}`);
    }
  }
  const seen = new Set<string>();
  for (const row of rows) {
    const key = [row.labels.instance ?? "(no instance)", row.labels.cage ?? "(no cage)", ...(perCageLabel !== undefined ? [row.labels[perCageLabel.name] ?? `(no ${perCageLabel.name})`] : [])].join("/");
    seen.add(key);
    if (!expected.has(key)) problems.push(`${metric}: unexpected series ${key}`);
    else if (row.count !== 1) problems.push(`${metric}: ${row.count} series for ${key}, expected 1`);
  }
  const missing = [...expected].filter((k) => !seen.has(k));
  if (missing.length > 0) problems.push(`${metric}: ${missing.length} of ${expected.size} series missing (first: ${missing.slice(0, 3).join(", ")})`);
  return problems;
}

/** One InfluxDB count row: points of one (host, cage) series in the counted span. */
export interface PointCount {
  host: string;
  cage: string;
  count: number;
}

export interface PointVerdict {
  expectedPerCage: number;
  expectedTotal: number;
  total: number;
  /** |total − expected| / expected. */
  deviation: number;
  /** Series (host, cage) whose own count is not exactly the expected one. */
  offSeries: number;
  problems: string[];
}

/**
 * Each (host, cage) must have `expectedPerCage` points and the total must be within `tolerance`
 * (relative) of hosts × cages × expectedPerCage. Points of two hosts merged into one (a missing
 * host tag, so the same series and timestamp) would show as a series with too few points or as
 * one series for several hosts, and a host or cage the lab did not set up is a problem too.
 */
export function checkPointCounts(rows: readonly PointCount[], hosts: readonly string[], cages: readonly string[], expectedPerCage: number, tolerance: number): PointVerdict {
  if (!(expectedPerCage > 0)) throw new Error(`point check: expected points per cage must be > 0, got ${expectedPerCage}`);
  const problems: string[] = [];
  const byKey = new Map<string, number>();
  const known = new Set(hosts.flatMap((h) => cages.map((c) => `${h}/${c}`)));
  let total = 0;
  for (const row of rows) {
    const key = `${row.host}/${row.cage}`;
    if (!known.has(key)) problems.push(`points for ${JSON.stringify(key)}, which the lab did not set up`);
    if (byKey.has(key)) problems.push(`two count rows for ${key}`);
    byKey.set(key, (byKey.get(key) ?? 0) + row.count);
    total += row.count;
  }
  let offSeries = 0;
  const off: string[] = [];
  for (const key of known) {
    const n = byKey.get(key) ?? 0;
    if (n !== expectedPerCage) {
      offSeries++;
      if (off.length < 5) off.push(`${key}: ${n}`);
    }
  }
  const expectedTotal = known.size * expectedPerCage;
  const deviation = Math.abs(total - expectedTotal) / expectedTotal;
  if (deviation > tolerance) problems.push(`${total} points, expected ${expectedTotal} (${(deviation * 100).toFixed(3)}% off, more than ${(tolerance * 100).toFixed(3)}%)`);
  if (offSeries > 0) problems.push(`${offSeries} of ${known.size} (host, cage) series do not have exactly ${expectedPerCage} points (${off.join("; ")})`);
  return { expectedPerCage, expectedTotal, total, deviation, offSeries, problems };
}

/**
 * Each counted span's points are those of the collector's windows whose end falls in it: the
 * lab's own subscriber (the witness) saw these; a window's point time is its end.
 */
export function windowsWithin(windowTimesMs: readonly number[], startMs: number, endMs: number): number {
  let n = 0;
  for (const t of windowTimesMs) if (t >= startMs && t <= endMs) n++;
  return n;
}

/** The labels of each alert that fired (ALERTS{alertstate="firing"}) during the run. */
export function checkOneAlert(fired: readonly Record<string, string>[], expected: { alertname: string; instance: string; cage: string }): string[] {
  const described = fired.map((l) => `${l.alertname ?? "?"}{instance=${l.instance ?? "-"}, cage=${l.cage ?? "-"}}`);
  if (fired.length !== 1) return [`${fired.length} alerts fired, expected exactly 1 (${expected.alertname} on ${expected.instance}/${expected.cage})${described.length > 0 ? `: ${described.join(", ")}` : ""}`];
  const [only] = fired;
  if (only?.alertname !== expected.alertname || only.instance !== expected.instance || only.cage !== expected.cage) {
    return [`the alert that fired is ${described[0] ?? "?"}, expected ${expected.alertname}{instance=${expected.instance}, cage=${expected.cage}}`];
  }
  return [];
}

/**
 * Each target's `target_info` must name the host the lab set as its agent.host, once: the
 * `instance` the lab gives a target and the host the agent says it is must agree.
 */
export function checkHostIdentity(targetInfo: readonly Record<string, string>[], hosts: readonly string[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  for (const labels of targetInfo) {
    const instance = labels.instance ?? "(no instance)";
    seen.set(instance, (seen.get(instance) ?? 0) + 1);
    if (labels.host_name !== instance) problems.push(`target_info of ${instance} says host_name=${labels.host_name ?? "(none)"}`);
  }
  for (const host of hosts) if ((seen.get(host) ?? 0) !== 1) problems.push(`${seen.get(host) ?? 0} target_info series for ${host}, expected 1`);
  return problems;
}

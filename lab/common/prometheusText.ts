/** The Prometheus text exposition as the labs, benches and tests read it from an agent's /metrics. */

/** Prometheus text → series (`name{labels}`, exactly as rendered) → value; comments and blank lines skipped. */
export function parsePrometheusText(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}

/** The sum of every series of metric `name` (any labels); a value that is not finite counts 0. */
export function sumOfMetric(series: ReadonlyMap<string, number>, name: string): number {
  let sum = 0;
  for (const [key, value] of series) if ((key === name || key.startsWith(`${name}{`)) && Number.isFinite(value)) sum += value;
  return sum;
}

/**
 * `cage top`'s screen, as a pure function of the aggregates seen: one row per cage with the
 * last second's mean CPU figures, so the numbers are steady enough to read.
 */
import type { CageAggregate } from "../protocol/cageAggregate.js";

export class TopModel {
  private readonly recent = new Map<string, CageAggregate[]>();

  add(a: CageAggregate): void {
    const list = this.recent.get(a.cage) ?? [];
    list.push(a);
    this.recent.set(a.cage, list);
  }

  /** Drops aggregates older than `windowMs` before `nowMs`. */
  prune(nowMs: number, windowMs = 1_000): void {
    for (const [cage, list] of this.recent) {
      const kept = list.filter((a) => nowMs - a.timeMs <= windowMs);
      if (kept.length) this.recent.set(cage, kept);
      else this.recent.delete(cage);
    }
  }

  rows(): TopRow[] {
    const rows: TopRow[] = [];
    for (const [cage, list] of [...this.recent].sort(([a], [b]) => a.localeCompare(b))) {
      const last = list[list.length - 1];
      if (!last) continue;
      // Weight each window by its length so the mean is on-CPU time over elapsed time.
      const secs = list.reduce((s, a) => s + a.windowSeconds, 0) || 1;
      const mean = (f: (a: CageAggregate) => number): number => list.reduce((s, a) => s + f(a) * a.windowSeconds, 0) / secs;
      rows.push({
        cage,
        vmPct: mean((a) => a.vm.cpuPct),
        idsPct: mean((a) => a.ids.cpuPct),
        totalPct: mean((a) => a.totalPct),
        capPct: last.capPct,
        idsCapPct: last.idsCapPct,
        vmRssBytes: last.vm.rssBytes,
        idsRssBytes: last.ids.rssBytes,
        idsPids: last.ids.pids.length,
        vmPids: last.vm.pids.length,
      });
    }
    return rows;
  }
}

export interface TopRow {
  cage: string;
  vmPct: number;
  idsPct: number;
  totalPct: number;
  capPct: number;
  idsCapPct: number | null;
  vmRssBytes: number;
  idsRssBytes: number;
  vmPids: number;
  idsPids: number;
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)}M`;
}

export function renderTop(rows: TopRow[], header: string): string {
  const cols = ["CAGE", "VM%", "IDS%", "TOTAL%", "CAP%", "IDSCAP%", "VM RSS", "IDS RSS", "PIDS vm/ids", ""];
  const lines = [header, cols.map((c, i) => (i === 0 ? c.padEnd(16) : c.padStart(9))).join(" ")];
  for (const r of rows) {
    const over = r.totalPct > r.capPct + 2 ? "OVER CAP" : "";
    lines.push(
      [
        r.cage.slice(0, 16).padEnd(16),
        r.vmPct.toFixed(1).padStart(9),
        r.idsPct.toFixed(1).padStart(9),
        r.totalPct.toFixed(1).padStart(9),
        r.capPct.toFixed(0).padStart(9),
        (r.idsCapPct === null ? "-" : r.idsCapPct.toFixed(0)).padStart(9),
        mib(r.vmRssBytes).padStart(9),
        mib(r.idsRssBytes).padStart(9),
        `${r.vmPids}/${r.idsPids}`.padStart(9),
        over,
      ].join(" "),
    );
  }
  if (!rows.length) lines.push("(waiting for aggregates...)");
  return lines.join("\n");
}

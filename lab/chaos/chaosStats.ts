/**
 * The chaos run's bookkeeping, pure: runs of bad samples (VM without a CPU cap, an IDS stopped)
 * as the 10 ms sampler reports them, their attribution to the kill whose observation window they
 * start in, the per-component summary and the printed table. No I/O here.
 */

/** A stretch of consecutive samples in one state, ms on the run's clock. */
export interface Run {
  startMs: number;
  endMs: number;
}

/** Turns a boolean sampled over time into closed runs of `true`. */
export class RunRecorder {
  private since: number | null = null;
  private lastMs = 0;
  readonly runs: Run[] = [];

  sample(nowMs: number, bad: boolean): void {
    if (bad && this.since === null) this.since = nowMs;
    else if (!bad && this.since !== null) {
      this.runs.push({ startMs: this.since, endMs: nowMs });
      this.since = null;
    }
    this.lastMs = nowMs;
  }

  /** Closes an open run at the last sample (at the end of the run). */
  close(): void {
    if (this.since !== null) this.runs.push({ startMs: this.since, endMs: this.lastMs });
    this.since = null;
  }

  /** The run open now, if any: its start. */
  get openSince(): number | null {
    return this.since;
  }
}

/** One kill -9 and what was seen after it. */
export interface KillRecord {
  component: string;
  /** Index of the kill within its component, from 0. */
  index: number;
  pid: number;
  atMs: number;
  /** When the observation of this kill ended (the next step began). */
  untilMs: number;
  /** Ms after its start that `cage run` was killed (cage run kills only). */
  afterStartMs?: number;
  /** Agent processes whose parent is gone (parent 1 or outside the agent), 5 s after the kill. */
  orphans: number;
  /** What the orphans were, as `name(pid)`. */
  orphanNames: string[];
  /** Something that did not come back or could not be checked, in words. */
  failures: string[];
}

export interface ComponentSummary {
  component: string;
  kills: number;
  /** Longest time an IDS process stayed in state T, over the runs starting in this component's observation windows. */
  maxIdsStoppedMs: number;
  /** Longest time the VM had no CPU cap at all while the agent should have been capping. null: not applicable (cage run). */
  maxUncappedMs: number | null;
  /** Any sample without a CPU cap on the VM while the agent should have been capping. null: not applicable. */
  everNoLimit: boolean | null;
  /** Sum over the kills of the orphans 5 s after each. */
  orphans: number;
  /** What was left when the component's part of the run ended with a clean stop (cgroups, stopped processes, caps, processes). */
  leftovers: string[];
  failures: string[];
}

/** The runs that start inside [from, until). */
export function runsStartingIn(runs: readonly Run[], fromMs: number, untilMs: number): Run[] {
  return runs.filter((r) => r.startMs >= fromMs && r.startMs < untilMs);
}

function longest(runs: readonly Run[]): number {
  return runs.reduce((m, r) => Math.max(m, r.endMs - r.startMs), 0);
}

/**
 * Summarises one component's kills. `uncapped`: runs of samples with no CPU cap on the VM;
 * `idsStopped`: runs of an IDS process in state T (every IDS process's runs together).
 * `capApplies`: false for `cage run` kills, after which the agent is gone and no cap is expected.
 */
export function summarizeComponent(
  component: string,
  kills: readonly KillRecord[],
  uncapped: readonly Run[],
  idsStopped: readonly Run[],
  leftovers: readonly string[],
  capApplies: boolean,
): ComponentSummary {
  let maxIds = 0;
  let maxUncapped = 0;
  let noLimit = false;
  for (const k of kills) {
    maxIds = Math.max(maxIds, longest(runsStartingIn(idsStopped, k.atMs, k.untilMs)));
    // An uncapped run that began just before the kill (a sample gap) still counts against it.
    const u = uncapped.filter((r) => r.endMs > k.atMs && r.startMs < k.untilMs);
    if (u.length > 0) noLimit = true;
    maxUncapped = Math.max(maxUncapped, longest(u));
  }
  return {
    component,
    // A kill that found no target (pid 0) is a failure, not a kill.
    kills: kills.filter((k) => k.pid > 0).length,
    maxIdsStoppedMs: Math.round(maxIds),
    maxUncappedMs: capApplies ? Math.round(maxUncapped) : null,
    everNoLimit: capApplies ? noLimit : null,
    orphans: kills.reduce((n, k) => n + k.orphans, 0),
    leftovers: [...leftovers],
    failures: kills.flatMap((k) => k.failures.map((f) => `kill ${k.index + 1}: ${f}`)),
  };
}

/** The criteria of the issue, per component: which ones this summary fails, in words. */
export function criteriaFailures(s: ComponentSummary): string[] {
  const out: string[] = [];
  if (s.maxIdsStoppedMs > 1000) out.push(`an IDS stayed stopped ${s.maxIdsStoppedMs} ms (> 1000)`);
  if (s.maxUncappedMs !== null && s.maxUncappedMs > 1500) out.push(`the VM was without a cap for ${s.maxUncappedMs} ms (> 1500)`);
  if (s.everNoLimit === true) out.push("the VM had no limit while the agent should have been capping");
  if (s.orphans > 0) out.push(`${s.orphans} orphans 5 s after the kills`);
  if (s.leftovers.length > 0) out.push(`${s.leftovers.length} leftovers at the end`);
  if (s.failures.length > 0) out.push(`${s.failures.length} kills with failures`);
  return out;
}

function cell(v: number | boolean | null): string {
  if (v === null) return "n/a";
  if (typeof v === "boolean") return v ? "YES" : "no";
  return String(v);
}

/** The per-component table: kills, max IDS stopped ms, max uncapped ms, ever no-limit, orphans, leftovers. */
export function formatComponentTable(rows: readonly ComponentSummary[]): string {
  const header = ["component", "kills", "max IDS stopped ms", "max uncapped ms", "ever no-limit", "orphans", "leftovers", "failures"];
  const body = rows.map((r) => [r.component, cell(r.kills), cell(r.maxIdsStoppedMs), cell(r.maxUncappedMs), cell(r.everNoLimit), cell(r.orphans), cell(r.leftovers.length), cell(r.failures.length)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? "").length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

/**
 * `cage top`'s view, pure (no I/O): the model of what was received, the columns, fitting them to
 * the terminal's width, sorting, keys, and the screen and JSON snapshot built from them.
 * cli/topCommand.ts does the sockets, the terminal and the timers; docs/top.md describes both.
 */
import type { CageAggregate } from "../protocol/cageAggregate.js";
import type { ActuatorMode, ActuatorState } from "../protocol/actuatorMessages.js";
import { DEFAULT_STATE_EXPIRY_MS } from "../pipeline/actuatorStates.js";

/** Rows average the aggregates of the last second, so the figures are steady enough to read. */
export const AGGREGATE_WINDOW_MS = 1_000;

/** One cage's row; also what `cage top --json` prints for each cage. */
export interface TopRow {
  cage: string;
  vmCpuPct: number;
  idsCpuPct: number;
  totalCpuPct: number;
  capPct: number;
  idsCapPct: number | null;
  vmRssBytes: number;
  idsRssBytes: number;
  idsPageCacheBytes: number;
  vmPids: number;
  idsPids: number;
  /** From the act.state of the actuator reporting vmTargetBytes / vmActualBytes; null without one. */
  balloonTargetBytes: number | null;
  balloonActualBytes: number | null;
  /** Each actuator's latest (unexpired) act.state for this cage, by actuator name. */
  actuators: Record<string, { mode: ActuatorMode; backend: string }>;
}

/** `cage top --json`: one of these per refresh, one line each. */
export interface TopSnapshot {
  v: 1;
  timeMs: number;
  endpoint: string;
  lostMessages: number;
  invalidFrames: number;
  cages: TopRow[];
}

export class TopModel {
  private readonly recent = new Map<string, CageAggregate[]>();
  private readonly states = new Map<string, { state: ActuatorState; receivedMs: number }>();

  add(a: CageAggregate): void {
    const list = this.recent.get(a.cage) ?? [];
    list.push(a);
    this.recent.set(a.cage, list);
  }

  addState(s: ActuatorState, receivedMs: number): void {
    this.states.set(`${s.actuator}\u0000${s.cage}`, { state: s, receivedMs });
  }

  /** Drops aggregates older than `windowMs` before `nowMs`, and actuator states not refreshed for `stateExpiryMs`. */
  prune(nowMs: number, windowMs = AGGREGATE_WINDOW_MS, stateExpiryMs = DEFAULT_STATE_EXPIRY_MS): void {
    for (const [cage, list] of this.recent) {
      const kept = list.filter((a) => nowMs - a.timeMs <= windowMs);
      if (kept.length) this.recent.set(cage, kept);
      else this.recent.delete(cage);
    }
    for (const [key, s] of this.states) if (nowMs - s.receivedMs > stateExpiryMs) this.states.delete(key);
  }

  /** One row per cage with aggregates in the window, by cage name. */
  rows(): TopRow[] {
    const rows: TopRow[] = [];
    for (const [cage, list] of [...this.recent].sort(([a], [b]) => a.localeCompare(b))) {
      const last = list[list.length - 1];
      if (!last) continue;
      // Weight each window by its length so the mean is on-CPU time over elapsed time.
      const secs = list.reduce((s, a) => s + a.windowSeconds, 0) || 1;
      const mean = (f: (a: CageAggregate) => number): number => list.reduce((s, a) => s + f(a) * a.windowSeconds, 0) / secs;
      const actuators: TopRow["actuators"] = {};
      let balloon: ActuatorState | null = null;
      for (const { state } of [...this.states.values()].sort((a, b) => a.state.actuator.localeCompare(b.state.actuator))) {
        if (state.cage !== cage) continue;
        actuators[state.actuator] = { mode: state.mode, backend: state.backend };
        // The balloon actuator's own figures win over a third party's reporting the same values.
        if (state.values.vmTargetBytes !== undefined && (balloon === null || state.actuator === "balloon")) balloon = state;
      }
      rows.push({
        cage,
        vmCpuPct: mean((a) => a.vm.cpuPct),
        idsCpuPct: mean((a) => a.ids.cpuPct),
        totalCpuPct: mean((a) => a.totalPct),
        capPct: last.capPct,
        idsCapPct: last.idsCapPct,
        vmRssBytes: last.vm.rssBytes,
        idsRssBytes: last.ids.rssBytes,
        idsPageCacheBytes: last.ids.pageCacheBytes,
        vmPids: last.vm.pids.length,
        idsPids: last.ids.pids.length,
        balloonTargetBytes: balloon?.values.vmTargetBytes ?? null,
        balloonActualBytes: balloon?.values.vmActualBytes ?? null,
        actuators,
      });
    }
    return rows;
  }
}

// ---- formatting -------------------------------------------------------------------------------

/** Bytes in binary units, at most 5 characters: `512B`, `9.5K`, `512M`, `1023M`, `1.5G`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "K", "M", "G", "T", "P"];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)}B`;
  const text = v < 10 ? v.toFixed(1) : v.toFixed(0);
  // 1023.6 rounds to "1024": show the next unit instead.
  if (text === "1024" && u < units.length - 1) return `1.0${units[u + 1]}`;
  return `${text}${units[u]}`;
}

function formatOptionalBytes(b: number | null): string {
  return b === null ? "-" : formatBytes(b);
}

/** A cage counts as over its cap when its total exceeds the cap by more than measurement noise. */
export const OVER_CAP_MARGIN_PCT = 2;

export function isOverCap(r: TopRow): boolean {
  return r.totalCpuPct > r.capPct + OVER_CAP_MARGIN_PCT;
}

const SHORT_MODE: Record<ActuatorMode, string> = { active: "on", failsafe: "safe", "dry-run": "dry", error: "ERR" };

function modeOf(r: TopRow, actuator: string): ActuatorMode | null {
  return r.actuators[actuator]?.mode ?? null;
}

// ---- columns ----------------------------------------------------------------------------------

export const COLUMN_IDS = [
  "cage",
  "vm-cpu",
  "ids-cpu",
  "total",
  "ids-cap",
  "vm-rss",
  "ids-rss",
  "ids-pagecache",
  "balloon-memory",
  "cpu-mode",
  "limiter-mode",
  "balloon-mode",
  "pids",
] as const;
export type ColumnId = (typeof COLUMN_IDS)[number];

export interface Column {
  id: ColumnId;
  title: string;
  width: number;
  /** Lower is more important: kept longest, narrowed or dropped last. */
  priority: number;
  align: "left" | "right";
  format: (r: TopRow) => string;
  /** Null sorts last whatever the direction. */
  sortValue: (r: TopRow) => number | string | null;
  /** A narrower form used before dropping the column. */
  narrow?: { title: string; width: number; format: (r: TopRow) => string };
}

function modeColumn(id: ColumnId, actuator: string, title: string, narrowTitle: string, priority: number): Column {
  return {
    id,
    title,
    width: 8,
    priority,
    align: "left",
    format: (r) => modeOf(r, actuator) ?? "-",
    sortValue: (r) => modeOf(r, actuator),
    narrow: {
      title: narrowTitle,
      width: 4,
      format: (r) => {
        const m = modeOf(r, actuator);
        return m === null ? "-" : SHORT_MODE[m];
      },
    },
  };
}

/** The columns in display order. */
export const COLUMNS: readonly Column[] = [
  {
    id: "cage", title: "CAGE", width: 16, priority: 0, align: "left",
    format: (r) => r.cage, sortValue: (r) => r.cage,
    narrow: { title: "CAGE", width: 10, format: (r) => r.cage },
  },
  { id: "vm-cpu", title: "VM%", width: 6, priority: 2, align: "right", format: (r) => r.vmCpuPct.toFixed(1), sortValue: (r) => r.vmCpuPct },
  { id: "ids-cpu", title: "IDS%", width: 6, priority: 3, align: "right", format: (r) => r.idsCpuPct.toFixed(1), sortValue: (r) => r.idsCpuPct },
  {
    id: "total", title: "TOTAL/CAP", width: 10, priority: 1, align: "right",
    format: (r) => `${r.totalCpuPct.toFixed(1)}/${r.capPct.toFixed(0)}${isOverCap(r) ? "!" : ""}`,
    sortValue: (r) => r.totalCpuPct,
    narrow: { title: "TOT/CAP", width: 8, format: (r) => `${r.totalCpuPct.toFixed(0)}/${r.capPct.toFixed(0)}${isOverCap(r) ? "!" : ""}` },
  },
  {
    id: "ids-cap", title: "IDSCAP", width: 6, priority: 11, align: "right",
    format: (r) => (r.idsCapPct === null ? "-" : r.idsCapPct.toFixed(0)), sortValue: (r) => r.idsCapPct,
  },
  { id: "vm-rss", title: "VM RSS", width: 6, priority: 10, align: "right", format: (r) => formatBytes(r.vmRssBytes), sortValue: (r) => r.vmRssBytes },
  { id: "ids-rss", title: "IDS RSS", width: 7, priority: 9, align: "right", format: (r) => formatBytes(r.idsRssBytes), sortValue: (r) => r.idsRssBytes },
  {
    id: "ids-pagecache", title: "IDS PC", width: 6, priority: 7, align: "right",
    format: (r) => formatBytes(r.idsPageCacheBytes), sortValue: (r) => r.idsPageCacheBytes,
  },
  {
    id: "balloon-memory", title: "BAL TGT/ACT", width: 11, priority: 8, align: "right",
    format: (r) => (r.balloonTargetBytes === null && r.balloonActualBytes === null ? "-" : `${formatOptionalBytes(r.balloonTargetBytes)}/${formatOptionalBytes(r.balloonActualBytes)}`),
    sortValue: (r) => r.balloonTargetBytes,
  },
  modeColumn("cpu-mode", "cpu", "CPU ACT", "CPU", 4),
  modeColumn("limiter-mode", "limiter", "LIMITER", "LIM", 5),
  modeColumn("balloon-mode", "balloon", "BALLOON", "BAL", 6),
  { id: "pids", title: "PIDS", width: 7, priority: 12, align: "right", format: (r) => `${r.vmPids}/${r.idsPids}`, sortValue: (r) => r.vmPids + r.idsPids },
];

export function columnById(id: ColumnId): Column {
  const c = COLUMNS.find((col) => col.id === id);
  if (!c) throw new Error(`cage top: no column ${JSON.stringify(id)}`);
  return c;
}

export function isColumnId(s: string): s is ColumnId {
  return (COLUMN_IDS as readonly string[]).includes(s);
}

/** A column as laid out: its title, width and cell format, full or narrowed. */
export interface PlacedColumn {
  column: Column;
  title: string;
  width: number;
  format: (r: TopRow) => string;
}

const SEPARATOR = " ";
/** Columns at least this important are dropped only after the cage column has been narrowed. */
const ESSENTIAL_PRIORITY = 3;

function lineWidth(placed: readonly PlacedColumn[]): number {
  return placed.reduce((s, p) => s + p.width, 0) + SEPARATOR.length * Math.max(0, placed.length - 1);
}

function place(column: Column, narrow: boolean): PlacedColumn {
  const n = narrow ? column.narrow : undefined;
  return n ? { column, title: n.title, width: n.width, format: n.format } : { column, title: column.title, width: column.width, format: column.format };
}

/**
 * The columns that fit in `width` characters, in display order. Least important first: narrow
 * the columns that have a narrow form (except the cage's), then drop columns down to the
 * essential ones, then narrow the cage column, then drop the rest; the cage column always stays.
 */
export function fitColumns(width: number): PlacedColumn[] {
  let placed = COLUMNS.map((c) => place(c, false));
  const leastImportantFirst = [...COLUMNS].sort((a, b) => b.priority - a.priority);
  const fits = (): boolean => lineWidth(placed) <= width;
  const narrowColumn = (c: Column): void => {
    placed = placed.map((p) => (p.column === c ? place(c, true) : p));
  };
  const dropColumn = (c: Column): void => {
    placed = placed.filter((p) => p.column !== c);
  };
  for (const c of leastImportantFirst) if (!fits() && c.narrow && c.id !== "cage") narrowColumn(c);
  for (const c of leastImportantFirst) if (!fits() && c.priority > ESSENTIAL_PRIORITY) dropColumn(c);
  if (!fits()) narrowColumn(columnById("cage"));
  for (const c of leastImportantFirst) if (!fits() && c.id !== "cage") dropColumn(c);
  return placed;
}

function cell(text: string, width: number, align: "left" | "right"): string {
  const cut = text.length > width ? text.slice(0, width) : text;
  return align === "left" ? cut.padEnd(width) : cut.padStart(width);
}

// ---- sorting ----------------------------------------------------------------------------------

export interface SortOrder {
  column: ColumnId;
  descending: boolean;
}

/** Cage names read best A→Z; figures biggest first. */
export function defaultSortOrder(column: ColumnId): SortOrder {
  return { column, descending: column !== "cage" };
}

export function sortRows(rows: readonly TopRow[], order: SortOrder): TopRow[] {
  const col = columnById(order.column);
  return [...rows].sort((a, b) => {
    const va = col.sortValue(a);
    const vb = col.sortValue(b);
    if (va === null || vb === null) {
      if (va !== vb) return va === null ? 1 : -1;
    } else if (va !== vb) {
      const cmp = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
      return order.descending ? -cmp : cmp;
    }
    return a.cage.localeCompare(b.cage);
  });
}

// ---- view state and keys ----------------------------------------------------------------------

/** The refresh delays `d` cycles through, seconds. */
export const DELAYS_S = [0.5, 1, 2, 5] as const;

export interface ViewState {
  sort: SortOrder;
  delayS: number;
  help: boolean;
}

export function initialViewState(sort: ColumnId = "cage", delayS = 1): ViewState {
  return { sort: defaultSortOrder(sort), delayS, help: false };
}

/** The next delay `d` selects: the next longer one of DELAYS_S, after the longest the shortest. */
export function nextDelay(delayS: number): number {
  return DELAYS_S.find((d) => d > delayS) ?? DELAYS_S[0];
}

/**
 * What one key press does. `quit` for `q` and Ctrl-C (which arrives as a byte in raw mode);
 * while the help is shown any other key closes it.
 */
export function applyKey(state: ViewState, key: string): { state: ViewState; quit: boolean } {
  if (key === "q" || key === "Q" || key === "\x03") return { state, quit: true };
  if (state.help) return { state: { ...state, help: false }, quit: false };
  const at = COLUMN_IDS.indexOf(state.sort.column);
  switch (key) {
    case "<":
    case ",":
      return { state: { ...state, sort: defaultSortOrder(COLUMN_IDS[(at - 1 + COLUMN_IDS.length) % COLUMN_IDS.length] as ColumnId) }, quit: false };
    case ">":
    case ".":
      return { state: { ...state, sort: defaultSortOrder(COLUMN_IDS[(at + 1) % COLUMN_IDS.length] as ColumnId) }, quit: false };
    case "r":
      return { state: { ...state, sort: { ...state.sort, descending: !state.sort.descending } }, quit: false };
    case "d":
      return { state: { ...state, delayS: nextDelay(state.delayS) }, quit: false };
    case "h":
    case "?":
      return { state: { ...state, help: true }, quit: false };
    default:
      return { state, quit: false };
  }
}

export const HELP_LINES = [
  "cage top keys",
  "  q, Ctrl-C   quit",
  "  < >         sort by the previous / next column",
  "  r           reverse the sort order",
  `  d           next refresh delay (${DELAYS_S.join(", ")} s)`,
  "  h, ?        this help (any key closes it)",
  "",
  "TOTAL/CAP ends in ! when the cage is over its cap; modes: on = active, safe = failsafe, dry = dry-run.",
];

// ---- screen -----------------------------------------------------------------------------------

export interface ScreenInput {
  rows: readonly TopRow[];
  state: ViewState;
  /** What the status line starts with, e.g. the command and endpoint. */
  title: string;
  lostMessages: number;
  invalidFrames: number;
  /** Characters per line; Infinity for a pipe (every column, nothing cut). */
  width: number;
  /** Lines available; Infinity for a pipe. */
  height: number;
  /** Keys are read: the status line says which. */
  interactive: boolean;
}

function clip(line: string, width: number): string {
  return line.length > width ? line.slice(0, width) : line;
}

/** The lines of one screen: status line, column header, one line per cage; none longer than `width`. */
export function renderScreen(input: ScreenInput): string[] {
  const { state, width, height } = input;
  const sortCol = columnById(state.sort.column);
  const status =
    `${input.title}  sort: ${sortCol.title} ${state.sort.descending ? "desc" : "asc"}  delay: ${state.delayS}s` +
    `${input.interactive ? "  (h: help, q: quit)" : ""}  lost: ${input.lostMessages}  invalid: ${input.invalidFrames}`;
  let lines: string[];
  if (state.help) {
    lines = [status, ...HELP_LINES];
  } else {
    const placed = fitColumns(width);
    const row = (texts: string[]): string => placed.map((p, i) => cell(texts[i] as string, p.width, p.column.align)).join(SEPARATOR).trimEnd();
    lines = [status, row(placed.map((p) => p.title))];
    for (const r of sortRows(input.rows, state.sort)) lines.push(row(placed.map((p) => p.format(r))));
    if (!input.rows.length) lines.push("(waiting for aggregates...)");
  }
  return lines.slice(0, Math.max(1, height)).map((l) => clip(l, width));
}

export function snapshot(rows: readonly TopRow[], state: ViewState, endpoint: string, timeMs: number, lostMessages: number, invalidFrames: number): TopSnapshot {
  return { v: 1, timeMs, endpoint, lostMessages, invalidFrames, cages: sortRows(rows, state.sort) };
}

// ---- terminal control -------------------------------------------------------------------------

/** Escape sequences (xterm / VT100): alternate screen, cursor visibility, home, erase. */
export const Term = {
  enterAltScreen: "\x1b[?1049h",
  leaveAltScreen: "\x1b[?1049l",
  hideCursor: "\x1b[?25l",
  showCursor: "\x1b[?25h",
  home: "\x1b[H",
  eraseLineEnd: "\x1b[K",
  eraseScreenEnd: "\x1b[J",
} as const;

/**
 * One redraw in place: home, each line then erase its rest, erase below. Nothing is cleared
 * first, so the screen never flashes blank. A full-width line gets no erase: at the last column
 * the cursor waits to wrap and an erase there would wipe the line's last character.
 */
export function screenFrame(lines: readonly string[], width: number): string {
  return Term.home + lines.map((l) => (l.length < width ? l + Term.eraseLineEnd : l)).join("\r\n") + Term.eraseScreenEnd;
}

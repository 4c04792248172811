/**
 * A systemd unit's own resource properties, read with `systemctl show -p …` and set with
 * `systemctl set-property --runtime UNIT …` (runtime only: nothing persists past a reboot, and
 * the originals read first are what a restore sets back). Through host/commandRunner.ts: no
 * shell, a timeout, every argument checked. Parsers are pure.
 */
import { runCommand, COMMAND_TIMEOUT_MS } from "../commandRunner.js";

export const SYSTEMCTL = "systemctl";

/** A unit that does not exist, a property systemd refuses, or output we cannot read. */
export class UnitPropertyError extends Error {
  override readonly name = "UnitPropertyError";
}

/** `systemctl show` output (KEY=VALUE lines) → key → value. */
export function parseShow(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

const UNIT = /^[A-Za-z0-9:_@\\][A-Za-z0-9:_.@\\-]{0,240}\.(service|scope|slice)$/;

export function checkUnitName(unit: string): string {
  if (!UNIT.test(unit)) throw new UnitPropertyError(`not a systemd unit name (NAME.service, .scope or .slice): ${JSON.stringify(unit)}`);
  return unit;
}

const TIMESPAN_UNITS: Record<string, number> = { us: 1, usec: 1, ms: 1000, msec: 1000, s: 1e6, sec: 1e6, min: 60e6, h: 3600e6 };

/** A systemd timespan as `show` prints it ("200ms", "1s 500ms", "infinity") → µs, null for infinity. */
export function parseTimespanUs(text: string, what: string): number | null {
  const t = text.trim();
  if (t === "infinity" || t === "") return null;
  let total = 0;
  let rest = t;
  const part = /^\s*([0-9]+(?:\.[0-9]+)?)(us|usec|ms|msec|s|sec|min|h)/;
  while (rest.trim() !== "") {
    const m = part.exec(rest);
    if (!m) throw new UnitPropertyError(`${what}: not a systemd timespan: ${JSON.stringify(t)}`);
    total += Number(m[1]) * (TIMESPAN_UNITS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

/** CPUWeight as shown: a number, or unset ("[not set]", "", or the old UINT64_MAX). */
export function parseUnitWeight(text: string, what: string): number | null {
  const t = text.trim();
  if (t === "" || t === "[not set]" || t === "18446744073709551615") return null;
  if (!/^[0-9]+$/.test(t) || Number(t) < 1 || Number(t) > 10000) throw new UnitPropertyError(`${what}: expected a weight 1..10000 or unset, got ${JSON.stringify(t)}`);
  return Number(t);
}

/** MemoryHigh/MemoryMax as shown: bytes, or null for "infinity". */
export function parseUnitBytes(text: string, what: string): number | null {
  const t = text.trim();
  if (t === "infinity" || t === "18446744073709551615") return null;
  if (!/^[0-9]+$/.test(t)) throw new UnitPropertyError(`${what}: expected bytes or infinity, got ${JSON.stringify(t)}`);
  return Number(t);
}

/** CPUQuota= as set-property takes it: % of one CPU (two decimals); null resets to no quota. */
export function cpuQuotaAssignment(capPct: number | null): string {
  if (capPct === null) return "CPUQuota=";
  if (!Number.isFinite(capPct) || capPct <= 0) throw new UnitPropertyError(`CPUQuota: cap must be a positive % of one CPU, got ${capPct}`);
  return `CPUQuota=${Number(capPct.toFixed(2))}%`;
}

export function cpuWeightAssignment(weight: number | null): string {
  return weight === null ? "CPUWeight=" : `CPUWeight=${Math.min(10000, Math.max(1, Math.round(weight)))}`;
}

export function memoryAssignment(property: "MemoryHigh" | "MemoryMax", bytes: number | null): string {
  return `${property}=${bytes === null ? "infinity" : String(bytes)}`;
}

/** The argv that sets properties of a unit at run time (also what a restore guardian runs). */
export function setPropertyArgv(unit: string, assignments: readonly string[], program = SYSTEMCTL): string[] {
  checkUnitName(unit);
  if (assignments.length === 0) throw new UnitPropertyError(`set-property ${unit}: nothing to set`);
  return [program, "set-property", "--runtime", unit, ...assignments];
}

export interface UnitClient {
  /** Reads properties; throws naming the unit when it does not exist (LoadState not-found). */
  show(unit: string, properties: readonly string[]): Promise<Map<string, string>>;
  set(unit: string, assignments: readonly string[]): Promise<void>;
}

/** Talks to systemd through `program` (systemctl; tests put a fake one first in PATH). */
export function systemctlClient(program = SYSTEMCTL, timeoutMs = COMMAND_TIMEOUT_MS): UnitClient {
  return {
    async show(unit, properties) {
      checkUnitName(unit);
      const args = ["show", unit, "-p", "LoadState", ...properties.flatMap((p) => ["-p", p])];
      let stdout: string;
      try {
        ({ stdout } = await runCommand(program, args, timeoutMs));
      } catch (err) {
        throw new UnitPropertyError(`unit ${unit}: cannot read its properties: ${(err as Error).message}`);
      }
      const values = parseShow(stdout);
      const load = values.get("LoadState");
      if (load !== "loaded") throw new UnitPropertyError(`unit ${unit} does not exist (LoadState=${load ?? "missing"})`);
      for (const p of properties) if (!values.has(p)) throw new UnitPropertyError(`unit ${unit}: systemctl show printed no ${p}`);
      return values;
    },
    async set(unit, assignments) {
      const [prog, ...args] = setPropertyArgv(unit, assignments, program);
      try {
        await runCommand(prog as string, args, timeoutMs);
      } catch (err) {
        throw new UnitPropertyError(`unit ${unit}: cannot set ${assignments.join(" ")}: ${(err as Error).message}`);
      }
    },
  };
}

/** The unit's cgroup v2 directory (ControlGroup under the v2 mount). */
export async function unitCgroupDir(client: UnitClient, unit: string, v2Root: string): Promise<string> {
  const cg = (await client.show(unit, ["ControlGroup"])).get("ControlGroup") ?? "";
  if (!cg.startsWith("/")) throw new UnitPropertyError(`unit ${unit} has no cgroup (ControlGroup=${JSON.stringify(cg)}): is it running?`);
  return `${v2Root}${cg}`;
}

/** A guardian key for a unit: its name with characters the key cannot hold replaced. */
export function unitRestoreKey(unit: string, what: string): string {
  return `systemd:${what}:${unit.replace(/[^A-Za-z0-9:._-]/g, "_")}`.slice(0, 128);
}

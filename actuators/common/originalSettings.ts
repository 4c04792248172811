/**
 * The settings an actuator found before it first changed them, recorded on disk before the first
 * change: in the runtime directory and in agent.stateDir (which survives the processes and a
 * reboot). A later start reads the record and takes ITS values as the originals, so after a crash
 * the agent restores what was there before it, not a leftover of itself (a fail-safe cap, a
 * shrunk balloon). The record of a cage is removed once its originals have been put back.
 *
 * One file per actuator and directory, `originals-<actuator>.json`:
 *   {"v":1,"actuator":"cpu","cages":{"web":[{"op":"write","path":"/sys/fs/cgroup/...","value":"-1"}]}}
 * Entries are restore actions (guardianProtocol.ts) without their fail-safe fields; a setting is
 * identified by its path (write) or key (exec, qmp). PIDs (cont) are never recorded.
 */
import { join } from "node:path";
import type { AgentConfig } from "../../config/cageConfig.js";
import { defaultRuntimeDir } from "../../protocol/endpoints.js";
import { readFileIfExists, removeFileDurably, writeFileDurably } from "../../runtime/durableFile.js";
import { parseGuardianLine, type QmpRestoreAction, type RestoreAction } from "./guardianProtocol.js";

/** A restore action as recorded: the original only. */
export type RecordedAction = { op: "write"; path: string; value: string } | { op: "exec"; key: string; argv: string[] } | Omit<QmpRestoreAction, "failsafeBytes">;

export type ActuatorName = "cpu" | "limiter" | "balloon";

/** The two copies of an actuator's record: the runtime directory's first (read first), then the state directory's. */
export function originalSettingsFiles(actuator: ActuatorName, runtimeDir: string, stateDir: string): string[] {
  return [join(runtimeDir, `originals-${actuator}.json`), join(stateDir, `originals-${actuator}.json`)];
}

/** The record files of an actuator running on `config` (its runtimeDir and stateDir). */
export function originalSettingsFilesFor(actuator: ActuatorName, config: AgentConfig): string[] {
  return originalSettingsFiles(actuator, config.agent.runtimeDir ?? defaultRuntimeDir(), config.agent.stateDir);
}

function identity(a: RecordedAction | RestoreAction): string | null {
  switch (a.op) {
    case "write":
      return `write:${a.path}`;
    case "exec":
      return `exec:${a.key}`;
    case "qmp":
      return `qmp:${a.key}`;
    default:
      return null;
  }
}

function originalOf(a: RestoreAction): RecordedAction | null {
  switch (a.op) {
    case "write":
      return { op: "write", path: a.path, value: a.value };
    case "exec":
      return { op: "exec", key: a.key, argv: [...a.argv] };
    case "qmp":
      return { op: "qmp", key: a.key, socket: a.socket, command: a.command, bytes: a.bytes };
    default:
      return null;
  }
}

/** `fresh` with its original replaced by `recorded`'s, keeping fresh's fail-safe. */
function withOriginal(fresh: RestoreAction, recorded: RecordedAction): RestoreAction {
  if (fresh.op === "write" && recorded.op === "write") return { ...fresh, value: recorded.value };
  if (fresh.op === "exec" && recorded.op === "exec") return { ...fresh, argv: [...recorded.argv] };
  if (fresh.op === "qmp" && recorded.op === "qmp") return { ...fresh, socket: recorded.socket, bytes: recorded.bytes };
  return fresh;
}

/** Parses one copy; throws naming the file and the entry that is wrong. */
export function parseOriginalSettings(text: string, path: string, actuator: ActuatorName): Map<string, RecordedAction[]> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`${path}: not JSON`);
  }
  const d = doc as { v?: unknown; actuator?: unknown; cages?: unknown };
  if (typeof doc !== "object" || doc === null || d.v !== 1) throw new Error(`${path}: not a version 1 record of original settings`);
  if (d.actuator !== actuator) throw new Error(`${path}: recorded by actuator ${JSON.stringify(d.actuator)}, expected ${JSON.stringify(actuator)}`);
  if (typeof d.cages !== "object" || d.cages === null || Array.isArray(d.cages)) throw new Error(`${path}: "cages" must be an object`);
  const out = new Map<string, RecordedAction[]>();
  for (const [cage, list] of Object.entries(d.cages as Record<string, unknown>)) {
    if (!Array.isArray(list)) throw new Error(`${path}: cages.${cage} must be a list`);
    out.set(
      cage,
      list.map((entry, i) => {
        let message;
        try {
          message = parseGuardianLine(JSON.stringify(entry)).message;
        } catch (err) {
          throw new Error(`${path}: cages.${cage}[${i}]: ${(err as Error).message}`, { cause: err });
        }
        const original = message.op === "write" || message.op === "exec" || message.op === "qmp" ? originalOf(message) : null;
        if (original === null) throw new Error(`${path}: cages.${cage}[${i}]: op must be write, exec or qmp, got ${JSON.stringify(message.op)}`);
        return original;
      }),
    );
  }
  return out;
}

export class OriginalSettings {
  private readonly cages: Map<string, RecordedAction[]>;

  /**
   * Reads the first copy that exists (a bad one throws, naming the file: restoring from a guess
   * could leave a VM capped for good, so the operator must look).
   */
  constructor(
    private readonly actuator: ActuatorName,
    private readonly files: readonly string[],
  ) {
    this.cages = new Map();
    for (const file of files) {
      const text = readFileIfExists(file);
      if (text === null) continue;
      this.cages = parseOriginalSettings(text, file, actuator);
      break;
    }
  }

  /** Cages with a record (left by an earlier run that did not restore them). */
  get cageNames(): string[] {
    return [...this.cages.keys()];
  }

  recorded(cage: string): readonly RecordedAction[] {
    return this.cages.get(cage) ?? [];
  }

  /**
   * Each setting's true original: the one an earlier run recorded, else the one in `actions`,
   * recorded now (durably, before the caller changes anything). Fail-safe fields and PIDs pass
   * through as given.
   */
  keep(cage: string, actions: readonly RestoreAction[]): RestoreAction[] {
    const recorded = this.cages.get(cage) ?? [];
    const byId = new Map(recorded.map((r) => [identity(r) as string, r]));
    let added = false;
    const out = actions.map((a) => {
      const id = identity(a);
      if (id === null) return a;
      const known = byId.get(id);
      if (known !== undefined) return withOriginal(a, known);
      // Only what a guardian would accept is recorded: a record the next start cannot read would stop it.
      parseGuardianLine(JSON.stringify(a));
      const original = originalOf(a) as RecordedAction;
      recorded.push(original);
      byId.set(id, original);
      added = true;
      return a;
    });
    if (added) {
      this.cages.set(cage, recorded);
      this.save();
    }
    return out;
  }

  /** The cage's originals are back in place: drop its record (the files go when none is left). */
  forget(cage: string): void {
    if (!this.cages.delete(cage)) return;
    this.save();
  }

  private save(): void {
    if (this.cages.size === 0) {
      for (const file of this.files) removeFileDurably(file);
      return;
    }
    const text = `${JSON.stringify({ v: 1, actuator: this.actuator, cages: Object.fromEntries(this.cages) })}\n`;
    for (const file of this.files) writeFileDurably(file, text);
  }
}

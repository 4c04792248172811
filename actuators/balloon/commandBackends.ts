/**
 * Balloon back ends that drive a toolstack command (no shell; argv arrays only):
 *  - Xen `xl mem-set DOM SIZE` / `xl list DOM` (platform-facts §2.4, §2.5). SIZE always carries a
 *    unit suffix: a bare number is MiB in xl's code but KiB in its man page.
 *  - libvirt `virsh setmem DOM SIZE --live` / `virsh dommemstat DOM` (platform-facts §3.5). SIZE is
 *    a scaled integer defaulting to KiB; we always write the `KiB` suffix.
 * Also Xen's dom0 side: the host gains what the domUs give up, so dom0's target is raised by it.
 */
import { isCommandError, runCommand, type CommandOutput } from "../../host/commandRunner.js";
import { parseXlList } from "../../host/xen/xlList.js";
import type { RestoreAction } from "../common/guardianProtocol.js";
import { BalloonBackendError, restoreKey, type BalloonBackend } from "./balloonBackend.js";

const MiB = 1024 * 1024;

/** Runs `path args...` (host/commandRunner.ts); failures become BalloonBackendErrors naming the command. */
export async function runTool(path: string, args: readonly string[], timeoutMs: number): Promise<CommandOutput> {
  try {
    return await runCommand(path, args, timeoutMs);
  } catch (err) {
    if (!isCommandError(err)) throw err;
    const missing = err.failure === "missing" || err.failure === "denied";
    // Where to fix it: the balloon actuator's section names the command's path.
    const hint = missing ? " (is it installed? set its path in agent.actuators.balloon)" : "";
    throw new BalloonBackendError(`${err.message}${hint}`, missing ? "command-missing" : "command-failed");
  }
}

/** xl's SIZE with an explicit unit: whole MiB as `Nm`, anything else as whole KiB `Nk` (rounded down). */
export function xlSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < MiB) throw new RangeError(`xl memory size must be an integer of at least 1 MiB, got ${bytes}`);
  return bytes % MiB === 0 ? `${bytes / MiB}m` : `${Math.floor(bytes / 1024)}k`;
}

/** virsh's SIZE with an explicit unit: whole KiB (libvirt rounds up to KiB anyway). */
export function virshSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 1024) throw new RangeError(`virsh memory size must be an integer of at least 1 KiB, got ${bytes}`);
  return `${Math.ceil(bytes / 1024)}KiB`;
}

/** A Xen domain argument: a name (no leading dash, no whitespace) or a domain id. */
export function checkXenDomain(domain: string | number): string {
  const s = String(domain);
  if (typeof domain === "number" ? !Number.isInteger(domain) || domain < 0 : !/^[A-Za-z0-9_.][A-Za-z0-9_.:+-]*$/.test(s)) {
    throw new RangeError(`invalid Xen domain ${JSON.stringify(domain)}`);
  }
  return s;
}

export interface CommandBackendOptions {
  commandPath: string;
  timeoutMs?: number;
  /** virsh only: the connection URI (`virsh -c URI`); null or absent: virsh's default. */
  uri?: string | null;
}

export class XlBalloonBackend implements BalloonBackend {
  readonly kind = "xl-mem-set";
  readonly target: string;
  private readonly domain: string;

  constructor(domain: string | number, private readonly options: CommandBackendOptions) {
    this.domain = checkXenDomain(domain);
    this.target = `xl domain ${this.domain}`;
  }

  async apply(bytes: number): Promise<void> {
    await runTool(this.options.commandPath, ["mem-set", this.domain, xlSize(bytes)], this.options.timeoutMs ?? 10_000);
  }

  /** The domain's memory as found (`xl list`), and the fail-safe. */
  async restoreAction(failsafeBytes: number): Promise<RestoreAction> {
    const actual = await this.readActual();
    if (actual === null) throw new BalloonBackendError(`${this.target}: cannot read the domain's memory to record it`, "bad-output");
    const set = (bytes: number): string[] => [this.options.commandPath, "mem-set", this.domain, xlSize(bytes)];
    return { op: "exec", key: restoreKey("xl-mem", this.domain), argv: set(actual), failsafeArgv: set(failsafeBytes) };
  }

  /** `xl list DOM`'s Mem column (MiB). */
  async readActual(): Promise<number | null> {
    const { stdout } = await runTool(this.options.commandPath, ["list", this.domain], this.options.timeoutMs ?? 10_000);
    const rows = parseXlList(stdout);
    const row = rows.find((r) => r.name === this.domain || String(r.domain) === this.domain) ?? (rows.length === 1 ? rows[0] : undefined);
    if (row === undefined) throw new BalloonBackendError(`\`${this.options.commandPath} list ${this.domain}\` printed no row for the domain: ${stdout.trim().slice(0, 200)}`, "bad-output");
    return row.memMiB * MiB;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** dom0's target (`xl mem-set 0 SIZE`): the Xen host side that gains what the domUs give up. */
export class XenDom0 {
  constructor(private readonly options: CommandBackendOptions) {}

  async apply(bytes: number): Promise<void> {
    await runTool(this.options.commandPath, ["mem-set", "0", xlSize(bytes)], this.options.timeoutMs ?? 10_000);
  }
}

export class VirshBalloonBackend implements BalloonBackend {
  readonly kind = "virsh";
  readonly target: string;

  constructor(private readonly domain: string, private readonly options: CommandBackendOptions) {
    if (!/^[^\s-][^\s]*$/.test(domain)) throw new RangeError(`invalid libvirt domain ${JSON.stringify(domain)}`);
    this.target = `libvirt domain ${domain}`;
  }

  private connect(): string[] {
    const uri = this.options.uri ?? null;
    return uri === null ? [] : ["-c", uri];
  }

  async apply(bytes: number): Promise<void> {
    await runTool(this.options.commandPath, [...this.connect(), "setmem", this.domain, virshSize(bytes), "--live"], this.options.timeoutMs ?? 10_000);
  }

  /** The domain's balloon as found (`virsh dommemstat` actual), and the fail-safe. */
  async restoreAction(failsafeBytes: number): Promise<RestoreAction> {
    const actual = await this.readActual();
    if (actual === null) throw new BalloonBackendError(`${this.target}: cannot read the balloon's size to record it`, "bad-output");
    const set = (bytes: number): string[] => [this.options.commandPath, "setmem", this.domain, virshSize(bytes), "--live"];
    return { op: "exec", key: restoreKey("virsh-mem", this.domain), argv: set(actual), failsafeArgv: set(failsafeBytes) };
  }

  /** `virsh dommemstat DOM`: the `actual` line, KiB (the balloon's current size as libvirt reports it). */
  async readActual(): Promise<number | null> {
    const { stdout } = await runTool(this.options.commandPath, [...this.connect(), "dommemstat", this.domain], this.options.timeoutMs ?? 10_000);
    const m = /^actual\s+(\d+)\s*$/m.exec(stdout);
    if (m === null) throw new BalloonBackendError(`\`${this.options.commandPath} dommemstat ${this.domain}\` printed no "actual" line: ${stdout.trim().slice(0, 200)}`, "bad-output");
    return Number(m[1]) * 1024;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

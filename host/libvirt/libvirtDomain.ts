/**
 * One libvirt domain as the agent follows it: `virsh dominfo` names it (name, UUID, state), its
 * QEMU process is the one started with `-uuid UUID` (libvirt always passes it), and
 * `virsh event --loop --all` says when to look again (start, stop, restart with a new PID,
 * undefine) instead of polling. A shut-off or undefined domain is a state, not an error; an
 * unknown domain or an unreachable URI is an error state naming them, retried with backoff.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { DEFAULT_LIBVIRT_URI } from "../../config/defaults.js";
import { isCommandError, runCommand } from "../commandRunner.js";
import { readProcess } from "../proc/processTable.js";
import { checkLibvirtDomain, parseDomState, parseVirshEventLine, type DomainState } from "./virshOutput.js";


export type LibvirtVmState =
  | { state: "running" | "paused"; name: string; uuid: string; pid: number; startTime: number }
  | { state: "shut-off"; name: string; uuid: string; detail: DomainState }
  | { state: "starting"; name: string; uuid: string }
  | { state: "undefined"; domain: string }
  | { state: "error"; domain: string; message: string };

export interface DomInfo {
  name: string;
  uuid: string;
  state: DomainState;
}

/** `virsh dominfo DOM`: "Key:   value" lines; Name, UUID and State are required. */
export function parseDomInfo(text: string, command: string): DomInfo {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z][A-Za-z ()]*):\s*(.*)$/.exec(line);
    if (m) fields.set(m[1] as string, (m[2] as string).trim());
  }
  const get = (k: string): string => {
    const v = fields.get(k);
    if (v === undefined || v === "") throw new Error(`${command}: no "${k}:" line`);
    return v;
  };
  return { name: get("Name"), uuid: get("UUID").toLowerCase(), state: parseDomState(get("State"), command) };
}

/** The QEMU process started with `-uuid UUID` (libvirt's command line), or null. */
export function findQemuByUuid(uuid: string, procRoot = "/proc"): { pid: number; startTime: number } | null {
  const needle = `\0-uuid\0${uuid}\0`;
  for (const e of readdirSync(procRoot)) {
    if (!/^\d+$/.test(e)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`${procRoot}/${e}/cmdline`, "latin1");
    } catch {
      continue; // gone meanwhile
    }
    if (!cmdline.includes(needle)) continue;
    const p = readProcess(Number(e), procRoot);
    if (p !== null) return { pid: p.pid, startTime: p.startTime };
  }
  return null;
}

export interface LibvirtOptions {
  uri?: string;
  /** The virsh program. Default "virsh" from PATH. */
  virsh?: string;
  timeoutMs?: number;
  procRoot?: string;
}

function uriArgs(uri: string): string[] {
  return ["-c", uri];
}

/** Where the domain is now: one `virsh dominfo` and, when it runs, its QEMU process. */
export async function resolveLibvirtDomain(domain: string, options: LibvirtOptions = {}): Promise<LibvirtVmState> {
  checkLibvirtDomain(domain);
  const uri = options.uri ?? DEFAULT_LIBVIRT_URI;
  const virsh = options.virsh ?? "virsh";
  const args = [...uriArgs(uri), "dominfo", domain];
  let info: DomInfo;
  try {
    const out = await runCommand(virsh, args, options.timeoutMs ?? 10_000);
    info = parseDomInfo(out.stdout, `virsh ${args.join(" ")}`);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (isCommandError(err) && /failed to get domain|Domain not found/i.test(message)) return { state: "undefined", domain };
    return { state: "error", domain, message: /failed to connect|cannot connect|no connection driver/i.test(message) ? `libvirt URI ${uri} unreachable: ${message}` : message };
  }
  if (info.state === "running" || info.state === "paused" || info.state === "idle" || info.state === "in shutdown") {
    const qemu = findQemuByUuid(info.uuid, options.procRoot);
    if (qemu === null) return { state: "starting", name: info.name, uuid: info.uuid };
    return { state: info.state === "paused" ? "paused" : "running", name: info.name, uuid: info.uuid, ...qemu };
  }
  return { state: "shut-off", name: info.name, uuid: info.uuid, detail: info.state };
}

/** A one-line description of a state for logs and the operator. */
export function describeLibvirtState(s: LibvirtVmState): string {
  switch (s.state) {
    case "running":
    case "paused":
      return `libvirt domain ${s.name} ${s.state}, QEMU PID ${s.pid}`;
    case "starting":
      return `libvirt domain ${s.name} starting (no QEMU process yet)`;
    case "shut-off":
      return `libvirt domain ${s.name} is ${s.detail}: cage idle`;
    case "undefined":
      return `libvirt domain ${s.domain} is not defined: cage idle`;
    case "error":
      return `libvirt domain ${s.domain}: ${s.message}`;
  }
}

/** Equal for reporting: an error while already in error is not news (no storm while a URI stays down). */
function sameState(a: LibvirtVmState, b: LibvirtVmState): boolean {
  if (a.state === "error" && b.state === "error") return true;
  return describeLibvirtState(a) === describeLibvirtState(b) && (a.state !== "running" || b.state !== "running" || a.startTime === b.startTime);
}

/**
 * Follows one domain: resolves it at start, then again on every event `virsh event --loop --all`
 * prints for it. While a start is under way (libvirt reports Started before the PID is readable),
 * it looks again every 100 ms for up to 2 s. When the event stream ends (daemon gone, URI
 * unreachable) it reconnects with backoff up to 30 s, and the state says why meanwhile.
 */
export class LibvirtDomainWatcher {
  private current: LibvirtVmState;
  private events: ChildProcess | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs = 500;
  private resolving: Promise<void> | null = null;
  private again = false;
  private readonly uri: string;

  constructor(
    readonly domain: string,
    private readonly options: LibvirtOptions = {},
    private readonly onChange: (state: LibvirtVmState) => void = () => {},
  ) {
    checkLibvirtDomain(domain);
    this.uri = options.uri ?? DEFAULT_LIBVIRT_URI;
    this.current = { state: "starting", name: domain, uuid: "" };
  }

  get state(): LibvirtVmState {
    return this.current;
  }

  async start(): Promise<void> {
    this.listen();
    await this.refresh();
  }

  /** Resolves again now (also what an event triggers); concurrent calls coalesce. */
  refresh(): Promise<void> {
    if (this.resolving !== null) {
      this.again = true;
      return this.resolving;
    }
    this.resolving = (async () => {
      do {
        this.again = false;
        let next = await resolveLibvirtDomain(this.domain, this.options);
        for (let i = 0; next.state === "starting" && i < 20 && !this.stopped; i++) {
          await new Promise((r) => setTimeout(r, 100));
          next = await resolveLibvirtDomain(this.domain, this.options);
        }
        if (this.stopped) return;
        if (!sameState(next, this.current)) {
          this.current = next;
          this.onChange(next);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.resolving = null;
    });
    return this.resolving;
  }

  private matches(name: string): boolean {
    const s = this.current;
    return name === this.domain || ("name" in s && s.name === name) || s.state === "undefined" || s.state === "error";
  }

  private listen(): void {
    if (this.stopped) return;
    const child = spawn(this.options.virsh ?? "virsh", [...uriArgs(this.uri), "event", "--loop", "--all"], { stdio: ["ignore", "pipe", "pipe"] });
    this.events = child;
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-500);
    });
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const ev = parseVirshEventLine(line);
      if (ev === null || !this.matches(ev.domain)) return;
      this.backoffMs = 500;
      if (ev.event === "lifecycle" || ev.event === "reboot") void this.refresh();
    });
    child.on("error", (err) => {
      stderr += err.message;
    });
    child.on("close", (code) => {
      lines.close();
      if (this.events === child) this.events = null;
      if (this.stopped) return;
      const message = `\`virsh -c ${this.uri} event --loop --all\` ended (exit ${code ?? "signal"})${stderr.trim() ? `: ${stderr.trim()}` : ""}`;
      if (!sameState(this.current, { state: "error", domain: this.domain, message })) {
        this.current = { state: "error", domain: this.domain, message };
        this.onChange(this.current);
      }
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.listen();
        void this.refresh();
      }, this.backoffMs);
      this.backoffMs = Math.min(30_000, this.backoffMs * 2);
    });
  }

  /** Ends the event stream and any retry; the state stays as last seen. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const child = this.events;
    this.events = null;
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const closed = new Promise<void>((r) => child.once("close", () => r()));
      child.kill("SIGTERM");
      await closed;
    }
    await this.resolving?.catch(() => {});
  }
}

/**
 * A private libvirtd for tests and labs, driven through scripts/libvirt-lab.sh (its own virtlogd +
 * libvirtd, state and sockets in one temporary directory, never a system libvirtd):
 *
 *   const lab = await LibvirtLab.start();
 *   try { await lab.define("oc-t1", { memoryMiB: 256, net: true }); await lab.virsh("start", "oc-t1"); ... }
 *   finally { await lab.stop(); }
 *
 * stop() destroys and undefines every domain of this daemon and stops its daemons; a process `exit`
 * hook runs the same stop synchronously if a test forgets. Callers hold /tmp/oc-qemu.lock (one TCG
 * guest at a time on a shared host): run the tests under `flock /tmp/oc-qemu.lock`.
 */
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GuestConsole } from "./qemuGuest.js";

function script(): string {
  const candidates = ["../../../", "../../"].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const root = candidates.find((p) => existsSync(join(p, "scripts", "libvirt-lab.sh"))) ?? candidates[0] ?? "";
  return join(root, "scripts", "libvirt-lab.sh");
}

function run(program: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${program} ${args.join(" ")}: ${err.message}${stderr ? `\n${stderr.trim()}` : ""}`));
      else resolve(stdout);
    });
  });
}

/** TCG boots the test guest in 10 to 40 s on this shared 2-CPU host; allow for a loaded one. */
export const GUEST_BOOT_TIMEOUT_MS = 180_000;

const live = new Set<string>();
let hookInstalled = false;

export class LibvirtLab {
  private constructor(
    readonly dir: string,
    /** The URI to give virsh -c and vm.uri. */
    readonly uri: string,
  ) {}

  static async start(): Promise<LibvirtLab> {
    const dir = mkdtempSync("/tmp/oc-libvirt.");
    if (!hookInstalled) {
      hookInstalled = true;
      process.on("exit", () => {
        for (const d of live) execFileSync("bash", [script(), "stop", d], { stdio: "ignore" });
      });
    }
    live.add(dir);
    try {
      const uri = (await run("bash", [script(), "start", dir], 60_000)).trim().split("\n").pop() ?? "";
      return new LibvirtLab(dir, uri);
    } catch (err) {
      live.delete(dir);
      throw err;
    }
  }

  /**
   * Defines the test guest as a domain (not started); its UUID. `initrd`: an initramfs to boot
   * instead of the guest's own (e.g. qemuGuest.ts cpuBurnerInitrd); it replaces the copy the
   * script keeps next to the daemon, which every domain of this daemon boots.
   */
  async define(name: string, options: { memoryMiB?: number; net?: boolean; balloon?: boolean; initrd?: string } = {}): Promise<string> {
    const args = [script(), "define", this.dir, name, String(options.memoryMiB ?? 256), ...(options.net ? ["net"] : []), ...(options.balloon === false ? ["noballoon"] : [])];
    const uuid = (await run("bash", args, 600_000)).trim();
    if (options.initrd !== undefined) {
      const copy = join(this.dir, "guest", "initrd.gz");
      copyFileSync(options.initrd, copy);
      // QEMU runs as libvirt-qemu: the copy must stay world-readable.
      chmodSync(copy, 0o644);
    }
    return uuid;
  }

  /** The file libvirt writes the domain's serial console to (scripts/libvirt-lab.sh define). */
  serialLog(name: string): string {
    return join(this.dir, "log", `${name}.serial`);
  }

  /** A reader of the domain's serial console: its /init's ready line and memory reports. */
  console(name: string): GuestConsole {
    return new GuestConsole(this.serialLog(name));
  }

  /** `virsh -c URI ARGS...`, its stdout. */
  virsh(...args: string[]): Promise<string> {
    return run("virsh", ["-c", this.uri, ...args], 60_000);
  }

  async stop(): Promise<void> {
    if (!live.has(this.dir)) return;
    await run("bash", [script(), "stop", this.dir], 60_000);
    live.delete(this.dir);
  }
}

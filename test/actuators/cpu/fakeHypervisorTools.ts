// FAKE `xl` and FAKE `virsh` for the Xen and libvirt back-end tests (not a test file itself).
// There is no Xen hypervisor and no libvirt daemon on the test machine, so these stand-ins record
// every argv they get (one JSON line per call) and answer with REAL output where we have it:
//  - xl info / xl sched-credit: the real Xen 4.17.7 dom0 transcript (shared/fixtures/xen-commands).
//  - credit2: the real `xl info` with its xen_scheduler line changed to credit2, and a
//    `xl sched-credit2` table rendered with 4.17's printf formats (no real credit2 capture exists).
//  - virsh schedinfo: the layout libvirt prints (documented samples), plus global_period/global_quota.
// The Xen lab (`npm run test:xen`) runs the same back ends against a real hypervisor.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { transcriptOutput } from "../../collectors/xentrace/fakeXen.js";

export interface FakeTool {
  dir: string;
  /** Every call's argv (without the program), oldest first. */
  calls(): string[][];
  cleanup(): void;
}

function writeTool(dir: string, name: string, answers: Record<string, { out?: string; err?: string; rc?: number }>, fallback: { rc: number; err: string }): void {
  const log = join(dir, `${name}.calls`);
  const script = `#!${process.execPath}
// FAKE ${name} for tests: records its argv and replays captured output. Not ${name === "xl" ? "Xen" : "libvirt"}.
"use strict";
const fs = require("node:fs");
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + "\\n");
const answers = ${JSON.stringify(answers)};
let a = answers[args.join(" ")];
for (let n = 3; a === undefined && n >= 1; n--) a = answers[args.slice(0, n).join(" ") + " *"];
if (a === undefined) a = ${JSON.stringify(fallback)};
if (a.out) process.stdout.write(a.out);
if (a.err) process.stderr.write(a.err);
process.exit(a.rc ?? 0);
`;
  writeFileSync(join(dir, name), script);
  chmodSync(join(dir, name), 0o755);
}

function tool(name: string, write: (dir: string) => void): FakeTool {
  const dir = mkdtempSync(join(tmpdir(), `oc-fake-${name}-`));
  write(dir);
  return {
    dir,
    calls: () => {
      try {
        return readFileSync(join(dir, `${name}.calls`), "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as string[]);
      } catch {
        return [];
      }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The real `xl sched-credit` listing taken while dom0 and domu1 (uncapped) ran. */
export const REAL_SCHED_CREDIT = transcriptOutput("xl sched-credit", 2);
export const REAL_XL_INFO = transcriptOutput("xl info");

/** Rendered with xl_sched.c's formats for credit2 (pool line "Cpupool %s: ratelimit=%dus"): not a capture. */
export const RENDERED_SCHED_CREDIT2 = [
  "Cpupool Pool-0: ratelimit=1000us",
  `${"Name".padEnd(33)} ${"ID".padStart(4)} ${"Weight".padStart(6)} ${"Cap".padStart(4)}`,
  `${"Domain-0".padEnd(33)} ${"0".padStart(4)} ${"256".padStart(6)} ${"0".padStart(4)}`,
  `${"domu1".padEnd(33)} ${"1".padStart(4)} ${"256".padStart(6)} ${"0".padStart(4)}`,
  "",
].join("\n");

export function fakeXl(scheduler: "credit" | "credit2" = "credit", behaviour: { setFails?: boolean } = {}): FakeTool {
  return tool("xl", (dir) => {
    const info = scheduler === "credit" ? REAL_XL_INFO : REAL_XL_INFO.replace(/^xen_scheduler\s+: credit$/m, "xen_scheduler          : credit2");
    const set = behaviour.setFails === true ? { rc: 1, err: "libxl: error: Cpu cap out of range, valid range is from 0 to 100 for specified number of vcpus\n" } : { rc: 0 };
    writeTool(
      dir,
      "xl",
      {
        info: { out: info },
        "sched-credit": scheduler === "credit" ? { out: REAL_SCHED_CREDIT } : { out: "" },
        "sched-credit2": { out: RENDERED_SCHED_CREDIT2 },
        "sched-credit -d *": scheduler === "credit" ? set : { rc: 1, err: "libxl_domain_sched_params_get returned credit2 not credit.\n" },
        "sched-credit2 -d *": set,
      },
      { rc: 1, err: "fake xl: unsupported command\n" },
    );
  });
}

/** virsh schedinfo as libvirt's QEMU driver prints it (layout of the documented samples). */
export const VIRSH_SCHEDINFO = [
  "Scheduler      : posix",
  "cpu_shares     : 1024",
  "vcpu_period    : 100000",
  "vcpu_quota     : -1",
  "emulator_period: 100000",
  "emulator_quota : -1",
  "global_period  : 100000",
  "global_quota   : -1",
  "iothread_period: 100000",
  "iothread_quota : -1",
  "",
].join("\n");

/** The documented sample of an older libvirt without global_* (IBM's virsh schedinfo page). */
export const VIRSH_SCHEDINFO_OLD = ["Scheduler      : posix", "cpu_shares     : 1024", "vcpu_period    : 100000", "vcpu_quota     : -1", "emulator_period: 100000", "emulator_quota : -1", ""].join("\n");

export function fakeVirsh(output = VIRSH_SCHEDINFO): FakeTool {
  return tool("virsh", (dir) => {
    const answers: Record<string, { out?: string; rc?: number }> = {};
    for (const prefix of ["", "-c qemu:///system "]) {
      answers[`${prefix}schedinfo web1 --live`] = { out: output };
    }
    answers["schedinfo web1 *"] = { out: output };
    answers["-c qemu:///system schedinfo *"] = { out: output };
    writeTool(dir, "virsh", answers, { rc: 1, err: "error: failed to get domain 'nope'\n" });
  });
}

/** Runs fn with `dir` first on PATH (the back ends find `xl`/`virsh` there, as on a real host). */
export async function withPath<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved ?? ""}`;
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

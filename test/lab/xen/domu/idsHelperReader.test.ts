// The IDS helper's event reader (lab/xen/domu/ids-helper.sh): the awk stage between trace_pipe
// and the shell, run as the helper runs it, on real trace lines from the lab's IDS-VM
// (test/fixtures/xen/README.md). Under the lab's own busybox 1.35 when its package is in the
// lab's cache (.cache/xen-lab/debs), else under the host's awk (said in a diagnostic).
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const HELPER = new URL("../../../../../lab/xen/domu/ids-helper.sh", import.meta.url);
const FIXTURE = new URL("../../../../../test/fixtures/xen/ids-helper-trace.txt", import.meta.url);
const DEBS = new URL("../../../../../.cache/xen-lab/debs/", import.meta.url);

/** The awk program, cut from the helper between its `awk -v ev=...` line and its redirections. */
function awkProgram(): string {
  const lines = readFileSync(HELPER, "utf8").split("\n");
  const start = lines.findIndex((l) => l.startsWith("awk -v ev=\"$EVENT\" '"));
  const end = lines.findIndex((l, i) => i > start && l.startsWith("}' <\"$fifo_raw\""));
  assert.ok(start >= 0 && end > start, "the helper's awk stage not found");
  return [...lines.slice(start + 1, end), "}"].join("\n");
}

/** [command, leading args] of an awk: the lab's busybox unpacked from its .deb, or the host's. */
/** The lab's busybox awk when its package is cached (unpacked for this test, removed after it), else the host's. */
function pickAwk(t: TestContext): [string, string[]] {
  const deb = existsSync(DEBS) ? readdirSync(DEBS).find((f) => f.startsWith("busybox-static_") && f.endsWith(".deb")) : undefined;
  if (deb !== undefined) {
    const dir = mkdtempSync(join(tmpdir(), "oc-ids-helper-bb-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync("dpkg", ["-x", join(DEBS.pathname, deb), dir]);
    t.diagnostic(`awk: busybox from ${deb}`);
    return [join(dir, "bin/busybox"), ["awk"]];
  }
  t.diagnostic("awk: the host's (no busybox package in .cache/xen-lab/debs)");
  return ["awk", []];
}

/** Runs the helper's awk stage; `feed` writes to its stdin; resolves with its output lines. */
function runAwk(awk: [string, string[]], feed: (write: (s: string) => void, outputSoFar: () => string) => Promise<void>): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(awk[0], [...awk[1], "-v", "ev=ids_switch_mm", awkProgram()], { stdio: ["pipe", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out.split("\n").filter((l) => l !== "")) : reject(new Error(`awk exited ${code}`))));
    feed((s) => child.stdin.write(s), () => out).then(() => child.stdin.end(), reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const POB = "0xffff888000000000";

void test("the reader passes one line per event the shell must act on, and drops repeated switches", async (t) => {
  const awk = pickAwk(t);
  const out = await runAwk(awk, (write) => Promise.resolve(write(readFileSync(FIXTURE, "utf8"))));
  assert.deepEqual(out, [
    `switch 128 0xffff88800afc6000 ${POB} 13.590416`,
    // Five more switches of 1347 to the same page table within a second: queued before the filter.
    `switch 1347 0xffff88800afc2000 ${POB} 1165.063830`,
    // The tail of a line a timed-out read cut (the old reader): named, never taken for an event.
    `odd 347 task="aide" pob=${POB}`,
    "exit 936 157.604126",
    "exec 976 157.655891",
  ]);
});

void test("a switch passes again a second later (a failed report is retried) and after its PID's exit", async (t) => {
  const awk = pickAwk(t);
  const sw = (at: string, pid = 128) => `dd-125     [000]   ${at}: ids_switch_mm: (switch_mm_irqs_off+0x0/0x470) pgd=0xffff88800afc6000 pid=${pid} task="ids-loop" pob=${POB}\n`;
  const out = await runAwk(awk, (write) => {
    write(sw("20.000000") + sw("20.999000") + sw("21.000001") + sw("21.100000"));
    write("ids-loop-128     [000] .....    21.200000: sched_process_exit: comm=ids-loop pid=128 prio=120\n");
    write(sw("21.300000"));
    return Promise.resolve();
  });
  assert.deepEqual(out, [
    `switch 128 0xffff88800afc6000 ${POB} 20.000000`,
    `switch 128 0xffff88800afc6000 ${POB} 21.000001`,
    "exit 128 21.200000",
    `switch 128 0xffff88800afc6000 ${POB} 21.300000`,
  ]);
});

void test("a line that arrives in two pieces, with a pause between them, comes out whole and once", async (t) => {
  const awk = pickAwk(t);
  const line = readFileSync(FIXTURE, "utf8").split("\n")[3] + "\n";
  let before = "";
  const out = await runAwk(awk, async (write, outputSoFar) => {
    write(line.slice(0, 90));
    // Longer than busybox read's old one-second timeout, which cut such lines.
    await sleep(1200);
    before = outputSoFar();
    write(line.slice(90));
  });
  assert.equal(before, "", "nothing may come out of half a line");
  assert.deepEqual(out, [`switch 1347 0xffff88800afc2000 ${POB} 1165.063830`]);
});

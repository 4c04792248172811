// The labs' private Tripwire, for real (Debian's tripwire): keys, signed config and policy, a
// baseline over a small tree, a clean check, then a changed file reported as a violation; the
// abortable set-up; and the picking of whole directories that hold about N files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseObjectsScanned, pickTrees, printTripwireReport, setUpTripwire, setUpTripwireAsync, tripwireCheckArgv, tripwireConfigText, tripwirePolicyText } from "../../../lab/common/tripwire.js";

void test("the config and policy texts keep everything in the instance's directory, and refuse policy syntax in paths", () => {
  const cfg = tripwireConfigText("/var/tmp/tw1");
  assert.match(cfg, /^POLFILE\s+=\/var\/tmp\/tw1\/tw\.pol$/m);
  assert.match(cfg, /^SYSLOGREPORTING =false$/m);
  assert.doesNotMatch(cfg, /\/etc\/tripwire|\/var\/lib\/tripwire/);
  assert.equal(tripwirePolicyText(["/a", "/b/c"]), '(rulename = "offloadcage lab", severity = 100)\n{\n  /a -> $(ReadOnly) ;\n  /b/c -> $(ReadOnly) ;\n}\n');
  assert.throws(() => tripwirePolicyText(["/a;b"]), /tree must be an absolute path without spaces or policy syntax characters, got "\/a;b"/);
  assert.throws(() => tripwirePolicyText([]), /at least one tree/);
  assert.throws(() => tripwireConfigText("relative"), /dir must be an absolute path/);
  assert.equal(parseObjectsScanned("Total objects scanned:  5909\nTotal violations found:  0"), 5909);
  assert.equal(parseObjectsScanned("nothing"), null);
});

void test("a real Tripwire: baseline, clean check, then a changed file is a violation", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-tripwire-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tree = join(dir, "tree");
  mkdirSync(tree);
  for (let i = 0; i < 20; i++) writeFileSync(join(tree, `f${i}`), `file ${i}\n`);
  const inst = setUpTripwire(join(dir, "tw"), [tree]);
  const check = async (report: string): Promise<number> => {
    const [file, ...args] = tripwireCheckArgv(inst, report);
    return promisify(execFile)(file as string, args).then(
      () => 0,
      (err: { code?: number }) => err.code ?? -1,
    );
  };
  assert.equal(await check(join(inst.dir, "clean.twr")), 0);
  assert.equal(parseObjectsScanned(printTripwireReport(inst, join(inst.dir, "clean.twr"))), 21);
  writeFileSync(join(tree, "f3"), "tampered\n");
  // Exit code bit 4: objects changed.
  assert.equal((await check(join(inst.dir, "changed.twr"))) & 4, 4);
});

/** This process's children (twadmin rewrites its own command line to hide the passphrase, so they are found by parent). */
function children(): string[] {
  const out: string[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid) out.push(`${d} ${stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))}`);
    } catch {
      // gone
    }
  }
  return out;
}

void test("pickTrees: whole directories in name order up to the target, descending into one too big, skipping names a policy cannot hold", (t) => {
  const root = mkdtempSync(join(tmpdir(), "oc-tripwire-pick-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const files = (dir: string, n: number, bytes = 10): void => {
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < n; i++) writeFileSync(join(dir, `f${i}`), "x".repeat(bytes));
  };
  files(join(root, "a"), 100);
  files(join(root, "b", "b1"), 150);
  files(join(root, "b", "b2"), 150);
  files(join(root, "c d"), 50);
  files(join(root, "e"), 40, 5);
  // a: 100 whole; b (300) would overshoot the 150 left: b1 whole (150) reaches 250.
  assert.deepEqual(pickTrees(root, 250), { dirs: [join(root, "a"), join(root, "b", "b1")], files: 250, bytes: 2500 });
  // Everything a policy can name: "c d" has a space.
  assert.deepEqual(pickTrees(root, 10_000), { dirs: [join(root, "a"), join(root, "b"), join(root, "e")], files: 440, bytes: 4200 });
});

void test("setUpTripwireAsync: the same instance as the blocking set-up, checks clean; aborted, it stops its child at once", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "oc-tripwire-async-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tree = join(dir, "tree");
  mkdirSync(tree);
  for (let i = 0; i < 10; i++) writeFileSync(join(tree, `f${i}`), `file ${i}\n`);
  const inst = await setUpTripwireAsync(join(dir, "tw"), [tree], new AbortController().signal);
  assert.ok(existsSync(inst.dbFile), "baseline database written");
  const [file, ...args] = tripwireCheckArgv(inst, join(inst.dir, "clean.twr"));
  await promisify(execFile)(file as string, args);
  assert.equal(parseObjectsScanned(printTripwireReport(inst, join(inst.dir, "clean.twr"))), 11);

  // Key generation takes seconds: abort during it.
  const abort = new AbortController();
  const aborted = join(dir, "tw-aborted");
  const setUp = setUpTripwireAsync(aborted, [tree], abort.signal);
  await new Promise((r) => setTimeout(r, 300));
  const running = children();
  abort.abort();
  await assert.rejects(setUp, /aborted/i);
  assert.match(running.join(","), /twadmin/, "a set-up step was running");
  assert.deepEqual(children(), [], "no set-up step left running");
  await assert.rejects(setUpTripwireAsync(join(dir, "tw-pre-aborted"), [tree], AbortSignal.abort()), /aborted/i);
});

// The labs' private Tripwire, for real (Debian's tripwire): keys, signed config and policy, a
// baseline over a small tree, a clean check, then a changed file reported as a violation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseObjectsScanned, printTripwireReport, setUpTripwire, tripwireCheckArgv, tripwireConfigText, tripwirePolicyText } from "../../../lab/common/tripwire.js";

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

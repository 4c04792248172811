import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { runValidate } from "../../config/validateCommand.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

class Capture extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString("utf8");
    done();
  }
}

async function validate(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture();
  const err = new Capture();
  const code = await runValidate(args, out, err);
  return { code, out: out.text, err: err.text };
}

void test("a valid file: 'FILE: ok (N cages)', exit 0", async () => {
  const file = `${repoRoot}examples/cages.yaml`;
  assert.deepEqual(await validate([file]), { code: 0, out: `${file}: ok (4 cages)\n`, err: "" });
});

void test("an invalid file: every problem as FILE:LINE: path: message, exit 2", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cage-validate-"));
  try {
    const file = join(dir, "bad.yaml");
    writeFileSync(
      file,
      ["cages:", "  - name: a", "    vm: { kind: process, match: [{ comm: x }] }", "    cpu: { cap: 50 }", "  - name: b", "    vm: { kind: xen, domain: 1 }", "    cpu: { cap: -5, idsCap: 1 }", "    memory: { base: 1G, floor: 2G }"].join("\n"),
    );
    const r = await validate([file]);
    assert.equal(r.code, 2);
    assert.equal(r.out, "");
    assert.equal(r.err, `${file}:7: cages[1].cpu.cap: must be > 0\n${file}:8: cages[1].memory.floor: must be <= base (2G > 1G)\n`);

    const json = join(dir, "bad.json");
    writeFileSync(json, '{\n  "cages": [\n    { "name": "a", "vm": { "kind": "xen", "domain": 1 }, "cpu": { "cap": 0 } }\n  ]\n}\n');
    assert.deepEqual(await validate([json]), { code: 2, out: "", err: `${json}:3: cages[0].cpu.cap: must be > 0\n` });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test("a missing file or a directory: exit 2 with a clear message", async () => {
  assert.deepEqual(await validate(["/nonexistent/x.yaml"]), { code: 2, out: "", err: "/nonexistent/x.yaml: cannot read config file: no such file\n" });
  assert.deepEqual(await validate(["/tmp"]), { code: 2, out: "", err: "/tmp: cannot read config file: is a directory, not a file\n" });
});

void test("bad usage: exit 2 with the usage line", async () => {
  const none = await validate([]);
  assert.equal(none.code, 2);
  assert.match(none.err, /^cage validate: missing FILE\nusage: cage validate FILE/);
  const two = await validate(["a.yaml", "b.yaml"]);
  assert.equal(two.code, 2);
  assert.match(two.err, /^cage validate: expected exactly one FILE, got "a\.yaml" "b\.yaml"\n/);
  const help = await validate(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: cage validate FILE/);
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { runValidate } from "../../cli/validateCommand.js";

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
  assert.match(none.err, /^cage validate: FILE is missing\nusage: cage validate FILE/);
  const two = await validate(["a.yaml", "b.yaml"]);
  assert.equal(two.code, 2);
  assert.match(two.err, /^cage validate: unexpected argument "b\.yaml"\n/);
  const flag = await validate(["a.yaml", "--strict"]);
  assert.equal(flag.code, 2);
  assert.match(flag.err, /^cage validate: unknown option "--strict"\n/);
  const help = await validate(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: cage validate FILE/);
});

void test("--json: the result as one object on stdout, every problem with file, line, path and message; exit codes as without", async () => {
  const good = `${repoRoot}examples/cages.yaml`;
  const ok = await validate([good, "--json"]);
  assert.deepEqual({ ...ok, out: JSON.parse(ok.out) as unknown }, { code: 0, out: { file: good, valid: true, cages: 4, problems: [] }, err: "" });
  const dir = mkdtempSync(join(tmpdir(), "cage-validate-"));
  try {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, ["cages:", "  - name: b", "    vm: { kind: xen, domain: 1 }", "    cpu: { cap: -5 }", "    memory: { base: 1G, floor: 2G }"].join("\n"));
    const bad = await validate(["--json", file]);
    assert.equal(bad.code, 2);
    assert.equal(bad.err, "");
    assert.deepEqual(JSON.parse(bad.out), {
      file,
      valid: false,
      cages: null,
      problems: [
        { file, line: 4, path: "cages[0].cpu.cap", message: "must be > 0" },
        { file, line: 5, path: "cages[0].memory.floor", message: "must be <= base (2G > 1G)" },
      ],
    });
    const missing = await validate(["--json", "/nonexistent/x.yaml"]);
    assert.equal(missing.code, 2);
    assert.deepEqual(JSON.parse(missing.out), { file: "/nonexistent/x.yaml", valid: false, cages: null, problems: [{ file: "/nonexistent/x.yaml", line: null, path: "", message: "cannot read config file: no such file" }] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

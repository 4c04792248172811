// scripts/build.sh on a small project with this repository's compiler options: a built tree is
// not recompiled, and a changed, added or deleted source (or a deleted output) never leaves a
// stale dist/ behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Compiled to dist/test/scripts/: the repository root is three levels up.
const root = fileURLToPath(new URL("../../../", import.meta.url));

interface Build {
  status: number | null;
  output: string;
}

function makeProject(): string {
  const dir = mkdtempSync(join(tmpdir(), "oc-build-test-"));
  mkdirSync(join(dir, "scripts"));
  mkdirSync(join(dir, "src"));
  copyFileSync(join(root, "scripts", "build.sh"), join(dir, "scripts", "build.sh"));
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  const repoConfig = JSON.parse(readFileSync(join(root, "tsconfig.json"), "utf8")) as { compilerOptions: Record<string, unknown> };
  // No @types/node to load: the sources below need none, and each compile stays short.
  const config = { compilerOptions: { ...repoConfig.compilerOptions, types: [] }, include: ["src"] };
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config, null, 2));
  writeFileSync(join(dir, "src", "a.ts"), 'export const a: string = "first";\n');
  writeFileSync(join(dir, "src", "b.ts"), 'import { a } from "./a.js";\nexport const b = a.length;\n');
  return dir;
}

function build(dir: string): Build {
  const r = spawnSync("bash", [join(dir, "scripts", "build.sh")], { cwd: dir, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function assertBuilt(r: Build): void {
  assert.equal(r.status, 0, `build failed: ${r.output}`);
}

const mtimeMs = (file: string): number => statSync(file).mtimeMs;

test("build.sh compiles a clean tree, then leaves a built one alone", () => {
  const dir = makeProject();
  try {
    assertBuilt(build(dir));
    const outA = join(dir, "dist", "src", "a.js");
    assert.match(readFileSync(outA, "utf8"), /"first"/);
    assert.ok(existsSync(join(dir, "dist", ".tsbuildinfo")));
    const before = mtimeMs(outA);
    assertBuilt(build(dir));
    assert.equal(mtimeMs(outA), before, "an unchanged tree was recompiled");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("build.sh recompiles a changed source, an added one and a deleted output; drops a deleted source's output", () => {
  const dir = makeProject();
  try {
    assertBuilt(build(dir));
    const outA = join(dir, "dist", "src", "a.js");
    const outB = join(dir, "dist", "src", "b.js");

    writeFileSync(join(dir, "src", "a.ts"), 'export const a: string = "second";\n');
    assertBuilt(build(dir));
    assert.match(readFileSync(outA, "utf8"), /"second"/);

    writeFileSync(join(dir, "src", "c.ts"), "export const c = 3;\n");
    assertBuilt(build(dir));
    assert.ok(existsSync(join(dir, "dist", "src", "c.js")), "an added source was not compiled");

    // Timestamps alone say "up to date" here: the build info is newer than every source.
    unlinkSync(outB);
    assertBuilt(build(dir));
    assert.match(readFileSync(outB, "utf8"), /a\.length/);

    unlinkSync(join(dir, "src", "c.ts"));
    assertBuilt(build(dir));
    assert.equal(existsSync(join(dir, "dist", "src", "c.js")), false, "a deleted source's output was kept");
    assert.equal(existsSync(join(dir, "dist", "src", "c.js.map")), false, "a deleted source's source map was kept");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("build.sh checks again when a source other sources import is deleted", () => {
  const dir = makeProject();
  try {
    assertBuilt(build(dir));
    unlinkSync(join(dir, "src", "a.ts"));
    const r = build(dir);
    assert.notEqual(r.status, 0, "b.ts imports the deleted a.ts, yet the build passed");
    assert.match(r.output, /src\/b\.ts.*TS2307/);
    assert.equal(existsSync(join(dir, "dist", "src", "a.js")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("build.sh fails on a type error every time until it is fixed", () => {
  const dir = makeProject();
  try {
    assertBuilt(build(dir));
    writeFileSync(join(dir, "src", "a.ts"), "export const a: string = 1;\n");
    for (let i = 0; i < 2; i++) {
      const r = build(dir);
      assert.notEqual(r.status, 0, `run ${i + 1} passed a type error`);
      assert.match(r.output, /src\/a\.ts.*TS2322/);
    }
    writeFileSync(join(dir, "src", "a.ts"), 'export const a: string = "fixed";\n');
    assertBuilt(build(dir));
    assert.match(readFileSync(join(dir, "dist", "src", "a.js"), "utf8"), /"fixed"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("build.sh rebuilds everything after node_modules was reinstalled", () => {
  const dir = makeProject();
  try {
    assertBuilt(build(dir));
    const outA = join(dir, "dist", "src", "a.js");
    // A project of its own: its node_modules/.package-lock.json can be made newer than the build.
    rmSync(join(dir, "node_modules"));
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(join(root, "node_modules", "typescript"), join(dir, "node_modules", "typescript"));
    mkdirSync(join(dir, "node_modules", ".bin"));
    symlinkSync(join(root, "node_modules", "typescript", "bin", "tsc"), join(dir, "node_modules", ".bin", "tsc"));
    writeFileSync(join(dir, "node_modules", ".package-lock.json"), "{}\n");
    const past = new Date(Date.now() - 60_000);
    utimesSync(outA, past, past);
    assertBuilt(build(dir));
    assert.ok(mtimeMs(outA) > past.getTime() + 1000, "a reinstall did not rebuild");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("build.sh builds the libbpf CPU program when its sources changed, and only then", () => {
  const dir = makeProject();
  try {
    mkdirSync(join(dir, "bpf"));
    // The program, its loader and the headers they share.
    for (const f of readdirSync(join(root, "bpf")).filter((name) => /\.[ch]$/.test(name))) copyFileSync(join(root, "bpf", f), join(dir, "bpf", f));
    assertBuilt(build(dir));
    const loader = join(dir, "dist", "bpf", "cpuTime");
    assert.ok(statSync(loader).mode & 0o100, "dist/bpf/cpuTime is built and executable");
    // Bad arguments: its usage, exit 2 (it needs no root or kernel for that).
    const r = spawnSync(loader, ["100"], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^cpuTime: expected 3 or 4 arguments, got 1\nusage: cpuTime INTERVAL_MS/);
    const before = mtimeMs(loader);
    assertBuilt(build(dir));
    assert.equal(mtimeMs(loader), before, "unchanged C sources were rebuilt");
    /** Makes one source newer than the loader, builds, and returns whether the loader was rebuilt. */
    const rebuiltAfterTouching = (file: string): boolean => {
      const built = mtimeMs(loader);
      const later = new Date(Date.now() + 2000);
      utimesSync(join(dir, "bpf", file), later, later);
      assertBuilt(build(dir));
      return mtimeMs(loader) > built;
    };
    assert.ok(rebuiltAfterTouching("cpuTime.c"), "a changed loader source was not rebuilt");
    // Sources older than the loader again, then only a header changed.
    const past = new Date(Date.now() - 60_000);
    for (const f of readdirSync(join(dir, "bpf"))) utimesSync(join(dir, "bpf", f), past, past);
    const rebuilt = mtimeMs(loader);
    assertBuilt(build(dir));
    assert.equal(mtimeMs(loader), rebuilt, "unchanged C sources were rebuilt");
    assert.ok(rebuiltAfterTouching("cpuState.h"), "a changed header was not rebuilt");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// The import-direction lint rule flags wrong-way imports and lets the layered ones through.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Linter } from "eslint";
// @ts-expect-error: the lint rule is plain JavaScript beside eslint.config.js, without types.
import { layersPlugin } from "../../eslint.layers.js";

// Compiled to dist/test/: the repository root is two levels up.
const root = fileURLToPath(new URL("../../", import.meta.url));

function problems(file: string, code: string): string[] {
  const linter = new Linter({ configType: "flat", cwd: root });
  const config = [{ files: ["**/*.js"], plugins: { layers: layersPlugin as never }, rules: { "layers/direction": "error" as const } }];
  return linter.verify(code, config, { filename: join(root, file) }).map((m) => m.message);
}

test("a collector importing cli/ or an actuator is flagged, naming both files", () => {
  const [m] = problems("collectors/cpu/main.js", 'import { x } from "../../cli/cage.js";');
  assert.match(m ?? "", /collectors\/cpu\/main\.js may not import cli\/cage\.js/);
  assert.equal(problems("pipeline/main.js", 'import { x } from "../actuators/cpu/main.js";').length, 1);
  assert.equal(problems("actuators/cpu/main.js", 'import { x } from "../../collectors/proc/a.js";').length, 1);
  assert.equal(problems("host/proc/a.js", 'export * from "../../runtime/logger.js";').length, 1);
  assert.equal(problems("lab/cpu/a.js", 'const m = import("../../cli/cage.js");').length, 1);
});

test("one actuator importing another is flagged; actuators/common/ is shared", () => {
  assert.equal(problems("actuators/limiter/a.js", 'import { x } from "../cpu/cageCpuPolicy.js";').length, 1);
  assert.deepEqual(problems("actuators/limiter/a.js", 'import { x } from "../common/cpuBackend.js";'), []);
});

test("imports down the layers pass", () => {
  assert.deepEqual(problems("collectors/cpu/main.js", 'import { a } from "../../runtime/processEntry.js"; import { b } from "../../host/proc/processTable.js"; import { c } from "./cpuWindows.js";'), []);
  assert.deepEqual(problems("cli/cage.js", 'import { a } from "../lab/cpu/labCpuCommand.js";'), []);
  assert.deepEqual(problems("test/x.test.js", 'import { a } from "../cli/cage.js";'), []);
});

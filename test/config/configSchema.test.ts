import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { CONFIG_SCHEMA, configSchemaPath, publishedSchemaText, type RawConfig, type RawCpuBackend, type RawMemory, type RawVm } from "../../config/configSchema.js";
import { DEFAULT_AGENT, DEFAULT_BALLOON_ACTUATOR, DEFAULT_GUARDIAN_START_TIMEOUT_MS } from "../../config/defaults.js";
import type { CpuBackendSpec } from "../../config/cageConfig.js";

/** Compiles only when A and B are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function sameType<A, B>(_proof: Equal<A, B>): void {}

void test("docs/config.schema.json is CONFIG_SCHEMA published, byte for byte", () => {
  const published = readFileSync(configSchemaPath(), "utf8");
  assert.ok(
    published === publishedSchemaText(),
    "docs/config.schema.json differs from config/configSchema.ts; after npx tsc, regenerate it with\n" +
      "  node -e 'import(\"./dist/config/configSchema.js\").then((m) => process.stdout.write(m.publishedSchemaText()))' > docs/config.schema.json",
  );
  assert.deepEqual(JSON.parse(published), CONFIG_SCHEMA);
});

void test("the schema's descriptions state the defaults of defaults.ts", () => {
  const d = CONFIG_SCHEMA.$defs;
  assert.match(d.agent.properties.cpuIntervalMs.description, new RegExp(`Default ${DEFAULT_AGENT.cpuIntervalMs}\\.$`));
  assert.match(d.balloonActuator.properties.maxStep.description, new RegExp(`Default ${DEFAULT_BALLOON_ACTUATOR.maxStepBytes / 1024 ** 2}MiB\\.$`));
  assert.match(d.cpuActuator.properties.guardianStartTimeoutMs.description, new RegExp(`Default ${DEFAULT_GUARDIAN_START_TIMEOUT_MS}\\.$`));
  assert.match(d.limiterActuator.properties.guardianStartTimeoutMs.description, new RegExp(`Default ${DEFAULT_GUARDIAN_START_TIMEOUT_MS}\\.$`));
});

void test("the raw types derived from the schema are the shapes the file is written in", () => {
  // Checked by tsc: a schema change that alters these shapes fails the build here.
  sameType<RawCpuBackend, { kind: "cgroup"; path: string } | { kind: "virsh"; domain: string; uri?: string }>(true);
  sameType<CpuBackendSpec, { kind: "cgroup"; path: string } | { kind: "virsh"; domain: string; uri: string | null }>(true);
  sameType<RawVm["kind"], "process" | "cgroup" | "qemu" | "xen">(true);
  sameType<Extract<RawVm, { kind: "xen" }>, { kind: "xen"; domain: string | number }>(true);
  sameType<RawMemory["backend"], "auto" | "qmp" | "xl" | "virsh" | "cgroup" | undefined>(true);
  sameType<RawMemory["base"], number | string>(true);
  sameType<NonNullable<RawConfig["agent"]>["otlp"], boolean | { endpoint: string; intervalMs?: number } | undefined>(true);
  sameType<keyof NonNullable<NonNullable<RawConfig["agent"]>["actuators"]>, "balloon" | "cpu" | "limiter">(true);
  // And at run time: every cpuBackend branch is a kind constant the derived type knows.
  const kinds: RawCpuBackend["kind"][] = CONFIG_SCHEMA.$defs.cpuBackend.oneOf.map((b) => b.properties.kind.const);
  assert.deepEqual(kinds, ["cgroup", "virsh"]);
});

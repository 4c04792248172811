import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { CONFIG_SCHEMA, configSchemaPath, publishedSchemaText, type RawCage, type RawConfig, type RawCpuBackend, type RawExternalActuator, type RawMemory, type RawVm } from "../../config/configSchema.js";
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
  sameType<RawVm["kind"], "process" | "cgroup" | "qemu" | "xen" | "libvirt">(true);
  sameType<Extract<RawVm, { kind: "libvirt" }>, { kind: "libvirt"; domain: string; uri?: string }>(true);
  sameType<Extract<RawVm, { kind: "xen" }>, { kind: "xen"; domain: string | number }>(true);
  sameType<RawMemory["backend"], "auto" | "qmp" | "xl" | "virsh" | "cgroup" | "systemd" | undefined>(true);
  sameType<RawCage["units"], { ids?: string; vm?: string } | undefined>(true);
  sameType<RawMemory["base"], number | string>(true);
  sameType<NonNullable<RawConfig["agent"]>["otlp"], boolean | { endpoint: string; intervalMs?: number } | undefined>(true);
  sameType<keyof NonNullable<NonNullable<RawConfig["agent"]>["actuators"]>, "balloon" | "cpu" | "limiter" | "external">(true);
  sameType<RawExternalActuator["name"], string>(true);
  // And at run time: every cpuBackend branch is a kind constant the derived type knows.
  const kinds: RawCpuBackend["kind"][] = CONFIG_SCHEMA.$defs.cpuBackend.oneOf.map((b) => b.properties.kind.const);
  assert.deepEqual(kinds, ["cgroup", "virsh"]);
});

void test("docs/config.md: the files it names exist, and its cpu.backend row lists every back-end kind", () => {
  const repoRoot = new URL("../../../", import.meta.url);
  const page = readFileSync(new URL("docs/config.md", repoRoot), "utf8");
  const named = new Set([...page.matchAll(/`((?:config|actuators|protocol|cli)\/[\w/]+\.ts)`/g)].map((m) => m[1] as string));
  assert.ok(named.size >= 10, `expected docs/config.md to name the config files, found ${[...named].join(", ")}`);
  for (const file of named) assert.ok(existsSync(new URL(file, repoRoot)), `docs/config.md names ${file}, which does not exist`);
  const row = page.split("\n").find((l) => l.startsWith("| `backend` | `{kind:"));
  assert.ok(row !== undefined, "docs/config.md has no cpu.backend row");
  for (const branch of CONFIG_SCHEMA.$defs.cpuBackend.oneOf) assert.ok(row.includes(`kind: ${branch.properties.kind.const}`), `the cpu.backend row does not list ${branch.properties.kind.const}`);
});

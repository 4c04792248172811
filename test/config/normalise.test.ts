import { test } from "node:test";
import assert from "node:assert/strict";
import type { RawConfig, RawCpuBackend } from "../../config/configSchema.js";
import { DEFAULT_AGENT, DEFAULT_BALLOON_ACTUATOR, DEFAULT_CAGE_BALLOON, DEFAULT_CPU_ACTUATOR, DEFAULT_INFLUX, DEFAULT_LIMITER_ACTUATOR, DEFAULT_PAGE_CACHE } from "../../config/defaults.js";
import { normalise, normaliseBalloonActuator, normaliseCpuActuator, normaliseCpuBackend, normaliseLimiterActuator } from "../../config/normalise.js";

const cage = { name: "a", vm: { kind: "cgroup", path: "/sys/fs/cgroup/unified/a//" }, cpu: { cap: 100 } } as const satisfies RawConfig["cages"][number];

void test("an empty agent section is DEFAULT_AGENT", () => {
  assert.deepEqual(normalise({ cages: [] }).agent, DEFAULT_AGENT);
  assert.deepEqual(normalise({ agent: {}, cages: [cage] }).cages, [{ name: "a", vm: { kind: "cgroup", path: "/sys/fs/cgroup/unified/a" }, ids: [], cpu: { cap: 100, idsCap: null, weight: null }, memory: null }]);
});

void test("sections given as true or {} get their defaults; a trailing slash leaves the influx URL", () => {
  const agent = normalise({ agent: { influx: { url: "http://h:8086/" }, pageCache: true, actuators: { cpu: {}, limiter: { mode: "sigstop" }, balloon: {} } }, cages: [] }).agent;
  assert.deepEqual(agent.influx, { ...DEFAULT_INFLUX, url: "http://h:8086" });
  assert.deepEqual(agent.pageCache, DEFAULT_PAGE_CACHE);
  assert.deepEqual(agent.actuators, { cpu: DEFAULT_CPU_ACTUATOR, limiter: { ...DEFAULT_LIMITER_ACTUATOR, mode: "sigstop" }, balloon: DEFAULT_BALLOON_ACTUATOR, external: [] });
  assert.deepEqual(normalise({ agent: { influx: true }, cages: [] }).agent.influx, DEFAULT_INFLUX);
});

void test("a memory section: sizes in bytes, failsafe defaults to base, balloon defaults, and page cache on", () => {
  const config = normalise({ cages: [{ ...cage, memory: { base: "1GiB", floor: 512 } }] });
  assert.deepEqual(config.cages[0]?.memory, { baseBytes: 1024 ** 3, floorBytes: 512, failsafeBytes: 1024 ** 3, balloon: DEFAULT_CAGE_BALLOON });
  assert.deepEqual(config.agent.pageCache, DEFAULT_PAGE_CACHE);
});

void test("actuator sections override only what they give", () => {
  assert.deepEqual(normaliseCpuActuator({ periodMs: 250, idsHoldMs: 3000 }), { ...DEFAULT_CPU_ACTUATOR, periodMs: 250, idsHoldMs: 3000 });
  assert.deepEqual(normaliseLimiterActuator({ dryRun: true, failsafe: "release" }), { ...DEFAULT_LIMITER_ACTUATOR, dryRun: true, failsafe: "release" });
  assert.deepEqual(normaliseBalloonActuator({ tolerance: "4MiB", dom0: { base: "1GiB", max: 2 * 1024 ** 3 } }), {
    ...DEFAULT_BALLOON_ACTUATOR,
    toleranceBytes: 4 * 1024 ** 2,
    dom0: { baseBytes: 1024 ** 3, maxBytes: 2 * 1024 ** 3 },
  });
});

void test("a size that passed the schema but does not fit throws, naming it", () => {
  assert.throws(() => normaliseBalloonActuator({ maxStep: "99999999999GiB" }), /size "99999999999GiB" passed the schema but does not parse/);
});

void test("cpu.backend is filled from its schema branch: absent fields null, cgroup paths trimmed", () => {
  assert.deepEqual(normaliseCpuBackend({ kind: "virsh", domain: "web1" }), { kind: "virsh", domain: "web1", uri: null });
  assert.deepEqual(normaliseCpuBackend({ kind: "virsh", domain: "web1", uri: "qemu:///system" }), { kind: "virsh", domain: "web1", uri: "qemu:///system" });
  assert.deepEqual(normaliseCpuBackend({ kind: "cgroup", path: "/sys/fs/cgroup/cpu/b/" }), { kind: "cgroup", path: "/sys/fs/cgroup/cpu/b" });
  assert.throws(() => normaliseCpuBackend({ kind: "vmware" } as unknown as RawCpuBackend), /cpu\.backend\.kind "vmware" is not in the schema/);
});

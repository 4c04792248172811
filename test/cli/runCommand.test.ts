// planReload: which children a config reload stops, restarts, starts and leaves running.
import { test } from "node:test";
import assert from "node:assert/strict";
import { planReload } from "../../cli/runCommand.js";
import type { ChildSpec } from "../../runtime/supervisor.js";

const CFG = "/run/oc/cages.active.yaml";
const spec = (name: string, args: string[], env: NodeJS.ProcessEnv = { LVL: "info" }): ChildSpec => ({ name, command: "/usr/bin/node", args, env });

const running = [
  spec("collector-cpu", ["cpu.js", "--interval-ms", "100"]),
  spec("collector-memory", ["memory.js", "--config", CFG]),
  spec("pipeline", ["pipeline.js", "--config", CFG]),
  spec("actuator-cpu", ["cpu-actuator.js", "--config", CFG]),
];

test("an unchanged config and command lines: nothing restarts", () => {
  const plan = planReload(running, running, CFG, false);
  assert.deepEqual(plan, { stop: [], restart: [], start: [], unchanged: ["collector-cpu", "collector-memory", "pipeline", "actuator-cpu"] });
});

test("a changed config restarts the children reading it, not the others", () => {
  const plan = planReload(running, running, CFG, true);
  assert.deepEqual(plan.restart.map((s) => s.name), ["collector-memory", "pipeline", "actuator-cpu"]);
  assert.deepEqual(plan.unchanged, ["collector-cpu"]);
});

test("changed arguments or environment restart that child; a dropped actuator stops; a new one starts", () => {
  const wanted = [
    spec("collector-cpu", ["cpu.js", "--interval-ms", "200"]),
    spec("collector-memory", ["memory.js", "--config", CFG], { LVL: "debug" }),
    spec("pipeline", ["pipeline.js", "--config", CFG]),
    spec("actuator-limiter", ["limiter.js", "--config", CFG]),
  ];
  const plan = planReload(running, wanted, CFG, false);
  assert.deepEqual(plan.stop, ["actuator-cpu"]);
  assert.deepEqual(plan.restart.map((s) => s.name), ["collector-cpu", "collector-memory"]);
  assert.deepEqual(plan.start.map((s) => s.name), ["actuator-limiter"]);
  assert.deepEqual(plan.unchanged, ["pipeline"]);
});

void test("the xentrace collector runs for Xen VMs and Xen IDS-VMs, with --cr3 when an IDS-VM is charged by CR3", async () => {
  const { agentChildren } = await import("../../cli/runCommand.js");
  const { parseConfigText } = await import("../../config/loadConfig.js");
  const { defaultEndpoints } = await import("../../protocol/endpoints.js");
  const xentraceArgs = (yaml: string): string[] | undefined => {
    const config = parseConfigText(yaml, "cages.yaml");
    const children = agentChildren(config, { cfg: "/run/x/cages.json", runtimeDir: "/run/x", endpoints: defaultEndpoints("/run/x"), demo: false });
    return children.find((c) => c.name === "collector-xentrace")?.args.slice(1);
  };
  const cage = (vm: string, ids: string): string => `cages:\n  - name: c\n    vm: ${vm}\n    ids: ${ids}\n    cpu: { cap: 50, idsCap: 25 }\n`;
  const endpoint = ["--endpoint", defaultEndpoints("/run/x").collectors.xentrace as string];
  assert.deepEqual(xentraceArgs(cage("{ kind: xen, domain: web }", "[]")), endpoint);
  assert.deepEqual(xentraceArgs(cage("{ kind: process, match: [{ comm: app }] }", "[{ vm: { kind: xen, domain: ids } }]")), endpoint);
  assert.deepEqual(xentraceArgs(cage("{ kind: xen, domain: web }", "[{ vm: { kind: xen, domain: ids }, cr3From: helper }]")), [...endpoint, "--cr3"]);
  assert.equal(xentraceArgs(cage("{ kind: process, match: [{ comm: app }] }", "[{ comm: aide, uid: 0 }]")), undefined);
});

void test("the memory collector takes its membership from the pipeline's aggregates endpoint, not its own /proc scan", async () => {
  const { agentChildren } = await import("../../cli/runCommand.js");
  const { parseConfigText } = await import("../../config/loadConfig.js");
  const { defaultEndpoints } = await import("../../protocol/endpoints.js");
  const config = parseConfigText("cages:\n  - name: c\n    vm: { kind: process, match: [{ comm: app }] }\n    cpu: { cap: 50 }\n", "cages.yaml");
  const endpoints = defaultEndpoints("/run/x");
  const children = agentChildren(config, { cfg: "/run/x/cages.json", runtimeDir: "/run/x", endpoints, demo: false });
  const memory = children.find((c) => c.name === "collector-memory");
  assert.deepEqual(memory?.args.slice(1), ["--config", "/run/x/cages.json", "--endpoint", endpoints.collectors.memory, "--members", endpoints.aggregates]);
  assert.ok(children.some((c) => c.name === "pipeline"), "the pipeline that publishes agg.members runs with it");
});

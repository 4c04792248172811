/** OTLP/HTTP export, against a tiny local HTTP server standing in as the OTLP receiver. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Metric } from "../../pipeline/metricNames.js";
import { otlpMetricsUrl } from "../../pipeline/otelMetrics.js";
import { PipelineService } from "../../pipeline/pipelineService.js";
import { agentConfig, cageByPid, capturingLogger, TEST_STATE_DIR, waitFor } from "./pipelineHarness.js";

after(() => rmSync(TEST_STATE_DIR, { recursive: true, force: true }));

interface ReceivedExport {
  method: string;
  path: string;
  contentType: string;
  body: Buffer;
}

/** Stands in for an OpenTelemetry Collector's OTLP/HTTP receiver; the first `failFirst` posts get a 503. */
async function startFakeOtlpReceiver(failFirst: number): Promise<{ server: Server; port: number; received: ReceivedExport[]; refused: number }> {
  const state = { received: [] as ReceivedExport[], refused: 0 };
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (state.refused < failFirst) {
        state.refused++;
        res.statusCode = 503;
        res.end();
        return;
      }
      state.received.push({ method: req.method ?? "", path: req.url ?? "", contentType: req.headers["content-type"] ?? "", body: Buffer.concat(chunks) });
      res.statusCode = 200;
      res.setHeader("content-type", "application/json");
      res.end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    get received() {
      return state.received;
    },
    get refused() {
      return state.refused;
    },
  };
}

void test("metrics reach an OTLP/HTTP receiver at /v1/metrics, also after the receiver refused an export; the resource names the host", async () => {
  const receiver = await startFakeOtlpReceiver(1);
  const { logger } = capturingLogger();
  // Operators' own resource attributes come from the environment and override ours.
  const saved = { attrs: process.env.OTEL_RESOURCE_ATTRIBUTES, name: process.env.OTEL_SERVICE_NAME };
  process.env.OTEL_RESOURCE_ATTRIBUTES = "deployment.environment=lab-7,rack=r12";
  process.env.OTEL_SERVICE_NAME = "offloadcage-lab";
  const service = new PipelineService({
    identity: { host: "otlp-node.dc1", instanceId: "0f0e0d0c-0b0a-5908-8706-050403020100", serviceName: "offloadcage", serviceVersion: "1.2.3", hostWarning: null },
    config: agentConfig([cageByPid("otlp-cage", 1, 2)]),
    endpoints: { collectors: { cpu: "inproc://otlp-test-cpu" }, aggregates: "inproc://otlp-test-aggregates" },
    resolveMembership: () => new Map([["otlp-cage", { vm: [1], ids: [2], startTimes: new Map([[1, 1], [2, 2]]) }]]),
    logger,
    prometheus: null,
    otlp: { endpoint: `http://127.0.0.1:${receiver.port}`, intervalMs: 200 },
  });
  try {
    await service.start();
    await waitFor("an accepted OTLP export", () => receiver.received.length > 0);
    const first = receiver.received[0]!;
    assert.equal(first.method, "POST");
    assert.equal(first.path, "/v1/metrics");
    assert.ok(receiver.refused >= 1, "the receiver refused the first export");
    const body = first.body.toString("latin1"); // JSON or protobuf: the names are plain bytes in both
    assert.ok(body.includes(Metric.cpuCap.name), `body has ${Metric.cpuCap.name}`);
    assert.ok(body.includes("otlp-cage"), "body has the cage attribute value");
    for (const text of ["host.name", "otlp-node.dc1", "service.instance.id", "0f0e0d0c-0b0a-5908-8706-050403020100", "service.version", "1.2.3", "deployment.environment", "lab-7", "rack", "r12", "offloadcage-lab"]) {
      assert.ok(body.includes(text), `the resource has ${text}`);
    }
  } finally {
    for (const [key, value] of [["OTEL_RESOURCE_ATTRIBUTES", saved.attrs], ["OTEL_SERVICE_NAME", saved.name]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await service.stop();
    await new Promise<void>((resolve) => receiver.server.close(() => resolve()));
  }
});

void test("an unreachable OTLP receiver does not stop the pipeline or its shutdown", async () => {
  // Grab a port nobody listens on.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const deadPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const service = new PipelineService({
    config: agentConfig([cageByPid("dead-otlp", 1, 2)]),
    endpoints: { collectors: { cpu: "inproc://otlp-dead-cpu" }, aggregates: "inproc://otlp-dead-aggregates" },
    resolveMembership: () => new Map(),
    logger: capturingLogger().logger,
    prometheus: { host: "127.0.0.1", port: 0 },
    otlp: { endpoint: `http://127.0.0.1:${deadPort}/v1/metrics`, intervalMs: 100 },
  });
  await service.start();
  await new Promise((resolve) => setTimeout(resolve, 350));
  const started = Date.now();
  await service.stop();
  assert.ok(Date.now() - started < 5000, "shutdown is not held up by the dead receiver");
});

void test("otlpMetricsUrl accepts a base URL or the full metrics URL", () => {
  assert.equal(otlpMetricsUrl("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/metrics");
  assert.equal(otlpMetricsUrl("http://collector:4318/"), "http://collector:4318/v1/metrics");
  assert.equal(otlpMetricsUrl("https://x.example/otlp"), "https://x.example/otlp/v1/metrics");
  assert.equal(otlpMetricsUrl("http://127.0.0.1:4318/v1/metrics"), "http://127.0.0.1:4318/v1/metrics");
  assert.throws(() => otlpMetricsUrl("not a url"), { message: 'otlp endpoint "not a url": not a URL' });
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { agentIdentity, agentVersion, uuidV5 } from "../../pipeline/agentIdentity.js";

void test("uuidV5 gives RFC 9562's version 5 UUIDs (the DNS namespace's known value)", () => {
  assert.equal(uuidV5("6ba7b810-9dad-11d1-80b4-00c04fd430c8", "www.example.com"), "2ed6657d-e927-568b-95e1-2665a8aea6a2");
  assert.throws(() => uuidV5("not-a-uuid", "x"), { message: 'uuid v5: namespace "not-a-uuid" is not a UUID' });
});

void test("the instance id is stable per host and runtime directory, and differs between two agents on one host", () => {
  const a = agentIdentity("node-17.dc1", "/run/offloadcage");
  assert.deepEqual(agentIdentity("node-17.dc1", "/run/offloadcage"), a, "a restarted pipeline keeps its id");
  assert.notEqual(agentIdentity("node-17.dc1", "/run/offloadcage-b").instanceId, a.instanceId);
  assert.notEqual(agentIdentity("node-18.dc1", "/run/offloadcage").instanceId, a.instanceId);
  assert.match(a.instanceId, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(a.host, "node-17.dc1");
  assert.equal(a.serviceName, "offloadcage");
  const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { version: string };
  assert.equal(a.serviceVersion, pkg.version);
  assert.equal(agentVersion(), pkg.version);
});

void test("without agent.host the machine's hostname is used; one that is no host name gives a stand-in and a warning", () => {
  const good = agentIdentity(null, "/run/x", () => "build-box");
  assert.equal(good.host, "build-box");
  assert.equal(good.hostWarning, null);
  const bad = agentIdentity(null, "/run/x", () => "bad_host name");
  assert.equal(bad.host, "bad-host-name");
  assert.equal(bad.hostWarning, `agent.host is not set and the machine's hostname "bad_host name" is not a valid host name; using "bad-host-name": set agent.host in the cage file`);
  assert.equal(agentIdentity(null, "/run/x", () => "(none)").host, "none");
  assert.equal(agentIdentity(null, "/run/x", () => "").host, "localhost");
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDomInfo } from "../../../host/libvirt/libvirtDomain.js";
import { checkLibvirtDomain, parseDomState, parseDomUuid, parseVirshEventLine } from "../../../host/libvirt/virshOutput.js";

// Lines as libvirt 9.0's `virsh event --loop --all` printed them on this machine.
void test("virsh event lines: lifecycle and other events, anything else is null", () => {
  assert.deepEqual(parseVirshEventLine("event 'lifecycle' for domain 'oc-lab': Started Booted"), { event: "lifecycle", domain: "oc-lab", detail: "Started Booted" });
  assert.deepEqual(parseVirshEventLine("event 'lifecycle' for domain 'oc-lab': Undefined Removed"), { event: "lifecycle", domain: "oc-lab", detail: "Undefined Removed" });
  assert.deepEqual(parseVirshEventLine("event 'reboot' for domain 'web 1'"), { event: "reboot", domain: "web 1", detail: "" });
  assert.equal(parseVirshEventLine("events received: 7"), null);
  assert.equal(parseVirshEventLine("event loop timed out"), null);
  assert.equal(parseVirshEventLine(""), null);
});

// `virsh dominfo oc-lab` on this machine (libvirt 9.0), trimmed of lines the parser ignores.
const DOMINFO = `Id:             1
Name:           oc-lab
UUID:           948CE2AC-3191-4a24-aa47-29115dd88f72
OS Type:        hvm
State:          running
CPU(s):         1
Max memory:     262144 KiB
`;

void test("virsh dominfo: name, UUID (lower case), state; missing or strange fields named", () => {
  assert.deepEqual(parseDomInfo(DOMINFO, "virsh dominfo oc-lab"), { name: "oc-lab", uuid: "948ce2ac-3191-4a24-aa47-29115dd88f72", state: "running" });
  assert.equal(parseDomInfo(DOMINFO.replace("running", "shut off"), "x").state, "shut off");
  assert.throws(() => parseDomInfo(DOMINFO.replace(/^UUID:.*\n/m, ""), "virsh dominfo oc-lab"), /virsh dominfo oc-lab: no "UUID:" line/);
  assert.throws(() => parseDomInfo(DOMINFO.replace("running", "flying"), "virsh dominfo oc-lab"), /not a libvirt domain state: "flying"/);
});

void test("domstate, domuuid and domain names are checked strictly", () => {
  assert.equal(parseDomState("paused\n\n", "c"), "paused");
  assert.throws(() => parseDomState("", "virsh domstate x"), /virsh domstate x: not a libvirt domain state/);
  assert.equal(parseDomUuid("948CE2AC-3191-4a24-aa47-29115dd88f72\n", "c"), "948ce2ac-3191-4a24-aa47-29115dd88f72");
  assert.throws(() => parseDomUuid("nope", "virsh domuuid x"), /virsh domuuid x: not a UUID: "nope"/);
  assert.equal(checkLibvirtDomain("web1"), "web1");
  assert.throws(() => checkLibvirtDomain("--help"), /libvirt domain "--help": must match/);
  assert.throws(() => checkLibvirtDomain("a b"), /libvirt domain "a b"/);
});

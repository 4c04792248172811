import { test } from "node:test";
import assert from "node:assert/strict";
import { checkHostIdentity, checkOneAlert, checkPointCounts, checkSeriesOnce, fleetCageNames, fleetHostNames, windowsWithin, type PointCount, type SeriesCount } from "../../../lab/fleet/fleetChecks.js";

const hosts = fleetHostNames(2);
const cages = fleetCageNames(3);

function allSeries(role?: readonly string[]): SeriesCount[] {
  return hosts.flatMap((instance) => cages.flatMap((cage) => (role === undefined ? [{ labels: { instance, cage }, count: 1 }] : role.map((r) => ({ labels: { instance, cage, role: r }, count: 1 })))));
}

void test("host and cage names are zero-padded so they sort, the same cage names on every host", () => {
  assert.deepEqual(hosts, ["host-01", "host-02"]);
  assert.deepEqual(fleetHostNames(120).slice(0, 2), ["host-001", "host-002"]);
  assert.deepEqual(cages, ["cage-01", "cage-02", "cage-03"]);
});

void test("checkSeriesOnce: passes one series per (host, cage [, role]); names a duplicate, a missing and a stray series", () => {
  assert.deepEqual(checkSeriesOnce("m", allSeries(), hosts, cages), []);
  assert.deepEqual(checkSeriesOnce("m", allSeries(["vm", "ids"]), hosts, cages, { name: "role", values: ["vm", "ids"] }), []);
  const rows = allSeries();
  rows[0] = { labels: { instance: "host-01", cage: "cage-01" }, count: 2 };
  rows.pop();
  rows.push({ labels: { instance: "127.0.0.1:9464", cage: "cage-01" }, count: 1 });
  assert.deepEqual(checkSeriesOnce("m", rows, hosts, cages), [
    "m: 2 series for host-01/cage-01, expected 1",
    "m: unexpected series 127.0.0.1:9464/cage-01",
    "m: 1 of 6 series missing (first: host-02/cage-03)",
  ]);
  // Series without an instance (a host label lost on the way) are all strays.
  assert.equal(checkSeriesOnce("m", [{ labels: { cage: "cage-01" }, count: 2 }], hosts, cages).length, 2);
});

function counts(n: number): PointCount[] {
  return hosts.flatMap((host) => cages.map((cage) => ({ host, cage, count: n })));
}

void test("checkPointCounts: exact counts pass; a short series and a total beyond the tolerance are named", () => {
  const ok = checkPointCounts(counts(100), hosts, cages, 100, 0.001);
  assert.deepEqual(ok, { expectedPerCage: 100, expectedTotal: 600, total: 600, deviation: 0, offSeries: 0, problems: [] });
  const short = counts(100);
  short[1]!.count = 99;
  const one = checkPointCounts(short, hosts, cages, 100, 0.01);
  assert.equal(one.total, 599);
  assert.equal(one.offSeries, 1);
  assert.deepEqual(one.problems, ["1 of 6 (host, cage) series do not have exactly 100 points (host-01/cage-02: 99)"]);
  const lossy = checkPointCounts(short, hosts, cages, 100, 0.001);
  assert.match(lossy.problems[0] ?? "", /^599 points, expected 600 \(0\.167% off, more than 0\.100%\)$/);
});

void test("checkPointCounts: points merged across hosts (no host tag) fail", () => {
  // What a store without the host tag holds: one series per cage, the hosts' points on the same timestamps merged.
  const merged: PointCount[] = cages.map((cage) => ({ host: "", cage, count: 100 }));
  const v = checkPointCounts(merged, hosts, cages, 100, 0.001);
  assert.equal(v.total, 300);
  assert.equal(v.offSeries, 6);
  assert.ok(v.problems.some((p) => p.startsWith('points for "/cage-01"')), v.problems.join("\n"));
  assert.throws(() => checkPointCounts([], hosts, cages, 0, 0.001), /expected points per cage must be > 0, got 0/);
});

void test("windowsWithin counts the windows whose end lies in the span, both ends included", () => {
  assert.equal(windowsWithin([1000, 2000, 3000, 4000], 1500, 3000), 2);
  assert.equal(windowsWithin([], 0, 10), 0);
});

void test("checkOneAlert: exactly the expected alert passes; none, two or the wrong host fail", () => {
  const expected = { alertname: "CageOverCap", instance: "host-02", cage: "cage-02" };
  assert.deepEqual(checkOneAlert([{ alertname: "CageOverCap", instance: "host-02", cage: "cage-02" }], expected), []);
  assert.match(checkOneAlert([], expected)[0] ?? "", /^0 alerts fired, expected exactly 1/);
  assert.match(
    checkOneAlert(
      [
        { alertname: "CageOverCap", instance: "host-02", cage: "cage-02" },
        { alertname: "CollectorDown", instance: "host-01" },
      ],
      expected,
    )[0] ?? "",
    /^2 alerts fired.*CollectorDown\{instance=host-01, cage=-\}/,
  );
  assert.deepEqual(checkOneAlert([{ alertname: "CageOverCap", instance: "host-01", cage: "cage-02" }], expected), [
    "the alert that fired is CageOverCap{instance=host-01, cage=cage-02}, expected CageOverCap{instance=host-02, cage=cage-02}",
  ]);
});

void test("checkHostIdentity: each target's target_info names its own host once", () => {
  const info = hosts.map((h) => ({ instance: h, host_name: h, service_name: "offloadcage" }));
  assert.deepEqual(checkHostIdentity(info, hosts), []);
  assert.deepEqual(checkHostIdentity([{ instance: "host-01", host_name: "host-02" }, { instance: "host-02", host_name: "host-02" }], hosts), ["target_info of host-01 says host_name=host-02"]);
  assert.deepEqual(checkHostIdentity([info[0]!], hosts), ["0 target_info series for host-02, expected 1"]);
});

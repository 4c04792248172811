import { test } from "node:test";
import assert from "node:assert/strict";
import { influxDurationMinutes, isTooLargeSize, parseSize } from "../../config/units.js";

void test("parseSize: binary, decimal and cgroup-style units; null for anything else", () => {
  assert.equal(parseSize(4096), 4096);
  assert.equal(parseSize("1GiB"), 1024 ** 3);
  assert.equal(parseSize("1.5 KiB"), 1536);
  assert.equal(parseSize("2M"), 2 * 1024 ** 2);
  assert.equal(parseSize("3MB"), 3e6);
  assert.equal(parseSize("1mb"), null);
  assert.equal(parseSize(-1), null);
  assert.equal(parseSize(1.5), null);
  assert.equal(parseSize(true), null);
});

void test("isTooLargeSize: only well-formed sizes beyond a safe integer", () => {
  assert.equal(isTooLargeSize(1e20), true);
  assert.equal(isTooLargeSize("99999999999GiB"), true);
  assert.equal(isTooLargeSize("8TiB"), false);
  assert.equal(isTooLargeSize(Number.MAX_SAFE_INTEGER), false);
  assert.equal(isTooLargeSize("lots"), false);
  assert.equal(isTooLargeSize(undefined), false);
});

void test("influxDurationMinutes: m, h, d and w", () => {
  assert.equal(influxDurationMinutes("30m"), 30);
  assert.equal(influxDurationMinutes("2h"), 120);
  assert.equal(influxDurationMinutes("7d"), 7 * 1440);
  assert.equal(influxDurationMinutes("1w"), 10080);
  assert.equal(influxDurationMinutes("0d"), null);
  assert.equal(influxDurationMinutes("5s"), null);
  assert.equal(influxDurationMinutes(5), null);
});

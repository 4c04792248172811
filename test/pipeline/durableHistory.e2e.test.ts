/**
 * Durable history end to end, short: a real influxd killed for 6 s while aggregates keep flowing,
 * the real pipeline process SIGKILLed 2 s into that outage and restarted a second later, influxd
 * back. Every point produced must be in InfluxDB (0 dropped within the spool's bound), the
 * killed pipeline's spool must have been replayed, and the CPU windows sent while no pipeline
 * ran must be counted as lost. bench/durableHistory.ts runs the same with a 10-minute outage.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { runDurableHistory } from "../../bench/durableHistory.js";
import { SEQUENCE_SAVE_MS } from "../../pipeline/sequenceState.js";

void test("influxd down, pipeline SIGKILLed during the outage: points in InfluxDB = produced - dropped, and the gap is counted", async () => {
  const rate = 20;
  const f = await runDurableHistory({ outageMs: 6000, killAtMs: 2000, downMs: 1000, rate, warmMs: 2000, bufferPoints: 200_000, progress: null });
  console.log(`durable history: ${JSON.stringify(f)}`);
  assert.ok(f.aggregatesProduced >= rate * 4, `aggregates kept flowing (${f.aggregatesProduced})`);
  assert.equal(f.pointsDropped, 0, "nothing dropped within the bound");
  assert.equal(f.pointsInInflux, f.pointsProduced, "every point produced is in InfluxDB");
  assert.equal(f.balanced, true);
  assert.ok(f.pointsReplayed > 0, "the restarted pipeline wrote what the killed one had spooled");
  assert.equal(f.tornRecords, 0, "a SIGKILL cannot cut a write(2) to a regular file short");
  assert.ok(f.windowsSentWhileDown > 0);
  // The killed pipeline's last save is up to SEQUENCE_SAVE_MS old: what it received after that is counted again.
  const slack = Math.ceil((rate * SEQUENCE_SAVE_MS) / 1000) + 2;
  assert.ok(
    f.lostMessagesCounted >= f.windowsSentWhileDown && f.lostMessagesCounted <= f.windowsSentWhileDown + slack,
    `lost counted ${f.lostMessagesCounted}, sent while down ${f.windowsSentWhileDown} (+ at most ${slack})`,
  );
});

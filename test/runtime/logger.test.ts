import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, LOG_LEVEL_ENV, logLevelFromEnv, setLogLevel } from "../../runtime/logger.js";

test("the level comes from OFFLOADCAGE_LOG_LEVEL, default info; a bad value is named", () => {
  assert.equal(logLevelFromEnv({}), "info");
  assert.equal(logLevelFromEnv({ [LOG_LEVEL_ENV]: "debug" }), "debug");
  assert.throws(() => logLevelFromEnv({ [LOG_LEVEL_ENV]: "loud" }), /^Error: OFFLOADCAGE_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, got "loud"$/);
});

test("err fields are logged with their stack; lines below the level are dropped", () => {
  const dir = mkdtempSync(join(tmpdir(), "oc-logger-"));
  try {
    const file = join(dir, "agent.log");
    const log = createLogger("logger-test", "info", file);
    setLogLevel(log, "warn");
    log.info("dropped");
    log.error({ err: new Error("boom") }, "failed");
    const lines = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { name: string; msg: string; err: { message: string; stack: string } });
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.name, "logger-test");
    assert.equal(lines[0]!.err.message, "boom");
    assert.match(lines[0]!.err.stack, /^Error: boom\n\s+at /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

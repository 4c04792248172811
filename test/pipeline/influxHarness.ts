/**
 * The real influxd of one influx test file (lab/common/realServers.ts): started before the file's
 * tests in a temporary directory of its own, stopped and removed after them. The writers' specs
 * and spool directories point there.
 */
import { after, before } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { InfluxSpec } from "../../config/cageConfig.js";
import { DEFAULT_INFLUX } from "../../config/loadConfig.js";
import { InfluxServer, type InfluxServerOptions } from "../../lab/common/realServers.js";

export interface InfluxForTests {
  /** The running server (from the file's before-hook on). */
  readonly server: InfluxServer;
  /** The temporary directory: influxd's data below `influx/`, the spools, the test's own files. */
  readonly dir: string;
  /** A writer spec for `database` on this server with short flush and retry times; `over` wins. */
  readonly spec: (database: string, over?: Partial<InfluxSpec>) => InfluxSpec;
  /** The spool directory `name`: the same name is the same spool, as for a restarted writer. */
  readonly spoolDir: (name: string) => string;
  /** A spool directory no other writer of the file has. */
  readonly newSpoolDir: () => string;
}

/**
 * Registers the before/after hooks of the file's influxd; call it at the top level of a test
 * file. `prepare` runs on the new server within the same hook: node 20 runs a file's top-level
 * before-hooks side by side, so a hook of the file's own would not wait for the server.
 */
export function influxForTests(options: InfluxServerOptions = {}, prepare?: (server: InfluxServer) => Promise<void>): InfluxForTests {
  let dir = "";
  let server: InfluxServer | null = null;
  let spools = 0;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "offloadcage-influx-"));
    server = await InfluxServer.start(join(dir, "influx"), options);
    await prepare?.(server);
  });
  after(async () => {
    await server?.stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });
  const running = (): InfluxServer => {
    if (server === null) throw new Error("influxd is not running: it starts in the test file's before-hook");
    return server;
  };
  return {
    get server() {
      return running();
    },
    get dir() {
      return dir;
    },
    spec: (database, over = {}) => ({ ...DEFAULT_INFLUX, url: running().url, database, flushMs: 50, retryMinMs: 50, retryMaxMs: 400, timeoutMs: 2000, ...over }),
    spoolDir: (name) => join(dir, `spool-${name}`),
    newSpoolDir: () => join(dir, `spool-new-${++spools}`),
  };
}

/**
 * Default ZeroMQ endpoints: ipc:// sockets in a directory only the agent's user can open
 * (mode 0700), so no other local user can inject frames or read what the agent sees.
 */
import { mkdirSync, statSync, chmodSync } from "node:fs";
import { join } from "node:path";

export interface Endpoints {
  /** Where each collector binds its PUB socket, by collector name. */
  collectors: Record<string, string>;
  /** Where the pipeline binds its PUB socket for aggregates. */
  aggregates: string;
  /** Where each actuator binds its PUB socket (`act.decision`, `act.state`), by actuator name. */
  actuators?: Record<string, string>;
}

export function defaultRuntimeDir(): string {
  if (process.env.OFFLOADCAGE_RUNTIME_DIR) return process.env.OFFLOADCAGE_RUNTIME_DIR;
  if (process.getuid?.() === 0) return "/run/offloadcage";
  return join(process.env.XDG_RUNTIME_DIR ?? "/tmp", `offloadcage-${process.getuid?.() ?? "user"}`);
}

/** Creates `dir` if needed and makes sure it is a directory that only we can open. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory()) throw new Error(`runtime dir ${dir}: exists and is not a directory`);
  if (process.getuid !== undefined && st.uid !== process.getuid()) {
    throw new Error(`runtime dir ${dir}: owned by uid ${st.uid}, not by us (uid ${process.getuid()}); refusing to use it`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** `externalActuators`: the names of agent.actuators.external; each binds actuator-NAME.sock. */
export function defaultEndpoints(dir: string, externalActuators: readonly string[] = []): Endpoints {
  const external = Object.fromEntries(externalActuators.map((name) => [name, `ipc://${join(dir, `actuator-${name}.sock`)}`]));
  return {
    collectors: {
      cpu: `ipc://${join(dir, "cpu.sock")}`,
      memory: `ipc://${join(dir, "memory.sock")}`,
      pagecache: `ipc://${join(dir, "pagecache.sock")}`,
      xentrace: `ipc://${join(dir, "xentrace.sock")}`,
    },
    aggregates: `ipc://${join(dir, "aggregates.sock")}`,
    actuators: {
      cpu: `ipc://${join(dir, "actuator-cpu.sock")}`,
      limiter: `ipc://${join(dir, "actuator-limiter.sock")}`,
      balloon: `ipc://${join(dir, "actuator-balloon.sock")}`,
      ...external,
    },
  };
}

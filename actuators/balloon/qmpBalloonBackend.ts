/**
 * Balloon back end for a QEMU VM over QMP: `balloon` with the target logical RAM size in bytes,
 * `query-balloon` for the actual size (RAM − balloon), and BALLOON_CHANGE events, which the guest's
 * driver causes as it gives pages back (platform-facts §3.3).
 */
import type { RestoreAction } from "../common/guardianProtocol.js";
import { BalloonBackendError, restoreKey, type BalloonBackend } from "./balloonBackend.js";
import { QmpClient, QmpError } from "./qmpClient.js";

export interface QmpBackendOptions {
  commandTimeoutMs?: number;
  onProtocolError?: (message: string) => void;
}

export class QmpBalloonBackend implements BalloonBackend {
  readonly kind = "qmp";
  readonly target: string;
  private readonly client: QmpClient;
  /** The latest BALLOON_CHANGE `actual`, bytes. */
  lastEventActualBytes: number | null = null;
  balloonChangeEvents = 0;

  constructor(readonly socketPath: string, options: QmpBackendOptions = {}) {
    this.target = `QMP ${socketPath}`;
    this.client = new QmpClient(socketPath, {
      commandTimeoutMs: options.commandTimeoutMs ?? 5000,
      connectTimeoutMs: options.commandTimeoutMs ?? 5000,
      ...(options.onProtocolError ? { onProtocolError: options.onProtocolError } : {}),
      onEvent: (e) => {
        if (e.event === "BALLOON_CHANGE" && typeof e.data.actual === "number") {
          this.balloonChangeEvents++;
          this.lastEventActualBytes = e.data.actual;
        }
      },
    });
  }

  get reconnects(): number {
    return this.client.reconnects;
  }

  get generation(): number {
    return this.client.connections;
  }

  /** The VM's logical RAM as found (query-balloon's actual), and the fail-safe. */
  async restoreAction(failsafeBytes: number): Promise<RestoreAction> {
    const actual = await this.readActual();
    if (actual === null) throw new BalloonBackendError(`${this.target}: cannot read the balloon's size to record it`, "bad-output");
    return { op: "qmp", key: restoreKey("qmp", this.socketPath), socket: this.socketPath, command: "balloon", bytes: actual, failsafeBytes };
  }

  async apply(bytes: number): Promise<void> {
    // QMP wants a JSON integer > 0 (a string or 0 is a GenericError).
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`${this.target}: balloon target must be a positive integer of bytes, got ${bytes}`);
    await this.run("balloon", { value: bytes });
  }

  async readActual(): Promise<number | null> {
    const r = await this.run("query-balloon");
    const actual = typeof r === "object" && r !== null ? (r as Record<string, unknown>).actual : undefined;
    if (typeof actual !== "number" || !Number.isSafeInteger(actual) || actual < 0) {
      throw new BalloonBackendError(`${this.target}: query-balloon returned no valid actual: ${JSON.stringify(r)}`, "bad-output");
    }
    return actual;
  }

  private async run(command: string, args?: Record<string, unknown>): Promise<unknown> {
    try {
      return await this.client.execute(command, args);
    } catch (err) {
      if (!(err instanceof QmpError)) throw err;
      if (err.errorClass === "DeviceNotActive") {
        throw new BalloonBackendError(`${this.target}: the VM has no balloon device (QMP ${command}: DeviceNotActive); start QEMU with -device virtio-balloon-pci`, "no-balloon-device");
      }
      const reason = err.errorClass === "Unreachable" || err.errorClass === "Closed" || err.errorClass === "Timeout" ? "unreachable" : "command-failed";
      throw new BalloonBackendError(err.message, reason);
    }
  }

  close(): Promise<void> {
    this.client.close();
    return Promise.resolve();
  }
}

/**
 * Balloon back end on a systemd unit's own memory property (the VM's scope or service):
 * MemoryHigh (throttles and reclaims, never OOM-kills) or MemoryMax, set with `systemctl
 * set-property --runtime`; systemd writes the unit's memory.high / memory.max. The VM's "actual"
 * is the property read back. The original value, read before the first change, is set back on
 * close(), so no property of ours is left on the unit.
 */
import { memoryAssignment, parseUnitBytes, UnitPropertyError, type UnitClient } from "../../host/systemd/unitProperties.js";
import { BalloonBackendError, type BalloonBackend } from "./balloonBackend.js";

export class SystemdBalloonBackend implements BalloonBackend {
  readonly kind = "systemd";
  readonly target: string;
  /** undefined: not read yet; null: infinity. */
  private original: number | null | undefined = undefined;
  private changed = false;

  constructor(
    readonly unit: string,
    readonly property: "MemoryHigh" | "MemoryMax",
    private readonly client: UnitClient,
  ) {
    this.target = `unit ${unit} (${property})`;
  }

  private async read(): Promise<number | null> {
    try {
      const shown = await this.client.show(this.unit, [this.property]);
      return parseUnitBytes(shown.get(this.property) as string, `${this.unit} ${this.property}`);
    } catch (err) {
      throw this.error(err);
    }
  }

  private error(err: unknown): BalloonBackendError {
    const message = (err as Error).message;
    const missing = err instanceof UnitPropertyError && / does not exist /.test(`${message} `);
    return new BalloonBackendError(`${this.target}: ${message}`, missing ? "unreachable" : "command-failed");
  }

  async apply(bytes: number): Promise<void> {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`${this.target}: limit must be a positive integer of bytes, got ${bytes}`);
    if (this.original === undefined) this.original = await this.read();
    try {
      await this.client.set(this.unit, [memoryAssignment(this.property, bytes)]);
      this.changed = true;
    } catch (err) {
      throw this.error(err);
    }
  }

  readActual(): Promise<number | null> {
    return this.read();
  }

  /** Sets the property back to what it was before our first change. */
  async close(): Promise<void> {
    if (!this.changed || this.original === undefined) return;
    try {
      await this.client.set(this.unit, [memoryAssignment(this.property, this.original)]);
      this.changed = false;
    } catch (err) {
      throw this.error(err);
    }
  }
}

/**
 * CPU back end on a systemd unit's own properties: CPUQuota (the cap) and CPUWeight, set with
 * `systemctl set-property --runtime`. The unit keeps its processes: systemd owns its cgroup, we
 * only change what systemd would write there. The originals, read with `systemctl show` first,
 * are what restore() and the restore guardian set back.
 */
import { cpuQuotaAssignment, cpuWeightAssignment, parseTimespanUs, parseUnitWeight, setPropertyArgv, unitRestoreKey, type UnitClient } from "../../host/systemd/unitProperties.js";
import type { RestoreAction } from "./guardianProtocol.js";
import { CpuBackendError, v2WeightFor, type CpuBackend, type CpuTarget } from "./cpuBackend.js";

interface UnitCpuOriginals {
  /** % of one CPU, null = no quota. */
  quotaPct: number | null;
  weight: number | null;
}

export class SystemdCpuBackend implements CpuBackend {
  readonly kind = "systemd";
  readonly target: string;
  private originals: UnitCpuOriginals | null = null;

  constructor(
    readonly unit: string,
    private readonly client: UnitClient,
  ) {
    this.target = `unit ${unit}`;
  }

  async open(): Promise<void> {
    try {
      const shown = await this.client.show(this.unit, ["CPUQuotaPerSecUSec", "CPUWeight"]);
      const perSec = parseTimespanUs(shown.get("CPUQuotaPerSecUSec") as string, `${this.unit} CPUQuotaPerSecUSec`);
      this.originals = { quotaPct: perSec === null ? null : perSec / 10_000, weight: parseUnitWeight(shown.get("CPUWeight") as string, `${this.unit} CPUWeight`) };
    } catch (err) {
      throw new CpuBackendError((err as Error).message);
    }
  }

  async prepare(): Promise<void> {
    if (this.originals === null) await this.open();
  }

  private originalAssignments(): string[] {
    if (this.originals === null) throw new CpuBackendError(`${this.target}: not opened`);
    return [cpuQuotaAssignment(this.originals.quotaPct), cpuWeightAssignment(this.originals.weight)];
  }

  restoreActions(): RestoreAction[] {
    return [{ op: "exec", key: unitRestoreKey(this.unit, "cpu"), argv: setPropertyArgv(this.unit, this.originalAssignments()) }];
  }

  async apply(t: CpuTarget): Promise<void> {
    if (this.originals === null) throw new CpuBackendError(`${this.target}: not opened`);
    const assignments = [cpuQuotaAssignment(t.capPct ?? this.originals.quotaPct)];
    if (t.weight !== null) assignments.push(cpuWeightAssignment(v2WeightFor(t.weight)));
    try {
      await this.client.set(this.unit, assignments);
    } catch (err) {
      throw new CpuBackendError((err as Error).message);
    }
  }

  /** The unit's processes stay in its own cgroup. */
  async adoptPids(): Promise<void> {
    await Promise.resolve();
  }

  async restore(): Promise<void> {
    if (this.originals === null) return;
    try {
      await this.client.set(this.unit, this.originalAssignments());
    } catch (err) {
      throw new CpuBackendError((err as Error).message);
    }
  }

  /** The originals read by open(), for tests and logs. */
  originalSettings(): UnitCpuOriginals | null {
    return this.originals === null ? null : { ...this.originals };
  }
}

/**
 * A cage's cpu section: idsCap <= cap, the CPU actuator's floor <= ceiling <= cap, its fail-safe
 * cap within [floor, ceiling], a back end that fits the VM kind.
 */
import { DEFAULT_VM_FLOOR_FRACTION } from "../defaults.js";
import { isRecord } from "../isRecord.js";
import type { PathSegment, Report } from "../yamlLocation.js";

export function cpuProblems(cpu: Record<string, unknown>, vm: unknown, at: readonly PathSegment[], report: Report): void {
  const cap = typeof cpu.cap === "number" && cpu.cap > 0 ? cpu.cap : null;
  if (cap !== null && typeof cpu.idsCap === "number" && cpu.idsCap > cap) {
    report([...at, "idsCap"], `must be <= cap (${cpu.idsCap} > ${cap})`);
  }
  const floor = typeof cpu.vmFloor === "number" ? cpu.vmFloor : null;
  const ceiling = typeof cpu.vmCeiling === "number" ? cpu.vmCeiling : null;
  if (cap !== null && ceiling !== null && ceiling > cap) report([...at, "vmCeiling"], `must be <= cap (${ceiling} > ${cap})`);
  const effectiveCeiling = ceiling ?? cap;
  if (floor !== null && effectiveCeiling !== null && floor > effectiveCeiling) {
    report([...at, "vmFloor"], `must be <= ${ceiling !== null ? "vmCeiling" : "cap"} (${floor} > ${effectiveCeiling})`);
  }
  // The fail-safe is what the VM runs at when data stops: below the floor it starves the VM, above the ceiling it exceeds the cage.
  const failsafe = typeof cpu.failsafeCap === "number" ? cpu.failsafeCap : null;
  if (failsafe !== null && cap !== null) {
    const effectiveFloor = floor ?? Math.min(effectiveCeiling ?? cap, cap * DEFAULT_VM_FLOOR_FRACTION);
    const ceilingOrCap = effectiveCeiling ?? cap;
    if (failsafe < effectiveFloor || failsafe > ceilingOrCap) {
      const floorName = floor !== null ? "vmFloor" : "the default vmFloor";
      const ceilingName = ceiling !== null ? "vmCeiling" : "cap";
      report([...at, "failsafeCap"], `must be within [${floorName}, ${ceilingName}] ([${effectiveFloor}, ${ceilingOrCap}]), got ${failsafe}`);
    }
  }
  // The CPU actuator always drives a Xen domain with xl; a second back end there would fight it.
  if (isRecord(cpu.backend) && isRecord(vm) && vm.kind === "xen") {
    report([...at, "backend"], "a xen VM is controlled with xl; remove backend (it is for process, qemu and cgroup VMs)");
  }
}

/** The balloon's knobs: agent.actuators.balloon and the balloon fields of a cage's memory section. */
import { isRecord } from "../isRecord.js";
import { isTooLargeSize, parseSize } from "../units.js";
import type { PathSegment, Report } from "../yamlLocation.js";

const BALLOON_ACTUATOR_SIZES = ["maxStep", "hysteresis", "stuckRetarget", "tolerance"] as const;

/** agent.actuators.balloon: sizes that fit, and dom0's base at most its max. */
export function balloonActuatorProblems(balloon: Record<string, unknown>, report: Report): void {
  const at: PathSegment[] = ["agent", "actuators", "balloon"];
  for (const field of BALLOON_ACTUATOR_SIZES) {
    if (isTooLargeSize(balloon[field])) report([...at, field], "is too large");
  }
  const dom0 = balloon.dom0;
  if (!isRecord(dom0)) return;
  for (const field of ["base", "max"] as const) {
    if (isTooLargeSize(dom0[field])) report([...at, "dom0", field], "is too large");
  }
  const base = parseSize(dom0.base);
  const max = parseSize(dom0.max);
  if (base !== null && max !== null && base > max) report([...at, "dom0", "base"], `must be <= max (${String(dom0.base)} > ${String(dom0.max)})`);
}

/**
 * A cage's memory.failsafe within [floor, base], and a memory.backend that can reach this VM.
 * `base` and `floor` are already parsed (null when missing or not a size).
 */
export function cageBalloonProblems(
  memory: Record<string, unknown>,
  vm: unknown,
  at: readonly PathSegment[],
  base: number | null,
  floor: number | null,
  report: Report,
): void {
  const kind = isRecord(vm) ? vm.kind : undefined;
  const failsafe = parseSize(memory.failsafe);
  if (failsafe !== null && ((base !== null && failsafe > base) || (floor !== null && failsafe < floor))) {
    report([...at, "failsafe"], `must be within [floor, base] (${String(memory.failsafe)})`);
  }
  const need = (backend: string, ok: boolean, why: string): void => {
    if (memory.backend === backend && !ok) report([...at, "backend"], `${backend} needs ${why}`);
  };
  need("qmp", kind === "qemu", `vm.kind qemu (its qmpSocket); this VM is ${String(kind)}`);
  need("xl", kind === "xen", `vm.kind xen (its domain); this VM is ${String(kind)}`);
  need("virsh", typeof memory.libvirtDomain === "string" || kind === "libvirt", "memory.libvirtDomain or vm.kind libvirt");
  need("cgroup", kind === "cgroup" || typeof memory.cgroup === "string", "vm.kind cgroup or memory.cgroup");
}

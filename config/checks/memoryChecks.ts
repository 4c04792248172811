/** A cage's memory section: sizes that fit, floor <= base, and its balloon knobs. */
import { isTooLargeSize, parseSize } from "../units.js";
import type { PathSegment, Report } from "../yamlLocation.js";
import { cageBalloonProblems } from "./balloonChecks.js";

export function memoryProblems(memory: Record<string, unknown>, vm: unknown, at: readonly PathSegment[], report: Report): void {
  for (const field of ["base", "floor", "failsafe"] as const) {
    if (isTooLargeSize(memory[field])) report([...at, field], "is too large");
  }
  const base = parseSize(memory.base);
  const floor = parseSize(memory.floor);
  if (base !== null && floor !== null && floor > base) {
    report([...at, "floor"], `must be <= base (${String(memory.floor)} > ${String(memory.base)})`);
  }
  cageBalloonProblems(memory, vm, at, base, floor, report);
}

/** agent.actuators.external: what the schema cannot say about the list as a whole. */
import { isRecord } from "../isRecord.js";

type Report = (segments: readonly (string | number)[], message: string) => void;

/** Each name binds its own socket and is supervised under its own name: two of one name cannot both run. */
export function externalActuatorProblems(list: readonly unknown[], report: Report): void {
  const firstAt = new Map<string, number>();
  list.forEach((entry, i) => {
    if (!isRecord(entry) || typeof entry.name !== "string") return;
    const first = firstAt.get(entry.name);
    if (first === undefined) firstAt.set(entry.name, i);
    else report(["agent", "actuators", "external", i, "name"], `duplicate external actuator name ${JSON.stringify(entry.name)} (also at index ${first})`);
  });
}

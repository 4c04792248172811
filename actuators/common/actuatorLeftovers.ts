/**
 * What actuators that were down when `cage run` stopped (killed, or waiting for their restart)
 * could not undo themselves: the original settings they recorded (originalSettings.ts) and the
 * agent's own CPU groups (the VM's and the limiter's IDS group), which still hold processes at a
 * fail-safe cap. `cage run` calls it once its children have stopped; after a clean stop of every
 * actuator nothing is recorded and no own group is left, and it changes nothing.
 */
import { existsSync } from "node:fs";
import type { Logger } from "pino";
import type { AgentConfig } from "../../config/cageConfig.js";
import { planCage, type CgroupLayout } from "../../host/cgroup/cagePlan.js";
import { cpuBackendForTarget, readLayout } from "./cgroupCpuBackend.js";
import { OriginalSettings, originalSettingsFilesFor, type ActuatorName } from "./originalSettings.js";
import { carryOutRestore, planOf, RESTORE_STEP_TIMEOUT_MS } from "./restoreSteps.js";

const GUARDED_ACTUATORS: readonly ActuatorName[] = ["cpu", "limiter", "balloon"];

export async function releaseActuatorLeftovers(config: AgentConfig, log: Logger, layout: CgroupLayout = readLayout()): Promise<void> {
  for (const actuator of GUARDED_ACTUATORS) {
    let originals: OriginalSettings;
    try {
      originals = new OriginalSettings(actuator, originalSettingsFilesFor(actuator, config));
    } catch (err) {
      log.error({ actuator, err: (err as Error).message }, "cannot read the original settings an actuator recorded");
      continue;
    }
    for (const cage of originals.cageNames) {
      const failures = await carryOutRestore(planOf(originals.recorded(cage)), RESTORE_STEP_TIMEOUT_MS);
      if (failures.length === 0) {
        originals.forget(cage);
        log.info({ actuator, cage }, "original settings left by an actuator that was down restored");
      } else {
        log.error({ actuator, cage, failures }, "restoring the original settings left by an actuator failed; kept for the next run");
      }
    }
  }
  for (const cage of config.cages) {
    try {
      const plan = planCage(cage, layout);
      for (const t of [plan.vmCpu, plan.idsCpu]) {
        if (t.kind !== "cgroup" || !t.own || !existsSync(t.dir)) continue;
        const group = cpuBackendForTarget(t, layout, () => {
          throw new Error("an own cgroup needs no systemd unit");
        });
        await group.open();
        await group.restore(); // its processes back out, the group and our empty folders above it removed
        log.info({ cage: cage.name, group: t.dir }, "own cgroup left by an actuator that was down removed");
      }
    } catch (err) {
      log.error({ cage: cage.name, err: (err as Error).message }, "cannot remove the own cgroups an actuator left");
    }
  }
}

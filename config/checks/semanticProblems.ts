/**
 * The checks a schema cannot express, section by section. They read the raw data defensively,
 * so they also run (and report) when other parts of the file fail the schema.
 */
import type { ConfigProblem } from "../configError.js";
import { isRecord } from "../isRecord.js";
import { problemAt, type Locate } from "../yamlLocation.js";
import { balloonActuatorProblems } from "./balloonChecks.js";
import { cagesProblems } from "./cageChecks.js";
import { externalActuatorProblems } from "./externalActuatorChecks.js";
import { influxProblems } from "./influxChecks.js";

export function semanticProblems(data: unknown, locate: Locate): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const report = (segments: readonly (string | number)[], message: string): void => {
    problems.push(problemAt(segments, message, locate));
  };
  if (!isRecord(data)) return problems;
  const agent = isRecord(data.agent) ? data.agent : {};
  if (isRecord(agent.influx)) influxProblems(agent.influx, report);
  if (isRecord(agent.actuators) && isRecord(agent.actuators.balloon)) balloonActuatorProblems(agent.actuators.balloon, report);
  if (isRecord(agent.actuators) && Array.isArray(agent.actuators.external)) externalActuatorProblems(agent.actuators.external, report);
  if (Array.isArray(data.cages)) cagesProblems(data.cages, report);
  return problems;
}

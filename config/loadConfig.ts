/**
 * Loads a cage file (YAML or JSON: the `yaml` parser reads both) into the normalised
 * AgentConfig: YAML syntax, then the schema (configSchema.ts) and the checks it cannot express
 * (checks/), every problem with its path and line (yamlLocation.ts), then defaults filled in
 * (normalise.ts). This is the config module's entry point; it re-exports what the rest of the
 * tree uses so callers need not know how the module is split.
 */
import { readFileSync } from "node:fs";
import { LineCounter, parseDocument } from "yaml";
import type { AgentConfig } from "./cageConfig.js";
import { semanticProblems } from "./checks/semanticProblems.js";
import { ConfigError, type ConfigProblem } from "./configError.js";
import type { RawConfig } from "./configSchema.js";
import { normalise } from "./normalise.js";
import { schemaProblems } from "./schemaProblems.js";
import { yamlLocator } from "./yamlLocation.js";

export { configSchemaPath } from "./configSchema.js";
export {
  DEFAULT_ACTUATOR_PERIOD_MS,
  DEFAULT_ACTUATOR_STALE_AFTER_MS,
  DEFAULT_AGENT,
  DEFAULT_BALLOON_ACTUATOR,
  DEFAULT_GUARDIAN_START_TIMEOUT_MS,
  DEFAULT_INFLUX,
  DEFAULT_OTLP,
  DEFAULT_PAGE_CACHE,
  DEFAULT_PROMETHEUS,
  defaultCpuActuatorSpec,
  defaultLimiterActuatorSpec,
} from "./defaults.js";
export { influxDurationMinutes, parseSize } from "./units.js";
export { formatConfigPath } from "./yamlLocation.js";

/** Reads and loads a cage file. Throws ConfigError (all problems) when it is unreadable or invalid. */
export function loadConfigFile(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such file" : e.code === "EISDIR" ? "is a directory, not a file" : e.message;
    throw new ConfigError(path, [{ path: "", message: `cannot read config file: ${why}` }]);
  }
  return parseConfigText(text, path);
}

/** Parses cage-file text (YAML or JSON). `fileName` is only used in messages. */
export function parseConfigText(text: string, fileName: string): AgentConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });

  const syntax = [...doc.errors, ...doc.warnings].map((e) => ({
    path: "",
    message: `YAML syntax: ${e.message.split("\n")[0] ?? e.message}`,
    line: lineCounter.linePos(e.pos[0]).line,
  }));
  if (syntax.length > 0) throw new ConfigError(fileName, syntax);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new ConfigError(fileName, [{ path: "", message: `YAML: ${(err as Error).message}` }]);
  }

  if (data === null || data === undefined) {
    throw new ConfigError(fileName, [{ path: "", message: "the file is empty (expected a mapping with a cages: list)" }]);
  }

  const locate = yamlLocator(doc, lineCounter);
  const problems = [...schemaProblems(data, locate), ...semanticProblems(data, locate)];
  if (problems.length > 0) throw new ConfigError(fileName, sortByLine(dedupe(problems)));
  return normalise(data as RawConfig);
}

/** The schema and a check may report the same thing at the same path; once is enough. */
function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sortByLine(problems: ConfigProblem[]): ConfigProblem[] {
  // Stable: problems without a line keep their relative order, after those with one.
  return [...problems].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
}

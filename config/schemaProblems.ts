/**
 * Validates the raw data against CONFIG_SCHEMA and turns ajv's errors into ConfigProblems with
 * messages a person can act on ("unknown field (allowed: …)", "must be an integer").
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { CONFIG_SCHEMA } from "./configSchema.js";
import type { ConfigProblem } from "./configError.js";
import { isRecord } from "./isRecord.js";
import { formatConfigPath, pointerSegments, type Locate, type PathSegment } from "./yamlLocation.js";

let compiledSchema: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  if (compiledSchema !== undefined) return compiledSchema;
  // verbose: errors carry their schema, so the "x-error" messages can live in the schema.
  const ajv = new Ajv2020({ allErrors: true, verbose: true, discriminator: true, allowUnionTypes: true, strict: true, strictRequired: false });
  ajv.addKeyword({ keyword: "x-error", schemaType: "string" });
  compiledSchema = ajv.compile(CONFIG_SCHEMA);
  return compiledSchema;
}

const TYPE_WORDS: Record<string, string> = {
  integer: "an integer",
  number: "a number",
  string: "a string",
  object: "a mapping (object)",
  array: "a list",
  boolean: "true or false",
  null: "null",
};

/** Every way `data` fails the schema; [] when it passes. */
export function schemaProblems(data: unknown, locate: Locate): ConfigProblem[] {
  const validate = schemaValidator();
  if (validate(data)) return [];
  const problems: ConfigProblem[] = [];
  for (const e of validate.errors ?? []) {
    const problem = schemaProblem(e, data, locate);
    if (problem) problems.push(problem);
  }
  return problems;
}

function schemaProblem(e: ErrorObject, data: unknown, locate: Locate): ConfigProblem | undefined {
  const at = pointerSegments(e.instancePath, data);
  const params = e.params as Record<string, unknown>;
  const custom: unknown = isRecord(e.parentSchema) ? e.parentSchema["x-error"] : undefined;
  const problem = (segments: PathSegment[], message: string, lineAt: "key" | "value" = "value"): ConfigProblem => {
    const line = locate(segments, lineAt) ?? locate(segments.slice(0, -1), "value");
    return { path: segments.length === 0 ? "(top level)" : formatConfigPath(segments), message, ...(line === undefined ? {} : { line }) };
  };
  switch (e.keyword) {
    case "required":
      return problem([...at, String(params.missingProperty)], "is required");
    case "additionalProperties": {
      const allowed = isRecord(e.parentSchema) && isRecord(e.parentSchema.properties) ? Object.keys(e.parentSchema.properties) : [];
      return problem([...at, String(params.additionalProperty)], `unknown field (allowed: ${allowed.join(", ")})`, "key");
    }
    case "discriminator": {
      const kinds = branchKinds(e.parentSchema);
      const tag = String(params.tag);
      return params.error === "tag"
        ? problem([...at, tag], `must be a string, one of: ${kinds.join(", ")}`)
        : problem([...at, tag], `unknown kind ${JSON.stringify(params.tagValue)} (must be one of: ${kinds.join(", ")})`);
    }
    case "oneOf":
      // With a discriminator only the matching branch is checked and reported; this summary adds nothing.
      return undefined;
    case "enum":
      return problem(at, `must be one of: ${(params.allowedValues as unknown[]).map((v) => String(v)).join(", ")}`);
    case "type": {
      if (typeof custom === "string") return problem(at, custom);
      const types = Array.isArray(params.type) ? (params.type as string[]) : String(params.type).split(",");
      return problem(at, `must be ${types.map((t) => TYPE_WORDS[t] ?? t).join(" or ")}`);
    }
    case "minItems":
      return problem(at, `must list at least ${String(params.limit)} item${params.limit === 1 ? "" : "s"}`);
    case "minLength":
      return problem(at, params.limit === 1 ? "must not be empty" : `must be at least ${String(params.limit)} characters`);
    default:
      return problem(at, typeof custom === "string" ? custom : (e.message ?? `fails ${e.keyword}`));
  }
}

/** The `kind` constants of a discriminated oneOf (vm, cpu.backend), in schema order. */
function branchKinds(schema: unknown): string[] {
  if (!isRecord(schema) || !Array.isArray(schema.oneOf)) return [];
  return schema.oneOf.flatMap((branch: unknown) => {
    if (!isRecord(branch) || !isRecord(branch.properties) || !isRecord(branch.properties.kind)) return [];
    return typeof branch.properties.kind.const === "string" ? [branch.properties.kind.const] : [];
  });
}

import { test } from "node:test";
import assert from "node:assert/strict";
import { Ajv2020 } from "ajv/dist/2020.js";
import type { FromSchema, SchemaDefs } from "../../config/schemaTypes.js";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function sameType<A, B>(_proof: Equal<A, B>): void {}

const SAMPLE = {
  type: "object",
  required: ["id", "shape"],
  additionalProperties: false,
  properties: {
    id: { type: "integer", description: "ignored by the type" },
    label: { type: ["string", "null"] },
    tags: { type: "array", items: { $ref: "#/$defs/tag" } },
    level: { enum: ["low", "high"] },
    on: { type: ["object", "boolean"], additionalProperties: false, required: ["at"], properties: { at: { type: "number" } } },
    shape: { $ref: "#/$defs/shape" },
  },
  $defs: {
    tag: { type: "string", minLength: 1 },
    shape: {
      type: "object",
      required: ["kind"],
      oneOf: [
        { properties: { kind: { const: "circle" }, r: { type: "number" } }, required: ["kind", "r"], additionalProperties: false },
        { properties: { kind: { const: "dot" } }, required: ["kind"], additionalProperties: false },
      ],
    },
  },
} as const;

type Sample = FromSchema<typeof SAMPLE, SchemaDefs<typeof SAMPLE>>;

void test("FromSchema maps $ref, const, enum, oneOf, type lists, required and items", () => {
  sameType<
    Sample,
    {
      id: number;
      shape: { kind: "circle"; r: number } | { kind: "dot" };
      label?: string | null;
      tags?: string[];
      level?: "low" | "high";
      on?: { at: number } | boolean;
    }
  >(true);
  sameType<FromSchema<{ type: "string" }, Record<never, never>>, string>(true);
  sameType<FromSchema<{ $ref: "#/$defs/missing" }, SchemaDefs<typeof SAMPLE>>, never>(true);
});

void test("values of the derived type are what the schema accepts, and it refuses what the type forbids", () => {
  const validate = new Ajv2020({ strict: false, allowUnionTypes: true }).compile(SAMPLE);
  const good: Sample[] = [
    { id: 1, shape: { kind: "dot" } },
    { id: 2, shape: { kind: "circle", r: 1.5 }, label: null, tags: ["a"], level: "high", on: { at: 3 } },
    { id: 3, shape: { kind: "dot" }, on: false },
  ];
  for (const value of good) assert.ok(validate(value), JSON.stringify(validate.errors));
  assert.equal(validate({ id: 1, shape: { kind: "circle" } }), false);
  assert.equal(validate({ id: 1 }), false);
});

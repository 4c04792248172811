/**
 * Derives a TypeScript type from a JSON Schema object declared `as const`, so the raw config
 * types cannot drift from the schema the loader validates against. It covers the keywords the
 * cage schema uses: $ref into $defs, const, enum, oneOf, type (one or a list), properties,
 * required and items. Annotation and constraint keywords (description, pattern, minimum, …)
 * do not change the type.
 */

/** The `$defs` of a root schema, the table `$ref: "#/$defs/NAME"` is looked up in. */
export type SchemaDefs<Root> = Root extends { $defs: infer D } ? D : Record<never, never>;

/** The value a schema accepts. `Defs` resolves `$ref`s. */
export type FromSchema<S, Defs> = S extends { $ref: `#/$defs/${infer Name}` }
  ? Name extends keyof Defs
    ? FromSchema<Defs[Name], Defs>
    : never
  : S extends { const: infer C }
    ? C
    : S extends { enum: readonly (infer E)[] }
      ? E
      : S extends { oneOf: readonly (infer Branch)[] }
        ? BranchOf<Branch, Defs>
        : S extends { type: infer T }
          ? OfType<T extends readonly (infer One)[] ? One : T, S, Defs>
          : S extends { properties: unknown }
            ? ObjectOf<S, Defs>
            : unknown;

/** Distributes over the branches of a oneOf. */
type BranchOf<Branch, Defs> = Branch extends unknown ? FromSchema<Branch, Defs> : never;

/** One JSON type name; distributes over a list of them (`type: ["object", "boolean"]`). */
type OfType<T, S, Defs> = T extends "string"
  ? string
  : T extends "integer" | "number"
    ? number
    : T extends "boolean"
      ? boolean
      : T extends "null"
        ? null
        : T extends "array"
          ? S extends { items: infer Item }
            ? FromSchema<Item, Defs>[]
            : unknown[]
          : T extends "object"
            ? ObjectOf<S, Defs>
            : never;

type PropertiesOf<S> = S extends { properties: infer P } ? P : Record<never, never>;
type RequiredOf<S> = S extends { required: readonly (infer R)[] } ? R : never;

/** An object schema: required properties present, the others optional. Spelt out so editors show fields, not mapped types. */
type ObjectOf<S, Defs> = Flatten<
  { -readonly [K in Extract<keyof PropertiesOf<S>, RequiredOf<S>>]: FromSchema<PropertiesOf<S>[K], Defs> } & {
    -readonly [K in Exclude<keyof PropertiesOf<S>, RequiredOf<S>>]?: FromSchema<PropertiesOf<S>[K], Defs>;
  }
>;

type Flatten<T> = { [K in keyof T]: T[K] };

/** A mapping (plain object), as the checks read the raw data before or without the schema's approval. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

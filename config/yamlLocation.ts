/**
 * Where a problem is in the file: a path of keys and indexes (`cages[1].cpu.cap`) and the line
 * of the YAML node at that path, so every message reads `FILE:LINE: path: message`.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node as YamlNode } from "yaml";
import type { ConfigProblem } from "./configError.js";

/** A key of a mapping or an index of a list. */
export type PathSegment = string | number;

/** The 1-based line of the node at a path: its key (`at: "key"`) or its value; undefined when the path is not in the file. */
export type Locate = (segments: readonly PathSegment[], at: "key" | "value") => number | undefined;

/** Records one problem at a path. */
export type Report = (segments: readonly PathSegment[], message: string) => void;

/** `cages[1].cpu.cap` from ["cages", 1, "cpu", "cap"]. */
export function formatConfigPath(segments: readonly PathSegment[]): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(s)) out += out === "" ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** A problem at a path, with the line of the path's value when the file has it. */
export function problemAt(segments: readonly PathSegment[], message: string, locate: Locate): ConfigProblem {
  const line = locate(segments, "value");
  return { path: formatConfigPath(segments), message, ...(line === undefined ? {} : { line }) };
}

/** ajv's JSON Pointer (/cages/1/cpu/cap) as segments, array indexes as numbers. */
export function pointerSegments(pointer: string, data: unknown): PathSegment[] {
  if (pointer === "") return [];
  const segments: PathSegment[] = [];
  let cur: unknown = data;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(cur)) {
      const i = Number(key);
      segments.push(i);
      cur = cur[i];
    } else {
      segments.push(key);
      cur = typeof cur === "object" && cur !== null ? (cur as Record<string, unknown>)[key] : undefined;
    }
  }
  return segments;
}

/** The YAML node at a path (the key node of the last segment with at = "key"). Aliases are followed. */
export function findNode(doc: Document, segments: readonly PathSegment[], at: "key" | "value"): YamlNode | undefined {
  let node: unknown = doc.contents;
  for (let i = 0; i < segments.length; i++) {
    if (isAlias(node)) node = node.resolve(doc);
    const seg = segments[i];
    const last = i === segments.length - 1;
    if (isSeq(node) && typeof seg === "number") {
      node = node.items[seg];
    } else if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
      if (!pair) return undefined;
      node = last && at === "key" ? pair.key : pair.value;
    } else {
      return undefined;
    }
  }
  return isAlias(node) ? node.resolve(doc) : (node as YamlNode | undefined);
}

/** The Locate of one parsed document; `lineCounter` is the one it was parsed with. */
export function yamlLocator(doc: Document, lineCounter: LineCounter): Locate {
  return (segments, at) => {
    const range = findNode(doc, segments, at)?.range;
    return range ? lineCounter.linePos(range[0]).line : undefined;
  };
}

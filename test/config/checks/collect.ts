import { formatConfigPath, type PathSegment, type Report } from "../../../config/yamlLocation.js";

/** A Report that keeps `path: message` lines, for asserting on a check's output. */
export function collect(): { report: Report; lines: string[] } {
  const lines: string[] = [];
  return { report: (segments: readonly PathSegment[], message: string) => lines.push(`${formatConfigPath(segments)}: ${message}`), lines };
}

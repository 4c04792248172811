// FAKE `xentrace` and FAKE `xl` for the live collector tests (not a test file itself). There is no
// Xen hypervisor on the test machine, so these stand-ins replay REAL captures: the fake xentrace
// writes a real fixture trace to the output file named by its last argument (as xentrace 4.17
// does; we pass /proc/self/fd/1), in chunks with small delays, then waits for SIGINT/SIGTERM like the
// real one. The fake xl prints the real `xl info` / `xl list` output from the dom0 transcript.

import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixturePath } from "./fixtures.js";

export const TRANSCRIPT = fileURLToPath(new URL("../../../../../shared/fixtures/xen-commands/dom0-session-1.log", import.meta.url));

export interface FakeXentraceOptions {
  fixture: string;
  chunkBytes?: number;
  delayMs?: number;
  /** "replay": write the trace, then wait for a signal. "die": exit 1 after `dieAfterBytes`. "garbage": random bytes between chunks. */
  mode?: "replay" | "die" | "garbage";
  dieAfterBytes?: number;
  /** Every run appends its PID here. */
  pidFile: string;
}

/** Writes the fake xentrace script into dir; returns its path. */
export function writeFakeXentrace(dir: string, name: string, o: FakeXentraceOptions): string {
  const path = join(dir, name);
  const config = {
    trace: fixturePath(o.fixture),
    chunk: o.chunkBytes ?? 4096,
    delay: o.delayMs ?? 10,
    mode: o.mode ?? "replay",
    dieAfter: o.dieAfterBytes ?? Number.MAX_SAFE_INTEGER,
    pidFile: o.pidFile,
  };
  const script = `#!${process.execPath}
// FAKE xentrace for tests: replays a real trace capture. Not Xen.
"use strict";
const fs = require("node:fs");
const cfg = ${JSON.stringify(config)};
fs.appendFileSync(cfg.pidFile, process.pid + "\\n");
const out = process.argv[process.argv.length - 1];
const args = process.argv.slice(2);
const e = args.indexOf("-e");
if (e >= 0) process.stderr.write("change evtmask to 0x" + Number(args[e + 1]).toString(16) + "\\n");
const data = fs.readFileSync(cfg.trace);
const fd = fs.openSync(out, "w");
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setInterval(() => {}, 1 << 30);
let off = 0;
let n = 0;
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) & 0xff);
function step() {
  if (off >= data.length || off >= cfg.dieAfter) {
    if (cfg.mode === "die") process.exit(1);
    return;
  }
  if (cfg.mode === "garbage" && n % 3 === 1) {
    const junk = Buffer.alloc(61);
    for (let i = 0; i < junk.length; i++) junk[i] = rand();
    fs.writeSync(fd, junk);
  }
  const end = Math.min(off + cfg.chunk, data.length, cfg.dieAfter);
  fs.writeSync(fd, data.subarray(off, end));
  off = end;
  n++;
  setTimeout(step, cfg.delay);
}
step();
`;
  writeFileSync(path, script);
  chmodSync(path, 0o755);
  return path;
}

/** The output of one command in the transcript (`### $ CMD` up to `### rc=`); the first occurrence at or after `from`. */
export function transcriptOutput(command: string, occurrence = 0): string {
  const text = readFileSync(TRANSCRIPT, "utf8");
  const blocks = text.split(`### $ ${command}\n`).slice(1);
  const block = blocks[occurrence];
  if (block === undefined) throw new Error(`no "${command}" #${occurrence} in ${TRANSCRIPT}`);
  return block.slice(0, block.indexOf("### rc="));
}

/** Writes a FAKE `xl` (shell script) answering `xl info` and `xl list` with real transcript output. */
export function writeFakeXl(dir: string, opts: { listFails?: boolean; infoFails?: boolean } = {}): string {
  // The `xl list` taken while dom0 and domu1 ran (the 2-domain fixtures were captured then).
  const info = join(dir, "xl-info.txt");
  const list = join(dir, "xl-list.txt");
  writeFileSync(info, transcriptOutput("xl info"));
  writeFileSync(list, transcriptOutput("xl list", 2));
  const path = join(dir, "xl");
  writeFileSync(
    path,
    `#!/bin/sh
# FAKE xl for tests: prints real xl output captured on Xen 4.17.7. Not Xen.
case "$1" in
  info) ${opts.infoFails === true ? 'echo "xc: error: Could not obtain handle on privileged command interface" >&2; exit 1' : `cat '${info}'`} ;;
  list) ${opts.listFails === true ? "exit 1" : `cat '${list}'`} ;;
  *) echo "fake xl: unsupported $1" >&2; exit 1 ;;
esac
`,
  );
  chmodSync(path, 0o755);
  return path;
}

export function pidsIn(pidFile: string): number[] {
  try {
    return readFileSync(pidFile, "utf8").split("\n").filter((l) => l !== "").map(Number);
  } catch {
    return [];
  }
}

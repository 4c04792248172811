/**
 * `cage install` / `cage uninstall`: the agent as a systemd service (docs/service.md).
 *
 * install puts the built agent (dist/ without its tests and benchmarks, bpf/, docs/, package.json
 * and the production npm dependencies) under PREFIX, the unit (packaging/offloadcage.service,
 * filled in) in /etc/systemd/system, and the example cage file at /etc/offloadcage/cages.yaml
 * unless one is there. Every path it creates goes into PREFIX/install-manifest.json; uninstall
 * removes exactly those, keeps the operator's cage file unless --purge, and disables and stops
 * only our own unit. --root DIR puts everything below DIR (an image, or a test's scratch tree):
 * the unit and the manifest then name the paths as seen from inside it.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { commandUsage, parseCommandLine } from "../runtime/commandLine.js";
import { UsageError } from "../runtime/usageError.js";
import { AGENT_NODE_FLAGS } from "../runtime/agentNodeFlags.js";
import { DEFAULT_CONFIG_PATH } from "./runOptions.js";

export const UNIT_NAME = "offloadcage.service";
export const UNIT_DIR = "/etc/systemd/system";
export const DEFAULT_PREFIX = "/opt/offloadcage";
export const MANIFEST_NAME = "install-manifest.json";

export const INSTALL_COMMAND = {
  program: "cage install",
  summary: `Install the built agent as the systemd service ${UNIT_NAME} (docs/service.md).`,
  flags: {
    root: { type: "string", value: "DIR", help: "install below this directory instead of / (an image; systemctl is not run)" },
    prefix: { type: "string", value: "DIR", help: `where the agent goes (default ${DEFAULT_PREFIX})` },
  },
} as const;

export const UNINSTALL_COMMAND = {
  program: "cage uninstall",
  summary: `Stop and disable ${UNIT_NAME} and remove what cage install put in place (its manifest).`,
  flags: {
    root: { type: "string", value: "DIR", help: "the --root the agent was installed with" },
    prefix: { type: "string", value: "DIR", help: `the --prefix the agent was installed with (default ${DEFAULT_PREFIX})` },
    purge: { type: "boolean", help: `also remove the cage file ${DEFAULT_CONFIG_PATH} if install created it` },
  },
} as const;

export const INSTALL_USAGE = commandUsage(INSTALL_COMMAND);
export const UNINSTALL_USAGE = commandUsage(UNINSTALL_COMMAND);

/** One path install created, as seen from inside the root. */
export interface ManifestEntry {
  path: string;
  /** "tree": a directory install filled (removed whole); "dir": created empty-handed (removed if empty); "config": the cage file. */
  kind: "file" | "tree" | "dir" | "config";
}

export interface InstallManifest {
  unit: string;
  prefix: string;
  config: string;
  /** In creation order; uninstall removes in reverse. */
  entries: ManifestEntry[];
}

interface Layout {
  root: string;
  prefix: string;
}

/** Where this build lives: dist/cli/installCommand.js is two levels below it. */
const sourceRoot = (): string => fileURLToPath(new URL("../../", import.meta.url));

function layout(values: { root?: string | undefined; prefix?: string | undefined }, program: string, usage: string): Layout {
  const root = values.root ?? "/";
  const prefix = values.prefix ?? DEFAULT_PREFIX;
  if (!isAbsolute(root)) throw new UsageError(`${program}: --root must be an absolute path, got ${JSON.stringify(root)}`, usage);
  if (!isAbsolute(prefix) || prefix === "/") throw new UsageError(`${program}: --prefix must be an absolute path below /, got ${JSON.stringify(prefix)}`, usage);
  return { root, prefix };
}

/** A path as seen from inside the root, on this machine. */
const onDisk = (l: Layout, path: string): string => join(l.root, path);

/** systemctl may act on the running manager only for a real install on a host booted with systemd. */
function systemdRunning(l: Layout): boolean {
  return l.root === "/" && existsSync("/run/systemd/system");
}

/** mkdir -p that records each directory it made (outermost first). */
function makeDirs(l: Layout, dir: string, entries: ManifestEntry[]): void {
  const missing: string[] = [];
  for (let d = dir; !existsSync(onDisk(l, d)); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    mkdirSync(onDisk(l, d));
    entries.push({ path: d, kind: "dir" });
  }
}

/** The unit template with the paths filled in. */
export function unitText(template: string, node: string, prefix: string, config: string): string {
  for (const [name, value] of [["node", node], ["prefix", prefix], ["config", config]] as const) {
    if (!isAbsolute(value) || /\s/.test(value)) throw new Error(`${UNIT_NAME}: the ${name} path must be absolute and without spaces, got ${JSON.stringify(value)}`);
  }
  const text = template.replaceAll("@NODE@", node).replaceAll("@NODE_FLAGS@", AGENT_NODE_FLAGS.join(" ")).replaceAll("@PREFIX@", prefix).replaceAll("@CONFIG@", config);
  const left = /@[A-Z_]+@/.exec(text);
  if (left !== null) throw new Error(`${UNIT_NAME}: placeholder ${left[0]} left unfilled`);
  return text;
}

/** The production dependencies' folders (npm's own answer), outermost only. */
function productionPackages(src: string): string[] {
  const out = execFileSync("npm", ["ls", "--omit=dev", "--all", "--parseable"], { cwd: src, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const dirs = out.split("\n").filter((p) => p !== "" && p !== src.replace(/\/$/, "")).map((p) => relative(src, p));
  for (const d of dirs) {
    if (!d.startsWith(`node_modules${sep}`)) throw new Error(`cage install: npm ls listed a package outside node_modules: ${d}`);
  }
  return dirs.filter((d) => !dirs.some((outer) => outer !== d && d.startsWith(`${outer}${sep}node_modules${sep}`)));
}

export function runInstall(args: string[], out: NodeJS.WritableStream = process.stdout): number {
  const { values } = parseCommandLine(INSTALL_COMMAND, args);
  const l = layout(values, "cage install", INSTALL_USAGE);
  const src = sourceRoot();
  for (const need of ["dist/cli/cage.js", "packaging/offloadcage.service", "examples/cages.yaml", "package.json"]) {
    if (!existsSync(join(src, need))) throw new Error(`cage install: ${join(src, need)} is missing; run npm run build in ${src} first`);
  }
  // ProtectHome=yes hides /home and /root from the service: a node from there could not start.
  const node = process.execPath;
  if (/^\/(home|root|run\/user)\//.test(node)) throw new Error(`cage install: node is at ${node}, which the service cannot see (ProtectHome=yes); install node system-wide first`);
  const unitPath = join(UNIT_DIR, UNIT_NAME);
  if (existsSync(onDisk(l, unitPath))) throw new Error(`cage install: ${onDisk(l, unitPath)} already exists; run cage uninstall first`);
  if (existsSync(onDisk(l, l.prefix))) throw new Error(`cage install: ${onDisk(l, l.prefix)} already exists; run cage uninstall (or remove it) first`);

  const manifest: InstallManifest = { unit: unitPath, prefix: l.prefix, config: DEFAULT_CONFIG_PATH, entries: [] };
  const manifestPath = onDisk(l, join(l.prefix, MANIFEST_NAME));
  const save = (): void => writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
  makeDirs(l, l.prefix, manifest.entries);
  // The prefix itself is ours whole: uninstall removes the tree.
  const prefixEntry = manifest.entries.find((e) => e.path === l.prefix);
  if (prefixEntry) prefixEntry.kind = "tree";
  save();

  // A failure half way leaves a manifest that uninstall can use to clean up.
  cpSync(join(src, "dist"), onDisk(l, join(l.prefix, "dist")), {
    recursive: true,
    // dist/bpf/cpuTime (the libbpf CPU program) goes along; its build intermediates do not.
    filter: (from) => ![join(src, "dist", "test"), join(src, "dist", "bench")].includes(from) && !/\.(bpf\.o|skel\.h)$/.test(from),
  });
  for (const item of ["bpf", "docs", "package.json", "package-lock.json"]) {
    if (existsSync(join(src, item))) cpSync(join(src, item), onDisk(l, join(l.prefix, item)), { recursive: true });
  }
  for (const pkg of productionPackages(src)) {
    cpSync(join(src, pkg), onDisk(l, join(l.prefix, pkg)), { recursive: true, dereference: true });
  }
  out.write(`cage install: the agent in ${onDisk(l, l.prefix)}\n`);

  makeDirs(l, UNIT_DIR, manifest.entries);
  const template = readFileSync(join(src, "packaging", UNIT_NAME), "utf8");
  writeFileSync(onDisk(l, unitPath), unitText(template, node, l.prefix, DEFAULT_CONFIG_PATH), { mode: 0o644 });
  manifest.entries.push({ path: unitPath, kind: "file" });
  save();
  out.write(`cage install: the unit ${onDisk(l, unitPath)}\n`);

  if (existsSync(onDisk(l, DEFAULT_CONFIG_PATH))) {
    out.write(`cage install: kept the existing cage file ${onDisk(l, DEFAULT_CONFIG_PATH)}\n`);
  } else {
    makeDirs(l, dirname(DEFAULT_CONFIG_PATH), manifest.entries);
    writeFileSync(onDisk(l, DEFAULT_CONFIG_PATH), readFileSync(join(src, "examples", "cages.yaml")), { flag: "wx", mode: 0o644 });
    manifest.entries.push({ path: DEFAULT_CONFIG_PATH, kind: "config" });
    save();
    out.write(`cage install: the example cage file ${onDisk(l, DEFAULT_CONFIG_PATH)} (edit it, then: systemctl enable --now ${UNIT_NAME})\n`);
  }

  if (systemdRunning(l)) {
    execFileSync("systemctl", ["daemon-reload"], { stdio: "inherit" });
    out.write("cage install: systemctl daemon-reload done\n");
  }
  return 0;
}

function readManifest(path: string): InstallManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`cage uninstall: cannot read the install manifest ${path}: ${(err as Error).message}`, { cause: err });
  }
  const m = parsed as Partial<InstallManifest>;
  const validEntry = (e: unknown): boolean => {
    const x = e as Partial<ManifestEntry> | null;
    return typeof x === "object" && x !== null && typeof x.path === "string" && isAbsolute(x.path) && ["file", "tree", "dir", "config"].includes(x.kind as string);
  };
  if (typeof m.unit !== "string" || typeof m.prefix !== "string" || typeof m.config !== "string" || !Array.isArray(m.entries) || !m.entries.every(validEntry)) {
    throw new Error(`cage uninstall: ${path} is not an install manifest (unit, prefix, config, entries[{path, kind}])`);
  }
  return m as InstallManifest;
}

export function runUninstall(args: string[], out: NodeJS.WritableStream = process.stdout): number {
  const { values } = parseCommandLine(UNINSTALL_COMMAND, args);
  const l = layout(values, "cage uninstall", UNINSTALL_USAGE);
  const manifestPath = onDisk(l, join(l.prefix, MANIFEST_NAME));
  if (!existsSync(manifestPath)) throw new Error(`cage uninstall: no install manifest at ${manifestPath}; nothing was installed there by cage install`);
  const manifest = readManifest(manifestPath);
  const unit = manifest.unit.split("/").pop() as string;

  // Only our unit: stop it (systemd running) and remove its enablement symlinks (either way). An
  // install cut short before it wrote the unit left nothing for systemctl to act on.
  if (existsSync(onDisk(l, manifest.unit))) {
    if (systemdRunning(l)) execFileSync("systemctl", ["disable", "--now", unit], { stdio: "inherit" });
    else execFileSync("systemctl", [`--root=${l.root}`, "disable", unit], { stdio: ["ignore", "ignore", "inherit"] });
  }

  for (const entry of [...manifest.entries].reverse()) {
    const path = onDisk(l, entry.path);
    if (!existsSync(path)) continue;
    if (entry.kind === "config" && !values.purge) {
      out.write(`cage uninstall: kept the cage file ${path} (--purge removes it)\n`);
      continue;
    }
    if (entry.kind === "dir") {
      // Created by install, but something else may have been put in it since.
      if (statSync(path).isDirectory() && readdirSync(path).length === 0) rmdirSync(path);
      continue;
    }
    rmSync(path, { recursive: entry.kind === "tree", force: true });
    out.write(`cage uninstall: removed ${path}\n`);
  }
  if (systemdRunning(l)) execFileSync("systemctl", ["daemon-reload"], { stdio: "inherit" });
  return 0;
}

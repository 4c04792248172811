/**
 * The two IDS workloads of `cage lab memory`:
 *  - malloc: memoryLoad.c (Figure 4), compiled with gcc into the run's temp dir;
 *  - file: AIDE (a real file-integrity IDS) scanning parts of a tree the lab writes (Figure 5);
 *  - tripwire: Tripwire checking a tree of many small files the lab writes (Figure 5's IDS).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { evictFileFromCache, writeUncachedFile } from "../../collectors/pagecache/cacheWorkloads.js";

const MiB = 1024 * 1024;

/** lab/memory/memoryLoad.c, found from this module's place in src or dist. */
export function memoryLoadSourcePath(): string {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const up = here.includes("/dist/") ? "../../../lab/memory/memoryLoad.c" : "./memoryLoad.c";
  return fileURLToPath(new URL(up, import.meta.url));
}

/** Compiles memoryLoad.c into dir/memload; returns its path. */
export function compileMemoryLoad(dir: string): string {
  const out = join(dir, "memload");
  try {
    execFileSync("gcc", ["-O2", "-Wall", "-o", out, memoryLoadSourcePath()], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === "ENOENT") throw new Error("lab memory: gcc is not installed (scripts/ensure-test-tools.sh installs it)", { cause: err });
    throw new Error(`lab memory: gcc could not compile ${memoryLoadSourcePath()}: ${e.stderr?.toString().trim() ?? String(err)}`, { cause: err });
  }
  return out;
}

export function mallocIdsArgv(memload: string, minMiB: number, maxMiB: number, holdS: number, seed: number): string[] {
  return [memload, "random", String(minMiB), String(maxMiB), String(holdS * 1000), String(seed)];
}

export function vmHoldArgv(memload: string, mib: number): string[] {
  return [memload, "hold", String(mib)];
}

export function aidePath(): string {
  const p = ["/usr/bin/aide", "/usr/sbin/aide"].find((x) => existsSync(x));
  if (p === undefined) throw new Error("lab memory: aide is not installed (scripts/ensure-test-tools.sh installs it)");
  return p;
}

export interface TreePart {
  dir: string;
  files: string[];
  bytes: number;
  /** AIDE's config for scanning this part: its own database file, so rounds do not share one. */
  aideConfig: string;
}

/**
 * Writes the tree: `parts` directories of files (sizes in MiB each), flushed and evicted from
 * the page cache, so the IDS's reads, not the lab's writes, bring them into the cache.
 */
export function writeScanTree(dir: string, partSizes: readonly (readonly number[])[]): TreePart[] {
  return partSizes.map((sizes, p) => {
    const partDir = join(dir, "tree", `part${p}`);
    mkdirSync(partDir, { recursive: true });
    const files = sizes.map((mib, i) => {
      const f = join(partDir, `file${String(i).padStart(3, "0")}.bin`);
      writeUncachedFile(f, mib * MiB);
      return f;
    });
    const aideConfig = join(dir, `aide-part${p}.conf`);
    writeFileSync(
      aideConfig,
      [
        `database_out=file:${join(dir, `aide-part${p}.db`)}`,
        "gzip_dbout=no",
        "report_url=stdout",
        "LabRule = p+i+n+u+g+s+m+c+sha256",
        `${partDir} LabRule`,
        "",
      ].join("\n"),
    );
    return { dir: partDir, files, bytes: sizes.reduce((a, b) => a + b, 0) * MiB, aideConfig };
  });
}

export function aideScanArgv(aide: string, part: TreePart): string[] {
  return [aide, "--init", `--config=${part.aideConfig}`];
}

export interface FileTree {
  dir: string;
  files: number;
  bytes: number;
}

/** Files per directory of a written tree: a tree of tens of thousands of files, spread like a real one. */
const FILES_PER_DIR = 500;

/**
 * Writes `sizes.length` files (sizes in bytes) under dir/dNNN/ and syncs them, so that they are
 * clean: a reader's fadvise(DONTNEED) can then drop them (Tripwire's baseline does, leaving the
 * tree out of the cache for its first check).
 */
export function writeFileTree(dir: string, sizes: readonly number[]): FileTree {
  let bytes = 0;
  let sub = "";
  sizes.forEach((size, i) => {
    if (i % FILES_PER_DIR === 0) {
      sub = join(dir, `d${String(i / FILES_PER_DIR).padStart(3, "0")}`);
      mkdirSync(sub, { recursive: true });
    }
    writeFileSync(join(sub, `f${String(i).padStart(5, "0")}`), Buffer.alloc(size, i & 0xff));
    bytes += size;
  });
  execFileSync("sync");
  return { dir, files: sizes.length, bytes };
}

/** Takes the part's files out of the page cache (fadvise DONTNEED, from outside the IDS's groups). */
export function evictPart(part: TreePart): void {
  for (const f of part.files) evictFileFromCache(f);
}

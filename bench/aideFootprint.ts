/**
 * The footprint of a real file-integrity IDS, as Balloon Performer measured Tripwire's
 * (121 MB RSS, 407 MB page cache): AIDE from Debian builds its database (sha256 of every file)
 * over a tree, from a cold cache. Reports its peak RSS (VmHWM) and the page cache attributed
 * to it by our collector, beside the memory cgroup's own charge for the same run.
 *
 *   node dist/bench/aideFootprint.js [--json] [--tree /usr] [--max-pages N] [--workers N]
 * Needs root and `aide` (apt-get install -y aide). Drops the machine's page cache first.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dropAllCaches } from "../collectors/pagecache/cacheWorkloads.js";
import { openMemoryCgroupCrossCheck } from "../collectors/pagecache/memoryCgroupCrossCheck.js";
import { pageCacheTotals } from "../collectors/pagecache/pageCacheTotals.js";
import { runBenchMain } from "./benchMain.js";

const MB = 1e6;

interface Options {
  json: boolean;
  tree: string;
  maxTrackedPages: number;
  workers: number | null;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { json: false, tree: "/usr", maxTrackedPages: 1 << 20, workers: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--json") o.json = true;
    else if (a === "--tree") {
      const v = argv[++i];
      if (v === undefined || !v.startsWith("/") || /\s/.test(v)) throw new Error(`aideFootprint: --tree needs an absolute path without spaces, got ${JSON.stringify(v)}`);
      o.tree = v;
    } else if (a === "--max-pages" || a === "--workers") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`aideFootprint: ${a} needs a positive integer, got ${JSON.stringify(argv[i])}`);
      if (a === "--max-pages") o.maxTrackedPages = v;
      else o.workers = v;
    } else throw new Error(`aideFootprint: unknown argument ${JSON.stringify(a)}`);
  }
  return o;
}

function vmHwmBytes(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export async function main(argv: string[]): Promise<void> {
  const opts = parseOptions(argv);
  const aide = ["/usr/bin/aide", "/usr/sbin/aide"].find((p) => existsSync(p));
  if (aide === undefined) throw new Error("aideFootprint: aide is not installed (apt-get install -y aide)");
  const version = execFileSync(aide, ["--version"], { encoding: "utf8" }).split("\n")[0]!.trim();
  const dir = mkdtempSync("/var/tmp/offloadcage-aide-");
  const config = join(dir, "aide.conf");
  writeFileSync(
    config,
    [
      `database_out=file:${join(dir, "aide.db.new")}`,
      "gzip_dbout=no",
      "report_url=stdout",
      "OffloadCageRule = p+i+n+u+g+s+m+c+sha256",
      `${opts.tree} OffloadCageRule`,
      "",
    ].join("\n"),
  );
  const treeBytes = Number(execFileSync("du", ["-sb", opts.tree], { encoding: "utf8" }).split("\t")[0]);
  const check = await openMemoryCgroupCrossCheck({ name: `offloadcage-bench-aide-${randomBytes(3).toString("hex")}`, trackingParent: "", intervalMs: 250, maxTrackedPages: opts.maxTrackedPages });
  let result;
  try {
    dropAllCaches();
    const command = [aide, "--init", `--config=${config}`, ...(opts.workers ? [`--workers=${opts.workers}`] : [])];
    const [cmd, ...args] = check.argv(command) as [string, ...string[]];
    const t0 = Date.now();
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => (stderr += d));
    let peakRss = 0;
    let peakResident = 0;
    let peakOwnedFolios = 0;
    // VmHWM is already a peak; sampling it often only makes sure the last value is seen before exit.
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, vmHwmBytes(child.pid!) ?? 0);
      const latest = check.latest();
      if (latest) peakResident = Math.max(peakResident, pageCacheTotals(latest).residentBytes);
      peakOwnedFolios = Math.max(peakOwnedFolios, check.source.counters.ownedFolios);
    }, 20);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", resolve);
    });
    clearInterval(sampler);
    const wallSeconds = (Date.now() - t0) / 1000;
    // AIDE exits 0 for --init success; anything else is a failed run, not a measurement.
    if (code !== 0) throw new Error(`aideFootprint: aide exited with ${String(code)}: ${stderr.slice(-500)}`);
    const c = await check.compare();
    const databaseBytes = existsSync(join(dir, "aide.db.new")) ? statSync(join(dir, "aide.db.new")).size : 0;
    peakResident = Math.max(peakResident, c.attributedResidentBytes);
    result = {
      bench: "aideFootprint",
      aide: version,
      tree: opts.tree,
      treeBytes,
      /** AIDE writes its database through the page cache too: part of what it inserts. */
      databaseBytes,
      wallSeconds,
      peakRssBytes: peakRss,
      pageCacheInsertedBytes: c.attributedInsertedBytes,
      pageCacheResidentBytes: c.attributedResidentBytes,
      pageCachePeakResidentBytes: peakResident,
      untrackedInserts: c.untrackedInserts,
      /** Most entries the kernel ownership map held: how big --max-pages must be for this tree. */
      peakOwnedFolios,
      memcgCacheBytes: c.memcgCacheBytes,
      memcgRelativeDifference: c.relativeDifference,
      paper: { tool: "Tripwire", rssBytes: 121 * MB, pageCacheBytes: 407 * MB },
    };
  } finally {
    await check.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  const mb = (b: number): string => `${(b / MB).toFixed(0)} MB`;
  process.stdout.write(
    `${result.aide} --init over ${result.tree} (${mb(result.treeBytes)} of files), cold cache, ${result.wallSeconds.toFixed(1)} s:\n` +
      `  peak RSS (VmHWM):             ${mb(result.peakRssBytes)}\n` +
      `  page cache inserted by AIDE:  ${mb(result.pageCacheInsertedBytes)} (its database: ${mb(result.databaseBytes)})\n` +
      `  page cache resident, peak:    ${mb(result.pageCachePeakResidentBytes)}\n` +
      `  page cache resident at exit:  ${mb(result.pageCacheResidentBytes)} (memory cgroup charge: ${mb(result.memcgCacheBytes)}, ${(result.memcgRelativeDifference * 100).toFixed(2)} % apart)\n` +
      `  ownership map: peak ${result.peakOwnedFolios} folios of ${opts.maxTrackedPages}; untracked insertions (map full): ${result.untrackedInserts}\n` +
      `  paper (Tripwire): 121 MB RSS, 407 MB page cache\n`,
  );
}

runBenchMain(import.meta.url, main, "aideFootprint: ");

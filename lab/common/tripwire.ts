/**
 * A private Open Source Tripwire (Debian's 2.4.3.7) for the labs and benchmarks: its own keys,
 * signed configuration, policy and database in one directory, nothing under /etc/tripwire or
 * /var/lib/tripwire touched. Tripwire is the IDS the Balloon Performer paper measured (121 MB RSS,
 * 407 MB page cache over 27,752 files); the labs use it beside AIDE.
 *
 * The text builders are pure; setUpTripwire (blocking) and setUpTripwireAsync (abortable) run
 * twadmin and `tripwire --init`; pickTrees chooses whole directories holding about N files.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** What Balloon Performer (its §2, Figure 5) measured of Tripwire: files checked, peak RSS and page cache, MB. */
export const BALLOON_PERFORMER_TRIPWIRE = { files: 27_752, rssMB: 121, pageCacheMB: 407 } as const;

/** The lab's throwaway passphrases: the keys guard nothing but this directory's files. */
const SITE_PASSPHRASE = "offloadcage-lab-site";
const LOCAL_PASSPHRASE = "offloadcage-lab-local";

export interface TripwireInstance {
  dir: string;
  tripwire: string;
  cfgFile: string;
  polFile: string;
  dbFile: string;
  siteKey: string;
  localKey: string;
  /** The trees the policy checks. */
  trees: string[];
}

export function tripwirePath(): string {
  const p = ["/usr/sbin/tripwire", "/usr/bin/tripwire"].find((x) => existsSync(x));
  if (p === undefined) throw new Error("tripwire is not installed (scripts/ensure-test-tools.sh installs it)");
  return p;
}

/** Characters a policy file path may not hold (whitespace and the policy language's syntax). */
const POLICY_UNSAFE = /[\s"$();{}\\]/;

function checkPath(what: string, path: string): void {
  if (!path.startsWith("/") || POLICY_UNSAFE.test(path)) throw new Error(`tripwire: ${what} must be an absolute path without spaces or policy syntax characters, got ${JSON.stringify(path)}`);
}

/** twcfg.txt: everything in `dir`, no mail, no syslog. */
export function tripwireConfigText(dir: string): string {
  checkPath("dir", dir);
  return [
    "ROOT          =/usr/sbin",
    `POLFILE       =${join(dir, "tw.pol")}`,
    `DBFILE        =${join(dir, "tw.twd")}`,
    `REPORTFILE    =${join(dir, "report.twr")}`,
    `SITEKEYFILE   =${join(dir, "site.key")}`,
    `LOCALKEYFILE  =${join(dir, "local.key")}`,
    "EDITOR        =/bin/true",
    "LATEPROMPTING =false",
    "LOOSEDIRECTORYCHECKING =false",
    "MAILNOVIOLATIONS =false",
    "EMAILREPORTLEVEL =0",
    "REPORTLEVEL   =3",
    "SYSLOGREPORTING =false",
    "MAILMETHOD    =SENDMAIL",
    "MAILPROGRAM   =/bin/false",
    `TEMPDIRECTORY =${dir}`,
    "",
  ].join("\n");
}

/** twpol.txt: each tree read-only (content hashes, as the paper's Tripwire checked). */
export function tripwirePolicyText(trees: readonly string[]): string {
  if (trees.length === 0) throw new Error("tripwire: the policy needs at least one tree");
  for (const t of trees) checkPath("tree", t);
  return `(rulename = "offloadcage lab", severity = 100)\n{\n${trees.map((t) => `  ${t} -> $(ReadOnly) ;`).join("\n")}\n}\n`;
}

function tripwireInstance(dir: string, trees: readonly string[]): TripwireInstance {
  return {
    dir,
    tripwire: tripwirePath(),
    cfgFile: join(dir, "tw.cfg"),
    polFile: join(dir, "tw.pol"),
    dbFile: join(dir, "tw.twd"),
    siteKey: join(dir, "site.key"),
    localKey: join(dir, "local.key"),
    trees: [...trees],
  };
}

/** The directory and its plain-text config and policy; then the commands that make the rest, in order. */
function prepareTripwire(inst: TripwireInstance): string[][] {
  const { dir } = inst;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "twcfg.txt"), tripwireConfigText(dir));
  writeFileSync(join(dir, "twpol.txt"), tripwirePolicyText(inst.trees));
  const twadmin = join(inst.tripwire, "..", "twadmin");
  return [
    [twadmin, "--generate-keys", "--site-keyfile", inst.siteKey, "--site-passphrase", SITE_PASSPHRASE],
    [twadmin, "--generate-keys", "--local-keyfile", inst.localKey, "--local-passphrase", LOCAL_PASSPHRASE],
    [twadmin, "--create-cfgfile", "--cfgfile", inst.cfgFile, "--site-keyfile", inst.siteKey, "--site-passphrase", SITE_PASSPHRASE, join(dir, "twcfg.txt")],
    [twadmin, "--create-polfile", "--cfgfile", inst.cfgFile, "--polfile", inst.polFile, "--site-keyfile", inst.siteKey, "--site-passphrase", SITE_PASSPHRASE, join(dir, "twpol.txt")],
    tripwireInitArgv(inst),
  ];
}

/**
 * The longest any one set-up step may take (the baseline of a large tree). Each step runs in the
 * instance's directory: tripwire and twadmin blank their command lines, so that is how their
 * processes can be told apart (/proc/PID/cwd).
 */
const SET_UP_STEP_TIMEOUT_MS = 600_000;

function setUpError(argv: readonly string[], err: unknown): Error {
  const stderr = (err as { stderr?: Buffer | string }).stderr?.toString().trim() ?? "";
  return new Error(`tripwire set-up: ${argv[0] ?? ""} ${argv[1] ?? ""} failed: ${stderr || (err as Error).message}`, { cause: err });
}

/** Keys, signed configuration and policy, then the baseline database (`tripwire --init`). Blocks until done. */
export function setUpTripwire(dir: string, trees: readonly string[]): TripwireInstance {
  const inst = tripwireInstance(dir, trees);
  for (const [file, ...args] of prepareTripwire(inst)) {
    try {
      execFileSync(file as string, args, { cwd: inst.dir, stdio: ["ignore", "ignore", "pipe"], timeout: SET_UP_STEP_TIMEOUT_MS });
    } catch (err) {
      throw setUpError([file as string, ...args], err);
    }
  }
  return inst;
}

/**
 * The same set-up without blocking the event loop: `signal` kills the running step's child and
 * rejects once it has exited, so a lab interrupted during a long baseline stops at once.
 */
export async function setUpTripwireAsync(dir: string, trees: readonly string[], signal: AbortSignal): Promise<TripwireInstance> {
  const inst = tripwireInstance(dir, trees);
  for (const argv of prepareTripwire(inst)) {
    signal.throwIfAborted();
    const [file, ...args] = argv;
    // Not execFile's own `signal`: it reports the abort before the killed child has exited.
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => void child.kill("SIGKILL");
      const child = execFile(file as string, args, { cwd: inst.dir, timeout: SET_UP_STEP_TIMEOUT_MS, killSignal: "SIGKILL" }, (err) => {
        signal.removeEventListener("abort", onAbort);
        if (signal.aborted) reject(new Error(`tripwire set-up: aborted during ${argv[0] ?? ""} ${argv[1] ?? ""}`, { cause: signal.reason }));
        else if (err) reject(setUpError(argv, err));
        else resolve();
      });
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
  return inst;
}

export function tripwireInitArgv(t: TripwireInstance): string[] {
  return [t.tripwire, "--init", "--cfgfile", t.cfgFile, "--polfile", t.polFile, "--dbfile", t.dbFile, "--site-keyfile", t.siteKey, "--local-keyfile", t.localKey, "--local-passphrase", LOCAL_PASSPHRASE, "--quiet"];
}

/** An integrity check against the baseline; exit code 0 = no violations (bits 1/2/4/8 = added/removed/changed/error). */
export function tripwireCheckArgv(t: TripwireInstance, reportFile: string): string[] {
  return [t.tripwire, "--check", "--cfgfile", t.cfgFile, "--polfile", t.polFile, "--dbfile", t.dbFile, "--site-keyfile", t.siteKey, "--local-keyfile", t.localKey, "--twrfile", reportFile, "--no-tty-output", "--quiet"];
}

/** "Total objects scanned:  5909" from `twprint --print-report`. */
export function parseObjectsScanned(reportText: string): number | null {
  const m = /Total objects scanned:\s+(\d+)/.exec(reportText);
  return m ? Number(m[1]) : null;
}

/** The report of a check, as text (twprint). */
export function printTripwireReport(t: TripwireInstance, reportFile: string): string {
  return execFileSync(join(t.tripwire, "..", "twprint"), ["--print-report", "--cfgfile", t.cfgFile, "--twrfile", reportFile, "--site-keyfile", t.siteKey], { encoding: "utf8", timeout: 60_000 });
}

export interface TreePick {
  /** Whole directories, each one a policy tree. */
  dirs: string[];
  files: number;
  bytes: number;
}

/** Regular files and their bytes under `dir` (symbolic links not followed; other filesystems skipped). */
function countFiles(dir: string, device: number): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const stack = [dir];
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const path = join(d, e.name);
      if (e.isDirectory()) {
        if (lstatSync(path).dev === device) stack.push(path);
      } else if (e.isFile()) {
        files++;
        bytes += lstatSync(path).size;
      }
    }
  }
  return { files, bytes };
}

/**
 * Whole directories under `root`, in name order, until they hold `target` regular files: a
 * directory that would overshoot the rest is descended into instead (its own files then left
 * out), so the total lands close to the target. Paths a policy cannot name are skipped.
 */
export function pickTrees(root: string, target: number): TreePick {
  const device = lstatSync(root).dev;
  const pick: TreePick = { dirs: [], files: 0, bytes: 0 };
  const subdirs = (dir: string): string[] => {
    try {
      return readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name)).sort();
    } catch {
      return [];
    }
  };
  const visit = (dir: string): void => {
    for (const sub of subdirs(dir)) {
      const rest = target - pick.files;
      if (rest <= 0) return;
      if (POLICY_UNSAFE.test(sub) || lstatSync(sub).dev !== device) continue;
      const c = countFiles(sub, device);
      if (c.files === 0) continue;
      // Within 2% of the target, or small: take it whole; else look inside.
      if (c.files <= rest + target * 0.02) {
        pick.dirs.push(sub);
        pick.files += c.files;
        pick.bytes += c.bytes;
      } else visit(sub);
    }
  };
  visit(root);
  return pick;
}

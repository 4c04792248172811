/**
 * A private Open Source Tripwire (Debian's 2.4.3.7) for the labs and benchmarks: its own keys,
 * signed configuration, policy and database in one directory, nothing under /etc/tripwire or
 * /var/lib/tripwire touched. Tripwire is the IDS the Balloon Performer paper measured (121 MB RSS,
 * 407 MB page cache over 27,752 files); the labs use it beside AIDE.
 *
 * The text builders are pure; setUpTripwire runs twadmin and `tripwire --init`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

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

function checkPath(what: string, path: string): void {
  if (!path.startsWith("/") || /[\s"$();{}\\]/.test(path)) throw new Error(`tripwire: ${what} must be an absolute path without spaces or policy syntax characters, got ${JSON.stringify(path)}`);
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

/** Keys, signed configuration and policy, then the baseline database (`tripwire --init`). */
export function setUpTripwire(dir: string, trees: readonly string[]): TripwireInstance {
  const tripwire = tripwirePath();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const twadmin = join(tripwire, "..", "twadmin");
  const inst: TripwireInstance = {
    dir,
    tripwire,
    cfgFile: join(dir, "tw.cfg"),
    polFile: join(dir, "tw.pol"),
    dbFile: join(dir, "tw.twd"),
    siteKey: join(dir, "site.key"),
    localKey: join(dir, "local.key"),
    trees: [...trees],
  };
  writeFileSync(join(dir, "twcfg.txt"), tripwireConfigText(dir));
  writeFileSync(join(dir, "twpol.txt"), tripwirePolicyText(trees));
  const run = (file: string, args: string[]): void => {
    try {
      execFileSync(file, args, { stdio: ["ignore", "ignore", "pipe"], timeout: 600_000 });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim() ?? "";
      throw new Error(`tripwire set-up: ${file} ${args[0] ?? ""} failed: ${stderr || (err as Error).message}`, { cause: err });
    }
  };
  run(twadmin, ["--generate-keys", "--site-keyfile", inst.siteKey, "--site-passphrase", SITE_PASSPHRASE]);
  run(twadmin, ["--generate-keys", "--local-keyfile", inst.localKey, "--local-passphrase", LOCAL_PASSPHRASE]);
  run(twadmin, ["--create-cfgfile", "--cfgfile", inst.cfgFile, "--site-keyfile", inst.siteKey, "--site-passphrase", SITE_PASSPHRASE, join(dir, "twcfg.txt")]);
  run(twadmin, ["--create-polfile", "--cfgfile", inst.cfgFile, "--polfile", inst.polFile, "--site-keyfile", inst.siteKey, "--site-passphrase", SITE_PASSPHRASE, join(dir, "twpol.txt")]);
  run(tripwire, tripwireInitArgv(inst).slice(1));
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

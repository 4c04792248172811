// A fake `systemctl` for tests on a host whose PID 1 is not systemd: a shell script that keeps
// each unit's properties in STATE/<unit> (KEY=VALUE lines), answers `show UNIT -p K…` like
// systemctl (LoadState=not-found for a unit it does not know, exit 0) and `set-property
// --runtime UNIT K=V…` (error and exit 1 for an unknown unit), and logs every call to STATE/calls.
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FakeSystemctl {
  /** Folder holding the `systemctl` script: put it first in PATH. */
  bin: string;
  program: string;
  /** A unit's properties now. */
  props(unit: string): Map<string, string>;
  calls(): string[];
  remove(): void;
}

const SCRIPT = `#!/bin/sh
state="$FAKE_SYSTEMCTL_STATE"
printf '%s\\n' "$*" >> "$state/calls"
cmd="$1"; shift
case "$cmd" in
show)
  unit="$1"; shift
  f="$state/units/$unit"
  while [ $# -gt 0 ]; do
    if [ "$1" = -p ]; then
      key="$2"; shift 2
      if [ "$key" = LoadState ]; then
        if [ -f "$f" ]; then echo LoadState=loaded; else echo LoadState=not-found; fi
      elif [ -f "$f" ]; then
        grep "^$key=" "$f" || echo "$key="
      else
        echo "$key="
      fi
    else
      shift
    fi
  done
  ;;
set-property)
  [ "$1" = --runtime ] || { echo "fake systemctl: only --runtime" >&2; exit 2; }
  unit="$2"; shift 2
  f="$state/units/$unit"
  [ -f "$f" ] || { echo "Failed to set unit properties on $unit: Unit $unit not found." >&2; exit 1; }
  for a in "$@"; do
    key="\${a%%=*}"
    grep -v "^$key=" "$f" > "$f.new"; echo "$a" >> "$f.new"; mv "$f.new" "$f"
  done
  ;;
*) echo "fake systemctl: unknown command $cmd" >&2; exit 2 ;;
esac
`;

/** units: unit name → its properties as `systemctl show` prints them. */
export function fakeSystemctl(units: Record<string, Record<string, string>>): FakeSystemctl {
  const state = mkdtempSync(join(tmpdir(), "oc-fake-systemctl-"));
  const bin = join(state, "bin");
  mkdirSync(bin);
  mkdirSync(join(state, "units"));
  const program = join(bin, "systemctl");
  writeFileSync(program, SCRIPT);
  chmodSync(program, 0o755);
  writeFileSync(join(state, "calls"), "");
  for (const [unit, props] of Object.entries(units)) {
    writeFileSync(join(state, "units", unit), Object.entries(props).map(([k, v]) => `${k}=${v}\n`).join(""));
  }
  process.env.FAKE_SYSTEMCTL_STATE = state;
  return {
    bin,
    program,
    props(unit) {
      const out = new Map<string, string>();
      for (const line of readFileSync(join(state, "units", unit), "utf8").split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
      }
      return out;
    },
    calls: () => readFileSync(join(state, "calls"), "utf8").split("\n").filter((l) => l !== ""),
    remove: () => rmSync(state, { recursive: true, force: true }),
  };
}

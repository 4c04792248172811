/**
 * Runs one Xen lab scenario by hand (scripts/xen-lab.sh calls this after building):
 *   node dist/lab/xen/runXenLab.js [--phases smoke|cpu-off,cpu-on,balloon] [--scheduler credit|credit2]
 *        [--cap PCT] [--ids-cap PCT] [--duration S] [--ids aide|burn] [--domu-mem MIB] [--balloon-step MIB]
 *        [--balloon-steps N] [--probe-load burn,xentrace,bpftrace] [--out DIR] [--timeout S] [--project BUILT_TREE]
 * --project carries another built checkout into dom0 (this tree's dist/lab/xen laid over it),
 * e.g. a branch whose actuator is not merged here yet.
 * Prints the progress markers, then a JSON summary (timings, results) on stdout.
 */
import { markerTime, type LabScenarioSpec } from "./labScenario.js";
import { runLabScenario } from "./xenLab.js";

function parse(argv: string[]): { spec: LabScenarioSpec; outDir: string | undefined; timeoutS: number; projectRoot: string | undefined } {
  const spec: LabScenarioSpec = { phases: ["cpu-off"], scheduler: "credit", capPct: 50, idsCapPct: 25, durationS: 20, ids: "aide", domuMemMiB: 256, balloonStepMiB: 24, balloonSteps: 4 };
  let outDir: string | undefined;
  let projectRoot: string | undefined;
  let timeoutS = 300;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = (): number => {
      const s = val();
      const n = Number(s);
      if (!Number.isFinite(n)) throw new Error(`${a} needs a number, got ${JSON.stringify(s)}`);
      return n;
    };
    switch (a) {
      case "--phases": spec.phases = val().split(",") as LabScenarioSpec["phases"]; break;
      case "--scheduler": spec.scheduler = val() as LabScenarioSpec["scheduler"]; break;
      case "--cap": spec.capPct = num(); break;
      case "--ids-cap": spec.idsCapPct = num(); break;
      case "--duration": spec.durationS = num(); break;
      case "--ids": spec.ids = val() as LabScenarioSpec["ids"]; break;
      case "--domu-mem": spec.domuMemMiB = num(); break;
      case "--balloon-step": spec.balloonStepMiB = num(); break;
      case "--balloon-steps": spec.balloonSteps = num(); break;
      case "--probe-load": spec.probeLoad = val().split(",").filter(Boolean) as NonNullable<LabScenarioSpec["probeLoad"]>; break;
      case "--out": outDir = val(); break;
      case "--project": projectRoot = val(); break;
      case "--timeout": timeoutS = num(); break;
      default: throw new Error(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (!(timeoutS >= 60 && timeoutS <= 3600)) throw new Error(`--timeout must be 60..3600 s, got ${timeoutS}`);
  if (projectRoot !== undefined && !projectRoot.startsWith("/")) throw new Error(`--project needs an absolute path, got ${JSON.stringify(projectRoot)}`);
  return { spec, outDir, timeoutS, projectRoot };
}

async function main(): Promise<number> {
  let opts;
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`xen-lab: ${(err as Error).message}\n`);
    return 2;
  }
  const r = await runLabScenario({
    spec: opts.spec,
    outDir: opts.outDir,
    timeoutMs: opts.timeoutS * 1000,
    projectRoot: opts.projectRoot,
    onMarker: (m) => process.stderr.write(`[${m.atS.toFixed(1)}s] ${m.name} ${m.rest}\n`),
  });
  const summary = {
    imagesSeconds: r.imagesSeconds,
    qemuSeconds: r.boot.wallSeconds,
    exitCode: r.boot.exitCode,
    timedOut: r.boot.timedOut,
    dom0Stage1S: markerTime(r.boot.markers, "stage1"),
    xenReadyS: markerTime(r.boot.markers, "xen-ready"),
    scenarioStartS: markerTime(r.boot.markers, "scenario-start"),
    poweroffS: markerTime(r.boot.markers, "poweroff"),
    resultsDir: r.resultsDir,
    consoleLog: r.consoleLogPath,
    results: r.results,
  };
  process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
  return r.results !== null && (r.results as { ok?: boolean }).ok === true ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`xen-lab: ${(err as Error).message}\n`);
    process.exit(1);
  },
);

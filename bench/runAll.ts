/**
 * `npm run bench`: runs every benchmark in bench/ one after another (they measure, so they
 * must not share the 2 CPUs with each other). Each prints its own figures, as ratios against a
 * baseline measured in the same run. `npm run bench -- --json` makes each print one JSON object.
 */
import { pathToFileURL } from "node:url";

const BENCHES = ["agentFootprint", "tripwireFootprint", "collectorOverhead", "pipelineIngest", "xentraceParse", "pageCacheOverhead", "limiterPrecision", "controlLatency", "fuzz"];

interface Bench {
  main(argv: string[]): Promise<void>;
}

async function runAll(argv: string[]): Promise<number> {
  const only = argv.filter((a) => !a.startsWith("--"));
  const flags = argv.filter((a) => a.startsWith("--"));
  let failed = 0;
  for (const name of BENCHES) {
    if (only.length && !only.includes(name)) continue;
    process.stderr.write(`\n=== bench/${name} ===\n`);
    try {
      const mod = (await import(new URL(`./${name}.js`, import.meta.url).href)) as Bench;
      await mod.main(flags);
    } catch (err) {
      failed++;
      process.stderr.write(`bench/${name} failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  void runAll(process.argv.slice(2)).then((code) => (process.exitCode = code));
}

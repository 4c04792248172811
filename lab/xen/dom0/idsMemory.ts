/**
 * Xen lab, dom0: an IDS whose memory grows on demand (the balloon phase).
 *   node idsMemory.js lab-ids STEP_MIB
 * Each SIGUSR1 allocates STEP_MIB more and writes every page, so the RSS really grows; prints
 * "held N MiB" after each step. Runs until SIGTERM. The first argument is the tag the cage's
 * `ids` matcher selects it by.
 */
const stepMiB = Number(process.argv[3]);
if (process.argv[2] !== "lab-ids" || !Number.isInteger(stepMiB) || stepMiB < 1 || stepMiB > 512) {
  process.stderr.write(`usage: idsMemory.js lab-ids STEP_MIB (1..512), got ${JSON.stringify(process.argv.slice(2))}\n`);
  process.exit(2);
}
const held: Buffer[] = [];
process.on("SIGUSR1", () => {
  // fill() touches every page: an allocation alone might stay virtual.
  held.push(Buffer.alloc(stepMiB * 1024 * 1024).fill(0x5a));
  process.stdout.write(`held ${held.length * stepMiB} MiB\n`);
});
process.on("SIGTERM", () => process.exit(0));
process.stdout.write("ready\n");
setInterval(() => undefined, 60_000);

/**
 * How long a collector waits for bpftrace to attach its probes. An environment variable rather
 * than a config field because `cage run`'s children inherit it: under QEMU's emulation (the Xen
 * lab's dom0, the v2 lab's guest) bpftrace needs minutes to compile, not seconds.
 */
export const ATTACH_TIMEOUT_ENV = "OFFLOADCAGE_BPFTRACE_ATTACH_TIMEOUT_MS";

/** $OFFLOADCAGE_BPFTRACE_ATTACH_TIMEOUT_MS when set, else `defaultMs`; throws naming `who` on a bad value. */
export function attachTimeoutFromEnv(who: string, defaultMs: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[ATTACH_TIMEOUT_ENV];
  if (raw === undefined || raw === "") return defaultMs;
  const ms = Number(raw);
  if (!/^\d+$/.test(raw) || ms < 1000 || ms > 3_600_000) {
    throw new Error(`${who}: ${ATTACH_TIMEOUT_ENV} must be an integer number of ms from 1000 to 3600000, got ${JSON.stringify(raw)}`);
  }
  return ms;
}

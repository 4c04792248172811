/**
 * Supervised children must not outlive `cage run`, even when it is SIGKILLed (no chance to
 * stop them). The supervisor gives each child an IPC channel; the kernel closes it when the
 * parent dies, and the child then stops itself through its normal SIGTERM path.
 */
let watching = false;

/** Idempotent: a second call must not add a second SIGTERM, which would find no handler left. */
export function stopWhenParentDies(): void {
  if (!process.channel || watching) return; // not started by the supervisor, or already watching
  watching = true;
  process.channel.unref(); // the channel alone must not keep the process alive
  process.once("disconnect", () => process.kill(process.pid, "SIGTERM"));
}

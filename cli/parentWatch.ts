/**
 * Supervised children must not outlive `cage run`, even when it is SIGKILLed (no chance to
 * stop them). The supervisor gives each child an IPC channel; the kernel closes it when the
 * parent dies, and the child then stops itself through its normal SIGTERM path.
 */
export function stopWhenParentDies(): void {
  if (!process.channel) return; // not started by the supervisor
  process.channel.unref(); // the channel alone must not keep the process alive
  process.once("disconnect", () => process.kill(process.pid, "SIGTERM"));
}

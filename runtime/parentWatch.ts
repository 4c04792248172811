/**
 * Supervised children must not outlive `cage run`, even when it is SIGKILLed (no chance to
 * stop them). The supervisor gives each child an IPC channel; the kernel closes it when the
 * parent dies, which is what we watch.
 */

/**
 * Calls `onDeath` once when the parent that started us with an IPC channel goes away. Returns
 * false (and never calls it) when there is no such channel: not started by the supervisor.
 */
export function onParentDeath(onDeath: () => void): boolean {
  const channel = process.channel;
  if (!channel) return false;
  channel.unref(); // the channel alone must not keep the process alive
  process.once("disconnect", onDeath);
  // Already gone before we looked: "disconnect" will not fire again.
  if (!process.connected) {
    process.off("disconnect", onDeath);
    queueMicrotask(onDeath);
  }
  return true;
}

let watching = false;

/**
 * For processes outside the process runtime (the demo workloads): a dead parent becomes a
 * SIGTERM to ourselves, so the normal stop path runs. Idempotent.
 */
export function stopWhenParentDies(): void {
  if (watching) return;
  watching = onParentDeath(() => process.kill(process.pid, "SIGTERM"));
}

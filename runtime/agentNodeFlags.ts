/**
 * V8 flags every node process of the agent runs with: `cage run` (from the service unit's
 * ExecStart, packaging/offloadcage.service) and each node child it starts (docs/metrics.md,
 * "Agent footprint"). The agent's processes allocate steadily but keep little (the memory
 * collector: 9.5 MiB live): the young generation grows to 16 MiB semi-spaces by default, where
 * 2 MiB holds what survives a scavenge, and the old generation grows well past what is live
 * before V8 collects it, which --optimize-for-size checks sooner.
 * Together they cost some CPU (more collections) for tens of MiB of resident memory per process.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2", "--optimize-for-size"];

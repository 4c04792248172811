// Restore steps against real files and real UNIX sockets: what counts as a failure, and what
// as "nothing left to restore". The QMP peers here are fakes (a QEMU would need a guest boot);
// the real QEMU is in test/actuators/balloon/qemuBalloon.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { carryOutRestore, type RestorePlan } from "../../../actuators/common/restoreSteps.js";

const dir = mkdtempSync(join(tmpdir(), "oc-restore-steps-"));
void test.after(() => rmSync(dir, { recursive: true, force: true }));

function plan(parts: Partial<RestorePlan>): RestorePlan {
  return { writes: new Map(), execs: new Map(), qmps: new Map(), ...parts };
}

/** A fake QMP peer: greets, then answers each command with `reply(command)` (null: never answers). */
async function fakeQmp(path: string, reply: (command: string) => object | null): Promise<{ server: Server; commands: string[] }> {
  const commands: string[] = [];
  const server = createServer((conn: Socket) => {
    conn.write(`${JSON.stringify({ QMP: { version: {}, capabilities: [] } })}\n`);
    conn.on("data", (b) => {
      for (const line of b.toString("utf8").split("\n").filter((l) => l !== "")) {
        const command = (JSON.parse(line) as { execute: string }).execute;
        commands.push(command);
        const r = reply(command);
        if (r !== null) conn.write(`${JSON.stringify(r)}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { server, commands };
}

void test("a cgroup file that is gone and a QEMU that is gone are nothing to restore; the rest is written", async () => {
  const file = join(dir, "cpu.max");
  writeFileSync(file, "20000 100000");
  const notASocket = join(dir, "stale.sock");
  writeFileSync(notASocket, ""); // a socket file left behind by an exited QEMU refuses connections alike
  const failures = await carryOutRestore(
    plan({
      writes: new Map([[file, "max"], [join(dir, "gone", "cpu.max"), "max"]]),
      qmps: new Map([
        ["qmp:gone", { socket: join(dir, "no-such.sock"), bytes: 512 }],
        ["qmp:stale", { socket: notASocket, bytes: 512 }],
      ]),
    }),
    2_000,
  );
  assert.deepEqual(failures, []);
  assert.equal(readFileSync(file, "utf8"), "max");
});

void test("a QEMU that answers: the balloon is set; an error reply and no answer are failures naming the step", async () => {
  const ok = await fakeQmp(join(dir, "ok.sock"), () => ({ return: {} }));
  const refusing = await fakeQmp(join(dir, "err.sock"), (c) => (c === "balloon" ? { error: { class: "GenericError", desc: "No balloon device has been activated" } } : { return: {} }));
  const silent = await fakeQmp(join(dir, "silent.sock"), (c) => (c === "balloon" ? null : { return: {} }));
  try {
    const failures = await carryOutRestore(
      plan({
        qmps: new Map([
          ["qmp:ok", { socket: join(dir, "ok.sock"), bytes: 512 }],
          ["qmp:err", { socket: join(dir, "err.sock"), bytes: 512 }],
          ["qmp:silent", { socket: join(dir, "silent.sock"), bytes: 512 }],
        ]),
      }),
      500,
    );
    assert.deepEqual(ok.commands, ["qmp_capabilities", "balloon"]);
    assert.equal(failures.length, 2, failures.join("\n"));
    assert.match(failures[0] as string, /^qmp:err \(balloon 512 via .*err\.sock\): QMP error: No balloon device has been activated$/);
    assert.match(failures[1] as string, /^qmp:silent \(balloon 512 via .*silent\.sock\): no answer within 500 ms$/);
  } finally {
    for (const s of [ok, refusing, silent]) s.server.close();
  }
});

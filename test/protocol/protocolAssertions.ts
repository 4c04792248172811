/** Assertions shared by the protocol tests. */
import assert from "node:assert/strict";
import { isProtocolError, type ProtocolError } from "../../protocol/wireFormat.js";

/** Runs `fn`, expects a ProtocolError and returns it for checks on `where` and `reason`. */
export function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (err) {
    assert.ok(isProtocolError(err), `expected a ProtocolError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ProtocolError, nothing was thrown");
}

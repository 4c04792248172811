/**
 * User names in matchers (`user: clamav`) become UIDs when the file is loaded, from /etc/passwd:
 * the matcher then compares numbers, so a user renamed or added later does not change what an
 * already loaded config selects. Only the local file is read (no NSS): the agent runs before any
 * directory service may be up, and an IDS's owner should be a local system user.
 */
import { readFileSync } from "node:fs";

export const PASSWD_PATH = "/etc/passwd";

/** Name → UID from /etc/passwd text; lines that are not `name:x:uid:...` are skipped. */
export function parsePasswd(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 3 || fields[0] === "" || line.startsWith("#")) continue;
    const uid = Number(fields[2]);
    if (!/^\d+$/.test(fields[2]!) || !Number.isSafeInteger(uid)) continue;
    if (!out.has(fields[0]!)) out.set(fields[0]!, uid);
  }
  return out;
}

/** The local users, read afresh on each call (a config load is rare; the file may change between loads). */
export function readUsers(path = PASSWD_PATH): Map<string, number> {
  return parsePasswd(readFileSync(path, "utf8"));
}
